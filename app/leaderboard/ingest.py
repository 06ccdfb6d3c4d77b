"""The worker's side of a submission: validate again, apply, record the verdict, wake waiters.

Batch-first: :func:`ingest_submissions` takes any number of queued submissions and costs a
constant number of Redis round trips, whatever the batch size; :func:`drain` feeds it batches
from the ingest stream (see :mod:`app.storage.intake`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis import exceptions as errors
from redis.client import CaseInsensitiveDict

from app.leaderboard import statuses
from app.leaderboard.boards import Applied, Entry, apply_entries_each
from app.leaderboard.games import Game, Registry
from app.leaderboard.records import BoardRef, SubmissionRecord
from app.leaderboard.run_tokens import RunToken, TokenPolicy, use_ttl_ms
from app.leaderboard.schemas import QueuedSubmission
from app.leaderboard.validation import Rejection, metadata_text, validate_queued
from app.leaderboard.verified_runs import replay_runs
from app.log_context import bind, unbind
from app.storage import intake, submissions
from app.storage.connection import DataClient, DataPipeline
from app.storage.submissions import Generation, Verdict
from app.storage.topology import NO_WAIT, Replication

log = logging.getLogger(__name__)

#: The exceptions that mean a task is out of time (the task layer names them): they stop a
#: batch whatever it holds, and are never the fault of a submission.
OutOfTime = tuple[type[BaseException], ...]

# Errors of a Redis that cannot take a command now but will: out of reach, loading, full, a
# replica, failing over or resharding, or told to refuse writes. The same entry passes later.
_TRANSIENT_ERRORS = (
    errors.ConnectionError,  # BusyLoadingError (LOADING) and AuthenticationError too
    errors.TimeoutError,
    errors.OutOfMemoryError,
    errors.ReadOnlyError,
    errors.NoPermissionError,  # an ACL being changed, not anything in the entry
    errors.TryAgainError,
    errors.ClusterDownError,  # MasterDownError too
    errors.AskError,  # MovedError too
    errors.SlotNotCoveredError,  # a cluster's slot no node serves while its master fails over
)

# The same by their codes, for replies redis-py leaves as a plain ResponseError.
_TRANSIENT_CODES = frozenset(
    {
        "OOM",
        "BUSY",
        "LOADING",
        "READONLY",
        "MISCONF",
        "NOPERM",
        "NOREPLICAS",
        "TRYAGAIN",
        "MASTERDOWN",
        "CLUSTERDOWN",
        "MOVED",
        "ASK",
    }
)

# What stands before a reply's code: redis-py's note of the pipeline command that failed
# (greedy, so that a player's text in that command cannot pose as the reply), then Redis 6's
# note of the script line that raised it.
_AROUND_THE_CODE = re.compile(
    r"^(?:Command # \d+ \(.*\) of pipeline caused error: )?"
    r"(?:(?:Error running script \(call to \w+\)|@user_script: ?\d+): )*-?",
    re.DOTALL,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a Redis error may pass with time, rather than return whenever the same entry is
    ingested (a script's WRONGTYPE, say, or a bug's bad argument)."""
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    if isinstance(exc, errors.RedisClusterException):
        # No node of the cluster answers (redis-py says so in words, with no class of its own);
        # any other such error is a command the cluster cannot take, ever.
        return "cannot be connected" in str(exc)
    if not isinstance(exc, errors.ResponseError):
        return False
    reply = _AROUND_THE_CODE.sub("", str(exc), count=1)
    return reply.split(" ", 1)[0] in _TRANSIENT_CODES


def _rejected(payload: Any, rejection: Rejection) -> SubmissionRecord:
    record = SubmissionRecord(
        status="rejected",
        code=rejection.code,
        reason=rejection.detail,
        errors=rejection.errors or None,
    )
    if isinstance(payload, dict):
        for name in ("fingerprint", "game", "player_id"):
            if isinstance(payload.get(name), str):
                setattr(record, name, payload[name][:64])
    return record


def _accepted(entry: Entry, applied: Applied, fp: str) -> SubmissionRecord:
    return SubmissionRecord(
        status="accepted",
        fingerprint=fp,
        game=entry.game.slug,
        player_id=entry.player_id,
        board=BoardRef(game=entry.game.slug, variant=entry.variant, window="alltime"),
        rank=applied.ranks["alltime"],
        ranks=applied.ranks,
        score=applied.score,
        achieved_at=applied.achieved_at,
        # A replay cannot tell whether the first run beat the player's best.
        personal_best=applied.improved["alltime"] if applied.fresh else None,
    )


