"""Brokers other than one plain Redis, as real processes on free loopback ports: a Redis
Sentinel set (a master, a replica and three sentinels, all from the project's own
``redis-server``) and a RabbitMQ node with a data directory of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import redis
from kombu import Connection

from app.storage.embedded_redis import free_port, redis_server_path
from tests.processes import Process, wait_for, without_tool

#: The Sentinel master set's name (``CELERY_BROKER_MASTER_NAME``).
MASTER_NAME = "hiscore-broker"

#: How long a sentinel waits for a silent master before it calls it down (ms). Short, so a
#: failover takes seconds; long enough that a busy two-core machine does not fake one.
DOWN_AFTER_MS = 1000


class SentinelSet:
    """A broker that fails over: a master, its replica and three sentinels watching them
    (quorum two), each a ``redis-server`` of its own on the loopback."""

    def __init__(self, root: Path, logs: Path, master_name: str = MASTER_NAME) -> None:
        self.root = root
        self.logs = logs
        self.master_name = master_name
        self.nodes: dict[int, Process] = {}  # by port: the master and the replica
        self.sentinels: dict[int, Process] = {}
        self._clients: dict[int, redis.Redis] = {}

    @property
    def url(self) -> str:
        """``CELERY_BROKER_URL``: every sentinel, kombu's way."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinels)

    def start(self, timeout: float = 30) -> SentinelSet:
        """Start the master, a replica in sync with it, and three sentinels that all see both
        and each other; return once they do."""
        master = free_port()
        self._node(master)
        replica = free_port()
        self._node(replica, "--replicaof", "127.0.0.1", str(master))
        wait_for(
            lambda: self.client(replica).info("replication")["master_link_status"] == "up",
            timeout,
            "the broker replica to sync",
        )
        for _ in range(3):
            self._sentinel(free_port(), master)

        def settled() -> bool:
            for port in self.sentinels:
                state = self._master_state(port)
                if int(state["num-slaves"]) != 1 or int(state["num-other-sentinels"]) != 2:
                    return False
            return True

        wait_for(settled, timeout, "three sentinels to see the master, its replica and each other")
        return self

    def client(self, port: int) -> redis.Redis:
        """A client of the node (or sentinel) on ``port``."""
        if port not in self._clients:
            self._clients[port] = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
        return self._clients[port]

    def master_port(self) -> int | None:
        """The master's port, as a majority of the sentinels name it (None while they differ
        or cannot say)."""
        named: dict[int, int] = {}
        for port in self.sentinels:
            try:
                address = self.client(port).sentinel_get_master_addr_by_name(self.master_name)
            except redis.RedisError:
                continue
            if address:
                named[int(address[1])] = named.get(int(address[1]), 0) + 1
        for port, votes in named.items():
            if votes >= 2:
                return port
        return None

    def kill_master(self) -> int:
        """``kill -9`` the current master, as a crash of its host would; return its port."""
        port = self.master_port()
        assert port is not None, "no master to kill"
        self.nodes[port].kill()
        return port

    def promoted(self, old: int) -> int | None:
        """The new master's port once the sentinels have promoted the replica of ``old`` and
        it takes writes; None before."""
        port = self.master_port()
        if port is None or port == old:
            return None
        try:
            role = self.client(port).info("replication")["role"]
        except redis.RedisError:
            return None
        return port if role == "master" else None

    def heal(self, timeout: float = 30) -> None:
        """Bring back every node that is down as a replica of the current master, as an
        operator would the lost host; return once every sentinel sees each replica healthy."""
        master = wait_for(self.master_port, timeout, "the sentinels to name a master")
        for port, node in list(self.nodes.items()):
            if not node.alive:
                self._node(port, "--replicaof", "127.0.0.1", str(master))

        def healthy() -> bool:
            for sentinel in self.sentinels:
                replicas = self._replicas(sentinel)
                if len(replicas) != len(self.nodes) - 1:
                    return False
                for replica in replicas:
                    flags = replica["flags"].split(",")
                    if "s_down" in flags or "disconnected" in flags:
                        return False
                    if replica.get("master-link-status") != "ok":
                        return False
            return True

        wait_for(healthy, timeout, "every sentinel to see a healthy replica", every=0.1)

    def stop(self) -> None:
        """Stop every sentinel and node."""
        for client in self._clients.values():
            client.close()
        for process in [*self.sentinels.values(), *self.nodes.values()]:
            process.stop()

    def _node(self, port: int, *args: str) -> Process:
        folder = self.root / f"node-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        process = Process(
            f"broker-{port}",
            [
                redis_server_path(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                # The broker's copy of a message is its replica, not a file.
                "--save",
                "",
                "--appendonly",
                "no",
                *args,
            ],
            dict(os.environ),
            self.logs,
        ).start()
        self.nodes[port] = process
        wait_for(lambda: self.client(port).ping(), 15, f"broker node {port}")
        return process

    def _sentinel(self, port: int, master: int) -> Process:
        folder = self.root / f"sentinel-{port}"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "sentinel.conf"  # a sentinel rewrites its file as it learns
        config.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {folder}",
                    f"sentinel monitor {self.master_name} 127.0.0.1 {master} 2",
                    f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {self.master_name} 5000",
                    f"sentinel parallel-syncs {self.master_name} 1",
                    "",
                ]
            )
        )
        process = Process(
            f"sentinel-{port}",
            [redis_server_path(), str(config), "--sentinel"],
            dict(os.environ),
            self.logs,
        ).start()
        self.sentinels[port] = process
        wait_for(lambda: self._master_state(port), 15, f"sentinel {port}")
        return process

    def _master_state(self, port: int) -> dict[str, str]:
        reply = self.client(port).execute_command("SENTINEL", "MASTER", self.master_name)
        return _pairs(reply)

    def _replicas(self, port: int) -> list[dict[str, str]]:
        reply = self.client(port).execute_command("SENTINEL", "REPLICAS", self.master_name)
        return [_pairs(replica) for replica in reply]


