"""The data client: one Redis, or a Redis Cluster, built in one place for every process.

``HISCORE_REDIS_CLUSTER=1`` makes :data:`REDIS_URL` name one node of a cluster, from which
redis-py's cluster client learns the others; every key of hiscore carries a hash tag (see
:mod:`app.storage.keys`) so that each script and transaction touches one slot. The web, the
worker, ``manage.py`` and the benchmarks all build their client with :func:`connect`.

Plain functions over redis-py; nothing here knows Flask or Celery.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeGuard

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException

#: A client of the data Redis: a single server (or a Sentinel's master) or a cluster.
DataClient: TypeAlias = redis.Redis | RedisCluster

#: A pipeline of a :data:`DataClient`.
DataPipeline: TypeAlias = redis.client.Pipeline | ClusterPipeline

#: How every process talks to the data Redis: a refused connection is known within 2 s, a
#: reply awaited at most 5 s (a script of the rebuild or of the compaction runs well within).
CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 30,
    "retry_on_timeout": True,
}


def connect(url: str, cluster: bool = False, **options: Any) -> DataClient:
    """The data client of ``url`` (with :data:`CLIENT_OPTIONS`, and ``options`` over them): a
    :class:`~app.storage.rate_limits.RidingRedis`, or with ``cluster`` a
    :class:`~app.storage.rate_limits.RidingRedisCluster` that ``url`` introduces to the
    cluster (it reads the cluster's slots from that node at once)."""
    from app.storage.rate_limits import RidingRedis, RidingRedisCluster

    settings = {**CLIENT_OPTIONS, **options}
    if cluster:
        return RidingRedisCluster.from_url(url, **settings)
    return RidingRedis.from_url(url, **settings)


def is_cluster(client: Any) -> TypeGuard[RedisCluster]:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def node_client(client: DataClient, key: str) -> redis.Redis:
    """A plain client of the server that holds ``key``, of its own (its response callbacks may
    be changed), sharing the connections of ``client``: ``client``'s one server, or the master
    of ``key``'s slot in a cluster (no redirection follows: a slot that moved answers MOVED).
    """
    if isinstance(client, RedisCluster):
        server: redis.Redis = client.get_node_from_key(key).redis_connection
    else:
        server = client
    return redis.Redis(connection_pool=server.connection_pool)


def refresh_slots(client: DataClient) -> None:
    """Read a cluster's slots again (after a fail-over, say), if ``client`` is a cluster's and a
    node answers; a single server's client has nothing to learn."""
    if isinstance(client, RedisCluster):
        try:
            client.nodes_manager.initialize()
        except (redis.RedisError, RedisClusterException, OSError):
            pass  # no node answers yet: the next error tries again