#: The verdict of a submission the service could not process (never the client's fault).
FAILED = Rejection("failed", "the service could not process this submission")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _submission_id(payload: Any) -> str | None:
    sid = payload.get("submission_id") if isinstance(payload, dict) else None
    return sid if isinstance(sid, str) and submissions.SUBMISSION_ID.match(sid) else None


def _settled(client: DataClient, payloads: Sequence[Any], now: Generation) -> set[str]:
    """The submissions of a batch that already have a final verdict."""
    ids = list(dict.fromkeys(sid for p in payloads if (sid := _submission_id(p))))
    final = set()
    for sid, record in zip(ids, statuses.read_many(client, ids, now), strict=True):
        # A failed one is tried again: its dead letter may not have been written.
        if record and record.status in submissions.FINAL and record.code != FAILED.code:
            final.add(sid)
    return final


@dataclass(frozen=True)
class Judged:
    """What a batch of queued submissions came to: applied to the boards, nothing stored yet."""

    verdicts: list[tuple[str, SubmissionRecord]]  # the new verdicts, by submission id
    settled: list[str]  # submissions with a final verdict already: only to be announced again

    def stored(self) -> list[tuple[str, dict[str, Any]]]:
        """The new verdicts' fields."""
        return [(sid, record.stored()) for sid, record in self.verdicts]

    def to_store(self, now: Generation) -> list[Verdict]:
        """The new verdicts, ready to be stored in the generation ``now``."""
        return [statuses.verdict(sid, record, now) for sid, record in self.verdicts]


def ingest_submissions(
    client: DataClient,
    registry: Registry,
    payloads: Sequence[Any],
    now_ms: int,
    idempotency_s: int,
    partitions: int,
    tokens: TokenPolicy | None = None,
    out_of_time: OutOfTime = (),
    replication: Replication = NO_WAIT,
) -> list[tuple[str, dict[str, Any]]]:
    """Validate, apply and settle a batch of queued submissions; return the new verdicts'
    fields.

    ``idempotency_s`` is how long a record lives (at least), ``partitions`` how many ingest
    partitions the records are spread over; ``tokens`` says how run tokens are checked (None:
    they are not); an exception of ``out_of_time`` is raised as it comes; ``replication`` says
    how many replicas of each family master must hold the batch's writes before it is settled.

    Running it twice on the same payloads changes nothing more: a settled submission is only
    announced again, and the boards skip submissions they have applied.
    """
    judged = judge_submissions(
        client,
        registry,
        payloads,
        now_ms,
        idempotency_s,
        partitions,
        tokens,
        out_of_time,
        replication=replication,
    )
    now = Generation.at(now_ms, idempotency_s, partitions)
    submissions.settle(client, judged.to_store(now), now, now_ms, announce=judged.settled)
    _log_verdicts(judged.verdicts, payloads)
    return judged.stored()


