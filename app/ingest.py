"""The worker's side of a submission: validate again, apply, record the verdict, wake waiters.

Batch-first: :func:`ingest_submissions` takes any number of queued submissions and costs a
constant number of Redis round trips, whatever the batch size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from app import keys, submissions
from app.boards import Applied, Entry, apply_entries
from app.games import Registry
from app.validation import Rejection, validate_queued

log = logging.getLogger(__name__)


def _rejected(payload: Any, rejection: Rejection) -> dict[str, Any]:
    record: dict[str, Any] = {
        "status": submissions.REJECTED,
        "code": rejection.code,
        "reason": rejection.detail,
    }
    if rejection.errors:
        record["errors"] = rejection.errors
    if isinstance(payload, dict):
        for name in ("fingerprint", "game", "player_id"):
            if isinstance(payload.get(name), str):
                record[name] = payload[name][:64]
    return record


def _accepted(entry: Entry, applied: Applied, fp: str) -> dict[str, Any]:
    record = {
        "status": submissions.ACCEPTED,
        "fingerprint": fp,
        "game": entry.game.slug,
        "player_id": entry.player_id,
        "board": {"game": entry.game.slug, "variant": entry.variant, "window": "alltime"},
        "rank": applied.ranks["alltime"],
        "ranks": applied.ranks,
        "score": applied.score,
        "achieved_at": applied.achieved_at,
    }
    if applied.fresh:  # a replay cannot tell whether the first run beat the player's best
        record["personal_best"] = applied.improved["alltime"]
    return record


def _submission_id(payload: Any) -> str | None:
    sid = payload.get("submission_id") if isinstance(payload, dict) else None
    return sid if isinstance(sid, str) and submissions.SUBMISSION_ID.match(sid) else None


def _settled(client: redis.Redis, payloads: Sequence[Any]) -> set[str]:
    """The submissions of a batch that already have a final verdict."""
    ids = list(dict.fromkeys(sid for p in payloads if (sid := _submission_id(p))))
    if not ids:
        return set()
    pipe = client.pipeline(transaction=False)
    for sid in ids:
        pipe.get(keys.submission_key(sid))
    return {
        sid
        for sid, raw in zip(ids, pipe.execute(), strict=True)
        if raw and json.loads(raw).get("status") in submissions.FINAL
    }


def ingest_submissions(
    client: redis.Redis,
    registry: Registry,
    payloads: Sequence[Any],
    now_ms: int,
    ttl: int,
) -> list[tuple[str, dict[str, Any]]]:
    """Validate, apply and settle a batch of queued submissions; return the new verdicts.

    Running it twice on the same payloads changes nothing more: a settled submission is only
    announced again, and the boards skip submissions they have applied.
    """
    entries: list[Entry] = []
    fingerprints: list[str] = []
    verdicts: list[tuple[str, dict[str, Any]]] = []
    settled = _settled(client, payloads)
    if settled:
        client.publish(keys.VERDICT_CHANNEL, " ".join(settled))
    for payload in payloads:
        if _submission_id(payload) in settled:
            continue
        try:
            checked = validate_queued(registry, payload)
        except Exception:  # a message must never take the worker down
            log.exception("could not validate a queued submission")
            checked = Rejection("invalid", "the submission could not be read")
        if isinstance(checked, Rejection):
            sid = _submission_id(payload)
            if sid is not None:
                verdicts.append((sid, _rejected(payload, checked)))
            else:
                log.warning("dropped a queued message without a usable id: %s", checked.detail)
            continue
        sub, game = checked
        entries.append(
            Entry(
                submission_id=sub.submission_id,
                game=game,
                variant=sub.variant,
                player_id=sub.player_id,
                name=sub.name,
                score=sub.score,
                achieved_at=sub.received_at,
            )
        )
        fingerprints.append(sub.fingerprint)
    for entry, applied, fp in zip(
        entries, apply_entries(client, entries, now_ms), fingerprints, strict=True
    ):
        if applied.banned:
            rejection = Rejection("banned", "this player may not enter this game's boards")
            record = _rejected(
                {"fingerprint": fp, "game": entry.game.slug, "player_id": entry.player_id},
                rejection,
            )
        else:
            record = _accepted(entry, applied, fp)
        verdicts.append((entry.submission_id, record))
    submissions.settle(client, verdicts, ttl, now_ms)
    return verdicts