def _pairs(reply: Any) -> dict[str, str]:
    """A sentinel's flat ``[name, value, ...]`` reply as a dict (redis-py may parse it already)."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


#: Where Debian puts the server's own start script (``/usr/sbin/rabbitmq-server`` wraps it, to
#: run it as the ``rabbitmq`` user with Debian's directories).
DEBIAN_RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq_server_path() -> str | None:
    """The ``rabbitmq-server`` start script to run (``HISCORE_RABBITMQ_SERVER`` names another),
    or None if there is none."""
    explicit = os.environ.get("HISCORE_RABBITMQ_SERVER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access(DEBIAN_RABBITMQ_SERVER, os.X_OK):
        return DEBIAN_RABBITMQ_SERVER
    return shutil.which("rabbitmq-server")


class RabbitMQ:
    """One RabbitMQ node on the loopback with its own data and log directories, Erlang port
    mapper and distribution port, so that it neither meets nor disturbs another node on the
    machine (a system RabbitMQ, or a second test run)."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.logs = logs
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"hiscore-test-{self.port}@localhost"
        self.epmd: Process | None = None
        self.server: Process | None = None
        self.started_in_s: float | None = None

    @property
    def url(self) -> str:
        """``CELERY_BROKER_URL``: the default vhost as its default user (allowed on the
        loopback only)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 90) -> RabbitMQ:
        """Start the node and return once it takes an AMQP connection (a skip, or in CI a
        failure, where RabbitMQ is not installed)."""
        script = rabbitmq_server_path()
        epmd = shutil.which("epmd")
        if script is None or epmd is None:
            named = os.environ.get("HISCORE_RABBITMQ_SERVER")
            raise without_tool(
                f"RabbitMQ is not installed (HISCORE_RABBITMQ_SERVER={named} is no program)"
                if named
                else "RabbitMQ is not installed: apt-get install rabbitmq-server (./dev test "
                "does, as root), or set HISCORE_RABBITMQ_SERVER to its rabbitmq-server script"
            )
        began = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        # A port mapper of this node's own, in the foreground so that it is stopped with the
        # node: the one an Erlang node starts by itself outlives it, on the shared port 4369.
        self.epmd = Process(
            f"epmd-{self.epmd_port}",
            [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            dict(os.environ),
            self.logs,
        ).start()
        wait_for(lambda: self._listening(self.epmd_port), 15, "epmd")
        config = self.root / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        plugins = self.root / "enabled_plugins"
        plugins.write_text("[].\n")
        env_file = self.root / "rabbitmq-env.conf"  # instead of the system's
        env_file.write_text("")
        env = {
            **os.environ,
            # The Erlang cookie goes to $HOME: this node's own.
            "HOME": str(self.root),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            # The distribution listens on the loopback only, as the AMQP port does.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.server = Process(f"rabbitmq-{self.port}", [script], env, self.logs).start()

        def up() -> bool:
            assert self.server is not None
            if not self.server.alive:
                raise AssertionError(f"rabbitmq-server exited:\n{self.server.log()[-3000:]}")
            return self.answers()

        wait_for(up, timeout, f"RabbitMQ on port {self.port}", every=0.2)
        self.started_in_s = time.monotonic() - began
        return self

    def answers(self) -> bool:
        """Whether the node takes an AMQP connection."""
        try:
            with Connection(self.url, connect_timeout=1) as conn:
                conn.connect()
                return bool(conn.connected)
        except Exception:  # refused, reset, or the handshake of a node still booting
            return False

    def stop(self) -> None:
        """Stop the node (SIGTERM: Erlang stops it in order), then its port mapper."""
        if self.server is not None:
            self.server.stop(timeout=30)
        if self.epmd is not None:
            self.epmd.stop()

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True