def judge_submissions(
    client: DataClient,
    registry: Registry,
    payloads: Sequence[Any],
    now_ms: int,
    idempotency_s: int,
    partitions: int,
    tokens: TokenPolicy | None = None,
    out_of_time: OutOfTime = (),
    may_be_settled: bool = True,
    replication: Replication = NO_WAIT,
) -> Judged:
    """Validate a batch of queued submissions and apply the valid ones; their verdicts, for the
    caller to store (see :func:`ingest_submissions`).

    ``may_be_settled`` False says that none of them can have a final verdict yet (they were
    never read before from the stream, see :func:`drain`), so their records are not read.
    """
    entries: list[Entry] = []
    fingerprints: list[str] = []
    verdicts: list[tuple[str, SubmissionRecord]] = []
    checked_ones: list[tuple[Any, tuple[QueuedSubmission, Game, RunToken | None]]] = []
    now = Generation.at(now_ms, idempotency_s, partitions)
    settled = _settled(client, payloads, now) if may_be_settled else set()
    judged: set[str] = set()
    for payload in payloads:
        sid = _submission_id(payload)
        if sid is not None:
            if sid in settled or sid in judged:
                # Settled, or twice in the batch (copies a move cut short left): judged once.
                continue
            judged.add(sid)
        try:
            checked = validate_queued(registry, payload, tokens)
        except out_of_time:
            raise  # the task is out of time, the submission is not at fault
        except Exception:  # a message must never take the worker down
            log.exception("could not validate a queued submission")
            checked = Rejection("invalid", "the submission could not be read")
        if isinstance(checked, Rejection):
            if sid is not None:
                verdicts.append((sid, _rejected(payload, checked)))
            else:
                log.warning("dropped a queued message without a usable id: %s", checked.detail)
            continue
        checked_ones.append((payload, checked))
    proofs = iter(
        replay_runs(
            client,
            registry,
            [run for _, (_, game, run) in checked_ones if game.verified and run is not None],
        )
    )
    for payload, (sub, game, run) in checked_ones:
        if game.verified:
            # The worker replays the run itself rather than trust the score the web sent.
            proof = next(proofs) if run is not None else Rejection("token_missing", "no run")
            if not isinstance(proof, Rejection) and (proof.score, proof.duration_ms) != (
                sub.score,
                sub.duration_ms,
            ):
                detail = "the score differs from what the run's moves prove"
                proof = Rejection("run_mismatch", detail, {"score": [detail]})
            if isinstance(proof, Rejection):
                verdicts.append((sub.submission_id, _rejected(payload, proof)))
                continue
        run_ttl_ms = use_ttl_ms(run, tokens, now_ms) if run and tokens else 0
        if run_ttl_ms is None:
            # Its single use can no longer be checked: the run's record is gone.
            detail = "the score waited too long to be checked against its run token"
            verdicts.append(
                (sub.submission_id, _rejected(payload, Rejection("token_expired", detail)))
            )
            continue
        entries.append(
            Entry(
                submission_id=sub.submission_id,
                game=game,
                variant=sub.variant,
                player_id=sub.player_id,
                name=sub.name,
                score=sub.score,
                achieved_at=sub.received_at,
                run_id=run.run_id if run else None,
                run_ttl_ms=run_ttl_ms,
                subscore=sub.subscore,
                metadata=None if sub.metadata is None else metadata_text(sub.metadata),
            )
        )
        fingerprints.append(sub.fingerprint)
    # Waited for on each family master written (a shortfall is a passing error, below): an
    # entry is acknowledged only once a replica holds what it changed.
    outcomes = apply_entries_each(client, entries, now_ms, replication=replication)
    for outcome in outcomes:
        if isinstance(outcome, redis.RedisError) and is_transient(outcome):
            raise outcome  # the whole batch is tried again; what was applied replays as such
    for entry, applied, fp in zip(entries, outcomes, fingerprints, strict=True):
        if isinstance(applied, redis.RedisError):
            # Stored state this entry's script cannot work with (a key of the wrong type, say):
            # the same entry would fail again, so it is answered now and its neighbours settle.
            log.error(
                "could not apply submission %s: %s", entry.submission_id, applied, exc_info=applied
            )
            record = _rejected(
                {"fingerprint": fp, "game": entry.game.slug, "player_id": entry.player_id}, FAILED
            )
            record.error = _error_text(applied)  # for the dead letters; never shown a client
            verdicts.append((entry.submission_id, record))
            continue
        if applied.banned or applied.run_reused:
            if applied.banned:
                rejection = Rejection("banned", "this player may not enter this game's boards")
            else:
                detail = "this run token was already used by another submission"
                rejection = Rejection("token_reused", detail, {"token": [detail]})
            record = _rejected(
                {"fingerprint": fp, "game": entry.game.slug, "player_id": entry.player_id},
                rejection,
            )
        else:
            record = _accepted(entry, applied, fp)
        verdicts.append((entry.submission_id, record))
    return Judged(verdicts, sorted(settled))


def _log_verdicts(
    verdicts: Sequence[tuple[str, SubmissionRecord]], payloads: Sequence[Any]
) -> None:
    """One line per verdict, carrying the submission's id and the request that brought it."""
    if not log.isEnabledFor(logging.INFO):
        return
    requests = {
        p["submission_id"]: p.get("request_id")
        for p in payloads
        if isinstance(p, dict) and isinstance(p.get("submission_id"), str)
    }
    for sid, record in verdicts:
        request_id = requests.get(sid)
        # bind and unbind rather than log_context: a line a verdict, and the context manager
        # was a tenth of each line's cost.
        token = bind(
            submission_id=sid, request_id=request_id if isinstance(request_id, str) else None
        )
        try:
            if record.status == submissions.ACCEPTED:
                log.info("submission accepted: rank %s", record.rank)
            else:
                log.info("submission rejected (%s): %s", record.code, record.reason)
        finally:
            unbind(token)


