"""Submission status records: created by the web, settled by a worker with its verdict.

Records live for the idempotency window W (seconds) at least, a quarter longer at most, in
hashes that expire whole, so that an expired record costs nothing and no key is spent per
record: time is cut into generations of G = ceil(W / 4) seconds, and the record of a submission
is a field (its id) of the hash :func:`app.storage.keys.partition_submissions_key` of the
submission's ingest partition (:func:`partition_of`), of the generation it was written in and of
one of :data:`BUCKETS` buckets (by the CRC-32 of its id, so that a partition uses the buckets
congruent to it and a record costs the same whatever the partitions). A hash expires
at the end of its generation plus W, so a record is found for at least W after it was written
by reading its bucket in the generations of the last W: the current one and ceil(W / G) before
it, newest first, so that a verdict hides the queued record it replaced when a generation
ended between the two.

The web creates a record only if the id has none (:func:`app.storage.intake.enqueue`, with the
submission's entry on the ingest stream), so a repeated ``submission_id`` (or
``Idempotency-Key``) maps to one entry; the worker writes the verdict in the current generation
and announces the id on :data:`app.storage.keys.VERDICT_CHANNEL`. A record is text this module
does not read: :mod:`app.leaderboard.records` packs and unpacks it.

Time is always passed in (a :class:`Generation` is the present as the records see it)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from app.storage import keys, scripts
from app.storage.keys import PLAYER_ID_PATTERN, SUBMISSION_ID_PATTERN

SUBMISSION_ID = re.compile(SUBMISSION_ID_PATTERN)
PLAYER_ID = re.compile(PLAYER_ID_PATTERN)

QUEUED, ACCEPTED, REJECTED = "queued", "accepted", "rejected"
FINAL = frozenset({ACCEPTED, REJECTED})

# Fields of a submission that make it the same submission when sent again (the player is
# compared on its own: a first request may have been given the id its retry carries).
_IDENTITY_FIELDS = ("game", "variant", "name", "score", "duration_ms", "token")

#: Characters of a fingerprint: 48 bits, plenty to tell an honest retry from an id reused by
#: mistake (it guards no secret: the verdict of an id is anyone's to read).
FINGERPRINT_CHARS = 8

# How many rejections the audit stream keeps (approximately).
REJECTED_STREAM_MAXLEN = 100_000

#: Hashes per generation. A bucket of up to 512 records of at most 64 bytes each (Redis's
#: ``hash-max-ziplist-entries`` and ``-value``) stays a compact hash, some 100 bytes a record
#: in all; past that (about 500,000 records a generation) it becomes a hash table, some 137.
BUCKETS = 1024


def new_id() -> str:
    """A fresh opaque id (22 URL-safe characters, 128 random bits)."""
    return secrets.token_urlsafe(16)


def fingerprint(submission: Mapping[str, Any]) -> str:
    """A short digest of what a client sent, to tell an honest retry from a reused id."""
    identity = {name: submission.get(name) for name in _IDENTITY_FIELDS}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(digest[: FINGERPRINT_CHARS * 3 // 4]).decode()


def bucket(submission_id: str) -> int:
    """The bucket a submission's record is kept in."""
    return zlib.crc32(submission_id.encode()) % BUCKETS


def partition_of(submission_id: str, partitions: int) -> int:
    """The ingest partition of a submission: where its entry, its record and its counts go."""
    return zlib.crc32(submission_id.encode()) % partitions


