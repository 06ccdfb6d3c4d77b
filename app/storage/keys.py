"""Every Redis key name hiscore uses is built here, and only here.

All keys of one board family (one game and variant) share the hash tag ``{game:variant}``, so a
board's log, caches and metadata land in one Redis Cluster slot and one Lua script may touch them
all. Only registry values (game slugs, variants, window names, period labels built by
:mod:`app.leaderboard.windows`) and service-issued ids ever become part of a key; a player's text
never does."""

from __future__ import annotations

import re

# Service-issued ids, the only client-sent values that ever become part of a key.
PLAYER_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
SUBMISSION_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"

PREFIX = "hs"

#: Pub/sub channel on which workers announce verdicts (message: space-separated submission ids).
VERDICT_CHANNEL = f"{PREFIX}:verdicts"

#: Where the single-slot layout audited rejected submissions (a stream): only read, to convert
#: such data (see :func:`rejected_stream`).
LEGACY_REJECTED_STREAM = f"{PREFIX}:rejected"

#: Where the single-slot layout counted verdicts (a hash): only read, to convert such data (see
#: :func:`verdict_counts`).
LEGACY_VERDICT_COUNTS = f"{PREFIX}:counts:verdicts"

#: Where the single-slot layout kept the latency histogram (a hash): only read, to convert such
#: data (see :func:`latency_histogram`).
LEGACY_LATENCY_HISTOGRAM = f"{PREFIX}:counts:latency"

#: Hash of beat job name -> JSON of its last run.
BEAT_RUNS = f"{PREFIX}:beat:runs"


def _family(game: str, variant: str) -> str:
    return f"{PREFIX}:{{{game}:{variant}}}"


def log_key(game: str, variant: str) -> str:
    """The durable log of accepted entries of a board family: a stream."""
    return f"{_family(game, variant)}:log"


def log_copy_key(game: str, variant: str) -> str:
    """Where a compaction copies the log entries it keeps before the copy replaces the log."""
    return f"{_family(game, variant)}:log:compacted"


def applied_key(game: str, variant: str) -> str:
    """Hash of submission id -> log entry id: what has already been applied (idempotency)."""
    return f"{_family(game, variant)}:applied"


def banned_key(game: str, variant: str) -> str:
    """Set of player ids whose entries this family refuses (and rebuilds skip)."""
    return f"{_family(game, variant)}:banned"


def run_key(game: str, variant: str, run_id: str) -> str:
    """The submission that used a run token (a string with the token's lifetime as TTL).

    ``run_id`` comes from a token the service signed, never from a client's own text.
    """
    return f"{_family(game, variant)}:run:{run_id}"


def lock_key(game: str, variant: str) -> str:
    """Held (value: task id) while a rebuild or prune rewrites the family's boards."""
    return f"{_family(game, variant)}:lock"


def stats_key(game: str, variant: str, window: str, period: str) -> str:
    """The stats of one board, as JSON, written by the stats job."""
    return f"{_family(game, variant)}:stats:{window}:{period}"


def ranking_key(game: str, variant: str, window: str, period: str) -> str:
    """Sorted set of one board: score = sort key, member = ``<achieved ms>:<player id>``."""
    return f"{_family(game, variant)}:rank:{window}:{period}"


def players_key(game: str, variant: str) -> str:
    """Hash of a family's players: player id -> ``<name_at>|<tags>|<name>``, the name of the
    player's latest entry and where their row is on each board (see ``app/lua/board_lib.lua``)."""
    return f"{_family(game, variant)}:players"


def entry_metadata_key(game: str, variant: str) -> str:
    """Hash of a family's entry metadata: ``<achieved ms, 13 digits>:<player id>`` -> the JSON
    object the entry carried (of a player's two entries at one ms, the greater text), for the
    games that allow metadata."""
    return f"{_family(game, variant)}:emeta"


def values_key(game: str, variant: str, window: str, period: str) -> str:
    """Sorted set of the distinct values (score, subscore) of one board's rows, for a game whose
    ties are dense: member ``<sort, %.17g>|<subscore key>``, score the sort key; beside it
    :func:`value_counts_key` counts the rows holding each."""
    return f"{_family(game, variant)}:val:{window}:{period}"