#: Entries a drain takes from each partition's stream at a time.
DRAIN_BATCH = 500

#: A batch smaller than this makes the drain wait ``linger_ms`` before reading again.
SMALL_BATCH = 50

#: How often a running drain refreshes its leases (a batch does it in its transactions): often
#: enough that a lease, which lives :data:`app.storage.intake.DRAIN_FLAG_MS`, never lapses under
#: a live drain.
FLAG_REFRESH_MS = intake.DRAIN_FLAG_MS // 10

#: How often (at most) a running drain reads the leases of the partitions it does not hold, to
#: adopt one whose drain was asked for and has not started.
ADOPT_EVERY_MS = 25


@dataclass(frozen=True)
class Drained:
    """What one drain did."""

    settled: int  # entries taken off the streams with a verdict
    # The partitions it stopped at its time budget with entries still waiting, asked for again:
    # the caller sends a drain of each.
    handed_back: tuple[int, ...] = ()
    drained: tuple[int, ...] = ()  # the partitions it held at one time or another

    @property
    def more(self) -> bool:
        """It stopped with entries still waiting."""
        return bool(self.handed_back)


def take_partitions(
    client: DataClient, consumer: str, partitions: int, partition: int | None
) -> list[int]:
    """The partitions a drain task of ``consumer`` takes: ``partition`` unless another drain
    holds it; for None (a task of the previous version, which named none), every partition
    where entries wait and no other drain holds the lease."""
    if partition is not None:
        return intake.take(client, [partition], consumer)
    busy = intake.backlog(client, partitions).busy()
    mine = intake.holder(consumer)  # a retried drain's own leases
    leases = intake.leases(client, busy)
    return intake.take(
        client, [p for p, lease in leases.items() if lease.free or lease.value == mine], consumer
    )


def sweep_partitions(client: DataClient, consumer: str, partitions: int) -> list[int]:
    """The beat's sweep: ask for a drain of every partition where entries wait with no lease
    (one round trip for the backlogs, one for the leases), and take them for ``consumer``."""
    busy = intake.backlog(client, partitions).busy()
    return intake.take(client, intake.ask_drains(client, busy), consumer)


def _settle_entries(
    client: DataClient,
    registry: Registry,
    entries: Sequence[intake.Waiting],
    clock: Callable[[], int],
    idempotency_s: int,
    partitions: int,
    tokens: TokenPolicy | None,
    out_of_time: OutOfTime,
    consumer: str,
    delivered_before: bool = True,
    refresh: Collection[int] = (),
    per_partition_transactions: bool = False,
    replication: Replication = NO_WAIT,
) -> None:
    payloads = [e.payload for e in entries]
    now_ms = clock()
    try:
        judged = judge_submissions(
            client,
            registry,
            payloads,
            now_ms,
            idempotency_s,
            partitions,
            tokens,
            out_of_time,
            delivered_before,
            replication,
        )
        now = Generation.at(now_ms, idempotency_s, partitions)
        _record(client, entries, judged, now, now_ms, consumer, refresh, per_partition_transactions)
    except out_of_time:
        raise  # the entries stay pending, and are read again by the next drain
    except Exception as exc:
        if is_transient(exc):
            raise  # likewise: the same entries will pass once Redis can take them
        if len(entries) == 1:
            _set_aside(client, entries[0], exc, clock, idempotency_s, partitions)
            return
        for entry in entries:  # find the one that fails; the others are settled normally
            _settle_entries(
                client,
                registry,
                [entry],
                clock,
                idempotency_s,
                partitions,
                tokens,
                out_of_time,
                consumer,
                per_partition_transactions=per_partition_transactions,
                replication=replication,
            )
        return
    _log_verdicts(judged.verdicts, payloads)


@dataclass
class _PartitionBatch:
    """What a batch writes in one partition's slot."""

    verdicts: list[Verdict] = field(default_factory=list)
    entry_ids: list[str] = field(default_factory=list)
    letters: list[intake.Waiting] = field(default_factory=list)


@dataclass(frozen=True)
class _Queued:
    """How many commands of each kind a partition's transaction holds, in order."""

    stores: int
    letters: list[intake.Waiting]
    counts: int


