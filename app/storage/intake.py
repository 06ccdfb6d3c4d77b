"""The ingest partitions: the web appends each submission in one round trip, workers drain them.

A Celery message per submission costs a worker about a millisecond of bookkeeping before any
work is done, which caps ingestion at a fraction of what Redis can take. So the web appends the
submission to a Redis stream (in the same script that creates its status record, see
:mod:`app.storage.submissions`, so a 202 always means both were stored) and Celery tasks drain
the streams in batches through a consumer group.

Ingestion is split into partitions by a hash of the submission id
(:func:`app.storage.submissions.partition_of`); each has its own stream, consumer group, drain
lease, dead letters, records and counts under its own hash tag, so drains of different
partitions run in parallel (on a cluster, on different nodes):

- an entry stays pending for the consumer that read it until its verdict is stored, in the same
  transaction as its acknowledgement (:func:`acknowledge`), so one whose worker died is claimed
  again by the next drain of its partition once it has been idle for :data:`CLAIM_IDLE_MS`;
- a partition's drain lease is ``q`` while a drain is asked for (set by the web, the sweep or a
  hand-back; ``1``, which the previous version set, counts as ``q``) and ``d:<consumer>`` while
  a drain holds it (:func:`take`); a drain is always scheduled while entries wait: the first
  submission to find no lease asks for one and sends a drain task; a drain keeps its leases
  alive and, before it lets one go, drops it and looks once more, so an entry is never left
  behind between the two; the beat's sweep asks for a drain of every partition where entries
  wait with no lease (a task lost with the broker, say).

Plain functions over a redis client; nothing here knows Flask or Celery.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pydantic_core
import redis

from app.storage import keys, rate_limits
from app.storage.rate_limits import NOTHING_COUNTED, Counted, Counter
from app.storage.scripts import run_each, script
from app.storage.submissions import Found, Generation, found

#: How long a drain lease lives without a refresh: a drain refreshes it between batches, so
#: this bounds how long a dead drain keeps its partitions from others.
DRAIN_FLAG_MS = 10_000

#: An entry read by a consumer and left unacknowledged this long is taken over by another. A
#: live drain settles a batch in well under a second, so only a dead one's entries get there.
CLAIM_IDLE_MS = 10_000

#: A lease asked for this long ago (ms) whose drain has not started may be taken by a running
#: drain: the task asked for waits behind busy processes.
ADOPT_AFTER_MS = 50

#: The value of a lease asked for, with no drain holding it yet.
ASKED = "q"

#: The value the previous version set, taken as :data:`ASKED`.
_ASKED_BEFORE = "1"

# What the scripts that count a request and store a submission are prepended with.
_LIBRARIES = (rate_limits.LIBRARY, "ingest_lib")


def holder(consumer: str) -> str:
    """The value of a lease held by the drain of ``consumer``."""
    return f"d:{consumer}"


@dataclass(frozen=True)
class Enqueued:
    """What :func:`enqueue` did: stored the submission, or found an earlier record."""

    existing: Found | None  # the earlier record when the id was taken
    schedule_drain: bool  # this submission asked for its partition's drain: send a drain task
    revoked: bool = False  # the player's key was revoked: nothing was stored
    limits: Counted = NOTHING_COUNTED  # the request's rate-limit counts (a breach: not stored)
    partition: int = 0  # the submission's partition (the drain task to send is of it)


def enqueue(
    client: redis.Redis,
    submission_id: str,
    record: str,
    payload: Mapping[str, Any],
    now: Generation,
    key: tuple[str, int] | None = None,
    counters: Sequence[Counter] = (),
    split: bool = False,
) -> Enqueued:
    """Count the request's rate limits, then create the submission's record (in the generation
    ``now``, unless one of the generations it reads has a record of the id) and append it to
    its partition's stream, asking for the partition's drain unless one is asked for or runs.

    ``key`` is the player and generation of the key that proved them, refused if revoked;
    ``counters`` the rate limits the request is counted against (nothing is stored when it
    breaks one).

    One script, one round trip, whose keys are of the request slot and of the partition's;
    with ``split`` (a Redis Cluster, where a script must keep to one slot) two scripts, two
    round trips: ``admit`` on the request slot (the limits and the key; a breach or a revoked
    key stops there), then the partition's ``enqueue_partition``.
    """
    player_id, generation = key or ("", 0)
    limit_keys, limit_args = rate_limits.script_arguments(counters)
    partition = now.partition(submission_id)
    readable = now.readable()
    record_keys = [
        *(g.key(submission_id) for g in readable),
        keys.ingest_stream(partition),
        keys.drain_flag(partition),
    ]
    record_args = [submission_id, record, now.ttl_ms, orjson.dumps(payload), DRAIN_FLAG_MS]
    if split:
        admitted, counts = script(client, "admit", _LIBRARIES)(
            keys=[keys.KEY_GENERATIONS, *limit_keys],
            args=[player_id, generation, *limit_args],
        )
        reply: list[Any] = [admitted]
        if admitted == 1:
            reply = script(client, "enqueue_partition", "ingest_lib")(
                keys=record_keys, args=[len(readable), *record_args]
            )
        stored, detail, age = reply[0], reply[1] if len(reply) > 1 else None, reply[2:]
    else:
        stored, detail, counts, *age = script(client, "enqueue_submission", _LIBRARIES)(
            keys=[*record_keys, keys.KEY_GENERATIONS, *limit_keys],
            args=[len(readable), *record_args, player_id, generation, *limit_args],
        )
    limits = rate_limits.read_reply(counters, counts)
    if stored == -2:
        return Enqueued(existing=None, schedule_drain=False, limits=limits, partition=partition)
    if stored == -1:
        return Enqueued(
            existing=None, schedule_drain=False, revoked=True, limits=limits, partition=partition
        )
    if not stored:
        existing = found(detail, age[0], now)
        return Enqueued(existing, schedule_drain=False, limits=limits, partition=partition)
    return Enqueued(None, schedule_drain=bool(detail), limits=limits, partition=partition)


def ask_drains(client: redis.Redis, partitions: Collection[int]) -> list[int]:
    """Ask for a drain of each of these partitions that has no lease, in one round trip; the
    partitions asked for."""
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.set(keys.drain_flag(p), ASKED, nx=True, px=DRAIN_FLAG_MS)
    return [p for p, asked in zip(partitions, pipe.execute(), strict=True) if asked]


def take(client: redis.Redis, partitions: Collection[int], consumer: str) -> list[int]:
    """Take the leases of partitions for the drain of ``consumer``, unless another drain holds
    them (a lease of this drain's is refreshed), in one round trip; the partitions taken."""
    args = [holder(consumer), DRAIN_FLAG_MS, ""]
    calls = [([keys.drain_flag(p)], args) for p in partitions]
    return [
        p for p, taken in zip(partitions, _run(client, "take_lease", calls), strict=True) if taken
    ]


def adopt(client: redis.Redis, partition: int, consumer: str) -> bool:
    """Take a partition's lease for the drain of ``consumer`` if it was asked for at least
    :data:`ADOPT_AFTER_MS` ago and no drain holds it."""
    return bool(
        script(client, "take_lease")(
            keys=[keys.drain_flag(partition)],
            args=[holder(consumer), DRAIN_FLAG_MS, ADOPT_AFTER_MS],
        )
    )


def _run(client: redis.Redis, name: str, calls: list[Any]) -> list[Any]:
    """The replies of a lease script run once per call, pipelined; an error raised."""
    if not calls:
        return []
    replies = run_each(client, name, calls)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


@dataclass(frozen=True)
class Lease:
    """A partition's drain lease as read: its value (None: none) and ms it has left to live."""

    value: str | None
    ttl_ms: int

    @property
    def adoptable(self) -> bool:
        """Asked for at least :data:`ADOPT_AFTER_MS` ago, and held by no drain."""
        asked = self.value in (ASKED, _ASKED_BEFORE)
        return asked and DRAIN_FLAG_MS - self.ttl_ms >= ADOPT_AFTER_MS

    @property
    def free(self) -> bool:
        """No drain holds it (it may be asked for)."""
        return self.value is None or self.value in (ASKED, _ASKED_BEFORE)


def leases(client: redis.Redis, partitions: Collection[int]) -> dict[int, Lease]:
    """The leases of partitions, in one round trip (a pipeline of GET and PTTL each)."""
    if not partitions:
        return {}
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.get(keys.drain_flag(p))
        pipe.pttl(keys.drain_flag(p))
    replies = pipe.execute()
    return {
        p: Lease(cast(str | None, replies[2 * i]), int(replies[2 * i + 1]))
        for i, p in enumerate(partitions)
    }


def release(client: redis.Redis, partitions: Collection[int], consumer: str) -> None:
    """Let go of the leases of ``consumer``'s drain on these partitions (one round trip)."""
    _let_go(client, partitions, holder(consumer), hand_back=False)


def withdraw(client: redis.Redis, partition: int) -> None:
    """Drop a partition's lease asked for (by a caller that could not send its drain), unless a
    drain holds it by now, so that the next submission (or the sweep) asks again."""
    _let_go(client, [partition], ASKED, hand_back=False)


def hand_back(client: redis.Redis, partitions: Collection[int], consumer: str) -> list[int]:
    """Let go of the leases of ``consumer``'s drain on these partitions: those whose stream
    still holds entries are asked for again (the caller sends a drain of each), the others
    released. The partitions handed back."""
    return _let_go(client, partitions, holder(consumer), hand_back=True)


def _let_go(
    client: redis.Redis, partitions: Collection[int], value: str, hand_back: bool
) -> list[int]:
    calls = [
        ([keys.drain_flag(p), keys.ingest_stream(p)], [value, int(hand_back), DRAIN_FLAG_MS])
        for p in partitions
    ]
    replies = _run(client, "release_lease", calls)
    return [p for p, reply in zip(partitions, replies, strict=True) if reply == 1]


def refresh(pipe: redis.client.Pipeline, partition: int, consumer: str) -> None:
    """Queue on ``pipe`` the refresh of a lease the drain of ``consumer`` holds."""
    pipe.set(keys.drain_flag(partition), holder(consumer), px=DRAIN_FLAG_MS)


@dataclass(frozen=True)
class Waiting:
    """One stream entry: its id, the queued submission it carries (None if unreadable) and the
    partition whose stream holds it."""

    entry_id: str
    payload: Any
    partition: int = 0


def arrival(entry: Waiting) -> tuple[int, int]:
    """The order entries arrived in, by their stream ids (across partitions, to the ms)."""
    ms, _, seq = entry.entry_id.partition("-")
    return int(ms), int(seq or 0)


def _entries(raw: list[Any], partition: int) -> list[Waiting]:
    entries = []
    for entry_id, fields in raw:
        if not fields:  # deleted after it was read; nothing left to do
            continue
        entries.append(Waiting(entry_id, _decoded(fields.get("p", "")), partition))
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


def ensure_groups(client: redis.Redis, partitions: Collection[int]) -> None:
    """Create the consumer groups (and the streams) of partitions unless they exist."""
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.xgroup_create(keys.ingest_stream(p), keys.INGEST_GROUP, id="0", mkstream=True)
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
            raise reply


def _no_group(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc)


def _stream_entries(reply: Any, partitions: Collection[int]) -> list[Waiting]:
    """The entries of an XREADGROUP reply over the streams of ``partitions``."""
    if not reply:
        return []
    streams = {keys.ingest_stream(p): p for p in partitions}
    if isinstance(reply, dict):  # RESP3
        reply = list(reply.items())
    entries: list[Waiting] = []
    for name, raw in reply:
        entries += _entries(raw, streams[name])
    return entries


def read_new(
    client: redis.Redis,
    consumer: str,
    partitions: Collection[int],
    count: int,
    block_ms: int | None = None,
) -> list[Waiting]:
    """Entries of these partitions no consumer has read yet, up to ``count`` of each (waiting up
    to ``block_ms`` for one, if given), in one command over their streams (a single Redis)."""
    return _read(client, consumer, partitions, ">", count, block_ms)


def read_own(
    client: redis.Redis, consumer: str, partitions: Collection[int], count: int
) -> list[Waiting]:
    """Entries of these partitions this consumer read before and did not finish (a retried
    drain), up to ``count`` of each, in one command (a single Redis)."""
    return _read(client, consumer, partitions, "0", count, None)


def _read(
    client: redis.Redis,
    consumer: str,
    partitions: Collection[int],
    start: str,
    count: int,
    block_ms: int | None,
) -> list[Waiting]:
    if not partitions:
        return []
    streams: dict[Any, Any] = {keys.ingest_stream(p): start for p in partitions}
    try:
        reply = client.xreadgroup(keys.INGEST_GROUP, consumer, streams, count=count, block=block_ms)
    except redis.ResponseError as exc:
        if not _no_group(exc):
            raise
        # A stream was deleted (by an operator, or a test), or never had a drain yet. The reads
        # create what is missing, so a drain sends no XGROUP CREATE of its own.
        ensure_groups(client, partitions)
        return []
    return _stream_entries(reply, partitions)


def read_each(
    client: redis.Redis,
    consumer: str,
    partitions: Collection[int],
    count: int,
) -> list[Waiting]:
    """What :func:`read_new` reads (without waiting), with one command per partition,
    pipelined: each on its partition's slot (a Redis Cluster)."""
    if not partitions:
        return []
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.xreadgroup(keys.INGEST_GROUP, consumer, {keys.ingest_stream(p): ">"}, count=count)
    return _gathered(client, partitions, pipe.execute(raise_on_error=False))


def claim_stale(
    client: redis.Redis, consumer: str, partitions: Collection[int], count: int
) -> list[Waiting]:
    """Take over entries of these partitions that other consumers read and left idle past
    :data:`CLAIM_IDLE_MS`, up to ``count`` of each, in one round trip (a command per
    partition)."""
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        stream = keys.ingest_stream(p)
        pipe.xautoclaim(stream, keys.INGEST_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count)
    replies = [
        reply if isinstance(reply, Exception) else [[keys.ingest_stream(p), reply[1]]]
        for p, reply in zip(partitions, pipe.execute(raise_on_error=False), strict=True)
    ]
    return _gathered(client, partitions, replies)


def read_started(
    client: redis.Redis,
    consumer: str,
    partitions: Collection[int],
    count: int,
    per_partition: bool = False,
) -> list[Waiting]:
    """What a drain that has just taken these partitions settles first: the entries this
    consumer read before and did not finish, then those dead consumers left idle (see
    :func:`read_own`, :func:`claim_stale`); in one round trip (a pipeline)."""
    if not partitions:
        return []
    pipe = client.pipeline(transaction=False)
    if per_partition:
        for p in partitions:
            pipe.xreadgroup(keys.INGEST_GROUP, consumer, {keys.ingest_stream(p): "0"}, count=count)
    else:
        streams: dict[Any, Any] = {keys.ingest_stream(p): "0" for p in partitions}
        pipe.xreadgroup(keys.INGEST_GROUP, consumer, streams, count=count)
    for p in partitions:
        stream = keys.ingest_stream(p)
        pipe.xautoclaim(stream, keys.INGEST_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count)
    replies = pipe.execute(raise_on_error=False)
    reads = len(partitions) if per_partition else 1
    claims = [
        reply if isinstance(reply, Exception) else [[keys.ingest_stream(p), reply[1]]]
        for p, reply in zip(partitions, replies[reads:], strict=True)
    ]
    return _gathered(client, partitions, [*replies[:reads], *claims])


def _gathered(
    client: redis.Redis, partitions: Collection[int], replies: list[Any]
) -> list[Waiting]:
    """The entries of read replies (an error among them: NOGROUP creates what is missing)."""
    entries: list[Waiting] = []
    missing = False
    for reply in replies:
        if isinstance(reply, Exception):
            if not _no_group(reply):
                raise reply
            missing = True
            continue
        entries += _stream_entries(reply, partitions)
    if missing:
        ensure_groups(client, partitions)
    return entries


def done(client: redis.Redis, entries: Sequence[Waiting]) -> None:
    """Acknowledge and delete settled entries, so the streams hold only waiting work, in one
    round trip (a transaction per partition)."""
    groups: dict[int, list[str]] = {}
    for entry in entries:
        groups.setdefault(entry.partition, []).append(entry.entry_id)
    for partition, entry_ids in groups.items():
        pipe = client.pipeline(transaction=True)
        acknowledge(pipe, partition, entry_ids)
        pipe.execute()


def acknowledge(
    pipe: redis.client.Pipeline,
    partition: int,
    entry_ids: Sequence[str],
    consumer: str | None = None,
) -> None:
    """Queue on ``pipe`` (a transaction on the partition's slot) the commands of :func:`done`
    for entries of one partition, and the refresh of the lease of ``consumer``'s drain if
    given."""
    # Both or neither: an entry acknowledged but not deleted would look like waiting work.
    stream = keys.ingest_stream(partition)
    pipe.xack(stream, keys.INGEST_GROUP, *entry_ids)
    pipe.xdel(stream, *entry_ids)
    if consumer is not None:
        refresh(pipe, partition, consumer)


def keep_dead_letter(client: redis.Redis, entry: Waiting, error: str) -> None:
    """Keep an entry the worker could not process, for an operator (it stays on the stream)."""
    client.xadd(
        keys.dead_letters(entry.partition),
        {"entry": entry.entry_id, "p": json.dumps(entry.payload), "error": error[:500]},
        maxlen=10_000,
        approximate=True,
    )


@dataclass(frozen=True)
class Backlog:
    """Entries on the streams: in total, and per partition (those of a partition number)."""

    waiting: int
    in_progress: int
    partitions: dict[int, dict[str, int]]

    def totals(self) -> dict[str, int]:
        """Waiting entries and those read but not finished, over every partition."""
        return {"waiting": self.waiting, "in_progress": self.in_progress}

    def busy(self) -> list[int]:
        """The partitions with entries on their stream."""
        return [p for p, counts in self.partitions.items() if any(counts.values())]


def backlog(client: redis.Redis, partitions: int) -> Backlog:
    """Entries on each partition's stream (waiting, or being processed) and those read but not
    finished, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for p in range(partitions):
        pipe.xlen(keys.ingest_stream(p))
        pipe.xpending(keys.ingest_stream(p), keys.INGEST_GROUP)
    replies = pipe.execute(raise_on_error=False)
    per: dict[int, dict[str, int]] = {}
    for p in range(partitions):
        length, summary = replies[2 * p], replies[2 * p + 1]
        if isinstance(length, Exception):
            raise length
        # A stream without a group yet (or none at all) has nothing pending.
        pending = 0 if isinstance(summary, Exception) else int(summary["pending"])
        per[p] = {"waiting": length - pending, "in_progress": pending}
    return Backlog(
        waiting=sum(c["waiting"] for c in per.values()),
        in_progress=sum(c["in_progress"] for c in per.values()),
        partitions=per,
    )