def value_counts_key(game: str, variant: str, window: str, period: str) -> str:
    """Hash of one board's distinct values (the members of :func:`values_key`) -> rows."""
    return f"{_family(game, variant)}:valn:{window}:{period}"


def meta_key(game: str, variant: str, window: str, period: str) -> str:
    """Hash of one board's figures: ``updated`` (ms of its last change), ``sum`` (of its rows'
    scores), ``n`` (entries achieved in its period) and ``t:<bucket start ms>`` (entries per
    hour or day)."""
    return f"{_family(game, variant)}:meta:{window}:{period}"


def legacy_rows_key(game: str, variant: str, window: str, period: str) -> str:
    """Where the layout before players and meta hashes kept one board's rows (player id ->
    ``<achieved ms>|<score>|<name>``, and ``:updated``): only read, to convert such data."""
    return f"{_family(game, variant)}:rows:{window}:{period}"


def build_key(board_key: str) -> str:
    """Where a rebuild writes its copy of a board key before swapping it in (same slot)."""
    return f"{board_key}:build"


def task_key(task_id: str) -> str:
    """State and progress of an operator task (a hash with a TTL)."""
    return f"{PREFIX}:task:{task_id}"


def worker_key(hostname: str) -> str:
    """A worker's heartbeat (expires when the worker stops beating)."""
    return f"{PREFIX}:worker:{hostname}"


WORKER_PATTERN = f"{PREFIX}:worker:*"


# The request slot, ``{ingest}``: what a score's request checks before it is stored (the key
# generations, the rate-limit counters), names kept so that data carries over. The single-slot
# layout kept the stream and the records here too (the ``LEGACY_*`` names below).
_INGEST = f"{PREFIX}:{{ingest}}"

#: Where the single-slot layout kept the ingest stream: only read, to convert such data (see
#: :func:`ingest_stream`).
LEGACY_INGEST_STREAM = f"{_INGEST}:stream"

#: Consumer group of the workers, on every partition's stream (:func:`ingest_stream`).
INGEST_GROUP = "workers"

#: Where the single-slot layout kept its drain flag: only read, to convert such data (see
#: :func:`drain_flag`).
LEGACY_DRAIN_FLAG = f"{_INGEST}:drain"

#: Where the single-slot layout kept its dead letters: only read, to convert such data (see
#: :func:`dead_letters`).
LEGACY_DEAD_LETTERS = f"{_INGEST}:dead"


#: Hash of player id -> the generation of key the player must show at least (players whose keys
#: were never rotated nor revoked have no field: generation 0). In the ingest slot so that the
#: script that enqueues a score checks the key in the same round trip.
KEY_GENERATIONS = f"{_INGEST}:keygen"


#: Prefix of the rate-limit counters. In the ingest slot, so that the script that stores a score
#: counts its limits in the same round trip.
RATE_LIMIT_PREFIX = f"{_INGEST}:limits"


def rate_limit_key(identity: str, scope: str, limit: str) -> str:
    """The counter of one limit (``limit``: e.g. ``600/1/minute``) for a client in a scope.

    ``identity`` is an address the connection (or a trusted proxy) gave, or ``player:<id>`` of a
    player the request proved; ``scope`` an endpoint or blueprint name, or ``global``. Named as
    Flask-Limiter names them, so counters carry over from a version that counted with it.
    """
    return f"{RATE_LIMIT_PREFIX}:LIMITER/{identity}/{scope}/{limit}"


# Ingestion is split into partitions by a hash of the submission id (see
# :func:`app.storage.submissions.partition_of`). Each partition's keys share the hash tag
# ``{ingest:<p>}``: the web creates a record and appends its submission to the partition's
# stream in one script, and a drain stores a batch's verdicts, counts them and acknowledges its
# entries in one transaction, each on one Redis Cluster slot; partitions spread over nodes.


def _partition(partition: int) -> str:
    return f"{PREFIX}:{{ingest:{partition}}}"


def ingest_stream(partition: int) -> str:
    """Stream of a partition's submissions waiting for a worker (field ``p``: the queued
    submission as JSON); read through the consumer group :data:`INGEST_GROUP`."""
    return f"{_partition(partition)}:stream"


