"""Rate-limit counters: fixed windows counted in Redis, every limit of a request in one call.

A request is counted against all the limits that apply to it (the address's budget, the
endpoint's, the player's) in one script; a score's are counted inside the very script that
stores it (:mod:`app.storage.intake`), and a read's ride in the same pipeline as its first
command (:class:`RidingRedis`), so limits add no round trip to either. Cost: one counter key
per (client, limit) of 110 to 160 bytes (the key is most of it), living one window; an
``INCR`` and a ``PTTL`` per limit, inside the one call.

Plain functions over a redis client; nothing here knows Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from app.storage.connection import DataClient
from app.storage.scripts import script, sha

#: The Lua library every script that counts limits is prepended with.
LIBRARY = "rate_limit_lib"


@dataclass(frozen=True)
class Counter:
    """One limit as a request counts against it: its counter's key, allowance and window."""

    key: str
    amount: int
    window_ms: int
    description: str  # for people: "600 per 1 minute"


@dataclass(frozen=True)
class Count:
    """Where a counter stands after this request."""

    counter: Counter
    count: int
    ms_left: int  # until the window ends and the counter starts again

    @property
    def remaining(self) -> int:
        """Requests still allowed in this window."""
        return max(0, self.counter.amount - self.count)


@dataclass(frozen=True)
class Counted:
    """The outcome of counting a request: the limit it broke, if any, and every count made."""

    counts: tuple[Count, ...]
    breached: Count | None

    def tightest(self) -> Count | None:
        """The count to tell the client about: the broken limit, else the one nearest its end."""
        if self.breached is not None:
            return self.breached
        return min(self.counts, key=lambda c: (c.remaining, c.ms_left), default=None)


NOTHING_COUNTED = Counted(counts=(), breached=None)


def script_arguments(counters: Sequence[Counter]) -> tuple[list[str], list[int]]:
    """The keys and arguments that ``count_limits`` in rate_limit_lib.lua reads."""
    args: list[int] = []
    for counter in counters:
        args += [counter.amount, counter.window_ms]
    return [c.key for c in counters], args


def read_reply(counters: Sequence[Counter], reply: Sequence[Any]) -> Counted:
    """The :class:`Counted` of ``count_limits``'s reply."""
    breached_index = int(reply[0])
    counts = tuple(
        Count(counter, int(reply[1 + 2 * i]), int(reply[2 + 2 * i]))
        for i, counter in enumerate(counters[: (len(reply) - 1) // 2])
    )
    breached = counts[breached_index - 1] if breached_index else None
    return Counted(counts=counts, breached=breached)


def count(client: DataClient, counters: Sequence[Counter]) -> Counted:
    """Count one request against ``counters``, in order, stopping at the first it breaks."""
    if not counters:
        return NOTHING_COUNTED
    names, args = script_arguments(counters)
    reply = script(client, "count_limits", LIBRARY)(keys=names, args=args)
    return read_reply(counters, reply)


class RateLimitBreached(Exception):
    """The request broke a limit counted along with its first command; the command's reply
    is dropped."""

    def __init__(self, counted: Counted) -> None:
        super().__init__("rate limit breached")
        self.counted = counted


@dataclass
class Rider:
    """Counters waiting to be counted along with the next command a request sends."""

    counters: Sequence[Counter]
    counted: Counted | None = None  # once counted


#: The current request's :class:`Rider`, if its count is to ride along with its first command.
RIDER: ContextVar[Rider | None] = ContextVar("hiscore_rate_limit_rider", default=None)


def _ride(client: Any, send: Callable[..., Any], args: Sequence[Any], options: dict) -> Any:
    """Send one command through ``send`` (the client's own ``execute_command``), with the
    current request's rate-limit count in the same round trip if it is still to be counted."""
    rider = RIDER.get()
    # A command aimed at chosen nodes of a cluster (a PING of every node, say) goes alone: the
    # count waits for the request's next command, or its end.
    if rider is None or rider.counted is not None or "target_nodes" in options:
        return send(*args, **options)
    RIDER.set(None)
    names, limit_args = script_arguments(rider.counters)
    pipe = client.pipeline(transaction=False)
    # EVALSHA as a plain command: a cluster pipeline refuses its evalsha() method, not the
    # command, which it sends to the node of the counters' slot.
    pipe.execute_command("EVALSHA", sha("count_limits", LIBRARY), len(names), *names, *limit_args)
    pipe.execute_command(*args, **options)
    count_reply, reply = pipe.execute(raise_on_error=False)
    if isinstance(count_reply, redis.exceptions.NoScriptError):  # Redis restarted, say
        rider.counted = count(client, rider.counters)
    elif isinstance(count_reply, Exception):
        raise count_reply
    else:
        rider.counted = read_reply(rider.counters, count_reply)
    if rider.counted.breached is not None:
        raise RateLimitBreached(rider.counted)
    if isinstance(reply, Exception):
        raise reply
    return reply


class RidingRedis(redis.Redis):
    """A client whose next command after :data:`RIDER` is set carries the request's rate-limit
    count in the same round trip (a pipeline of the two), so that a read costs one trip.

    Only for commands that change nothing: the command runs whether or not the count breaks a
    limit (the reply is then dropped and :class:`RateLimitBreached` raised), so a request that
    writes counts first, or inside its own script, never this way.
    """

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return _ride(self, super().execute_command, args, options)


class RidingRedisCluster(RedisCluster):
    """:class:`RidingRedis` for a Redis Cluster: the count goes to the node of the counters'
    slot and the command to its own, both written before either reply is read."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return _ride(self, super().execute_command, args, options)
