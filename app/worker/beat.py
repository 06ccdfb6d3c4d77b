"""The beat scheduler: celery-redbeat's, made to ride out a Redis restart.

redbeat keeps the schedule and the one-beat lock in Redis, and lets a connection error escape
its tick, which stops beat: after a Redis restart or failover nothing would schedule the
sweep, prune or stats until someone restarted beat. This one logs the error and tries again a
second later. The lock has a TTL in Redis itself, so a beat that was cut off for longer than
``redbeat_lock_timeout`` finds it gone (or taken by a standby): it then sends nothing and tries
each second to take the lock again, as a standby does.
"""

from __future__ import annotations

import logging

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import LockError

log = logging.getLogger(__name__)

#: Seconds between tries while Redis cannot be reached.
RETRY_EVERY = 1.0


class ResilientRedBeatScheduler(RedBeatScheduler):
    """RedBeatScheduler that waits for Redis to come back instead of exiting."""

    standby = False

    def tick(self, *args, **kwargs) -> float:
        """Send what is due; on a connection error, say so and try again shortly."""
        try:
            if self.standby:
                if self.lock is None or not self.lock.acquire(blocking=False):
                    return RETRY_EVERY
                self.standby = False
                log.info("beat holds the lock again")
            return super().tick(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat cannot reach Redis (%s); trying again in %ss", exc, RETRY_EVERY)
            return RETRY_EVERY
        except LockError:
            # Redis was away longer than the lock's timeout: another beat may be ticking now.
            log.warning("beat lost its lock; it waits to take it again")
            self.standby = True
            return RETRY_EVERY

    def close(self) -> None:
        """Release the lock if Redis can be reached; its TTL frees it otherwise."""
        try:
            super().close()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat stopped without releasing its lock (%s)", exc)
