"""What an operator (and a readiness probe) needs to know about the running system."""

from __future__ import annotations

import json
from typing import Any, cast

import redis
from celery import Celery
from kombu.exceptions import ChannelError

from app.storage import keys
from app.storage.submissions import read_verdict_counts
from config import INGEST_QUEUE, MAINTENANCE_QUEUE

#: Seconds between worker heartbeats, and how long one counts as alive.
HEARTBEAT_EVERY = 10
HEARTBEAT_TTL = 30


def queue_depths(celery_app: Celery) -> dict[str, int]:
    """Messages waiting in each queue of the broker."""
    depths = {}
    with celery_app.connection_for_read() as conn:
        # kombu's typed channel lacks queue_declare, which every transport's channel has.
        channel: Any = conn.default_channel
        for queue in (INGEST_QUEUE, MAINTENANCE_QUEUE):
            try:
                depths[queue] = channel.queue_declare(queue, passive=True).message_count
            except ChannelError:  # the broker drops an empty queue's list
                depths[queue] = 0
    return depths


def record_heartbeat(client: redis.Redis, hostname: str, info: dict[str, Any]) -> None:
    """Say that worker ``hostname`` is alive (for :data:`HEARTBEAT_TTL` seconds)."""
    client.set(keys.worker_key(hostname), json.dumps(info), ex=HEARTBEAT_TTL)


def forget_heartbeat(client: redis.Redis, hostname: str) -> None:
    """A worker that stops cleanly says so at once."""
    client.delete(keys.worker_key(hostname))


def live_workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The workers whose heartbeat has not expired."""
    found = list(client.scan_iter(match=keys.WORKER_PATTERN, count=100))
    values = cast(list[str | None], client.mget(found)) if found else []
    return sorted((json.loads(v) for v in values if v), key=lambda w: w["hostname"])


def verdict_counts(client: redis.Redis, partitions: int) -> dict[str, Any]:
    """Accepted submissions, and rejected ones by reason code, over every ingest partition."""
    counts = read_verdict_counts(client, partitions)
    rejected = {
        name.split(":", 1)[1]: n for name, n in counts.items() if name.startswith("rejected:")
    }
    return {"accepted": counts.get("accepted", 0), "rejected": rejected}
