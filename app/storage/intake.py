"""The ingest stream: the web appends each submission in one round trip, workers drain it.

A Celery message per submission costs a worker about a millisecond of bookkeeping before any
work is done, which caps ingestion at a fraction of what Redis can take. So the web appends the
submission to a Redis stream (in the same script that creates its status record, see
:mod:`app.storage.submissions`, so a 202 always means both were stored) and Celery tasks drain
that stream in batches through a consumer group:

- an entry stays pending for the consumer that read it until its verdict is stored, in the same
  transaction as its acknowledgement (:func:`acknowledge`), so one whose worker died is claimed
  again by the next drain once it has been idle for :data:`CLAIM_IDLE_MS`;
- a drain is always scheduled while entries wait: the first submission to find no drain flag
  sets it and sends a drain task; a running drain keeps the flag alive and, before it stops,
  drops it and looks once more, so an entry is never left behind between the two; the beat's
  sweep starts a drain if anything is still waiting (a task lost with the broker, say).

Plain functions over a redis client; nothing here knows Flask or Celery.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pydantic_core
import redis

from app.storage import keys, rate_limits, topology
from app.storage.connection import DataClient, DataPipeline
from app.storage.rate_limits import NOTHING_COUNTED, Counted, Counter
from app.storage.submissions import Found, Generation, found
from app.storage.topology import NO_WAIT, Replication, ReplicationShortfall

#: How long the drain flag lives without a refresh: a drain refreshes it between batches, so
#: this bounds how long a dead drain keeps others from being scheduled.
DRAIN_FLAG_MS = 10_000

#: An entry read by a consumer and left unacknowledged this long is taken over by another. A
#: live drain settles a batch in well under a second, so only a dead one's entries get there.
CLAIM_IDLE_MS = 10_000


@dataclass(frozen=True)
class Enqueued:
    """What :func:`enqueue` did: stored the submission, or found an earlier record."""

    existing: Found | None  # the earlier record when the id was taken
    schedule_drain: bool  # this submission claimed the drain flag: send a drain task
    revoked: bool = False  # the player's key was revoked: nothing was stored
    limits: Counted = NOTHING_COUNTED  # the request's rate-limit counts (a breach: not stored)
    # Stored on its master, but fewer replicas than asked hold it yet: no 202 to answer.
    unreplicated: ReplicationShortfall | None = None


def enqueue(
    client: DataClient,
    submission_id: str,
    record: str,
    payload: Mapping[str, Any],
    now: Generation,
    key: tuple[str, int] | None = None,
    counters: Sequence[Counter] = (),
    replication: Replication = NO_WAIT,
) -> Enqueued:
    """Count the request's rate limits, then create the submission's record (in the generation
    ``now``, unless one of the generations it reads has a record of the id) and append it to
    the stream, atomically, in one trip.

    ``key`` is the player and generation of the key that proved them, refused if revoked;
    ``counters`` the rate limits the request is counted against (nothing is stored when it
    breaks one); ``replication`` the replicas that must hold the record and the entry (WAIT,
    in the same round trip) before the caller may answer 202.
    """
    player_id, generation = key or ("", 0)
    limit_keys, limit_args = rate_limits.script_arguments(counters)
    readable = now.readable()
    unreplicated: ReplicationShortfall | None = None
    try:
        reply = topology.call(
            client,
            "enqueue_submission",
            [
                *(g.key(submission_id) for g in readable),
                keys.INGEST_STREAM,
                keys.DRAIN_FLAG,
                keys.KEY_GENERATIONS,
                *limit_keys,
            ],
            [
                len(readable),
                submission_id,
                record,
                now.ttl_ms,
                orjson.dumps(payload),
                DRAIN_FLAG_MS,
                player_id,
                generation,
                *limit_args,
            ],
            rate_limits.LIBRARY,
            replication,
        )
    except ReplicationShortfall as short:
        reply, unreplicated = short.reply, short
    stored, detail, counts, *age = reply
    limits = rate_limits.read_reply(counters, counts)
    if stored == -2:
        return Enqueued(None, schedule_drain=False, limits=limits, unreplicated=unreplicated)
    if stored == -1:
        return Enqueued(
            None, schedule_drain=False, revoked=True, limits=limits, unreplicated=unreplicated
        )
    if not stored:
        existing = found(detail, age[0], now)
        return Enqueued(existing, schedule_drain=False, limits=limits, unreplicated=unreplicated)
    return Enqueued(None, schedule_drain=bool(detail), limits=limits, unreplicated=unreplicated)


def claim_drain(client: DataClient) -> bool:
    """Take the drain flag if nobody holds it (the sweep's way in)."""
    return bool(client.set(keys.DRAIN_FLAG, "1", nx=True, px=DRAIN_FLAG_MS))


def hold_drain(client: DataClient) -> None:
    """Say that a drain is (still) running."""
    client.set(keys.DRAIN_FLAG, "1", px=DRAIN_FLAG_MS)


def release_drain(client: DataClient) -> None:
    """Drop the drain flag, so that the next submission schedules a drain."""
    client.delete(keys.DRAIN_FLAG)


@dataclass(frozen=True)
class Waiting:
    """One stream entry: its id and the queued submission it carries (None if unreadable)."""

    entry_id: str
    payload: Any


def _entries(raw: list[Any]) -> list[Waiting]:
    entries = []
    for entry_id, fields in raw:
        if not fields:  # deleted after it was read; nothing left to do
            continue
        entries.append(Waiting(entry_id, _decoded(fields.get("p", ""))))
    return entries


def _decoded(text: str) -> Any:
    """The JSON value of ``text`` as :func:`json.loads` reads it (None if it is no JSON)."""
    # pydantic's parser, a few times faster, reads what json.loads reads (big integers, NaN
    # and Infinity too) but for a lone surrogate escape, which json.loads takes.
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return None


def ensure_group(client: DataClient) -> None:
    """Create the consumer group (and the stream) unless they exist."""
    try:
        client.xgroup_create(keys.INGEST_STREAM, keys.INGEST_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read(client: DataClient, consumer: str, count: int, start: str, block_ms: int | None):
    try:
        reply = client.xreadgroup(
            keys.INGEST_GROUP,
            consumer,
            {keys.INGEST_STREAM: start},
            count=count,
            block=block_ms,
        )
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client)  # the stream was deleted (by an operator, or a test)
        return []
    return _entries(cast(list[Any], reply)[0][1]) if reply else []


def read_new(
    client: DataClient, consumer: str, count: int, block_ms: int | None = None
) -> list[Waiting]:
    """Entries no consumer has read yet (waiting up to ``block_ms`` for one, if given)."""
    return _read(client, consumer, count, ">", block_ms)


def read_own(client: DataClient, consumer: str, count: int) -> list[Waiting]:
    """Entries this consumer read before and did not finish (a retried drain)."""
    return _read(client, consumer, count, "0", None)


def claim_stale(client: DataClient, consumer: str, count: int) -> list[Waiting]:
    """Take over entries that other consumers read and left idle past :data:`CLAIM_IDLE_MS`."""
    try:
        reply = client.xautoclaim(
            keys.INGEST_STREAM, keys.INGEST_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count
        )
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client)
        return []
    return _entries(cast(list[Any], reply)[1])