def _queue_partition(
    pipe: DataPipeline,
    partition: int,
    batch: _PartitionBatch,
    failed: Mapping[str, str | None],
    now: Generation,
    now_ms: int,
    consumer: str | None,
) -> _Queued:
    """Queue on ``pipe`` the commands of one partition's transaction (see :func:`_record`)."""
    stores = submissions.store_verdicts(pipe, batch.verdicts, now)
    for entry in batch.letters:
        error = failed[cast(str, _submission_id(entry.payload))]
        intake.keep_dead_letter(pipe, entry, f"could not be applied: {error}")
    before = len(pipe)
    submissions.count_verdicts(pipe, batch.verdicts, now_ms, now.partitions)
    counts = len(pipe) - before
    if batch.entry_ids:
        intake.acknowledge(pipe, partition, batch.entry_ids, consumer)
    return _Queued(stores, batch.letters, counts)


def _log_ran(queued: _Queued, ran: Sequence[Any]) -> None:
    """Log the commands of a partition's transaction that failed as it ran (each alone)."""
    letters_at = queued.stores
    counts_at = letters_at + len(queued.letters)
    acks_at = counts_at + queued.counts
    for reply in ran[:letters_at]:
        # The script's reply: the writes that failed, each alone (or the script's own error).
        for failure in [reply] if isinstance(reply, Exception) else reply:
            log.error("could not store a verdict: %s", failure)
    for entry, reply in zip(queued.letters, ran[letters_at:counts_at], strict=True):
        if isinstance(reply, Exception):
            # The entry leaves the stream all the same, with this line as its last trace.
            log.error(
                "could not keep a failed submission (%s); dropped %s",
                reply,
                json.dumps(entry.payload),
            )
    for reply in ran[counts_at:acks_at]:
        if isinstance(reply, Exception):
            log.error("could not count or audit verdicts: %s", reply)
    for reply in ran[acks_at:]:
        if isinstance(reply, Exception):
            # Left pending, the entries are read again, found settled and acknowledged then.
            log.error("could not take settled entries off the stream: %s", reply)


def _record(
    client: DataClient,
    entries: Sequence[intake.Waiting],
    judged: Judged,
    now: Generation,
    now_ms: int,
    consumer: str,
    refresh: Collection[int],
    per_partition_transactions: bool,
) -> None:
    """Store a batch's verdicts, keep its failed entries in the dead letters, count and audit
    the verdicts and take the batch off the streams, in one transaction per partition (each on
    the partition's slot, refreshing the drain's lease of the partitions in ``refresh``); then
    announce the verdicts. On a single Redis all of it goes in one round trip (a pipeline of the
    transactions); with ``per_partition_transactions`` (a Redis Cluster) each transaction is a
    round trip of its own.

    Together or not at all within a partition, an entry is never left on the stream with its
    verdict stored, which is why an entry read for the first time needs no look at its record
    (see :func:`drain`). A command that fails in a transaction as it runs (a key of the wrong
    type) fails alone, as it would on its own, and is logged (so does each record's write in
    the one script that stores them all); one Redis refuses as it is sent (out of memory,
    read-only) aborts its transaction, and the batch waits for the next drain (the partitions
    whose transactions ran find their entries settled already).
    """
    verdicts = judged.to_store(now)
    failed = {sid: record.error for sid, record in judged.verdicts if record.error is not None}
    batches: dict[int, _PartitionBatch] = {}
    for verdict in verdicts:
        batches.setdefault(now.partition(verdict.submission_id), _PartitionBatch()).verdicts.append(
            verdict
        )
    for entry in entries:
        batch = batches.setdefault(entry.partition, _PartitionBatch())
        batch.entry_ids.append(entry.entry_id)
        if failed and _submission_id(entry.payload) in failed:
            batch.letters.append(entry)
    announced = [verdict.submission_id for verdict in verdicts] + judged.settled
    refused: list[Exception] = []
    if per_partition_transactions:
        for partition, batch in batches.items():
            pipe = client.pipeline(transaction=True)
            queued = _queue_partition(
                pipe, partition, batch, failed, now, now_ms, _if(partition in refresh, consumer)
            )
            try:
                ran = pipe.execute(raise_on_error=False)
            except redis.RedisError as exc:  # refused as it was sent: nothing of it ran
                refused.append(exc)
                continue
            _log_ran(queued, ran)
        if not refused and announced:
            _announce(client.pipeline(transaction=False), announced)
    else:
        # MULTI and EXEC by hand: redis-py makes a transaction of a whole pipeline or of none.
        pipe = _hand_made_transactions(client)
        spans: list[tuple[int, int, _Queued]] = []
        for partition, batch in batches.items():
            multi_at = len(pipe)
            pipe.execute_command("MULTI")
            queued = _queue_partition(
                pipe, partition, batch, failed, now, now_ms, _if(partition in refresh, consumer)
            )
            spans.append((multi_at, len(pipe), queued))
            pipe.execute_command("EXEC")
        announce_at = len(pipe)
        submissions.announce_verdicts(pipe, announced)
        replies = pipe.execute(raise_on_error=False)
        for multi_at, exec_at, queued in spans:
            errors = [r for r in replies[multi_at : exec_at + 1] if isinstance(r, Exception)]
            if errors:
                # Refused as it was sent (a queued command's error, or EXECABORT): nothing of
                # the transaction ran. The error that says why, rather than EXECABORT's.
                refused.append(errors[0])
            else:
                _log_ran(queued, replies[exec_at])
        for reply in replies[announce_at:]:
            if isinstance(reply, Exception):
                log.error("could not announce verdicts: %s", reply)
    if refused:
        raise refused[0]


