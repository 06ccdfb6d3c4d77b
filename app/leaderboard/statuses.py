"""Submissions' status records, typed: read them, and make the verdicts a worker stores.

The storage (:mod:`app.storage.submissions`) keeps records as text in generations of hashes;
:class:`app.leaderboard.records.SubmissionRecord` packs and unpacks that text, its times
counted from the start of the generation that holds it. Time is always passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import redis

from app.leaderboard.records import SubmissionRecord
from app.storage import keys, submissions
from app.storage.submissions import Found, Generation, Verdict


def unpacked(found: Found | None) -> SubmissionRecord | None:
    """The record a lookup found (None if none, or not one this code can read)."""
    if found is None:
        return None
    return SubmissionRecord.unpacked(found.value, found.written.start_ms)


def read_many(
    client: redis.Redis, submission_ids: Sequence[str], now: Generation
) -> list[SubmissionRecord | None]:
    """The records of submissions as of ``now`` (None where unknown or expired), in one trip."""
    return [unpacked(f) for f in submissions.find(client, submission_ids, now)]


def read(client: redis.Redis, submission_id: str, now: Generation) -> SubmissionRecord | None:
    """The record of one submission as of ``now``, or None if unknown or expired."""
    return read_many(client, [submission_id], now)[0]


def logged_player(client: redis.Redis, submission_id: str, record: SubmissionRecord) -> str | None:
    """The player of an accepted submission, from its entry in its family's log (an accepted
    record keeps only a prefix of the id); None once the entry is gone from the log."""
    if record.board is None:
        return None
    game, variant = record.board.game, record.board.variant
    entry_id = cast(str | None, client.hget(keys.applied_key(game, variant), submission_id))
    if entry_id is None:
        return None
    entries = cast(list[Any], client.xrange(keys.log_key(game, variant), entry_id, entry_id))
    player_id = entries[0][1].get("pid") if entries else None
    return player_id if isinstance(player_id, str) and record.may_be_of(player_id) else None


def verdict(submission_id: str, record: SubmissionRecord, now: Generation) -> Verdict:
    """A final record, ready to be stored in the generation ``now``."""
    return Verdict(submission_id, record.packed(now.start_ms), record.stored())


def write(
    pipe: redis.client.Pipeline,
    submission_id: str,
    record: SubmissionRecord,
    at_ms: int,
    now_ms: int,
    window_s: int,
    partitions: int,
) -> bool:
    """Queue on ``pipe`` the write of one record (of any status) as if written at ``at_ms``,
    for an idempotency window of ``window_s`` and records spread over ``partitions``: seen
    from ``now_ms``, it lives as long as a record written then has left (whether it is still
    found, and its place among other records of the id, follow from the generation of
    ``at_ms``). For converting records of another layout. False, and nothing queued, when such a
    record would have expired already.
    """
    written = Generation.at(at_ms, window_s, partitions)
    written = replace(written, now_ms=now_ms)
    if written.ttl_ms <= 0:
        return False
    submissions.store_verdicts(pipe, [verdict(submission_id, record, written)], written)
    return True
