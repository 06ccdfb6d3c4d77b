"""Long-polling for verdicts without a Redis connection per waiting client.

One listener per web process subscribes to :data:`app.storage.keys.VERDICT_CHANNEL` and wakes the
requests waiting for the ids it hears (on a Redis Cluster, on one node, the master of the
channel's slot: a message published on any node reaches every node). The wake-up is only an
accelerator: a waiter re-reads the record at least every ``recheck`` seconds, so a message lost
while the listener reconnects delays an answer by at most that long and never loses it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.exceptions import RedisClusterException

from app.storage import keys
from app.storage.connection import DataClient, refresh_slots

log = logging.getLogger(__name__)

Read = TypeVar("Read")


class VerdictWaiter:
    """Lets request handlers wait for a submission's verdict."""

    def __init__(self, client: DataClient, recheck: float = 1.0) -> None:
        self._client = client
        self._recheck = recheck
        self._lock = threading.Lock()
        self._waiting: dict[str, list[threading.Event]] = {}
        self._listener_pid: int | None = None
        self._subscribed = threading.Event()

    def wait(
        self,
        submission_id: str,
        timeout: float,
        read: Callable[[], Read],
        is_final: Callable[[Read], bool],
    ) -> Read:
        """Return ``read()`` as soon as it is final, or when ``timeout`` seconds have passed."""
        self._ensure_listener()
        event = threading.Event()
        with self._lock:
            self._waiting.setdefault(submission_id, []).append(event)
        try:
            deadline = time.monotonic() + timeout
            while True:
                # Read after registering, so a verdict published in between still wakes us.
                record = read()
                remaining = deadline - time.monotonic()
                if is_final(record) or remaining <= 0:
                    return record
                event.wait(min(remaining, self._recheck))
                event.clear()
        finally:
            with self._lock:
                events = self._waiting.get(submission_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiting.pop(submission_id, None)

    def _wake(self, ids: str) -> None:
        with self._lock:
            for submission_id in ids.split():
                for event in self._waiting.get(submission_id, ()):
                    event.set()

    def _ensure_listener(self) -> None:
        # One listener per process; a forked web worker starts its own.
        pid = os.getpid()
        if self._listener_pid == pid:
            return
        with self._lock:
            if self._listener_pid == pid:
                return
            self._listener_pid = pid
            self._subscribed.clear()
            thread = threading.Thread(target=self._listen, name="verdict-listener", daemon=True)
            thread.start()
        # Waiting briefly here makes a prompt wake-up likely from the first request on.
        self._subscribed.wait(timeout=self._recheck)

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(keys.VERDICT_CHANNEL)
                self._subscribed.set()
                backoff = 0.1
                while True:
                    message = pubsub.get_message(timeout=self._recheck)
                    if message and message["type"] == "message":
                        self._wake(message["data"])
            except (redis.RedisError, RedisClusterException) as exc:
                log.warning("verdict listener lost Redis (%s); retrying", exc)
                self._subscribed.clear()
                refresh_slots(self._client)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()