def drain_flag(partition: int) -> str:
    """A partition's drain lease (with a TTL): ``q`` while a drain is asked for, ``d:<consumer>``
    while that drain holds it."""
    return f"{_partition(partition)}:drain"


def dead_letters(partition: int) -> str:
    """Stream of a partition's submissions the worker could not process (for an operator)."""
    return f"{_partition(partition)}:dead"


def partition_submissions_key(partition: int, generation: int, bucket: int) -> str:
    """A hash of status records of one partition: submission id -> record, for the submissions
    whose id falls in ``bucket`` and whose record was written in ``generation`` (see
    :mod:`app.storage.submissions`); it expires with its generation."""
    return f"{_partition(partition)}:subs:{generation}:{bucket}"


def verdict_counts(partition: int) -> str:
    """Hash of a partition's verdict counts: ``accepted`` and ``rejected:<code>`` -> count."""
    return f"{_partition(partition)}:counts:verdicts"


def latency_histogram(partition: int) -> str:
    """Hash of a partition's submit-to-verdict latency: ``le:<seconds>`` bucket counts, ``sum``
    and ``count``."""
    return f"{_partition(partition)}:counts:latency"


def rejected_stream(partition: int) -> str:
    """Stream that audits a partition's rejected submissions with their reasons."""
    return f"{_partition(partition)}:rejected"


#: Matches every partition's hashes of status records.
PARTITION_SUBMISSIONS_PATTERN = f"{PREFIX}:{{ingest:*}}:subs:*"

#: Matches every partition's ingest stream (partitions left by an earlier partition count too).
INGEST_STREAMS_PATTERN = f"{PREFIX}:{{ingest:*}}:stream"

#: Matches every key of every partition, of whatever partition count wrote it.
PARTITION_KEYS_PATTERN = f"{PREFIX}:{{ingest:*}}:*"

_PARTITION_TAG = re.compile(rf"^{PREFIX}:\{{ingest:(\d+)\}}:")
_SUBMISSIONS_TAIL = re.compile(r"subs:(-?\d+):(\d+)$")


def partition_in(key: str) -> int | None:
    """The partition whose hash tag ``key`` carries (None: the key is of no partition)."""
    found = _PARTITION_TAG.match(key)
    return int(found[1]) if found else None


def submissions_key_parts(key: str) -> tuple[int | None, int, int] | None:
    """The partition (None: the single-slot layout's), generation and bucket of a hash of status
    records (:func:`partition_submissions_key`, :func:`legacy_submissions_key`); None for any
    other key."""
    partition = partition_in(key)
    head = f"{_partition(partition)}:" if partition is not None else f"{_INGEST}:"
    if not key.startswith(head):
        return None
    tail = _SUBMISSIONS_TAIL.fullmatch(key[len(head) :])
    return (partition, int(tail[1]), int(tail[2])) if tail else None


def legacy_submissions_key(generation: int, bucket: int) -> str:
    """Where the single-slot layout kept a hash of status records (see
    :func:`partition_submissions_key`): only read, to convert such data."""
    return f"{_INGEST}:subs:{generation}:{bucket}"


#: Matches every hash of status records of the single-slot layout
#: (:func:`legacy_submissions_key`): only read, to convert such data.
LEGACY_SUBMISSIONS_PATTERN = f"{_INGEST}:subs:*"


#: The keys of the single-slot layout with a name of their own (its hashes of records aside):
#: only read, to convert such data.
LEGACY_INGEST_KEYS = (
    LEGACY_INGEST_STREAM,
    LEGACY_DRAIN_FLAG,
    LEGACY_DEAD_LETTERS,
    LEGACY_VERDICT_COUNTS,
    LEGACY_LATENCY_HISTOGRAM,
    LEGACY_REJECTED_STREAM,
)


def legacy_submission_key(submission_id: str) -> str:
    """Where the previous layout kept one submission's status record (a JSON string with a
    TTL): read only to convert such records."""
    return f"{_INGEST}:sub:{submission_id}"


def run_state_key(game: str, variant: str, run_id: str) -> str:
    """A verified run's secret state and move log (a hash; see :mod:`app.storage.runs`).

    ``run_id`` comes from a token the service signed, never from a client's own text.
    """
    return f"{_family(game, variant)}:play:{run_id}"