@dataclass(frozen=True)
class Generation:
    """A span of G seconds of the records' time, as seen at an instant: the records written in
    it share its hashes, which expire W after it ends. Built for the present by :meth:`at`."""

    number: int
    seconds: int  # G
    window_s: int  # W, the idempotency window
    now_ms: int  # the instant it is seen at (epoch ms, by the caller's clock)
    partitions: int  # the ingest partitions the records are spread over

    @classmethod
    def at(cls, now_ms: int, window_s: int, partitions: int) -> Generation:
        """The generation of the instant ``now_ms``, for an idempotency window of ``window_s``,
        of records spread over ``partitions`` ingest partitions."""
        window_s = max(1, window_s)
        seconds = max(1, math.ceil(window_s / 4))
        return cls(now_ms // 1000 // seconds, seconds, window_s, now_ms, partitions)

    @property
    def start_ms(self) -> int:
        """When the generation began (epoch ms)."""
        return self.number * self.seconds * 1000

    @property
    def expire_at_ms(self) -> int:
        """When its hashes expire (epoch ms): W after it ends."""
        return ((self.number + 1) * self.seconds + self.window_s) * 1000

    @property
    def ttl_ms(self) -> int:
        """How long its hashes have left to live, seen from :attr:`now_ms`. Given to Redis as a
        TTL rather than as an instant, so that a clock the caller was given (a test's, a
        benchmark's) which is not Redis's own still gives each hash its intended life."""
        return self.expire_at_ms - self.now_ms

    def back(self, age: int) -> Generation:
        """The generation ``age`` before this one."""
        return replace(self, number=self.number - age)

    def readable(self) -> list[Generation]:
        """The generations a lookup made in this one reads, newest first: this one and those
        of the last W before it."""
        return [self.back(age) for age in range(math.ceil(self.window_s / self.seconds) + 1)]

    def partition(self, submission_id: str) -> int:
        """The ingest partition of a submission (see :func:`partition_of`)."""
        return partition_of(submission_id, self.partitions)

    def key(self, submission_id: str) -> str:
        """The hash that holds (or would hold) a submission's record in this generation."""
        return keys.partition_submissions_key(
            self.partition(submission_id), self.number, bucket(submission_id)
        )


@dataclass(frozen=True)
class Found:
    """A stored record and the generation whose hash holds it (its times count from there)."""

    value: str
    written: Generation


def lookup_arguments(
    submission_ids: Sequence[str], now: Generation
) -> tuple[list[str], list[str | int]]:
    """The keys and arguments with which a script finds records (of submissions of one
    partition) in the generations ``now`` reads: per bucket, its hash in each of them, newest
    first; then per id, its bucket's place."""
    readable = now.readable()
    places: dict[int, int] = {}
    names: list[str] = []
    args: list[str | int] = [len(readable)]
    for sid in submission_ids:
        b = bucket(sid)
        if b not in places:
            places[b] = len(places)
            names.extend(g.key(sid) for g in readable)
        args += [sid, places[b]]
    return names, args


def by_partition(submission_ids: Sequence[str], partitions: int) -> dict[int, list[str]]:
    """Submission ids grouped by their partition, each group in the order given."""
    groups: dict[int, list[str]] = {}
    for sid in submission_ids:
        groups.setdefault(partition_of(sid, partitions), []).append(sid)
    return groups


def found(value: str | None, age: int, now: Generation) -> Found | None:
    """A script's answer for one record (its text, or none, and its generation's age)."""
    return Found(value, now.back(age)) if value is not None else None


def find(client: redis.Redis, submission_ids: Sequence[str], now: Generation) -> list[Found | None]:
    """The records of submissions (None where unknown or expired), in one round trip: a script
    per partition, each on its partition's slot (pipelined when there are several)."""
    if not submission_ids:
        return []
    groups = by_partition(submission_ids, now.partitions)
    calls = [lookup_arguments(ids, now) for ids in groups.values()]
    if len(calls) == 1:
        # A client's own command, not a pipeline: a request's rate-limit count rides with it.
        replies = [scripts.script(client, "find_submissions")(keys=calls[0][0], args=calls[0][1])]
    else:
        replies = scripts.run_each(client, "find_submissions", calls)
    records: dict[str, Found | None] = {}
    for ids, reply in zip(groups.values(), replies, strict=True):
        if isinstance(reply, Exception):
            raise reply
        for i, sid in enumerate(ids):
            records[sid] = found(reply[2 * i], int(reply[2 * i + 1]), now)
    return [records[sid] for sid in submission_ids]


#: Upper bounds (seconds) of the submit-to-verdict latency histogram.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def latency_bucket(seconds: float) -> str:
    """The histogram field that counts a latency (``le:<bound>``, or ``le:+Inf``)."""
    bound = next((b for b in LATENCY_BUCKETS if seconds <= b), None)
    return f"le:{bound}" if bound is not None else "le:+Inf"


@dataclass(frozen=True)
class Verdict:
    """A final record to store: its text, and the fields that the counts, the audit of
    rejections and the latency histogram read (``status``, ``code``, ``reason``, ``game``,
    ``player_id``, ``achieved_at``)."""

    submission_id: str
    value: str
    fields: Mapping[str, Any]


def settle(
    client: redis.Redis,
    verdicts: Sequence[Verdict],
    now: Generation,
    now_ms: int,
    announce: Sequence[str] = (),
) -> None:
    """Store final records in the generation ``now``, count and audit them, and wake
    long-polls, in one round trip; ``announce`` names submissions settled before, whose
    waiters are woken again."""
    if not verdicts and not announce:
        return
    pipe = client.pipeline(transaction=False)
    stored = store_verdicts(pipe, verdicts, now)
    count_verdicts(pipe, verdicts, now_ms, now.partitions)
    announce_verdicts(pipe, [verdict.submission_id for verdict in verdicts] + list(announce))
    failed = [failure for reply in pipe.execute()[:stored] for failure in reply]
    if failed:
        raise redis.ResponseError(f"could not store {len(failed)} record(s): {failed[0]}")


def store_verdicts(
    pipe: redis.client.Pipeline, verdicts: Sequence[Verdict], now: Generation
) -> int:
    """Queue on ``pipe`` the writes of the final records (in the generation ``now``), one script
    per partition, each on its partition's slot (a drain makes it one transaction with the
    entries' acknowledgement); return how many commands it queued (one per partition).

    A script's reply is the ``"<id>: <error>"`` of each write that failed (a hash of the wrong
    type, say), so that one bad hash keeps no other record from being written.
    """
    groups: dict[int, list[Verdict]] = {}
    for verdict in verdicts:
        groups.setdefault(now.partition(verdict.submission_id), []).append(verdict)
    for group in groups.values():
        places: dict[str, int] = {}
        args: list[str | int] = [now.ttl_ms]
        for verdict in group:
            key = now.key(verdict.submission_id)
            place = places.setdefault(key, len(places) + 1)
            args += [place, verdict.submission_id, verdict.value]
        # EVAL with the text, not EVALSHA: inside a transaction, a script Redis does not know
        # would fail at EXEC, after the rest of the transaction (the acknowledgement) had run.
        pipe.eval(scripts.source("store_submissions"), len(places), *places, *args)
    return len(groups)


def rejected_stream_maxlen(partitions: int) -> int:
    """How many rejections each partition's audit stream keeps (approximately): together about
    :data:`REJECTED_STREAM_MAXLEN`."""
    return max(1, REJECTED_STREAM_MAXLEN // partitions)


def count_verdicts(
    pipe: redis.client.Pipeline,
    verdicts: Sequence[Verdict],
    now_ms: int,
    partitions: int,
) -> None:
    """Queue on ``pipe`` the audit of rejections and the counts of verdicts, each in the keys of
    the submission's partition (so a drain puts them in that partition's transaction)."""
    # Counted per batch, not per submission: a few commands whatever the batch's size.
    counts: dict[int, Counter[str]] = {}
    latencies: dict[int, Counter[str]] = {}
    latency_sums: Counter[int] = Counter()
    maxlen = rejected_stream_maxlen(partitions)
    for verdict in verdicts:
        p = partition_of(verdict.submission_id, partitions)
        record = verdict.fields
        if record["status"] == REJECTED:
            counts.setdefault(p, Counter())[f"rejected:{record.get('code', 'unknown')}"] += 1
            pipe.xadd(
                keys.rejected_stream(p),
                {
                    "sid": verdict.submission_id,
                    "code": record.get("code", ""),
                    "reason": record.get("reason", ""),
                    "game": record.get("game") or "",
                    "player_id": record.get("player_id") or "",
                },
                maxlen=maxlen,
                approximate=True,
            )
        else:
            counts.setdefault(p, Counter())["accepted"] += 1
            latency = max(0, now_ms - record["achieved_at"]) / 1000
            latencies.setdefault(p, Counter())[latency_bucket(latency)] += 1
            latency_sums[p] += latency
    for p, counted in counts.items():
        for name, count in counted.items():
            pipe.hincrby(keys.verdict_counts(p), name, count)
    for p, observed in latencies.items():
        for bound, count in observed.items():
            pipe.hincrby(keys.latency_histogram(p), bound, count)
        pipe.hincrbyfloat(keys.latency_histogram(p), "sum", latency_sums[p])


def announce_verdicts(pipe: redis.client.Pipeline, submission_ids: Sequence[str]) -> None:
    """Queue on ``pipe`` the announcement that wakes the long-polls of these submissions."""
    if submission_ids:
        pipe.publish(keys.VERDICT_CHANNEL, " ".join(submission_ids))


def read_verdict_counts(client: redis.Redis, partitions: int) -> dict[str, int]:
    """The verdict counts (``accepted``, ``rejected:<code>``) summed over every partition, in
    one round trip."""
    pipe = client.pipeline(transaction=False)
    for p in range(partitions):
        pipe.hgetall(keys.verdict_counts(p))
    total: Counter[str] = Counter()
    for stored in pipe.execute():
        for name, count in stored.items():
            total[name] += int(count)
    return dict(total)


def read_latency_histogram(client: redis.Redis, partitions: int) -> dict[str, float]:
    """The latency histogram's fields (``le:<bound>``, ``sum``) summed over every partition, in
    one round trip."""
    pipe = client.pipeline(transaction=False)
    for p in range(partitions):
        pipe.hgetall(keys.latency_histogram(p))
    total: dict[str, float] = {}
    for stored in pipe.execute():
        for name, value in stored.items():
            total[name] = total.get(name, 0) + float(value)
    return total
