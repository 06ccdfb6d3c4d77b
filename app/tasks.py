"""Celery tasks: thin, explicitly named wrappers around plain functions."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from flask import current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.clock import now_ms
from app.extensions import get_redis, get_registry
from app.ingest import ingest_submissions


@shared_task(
    name="hiscore.ingest",
    # Only an unreachable Redis is retried, and without limit: giving up would lose an
    # accepted entry. Everything a client sent is judged and settled, never retried.
    autoretry_for=(RedisConnectionError, RedisTimeoutError),
    max_retries=None,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
)
def ingest(submission: Any) -> None:
    """Validate one queued submission, apply it to its boards and record the verdict."""
    ingest_submissions(
        get_redis(),
        get_registry(),
        [submission],
        now_ms(),
        current_app.config["SUBMISSION_TTL_SECONDS"],
    )
