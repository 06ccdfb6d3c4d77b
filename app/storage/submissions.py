"""Submission status records: created by the web, settled by a worker with its verdict.

A record is a JSON string under :func:`app.storage.keys.submission_key` with a TTL. The web creates
it only if absent, with the submission's entry on the ingest stream
(:func:`app.storage.intake.enqueue`), so a repeated ``submission_id`` (or ``Idempotency-Key``) maps
to one entry; the worker overwrites it with the verdict and announces the id on
:data:`app.storage.keys.VERDICT_CHANNEL`."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pydantic_core
import redis

from app.storage import keys
from app.storage.keys import PLAYER_ID_PATTERN, SUBMISSION_ID_PATTERN

SUBMISSION_ID = re.compile(SUBMISSION_ID_PATTERN)
PLAYER_ID = re.compile(PLAYER_ID_PATTERN)

QUEUED, ACCEPTED, REJECTED = "queued", "accepted", "rejected"
FINAL = frozenset({ACCEPTED, REJECTED})

# Fields of a submission that make it the same submission when sent again (the player is
# compared on its own: a first request may have been given the id its retry carries).
_IDENTITY_FIELDS = ("game", "variant", "name", "score", "duration_ms", "token")

# How many rejections the audit stream keeps (approximately).
REJECTED_STREAM_MAXLEN = 100_000


def new_id() -> str:
    """A fresh opaque id (22 URL-safe characters, 128 random bits)."""
    return secrets.token_urlsafe(16)


def fingerprint(submission: Mapping[str, Any]) -> str:
    """A digest of what a client sent, to tell an honest retry from a reused id."""
    identity = {name: submission.get(name) for name in _IDENTITY_FIELDS}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def encoded(record: Mapping[str, Any]) -> bytes:
    """A record as the JSON text stored in Redis (compact, UTF-8)."""
    # pydantic's encoder writes what json.dumps writes, a few times faster.
    return pydantic_core.to_json(record)


def read(client: redis.Redis, submission_id: str) -> dict[str, Any] | None:
    """The record of a submission, or None if unknown or expired."""
    raw = cast(str | None, client.get(keys.submission_key(submission_id)))
    return json.loads(raw) if raw else None


#: Upper bounds (seconds) of the submit-to-verdict latency histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def latency_bucket(seconds: float) -> str:
    """The histogram field that counts a latency (``le:<bound>``, or ``le:+Inf``)."""
    bound = next((b for b in LATENCY_BUCKETS if seconds <= b), None)
    return f"le:{bound}" if bound is not None else "le:+Inf"


def settle(
    client: redis.Redis,
    verdicts: Sequence[tuple[str, dict[str, Any]]],
    ttl: int,
    now_ms: int,
    announce: Sequence[str] = (),
) -> None:
    """Store final records, count and audit them, and wake long-polls, in one round trip;
    ``announce`` names submissions settled before, whose waiters are woken again."""
    if not verdicts and not announce:
        return
    pipe = client.pipeline(transaction=False)
    store_verdicts(pipe, verdicts, ttl)
    count_verdicts(pipe, verdicts, now_ms, announce)
    pipe.execute()


def store_verdicts(
    pipe: redis.client.Pipeline, verdicts: Sequence[tuple[str, dict[str, Any]]], ttl: int
) -> None:
    """Queue on ``pipe`` the writes of the final records, the part of :func:`settle` in the
    ``{ingest}`` slot (a drain makes it one transaction with the entries' acknowledgement)."""
    for submission_id, record in verdicts:
        pipe.set(keys.submission_key(submission_id), encoded(record), ex=ttl)


def count_verdicts(
    pipe: redis.client.Pipeline,
    verdicts: Sequence[tuple[str, dict[str, Any]]],
    now_ms: int,
    announce: Sequence[str] = (),
) -> None:
    """Queue on ``pipe`` the rest of :func:`settle`, in other slots: the audit of rejections,
    the counts, and the announcement that wakes long-polls (of ``announce`` too)."""
    # Counted per batch, not per submission: a few commands whatever the batch's size.
    counts: Counter[str] = Counter()
    latencies: Counter[str] = Counter()
    latency_sum = 0.0
    for submission_id, record in verdicts:
        if record["status"] == REJECTED:
            counts[f"rejected:{record.get('code', 'unknown')}"] += 1
            pipe.xadd(
                keys.REJECTED_STREAM,
                {
                    "sid": submission_id,
                    "code": record.get("code", ""),
                    "reason": record.get("reason", ""),
                    "game": record.get("game") or "",
                    "player_id": record.get("player_id") or "",
                },
                maxlen=REJECTED_STREAM_MAXLEN,
                approximate=True,
            )
        else:
            counts["accepted"] += 1
            latency = max(0, now_ms - record["achieved_at"]) / 1000
            latencies[latency_bucket(latency)] += 1
            latency_sum += latency
    for name, count in counts.items():
        pipe.hincrby(keys.VERDICT_COUNTS, name, count)
    for bucket, count in latencies.items():
        pipe.hincrby(keys.LATENCY_HISTOGRAM, bucket, count)
    if latencies:
        pipe.hincrbyfloat(keys.LATENCY_HISTOGRAM, "sum", latency_sum)
    woken = [sid for sid, _ in verdicts] + list(announce)
    if woken:
        pipe.publish(keys.VERDICT_CHANNEL, " ".join(woken))