def _hand_made_transactions(client: DataClient) -> DataPipeline:
    """A pipeline for MULTI and EXEC sent by hand: a command queued in a transaction is answered
    ``QUEUED``, which it must not parse as its own reply (HINCRBYFLOAT's, as a float); its real
    reply comes in EXEC's, unparsed."""
    pipe = client.pipeline(transaction=False)
    # A copy: the client's own callbacks stay as they are.
    callbacks = CaseInsensitiveDict(pipe.response_callbacks)
    callbacks.pop("HINCRBYFLOAT", None)
    pipe.response_callbacks = callbacks
    return pipe


def _if(condition: bool, consumer: str) -> str | None:
    return consumer if condition else None


def _announce(pipe: DataPipeline, submission_ids: Sequence[str]) -> None:
    submissions.announce_verdicts(pipe, submission_ids)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.error("could not announce verdicts: %s", exc)


def _set_aside(
    client: DataClient,
    entry: intake.Waiting,
    exc: Exception,
    clock: Callable[[], int],
    idempotency_s: int,
    partitions: int,
) -> None:
    # A bug, or stored state the scripts cannot work with, not the client, since every client
    # input is judged and never raises: answer the submission and keep it for an operator
    # rather than retry it forever. Should recording that fail too, for a reason that would
    # return, the entry still leaves the stream, with the log line as its last trace.
    log.error("could not ingest a submission; moving it to the dead letters", exc_info=exc)
    # The dead letter first: were the verdict stored first and the letter then lost, a
    # redelivery would find the submission answered and keep nothing for an operator.
    try:
        intake.keep_dead_letter(client, entry, f"could not be ingested: {_error_text(exc)}")
    except redis.RedisError as unkept:
        if is_transient(unkept):
            raise
        log.exception("could not keep a failed submission; dropped %s", json.dumps(entry.payload))
    sid = _submission_id(entry.payload)
    if sid is not None:
        try:
            now_ms = clock()
            now = Generation.at(now_ms, idempotency_s, partitions)
            verdict = statuses.verdict(sid, _rejected(entry.payload, FAILED), now)
            submissions.settle(client, [verdict], now, now_ms)
        except redis.RedisError as unstored:
            if is_transient(unstored):
                raise
            log.exception("could not store the verdict of a failed submission")
    intake.done(client, [entry])


class _Reader:
    """How a drain reads the streams of the partitions it holds: on a single Redis one
    XREADGROUP over all of them, blocking for up to ``wait_ms`` for new entries; with
    ``per_partition`` (a Redis Cluster) one command per partition, pipelined, polled every
    ``poll_ms`` while none come."""

    def __init__(self, client: DataClient, consumer: str, per_partition: bool) -> None:
        self.client, self.consumer, self.per_partition = client, consumer, per_partition

    def started(self, partitions: Collection[int]) -> list[intake.Waiting]:
        """A taken partition's unfinished entries of this consumer and idle ones of others."""
        return intake.read_started(
            self.client, self.consumer, sorted(partitions), DRAIN_BATCH, self.per_partition
        )

    def new(self, partitions: Collection[int], wait_ms: int) -> list[intake.Waiting]:
        """New entries; on a single Redis, waiting up to ``wait_ms`` for the first."""
        held = sorted(partitions)
        if self.per_partition:
            return intake.read_each(self.client, self.consumer, held, DRAIN_BATCH)
        return intake.read_new(self.client, self.consumer, held, DRAIN_BATCH, wait_ms or None)


