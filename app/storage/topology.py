"""What an acknowledgement promises: writes held by replicas before they are acknowledged.

Redis replicates asynchronously, so a master that dies may take with it a write it had already
answered. ``WAIT n timeout`` sent after the writes, on the connection that made them, returns
once ``n`` replicas hold everything that connection wrote (or the timeout passed, with how many
did). :func:`run_each` runs a script's calls on the masters of their keys and waits so: the web
before a 202, a worker before it acknowledges the entries of a batch it applied.

- A master that has no replica connected (after a fail-over, until the old master returns as a
  replica) cannot be waited for: its writes go unwaited, logged as a warning once a minute, and
  its replicas are looked for again (ROLE, in the same round trip as the writes) every
  :data:`RECHECK_S`.
- Fewer acknowledgements than asked while replicas are connected (a replica that lags, or a
  partition) raise :class:`ReplicationShortfall`, which a caller treats as a passing error: the
  web answers 503 (the retry finds the record), a drain leaves its batch pending (applied again,
  idempotently).
- On a cluster each call goes to the master of its first key's slot, through that node's own
  client, which follows no redirection: a MOVED or ASK (the slot moved) or a lost connection
  reads the slot map again and is returned as the call's error, a passing one.

Plain functions over redis-py; nothing here knows Flask or Celery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError

from app.storage import scripts
from app.storage.connection import DataClient, refresh_slots

log = logging.getLogger(__name__)

#: Seconds between looks (ROLE) for the replicas of a master found with none connected.
RECHECK_S = 5.0

#: Seconds between two warnings about the same master's writes going unwaited.
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class Replication:
    """How many replicas must hold a write before it is acknowledged, and how long to wait."""

    replicas: int = 0
    timeout_ms: int = 500

    @property
    def waits(self) -> bool:
        """Whether any replica is waited for."""
        return self.replicas > 0


#: No replica waited for: a write is acknowledged once its master holds it.
NO_WAIT = Replication(0)


class ReplicationShortfall(redis.exceptions.ResponseError):
    """Fewer replicas than asked acknowledged a write within the timeout, though its master
    has replicas connected. Its text starts with Redis's own code for the like (NOREPLICAS), by
    which callers know a passing error."""

    def __init__(
        self, node: str, acknowledged: int, wanted: int, timeout_ms: int, reply: Any = None
    ) -> None:
        super().__init__(
            f"NOREPLICAS {acknowledged} of {wanted} replica(s) of {node} acknowledged a write"
            f" within {timeout_ms} ms"
        )
        self.node, self.acknowledged, self.wanted = node, acknowledged, wanted
        self.timeout_ms = timeout_ms
        #: What the call whose writes fell short answered (it ran, on the master).
        self.reply = reply

    def of(self, reply: Any) -> ReplicationShortfall:
        """The same shortfall, in place of the call that answered ``reply``."""
        return ReplicationShortfall(
            self.node, self.acknowledged, self.wanted, self.timeout_ms, reply
        )


class _Masters:
    """What this process knows of the masters it writes to: those found with no replica, until
    when their writes go unwaited, and when each was last warned about."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alone_until: dict[str, float] = {}
        self._warned_at: dict[str, float] = {}

    def alone(self, node: str) -> bool:
        """Whether ``node`` was last found with no replica connected."""
        with self._lock:
            return node in self._alone_until

    def to_look(self, node: str) -> bool:
        """Whether ``node``, found alone, is due for another look for its replicas."""
        with self._lock:
            return self._alone_until.get(node, 0.0) <= time.monotonic()

    def found_alone(self, node: str, wanted: int) -> None:
        """``node`` has no replica connected: wait for none there until the next look."""
        with self._lock:
            self._alone_until[node] = time.monotonic() + RECHECK_S
        self.warn(
            node,
            "master %s has no replica connected: its writes are acknowledged without waiting"
            " for the %d replica(s) asked for",
            node,
            wanted,
        )

    def found_replicas(self, node: str) -> None:
        """``node`` has replicas again: its writes are waited for."""
        with self._lock:
            self._alone_until.pop(node, None)

    def warn(self, node: str, message: str, *args: object) -> None:
        """Log ``message`` unless one was logged about ``node`` within :data:`WARN_EVERY_S`."""
        now = time.monotonic()
        with self._lock:
            if self._warned_at.get(node, -WARN_EVERY_S) > now - WARN_EVERY_S:
                return
            self._warned_at[node] = now
        log.warning(message, *args)


MASTERS = _Masters()


def connected_replicas(role: Sequence[Any]) -> int:
    """Replicas in sync with a master, from its ROLE reply (0 if it is no master)."""
    if not role or role[0] != "master":
        return 0
    return len(role[2])


@dataclass
class _Group:
    """The calls bound for one master, by their places in the caller's list."""

    name: str  # host:port
    server: redis.Redis
    places: list[int]


def _groups(client: DataClient, calls: Sequence[scripts.Call]) -> list[_Group]:
    if not isinstance(client, RedisCluster):
        name = _address(client)
        return [_Group(name, client, list(range(len(calls))))]
    groups: dict[str, _Group] = {}
    for place, (keys, _) in enumerate(calls):
        node = client.get_node_from_key(keys[0])
        group = groups.get(node.name)
        if group is None:
            group = groups[node.name] = _Group(node.name, node.redis_connection, [])
        group.places.append(place)
    return list(groups.values())


