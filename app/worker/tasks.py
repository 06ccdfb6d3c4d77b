"""Celery tasks: thin, explicitly named wrappers around plain functions."""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.extensions import (
    get_clock,
    get_compaction,
    get_redis,
    get_registry,
    get_token_policy,
    read_clock,
)
from app.leaderboard import ingest as ingestion
from app.leaderboard.maintenance import families_of, record_beat_run, run_operation
from app.storage import intake
from app.worker import graceful

log = logging.getLogger(__name__)

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

# A task past its soft time limit stops where it is: its entries are not at fault.
_OUT_OF_TIME = (SoftTimeLimitExceeded,)

# Only an unreachable Redis is retried, and without limit: giving up would lose an accepted
# entry. Everything a client sent is judged and settled, never retried.
_RETRY_WHILE_REDIS_IS_DOWN: dict[str, Any] = {
    "autoretry_for": _REDIS_DOWN,
    "max_retries": None,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
}


@shared_task(name="hiscore.ingest", **_RETRY_WHILE_REDIS_IS_DOWN)
def ingest(submission: Any) -> None:
    """Validate one submission sent as a message of its own (by a producer other than the web),
    apply it to its boards and record the verdict."""
    ingestion.ingest_submissions(
        get_redis(),
        get_registry(),
        [submission],
        read_clock(),
        current_app.config["IDEMPOTENCY_WINDOW_SECONDS"],
        current_app.config["INGEST_PARTITIONS"],
        get_token_policy(),
        out_of_time=_OUT_OF_TIME,
    )


def request_drain(partition: int) -> None:
    """Send a drain task of a partition on behalf of a caller that asked for its lease; drop
    the lease asked for if the broker cannot take the task, so that the next submission (or
    the sweep) tries again."""
    try:
        drain.apply_async(
            kwargs={"partition": partition},
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )
    except Exception as exc:  # the submission is stored: whatever the broker says, 202 stands
        log.warning("could not schedule a drain of ingest partition %s: %s", partition, exc)
        try:
            intake.withdraw(get_redis(), partition)
        except redis.RedisError:
            pass  # the lease expires on its own


def _consumer(hostname: str | None) -> str:
    # One consumer per worker process: a retried drain finds what it read before.
    return f"{hostname or 'worker'}:{os.getpid()}"


def _drain(consumer: str, held: list[int]) -> int:
    if not held:
        return 0  # another drain holds it: nothing to do here
    with graceful.draining():
        outcome = ingestion.drain(
            get_redis(),
            get_registry(),
            consumer,
            get_clock(),
            current_app.config["IDEMPOTENCY_WINDOW_SECONDS"],
            current_app.config["INGEST_PARTITIONS"],
            held,
            should_stop=graceful.stop_requested,
            tokens=get_token_policy(),
            out_of_time=_OUT_OF_TIME,
        )
    if outcome.settled:
        log.info(
            "%s settled %s entries of ingest partitions %s",
            consumer,
            outcome.settled,
            ",".join(map(str, outcome.drained)),
        )
    for partition in outcome.handed_back:
        request_drain(partition)
    return outcome.settled


def _retry_if_passing(task: Any, exc: redis.RedisError) -> None:
    """Retry ``task`` after a Redis error that passes: out of memory, read-only, loading,
    failing over. An unreachable Redis is retried by ``autoretry_for``."""
    if isinstance(exc, _REDIS_DOWN) or not ingestion.is_transient(exc):
        return
    backoff = min(30, 2 ** min(task.request.retries, 5))
    raise task.retry(exc=exc, countdown=backoff, max_retries=None)


@shared_task(name="hiscore.drain", bind=True, **_RETRY_WHILE_REDIS_IS_DOWN)
def drain(self, partition: int | None = None) -> int:
    """Settle the submissions waiting on an ingest partition's stream, unless another drain
    holds it (and those of others it adopts on the way). None, as a task of the previous
    version sends it: every partition where entries wait and no drain runs."""
    try:
        consumer = _consumer(self.request.hostname)
        partitions = current_app.config["INGEST_PARTITIONS"]
        held = ingestion.take_partitions(get_redis(), consumer, partitions, partition)
        return _drain(consumer, held)
    except redis.RedisError as exc:
        _retry_if_passing(self, exc)
        raise


@shared_task(name="hiscore.sweep", bind=True, **_RETRY_WHILE_REDIS_IS_DOWN)
def sweep(self) -> int:
    """Beat's safety net: drain every ingest partition where entries wait with no drain asked
    for or running, in this process, as one drain."""
    consumer = _consumer(self.request.hostname)
    partitions = current_app.config["INGEST_PARTITIONS"]
    return _drain(consumer, ingestion.sweep_partitions(get_redis(), consumer, partitions))


def _operate(kind: str, families: list[list[str]], owner: str, record: bool) -> dict[str, Any]:
    return run_operation(
        get_redis(),
        get_registry(),
        kind,
        [(game, variant) for game, variant in families],
        owner,
        get_clock(),
        record,
        compaction=get_compaction(),
    )


def _beat_job(kind: str, task_id: str) -> dict[str, Any] | None:
    client = get_redis()
    started = read_clock()
    try:
        outcome = _operate(
            kind, [list(f) for f in families_of(get_registry())], task_id, record=False
        )
    except SoftTimeLimitExceeded:
        record_beat_run(client, kind, started, read_clock(), None, "hit its time limit")
        raise
    except Exception as exc:
        record_beat_run(client, kind, started, read_clock(), None, repr(exc))
        raise
    record_beat_run(client, kind, started, read_clock(), outcome)
    return outcome


@shared_task(
    name="hiscore.maintenance.rebuild",
    bind=True,
    autoretry_for=_REDIS_DOWN,
    retry_backoff=2,
    max_retries=10,
)
def rebuild(self, families: list[list[str]]) -> dict[str, Any]:
    """Rebuild the boards of ``families`` from their logs (operator task; locks taken)."""
    return _operate("rebuild", families, self.request.id, record=True)


@shared_task(name="hiscore.maintenance.prune", bind=True)
def prune(self, families: list[list[str]] | None = None) -> dict[str, Any] | None:
    """Prune logs past retention and compact them: every family from beat, or ``families``
    for an operator."""
    if families is None:
        return _beat_job("prune", self.request.id)
    return _operate("prune", families, self.request.id, record=True)


@shared_task(name="hiscore.maintenance.stats", bind=True)
def stats(self) -> dict[str, Any] | None:
    """Recompute and store the stats of every readable board."""
    return _beat_job("stats", self.request.id)


@shared_task(name="hiscore.maintenance.reconcile", bind=True)
def reconcile(self) -> dict[str, Any] | None:
    """Compare every board with its log and rebuild those that drifted."""
    return _beat_job("reconcile", self.request.id)