def drain(
    client: DataClient,
    registry: Registry,
    consumer: str,
    clock: Callable[[], int],
    idempotency_s: int,
    partitions: int,
    held: Collection[int],
    budget_ms: int = 2_000,
    wait_ms: int = 100,
    should_stop: Callable[[], bool] = lambda: False,
    tokens: TokenPolicy | None = None,
    linger_ms: int = 25,
    out_of_time: OutOfTime = (),
    per_partition_transactions: bool = False,
    per_partition_reads: bool = False,
    replication: Replication = NO_WAIT,
) -> Drained:
    """Settle what waits on the streams of the partitions ``held`` (of ``partitions``), batch
    by batch, for up to ``budget_ms``.

    The caller holds the leases of ``held`` for ``consumer`` (see :func:`take_partitions`). A
    drain first finishes what ``consumer`` left unfinished there and what dead consumers left
    idle, then reads new entries of every partition it holds together: the entries of all of
    them are judged and applied as one batch, so a batch's round trips do not grow with the
    partitions. A partition with nothing new for ``wait_ms`` is let go: its lease is dropped,
    then its stream read once more, so nothing enqueued meanwhile is left waiting (entries
    found there take the lease again). Every :data:`ADOPT_EVERY_MS` at most the drain reads the
    leases of the partitions it does not hold and takes one asked for at least
    :data:`app.storage.intake.ADOPT_AFTER_MS` ago whose drain has not started (its task waits
    behind busy processes; when it starts, it finds the lease held and returns). At the end of
    its budget, or once ``should_stop()`` (the process is shutting down), each partition still
    holding entries is handed back (asked for again) and returned in ``handed_back``: the
    caller sends a drain of each, so the broker spreads them over free processes (a short task
    lets a worker stop soon). After a small batch it waits ``linger_ms`` for more to gather: a
    batch costs a few round trips whatever its size, and this cut the worker's and Redis's time
    per entry by two thirds under load. At 25 ms rather than 10, a saturated 2-core machine
    (500-950 submissions a second) settles batches of 16-25 rather than 9-15, for 0.02-0.03 ms
    less worker CPU and 0.005-0.01 ms less Redis CPU an entry, and a verdict waits 17 ms on
    average rather than 8.

    A batch costs three round trips on a single Redis: its read, its apply scripts, and one
    pipeline of a transaction per partition that stores its verdicts and counts and takes its
    entries off the stream (refreshing the lease now and then). Since the verdicts and the
    acknowledgement go together, only an entry read before (by this consumer, or a dead one)
    or moved from another stream by ``migrate-storage`` may have a verdict already, and only
    batches with such entries have their records read first. ``per_partition_transactions``
    and ``per_partition_reads`` make each transaction and each read keep to one partition's
    slot (a Redis Cluster): a round trip per partition for the transactions, and polling every
    ``linger_ms`` rather than a blocking read.
    ``replication`` makes the apply wait, on each family master the batch wrote, for that many
    replicas to hold what it wrote (a WAIT in the same round trip, one master after the other)
    before the transactions acknowledge the entries.

    A batch that fails for a reason that passes with time (see :func:`is_transient`), or with
    one of ``out_of_time``, stays pending for the next drain; any other failure is tracked
    down to the entry that raises it, which is answered ``failed`` and kept in the dead letters.
    """
    mine: set[int] = set(held)  # the partitions whose leases it holds, as it goes
    ever = set(mine)  # and those it held at one time or another
    try:
        started = time.monotonic()
        settled = 0
        reader = _Reader(client, consumer, per_partition_reads)
        refreshed = dict.fromkeys(mine, started)  # when each lease was last refreshed
        seen = dict.fromkeys(mine, started)  # when each partition last had new entries
        looked = started  # when the leases of the others were last read, to adopt one
        # The reads create the consumer groups that are missing (NOGROUP), so a drain sends no
        # XGROUP CREATE of its own: one round trip less, and one command less that a full Redis
        # refuses before the batch is even read.
        batch = reader.started(mine)
        # Entries read before, by this consumer or a dead one, may have their verdicts stored (by
        # code that stored them apart from the acknowledgement); new ones cannot (see _record).
        delivered_before = True
        while True:
            if batch:
                # Entries of several partitions, applied in the order they came (as one stream's).
                batch.sort(key=intake.arrival)
                now = time.monotonic()
                due = {p for p in mine if (now - refreshed[p]) * 1000 >= FLAG_REFRESH_MS}
                in_batch = {entry.partition for entry in batch}
                _settle_entries(
                    client,
                    registry,
                    batch,
                    clock,
                    idempotency_s,
                    partitions,
                    tokens,
                    out_of_time,
                    consumer,
                    # A moved entry may be a copy of one settled already (a move cut short
                    # between its append and its delete), like one read before.
                    delivered_before=delivered_before or any(e.moved for e in batch),
                    refresh=due & in_batch,
                    per_partition_transactions=per_partition_transactions,
                    replication=replication,
                )
                for p in due:
                    refreshed[p] = now
                if due - in_batch:
                    # Held while others keep the drain busy: refreshed on their own (unless
                    # another drain has them by now: a lease that lapsed under a stalled one).
                    kept = intake.take(client, sorted(due - in_batch), consumer)
                    mine.difference_update(due - in_batch - set(kept))
                settled += len(batch)
                if (time.monotonic() - started) * 1000 >= budget_ms or should_stop():
                    back = intake.hand_back(client, sorted(mine), consumer)
                    return Drained(settled, tuple(back), tuple(sorted(ever)))
                if len(batch) < SMALL_BATCH:
                    # A batch costs a few round trips whatever its size: under a steady trickle,
                    # let entries gather a moment rather than settle them one or two at a time.
                    time.sleep(linger_ms / 1000)
            claimed: list[intake.Waiting] = []
            now = time.monotonic()
            if (now - looked) * 1000 >= ADOPT_EVERY_MS and len(mine) < partitions:
                looked = now
                adopted = _adopt(client, consumer, partitions, mine)
                if adopted is not None:
                    mine.add(adopted)
                    ever.add(adopted)
                    refreshed[adopted] = seen[adopted] = now
                    claimed = reader.started([adopted])
            fresh = reader.new(mine, 0 if claimed else wait_ms)
            batch = claimed + fresh
            delivered_before = bool(claimed)
            now = time.monotonic()
            busy = {entry.partition for entry in fresh}
            for p in busy:
                seen[p] = now
            idle = sorted(p for p in mine - busy if (now - seen[p]) * 1000 >= wait_ms)
            if idle:
                intake.release(client, idle, consumer)
                mine.difference_update(idle)
                last = reader.new(idle, 0)
                if last:
                    # Entries came as it let go: take the lease again (unless another drain has it
                    # by now; these entries are this consumer's to settle all the same).
                    for p in intake.take(client, sorted({e.partition for e in last}), consumer):
                        mine.add(p)
                        refreshed[p] = seen[p] = now
                    batch += last
            if not batch:
                if not mine:
                    return Drained(settled, drained=tuple(sorted(ever)))
                if per_partition_reads:
                    time.sleep(linger_ms / 1000)  # polled, since no read waits for entries
    except BaseException:
        # Out of time, or Redis failing: the leases are handed back (asked for again) rather
        # than left held for DRAIN_FLAG_MS, so that the task's retry or another drain adopting
        # them takes them at once (or the sweep, once they lapse).
        _hand_back_quietly(client, mine, consumer)
        raise


def _hand_back_quietly(client: DataClient, partitions: Collection[int], consumer: str) -> None:
    try:
        intake.hand_back(client, sorted(partitions), consumer)
    except redis.RedisError:
        pass  # the leases lapse on their own


def _adopt(client: DataClient, consumer: str, partitions: int, mine: Collection[int]) -> int | None:
    """A partition not in ``mine`` whose drain was asked for and has not started, taken for
    ``consumer`` (the one asked for longest ago); None if there is none."""
    others = [p for p in range(partitions) if p not in mine]
    leases = intake.leases(client, others)
    adoptable = sorted((lease.ttl_ms, p) for p, lease in leases.items() if lease.adoptable)
    for _, p in adoptable:
        if intake.adopt(client, p, consumer):
            return p
    return None