def _address(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def run_each(
    client: DataClient,
    name: str,
    calls: Sequence[scripts.Call],
    library: scripts.Library = None,
    replication: Replication = NO_WAIT,
) -> list[Any]:
    """As :func:`app.storage.scripts.run_each`, each call on the master of its first key (one
    pipeline a master, one master after the other), followed on the same connection by a WAIT
    for ``replication``'s replicas: the reply of each call, or the error in its place (a
    :class:`ReplicationShortfall` for every call of a master whose replicas fell short)."""
    if not calls:
        return []
    if not replication.waits:  # one pipeline (a cluster's sends to every node at once)
        return scripts.run_each(client, name, calls, library)
    replies: list[Any] = [None] * len(calls)
    for group in _groups(client, calls):
        for place, reply in zip(
            group.places,
            _run_on(client, group, name, [calls[i] for i in group.places], library, replication),
            strict=True,
        ):
            replies[place] = reply
    return replies


def call(
    client: DataClient,
    name: str,
    keys: Sequence[str],
    args: Sequence[Any],
    library: scripts.Library = None,
    replication: Replication = NO_WAIT,
) -> Any:
    """One call of a script on the master of ``keys``, then the WAIT of :func:`run_each`, in
    one round trip; its reply, or its error raised."""
    if not replication.waits:  # the script alone (on a cluster, redirected if it must be)
        return scripts.script(client, name, library)(keys, args)
    (reply,) = run_each(client, name, [(keys, args)], library, replication)
    if isinstance(reply, Exception):
        raise reply
    return reply


def _run_on(
    client: DataClient,
    group: _Group,
    name: str,
    calls: Sequence[scripts.Call],
    library: scripts.Library,
    replication: Replication,
) -> list[Any]:
    digest = scripts.sha(name, library)
    try:
        replies, acknowledged = _send(group, digest, calls, replication)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # a restarted or promoted master: load the script there and send again
            group.server.script_load(scripts.source(name, library))
            again, second = _send(group, digest, [calls[i] for i in missing], replication)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
            # The second WAIT may have gone on another connection than the first calls' writes:
            # the weaker of the two, if the first calls wrote anything.
            everything_again = len(missing) == len(calls)
            acknowledged = second if everything_again else _weaker(acknowledged, second)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        refresh_slots(client)  # a master that died: its replica may serve the slot by now
        return [exc] * len(calls)
    if any(isinstance(reply, MovedError | AskError) for reply in replies):
        refresh_slots(client)
    if acknowledged is None:
        return replies
    if isinstance(acknowledged, Exception):
        return [acknowledged if _wrote(reply) else reply for reply in replies]
    shortfall = _shortfall(group, acknowledged, replication)
    if shortfall is None:
        return replies
    if not isinstance(shortfall, ReplicationShortfall):
        return [shortfall if _wrote(reply) else reply for reply in replies]
    return [shortfall.of(reply) if _wrote(reply) else reply for reply in replies]


def _weaker(first: int | Exception | None, second: int | Exception | None) -> Any:
    """Of two WAITs' outcomes (an error, None for no wait, or replicas), the one that promises
    less."""
    if isinstance(first, Exception) or second is None:
        return first
    if isinstance(second, Exception) or first is None:
        return second
    return min(first, second)


def _wrote(reply: Any) -> bool:
    """Whether a call may have written something (it did not fail before it ran)."""
    return not isinstance(reply, NoScriptError | MovedError | AskError | redis.ConnectionError)


def _send(
    group: _Group, digest: str, calls: Sequence[scripts.Call], replication: Replication
) -> tuple[list[Any], int | Exception | None]:
    """The calls and then WAIT (or, on a master found alone, none; but ROLE every
    :data:`RECHECK_S`), pipelined; the replies of the calls and the replicas that acknowledged
    them (None if none was waited for)."""
    pipe = group.server.pipeline(transaction=False)
    for keys, args in calls:
        pipe.execute_command("EVALSHA", digest, len(keys), *keys, *args)
    alone = replication.waits and MASTERS.alone(group.name)
    looking = alone and MASTERS.to_look(group.name)
    waiting = replication.waits and not alone
    if waiting:
        pipe.execute_command("WAIT", replication.replicas, replication.timeout_ms)
    elif looking:
        pipe.execute_command("ROLE")
    replies = pipe.execute(raise_on_error=False)
    if not (waiting or looking):
        return replies, None
    last = replies.pop()
    if waiting:
        return replies, last if isinstance(last, Exception) else int(last)
    if not isinstance(last, Exception) and connected_replicas(last) > 0:
        MASTERS.found_replicas(group.name)  # the next writes are waited for again
    else:
        MASTERS.found_alone(group.name, replication.replicas)
    return replies, None


def _shortfall(group: _Group, acknowledged: int, replication: Replication) -> Exception | None:
    """None if ``acknowledged`` replicas are enough: all those asked for, or all the master
    has (none: its writes then go unwaited a while); the error to answer otherwise."""
    if acknowledged >= replication.replicas:
        return None
    try:
        connected = connected_replicas(cast(list[Any], group.server.role()))
    except redis.RedisError as exc:
        return exc
    if connected == 0:
        MASTERS.found_alone(group.name, replication.replicas)
        return None
    if acknowledged >= connected:
        # Every replica the master has holds the writes: as much as it can give.
        MASTERS.warn(
            group.name,
            "master %s has %d replica(s) connected, fewer than the %d asked for",
            group.name,
            connected,
            replication.replicas,
        )
        return None
    return ReplicationShortfall(
        group.name, acknowledged, replication.replicas, replication.timeout_ms
    )