def done(client: DataClient, entry_ids: list[str]) -> None:
    """Acknowledge and delete settled entries, so the stream holds only waiting work, and keep
    the drain flag alive (only a running drain settles entries), in one round trip."""
    if not entry_ids:
        return
    pipe = client.pipeline(transaction=True)
    acknowledge(pipe, entry_ids)
    pipe.execute()


def acknowledge(pipe: DataPipeline, entry_ids: Sequence[str], hold_flag: bool = True) -> None:
    """Queue on ``pipe`` (a transaction) the commands of :func:`done`: the flag's refresh
    only if ``hold_flag``."""
    # Both or neither: an entry acknowledged but not deleted would look like waiting work.
    pipe.xack(keys.INGEST_STREAM, keys.INGEST_GROUP, *entry_ids)
    pipe.xdel(keys.INGEST_STREAM, *entry_ids)
    if hold_flag:
        pipe.set(keys.DRAIN_FLAG, "1", px=DRAIN_FLAG_MS)


def keep_dead_letter(client: DataClient, entry: Waiting, error: str) -> None:
    """Keep an entry the worker could not process, for an operator (it stays on the stream)."""
    client.xadd(
        keys.DEAD_LETTERS,
        {"entry": entry.entry_id, "p": json.dumps(entry.payload), "error": error[:500]},
        maxlen=10_000,
        approximate=True,
    )


def backlog(client: DataClient) -> dict[str, int]:
    """Entries in the stream (waiting or being processed) and those read but not finished."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.INGEST_STREAM)
    pipe.exists(keys.INGEST_STREAM)
    length, exists = pipe.execute()
    pending = 0
    if exists:
        try:
            summary = cast(dict[str, Any], client.xpending(keys.INGEST_STREAM, keys.INGEST_GROUP))
            pending = summary["pending"]
        except redis.ResponseError:
            pending = 0
    return {"waiting": length - pending, "in_progress": pending}
