"""Real processes for the integration and browser tests: redis-server, Celery workers and
gunicorn on free loopback ports.

The data lives in database 1 and the broker in database 0 of one server, so a test can wipe the
boards without touching the queues the worker is bound to.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
from celery import Celery

from app.storage import keys
from app.storage.embedded_redis import EmbeddedRedis, free_port
from config import INGEST_QUEUE, MAINTENANCE_QUEUE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The games the tests add to the built-in ones (a claimed-score twin of the guessing game).
TEST_GAMES = ROOT / "tests" / "games.toml"


def process_env(server: EmbeddedRedis, **settings: str) -> dict[str, str]:
    """The environment of the processes under test: testing config, data in db 1 and the broker
    in db 0 of ``server``, this venv's commands first, rate limits off, then ``settings``."""
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "HISCORE_CONFIG": "testing",
        "REDIS_URL": server.url(1),
        "CELERY_BROKER_URL": server.url(0),
        "PYTHONUNBUFFERED": "1",
        # The tests send thousands of scores from one address; the limits are tested apart.
        "HISCORE_RATE_LIMITS_ENABLED": "0",
        "HISCORE_GAMES_FILE": str(TEST_GAMES),
        **settings,
    }


def in_ci() -> bool:
    """Whether this runs in CI (which sets ``CI``, to ``true`` for one)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def without_tool(reason: str) -> BaseException:
    """What to raise for a tool this machine lacks and cannot install: a skip that says why,
    or in CI, where a skip would pass for a check never made, a failure."""
    if in_ci():
        return pytest.fail.Exception(f"{reason} (CI must have it)", pytrace=False)
    return pytest.skip.Exception(reason)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (requests.RequestException, redis.ConnectionError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Process:
    """A child process with its output in a log file, stopped (or killed) at the end.

    The log file may hold the output of earlier processes of the same name, and of earlier
    tests: :meth:`log` reads from a mark, set when the process starts and again by
    :meth:`mark_log` (the fixtures mark every log when a test starts).
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.hostname: str | None = None  # a Celery worker's node name, once it answered
        self._log_mark = 0

    def start(self) -> Process:
        self.mark_log()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def mark_log(self) -> None:
        """Make :meth:`log` start from what the process writes next."""
        self._log_mark = self.log_path.stat().st_size if self.log_path.exists() else 0

    def log(self) -> str:
        """What the process wrote since the mark."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_mark)
            return log.read().decode(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group and wait; SIGKILL whatever of its tree is left."""
        if self.popen is None:
            return
        tree = self._tree()
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self._kill(tree)

    def kill(self) -> None:
        """``kill -9`` the process and everything it started, as a crash would."""
        if self.popen is not None:
            self._kill(self._tree())

    def pause(self) -> list[psutil.Process]:
        """SIGSTOP the process and everything it started; return once all of them are stopped.

        A stopped process runs no further instruction, so what it holds when this returns is
        what it holds when it is killed (:meth:`kill`) or let go on (:meth:`resume`).
        """
        tree = self._tree()
        for process in tree:
            try:
                process.suspend()
            except psutil.NoSuchProcess:
                pass

        def stopped() -> bool:
            for process in tree:
                try:
                    if process.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
                        return False
                except psutil.NoSuchProcess:
                    pass
            return True

        wait_for(stopped, 10, f"{self.name} to stop", every=0.001)
        return tree

    def resume(self, tree: list[psutil.Process]) -> None:
        """SIGCONT what :meth:`pause` stopped."""
        for process in tree:
            try:
                process.resume()
            except psutil.NoSuchProcess:
                pass

    def pids(self) -> set[int]:
        """The process and everything it started, by pid."""
        return {process.pid for process in self._tree()}

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _kill(self, tree: list[psutil.Process]) -> None:
        # Children may sit in process groups of their own (honcho does that), so each is named.
        for process in tree:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)
        self.popen.wait()


class Stack:
    """Handles on the running processes and their addresses."""

    def __init__(self, server: EmbeddedRedis, env: dict[str, str], logs: Path) -> None:
        self.server = server
        self.env = env
        self.logs = logs
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data = redis.Redis(port=server.port, db=1, decode_responses=True)
        self.broker = redis.Redis(port=server.port, db=0, decode_responses=True)
        self.celery = Celery(
            "tests",
            broker=env["CELERY_BROKER_URL"],
            config_source={
                "task_serializer": "json",
                "accept_content": ["json"],
                # Names the master set of a sentinel:// broker; other brokers ignore it.
                "broker_transport_options": {
                    "master_name": env.get("CELERY_BROKER_MASTER_NAME", "mymaster")
                },
            },
        )
        self.workers: dict[str, Process] = {}
        self._worker_settings: dict[str, tuple[str, int]] = {}
        self.web: Process | None = None
        self.beat: Process | None = None
        self.metrics_dir: Path | None = None

    def start_worker(
        self, name: str = "ingest", queues: str = "ingest", concurrency: int = 2
    ) -> Process:
        """A Celery worker as the Procfile runs it, answering pings before this returns."""
        worker = Process(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "celery_worker",
                "worker",
                "--loglevel=INFO",
                f"--queues={queues}",
                f"--concurrency={concurrency}",
                "--without-mingle",
                "--without-gossip",
                f"--hostname={name}@%h",
            ],
            self.env,
            self.logs,
        ).start()

        def answered() -> bool:
            for reply in self.celery.control.ping(timeout=0.5):
                for host in reply:
                    if host.startswith(f"{name}@"):
                        worker.hostname = host
            return worker.hostname is not None or not worker.alive

        wait_for(answered, 60, f"Celery {name} to answer a ping")
        assert worker.alive, worker.log()
        self.workers[name] = worker
        self._worker_settings[name] = (queues, concurrency)
        return worker

    @property
    def worker(self) -> Process:
        """The ingestion worker."""
        return self.workers["ingest"]

    def start_beat(self) -> Process:
        """Celery beat as the Procfile runs it, once it has sent its first task."""
        beat = Process(
            "beat",
            [str(BIN / "celery"), "-A", "celery_worker", "beat", "--loglevel=INFO"],
            self.env,
            self.logs,
        ).start()
        wait_for(
            lambda: "Sending due task" in beat.log() or not beat.alive, 60, "beat's first task"
        )
        assert beat.alive, beat.log()
        self.beat = beat
        return beat

    def start_web(self) -> Process:
        """The stack's gunicorn, on :attr:`port`."""
        # A folder of its own for the web's metric samples, one file per worker process, so
        # that a test can tell which worker served what.
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="web-metrics-", dir=self.logs))
        self.web = self.run_web("web", self.port, PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir))
        return self.web

    def run_web(self, name: str, port: int, **settings: str) -> Process:
        """A gunicorn (two gevent workers) on ``port``, with the stack's environment and
        ``settings``, answering /healthz before this returns."""
        web = Process(
            name,
            # The settings are the deployment's own, from gunicorn.conf.py.
            [str(BIN / "gunicorn"), "app:create_app()"],
            {
                **self.env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": "2",
                **settings,
            },
            self.logs,
        ).start()
        wait_for(
            lambda: not web.alive or requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok,
            60,
            f"gunicorn {name} to answer /healthz",
        )
        assert web.alive, web.log()
        return web

    def stop_redis(self) -> None:
        """Stop the stack's redis-server, as an outage (gracefully: its AOF keeps every write)."""
        self.server.stop()

    def start_redis(self) -> None:
        """Start the redis-server again, on its port and from its files; return once every
        worker answers again, starting those that exited meanwhile, as a supervisor would."""
        self.server.start()
        for name, worker in list(self.workers.items()):
            wait_for(
                lambda: not worker.alive or self._answers(worker),  # noqa: B023
                60,
                f"Celery {name} to reconnect",
                every=0.2,
            )
            if not worker.alive:
                self.start_worker(name, *self._worker_settings[name])

    def _answers(self, worker: Process) -> bool:
        replies = self.celery.control.ping(destination=[worker.hostname], timeout=1)
        return any(worker.hostname in reply for reply in replies)

    @property
    def processes(self) -> list[Process]:
        """Every process of the stack that was started."""
        return [p for p in (self.web, self.beat, *self.workers.values()) if p is not None]

    def mark_logs(self) -> None:
        """Start every process's :meth:`Process.log` from what it writes next."""
        for process in self.processes:
            process.mark_log()

    def busy_workers(self) -> dict[str, list[Any]]:
        """The tasks the live workers are running, have reserved or hold for later, by worker."""
        hosts = [p.hostname for p in self.workers.values() if p.alive and p.hostname]
        if not hosts:
            return {}
        inspect = self.celery.control.inspect(destination=hosts, timeout=2)
        busy: dict[str, list[Any]] = {}
        for held in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            for host in hosts:
                if held is None or host not in held:
                    busy.setdefault(host, []).append("no answer")
                else:
                    busy.setdefault(host, []).extend(held[host])
        return {host: tasks for host, tasks in busy.items() if tasks}

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until no live worker runs or holds a task (a drain holds stream entries only
        while its task runs), then empty the broker's queues, so that a test starts with
        nothing left of the one before."""
        for _ in range(10):
            wait_for(lambda: not self.busy_workers(), timeout, "idle workers", every=0.1)
            self.clear_broker()
            busy = self.busy_workers()
            if not busy:  # a message taken just before the queues were emptied shows here
                return
        raise AssertionError(f"the workers did not stay idle: {busy}")

    def clear_broker(self) -> None:
        """Drop every queued message, and those a dead worker took and never acknowledged."""
        with self.celery.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in (INGEST_QUEUE, MAINTENANCE_QUEUE):
                channel.queue_purge(queue)
            # Only workers that are gone hold messages when every live one is idle; kombu would
            # deliver them again once their visibility timeout passed, in the middle of a test.
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)

    def wipe_data(self) -> None:
        """Empty the data Redis but for the workers' heartbeats (the workers keep running)."""
        doomed = self.data_keys()
        for start in range(0, len(doomed), 1000):
            self.data.unlink(*doomed[start : start + 1000])

    def data_keys(self) -> list[str]:
        """The keys of the data Redis, the workers' heartbeats left out."""
        return [k for k in self.data.scan_iter(count=1000) if not k.startswith("hs:worker:")]

    def seed_log(self, game: str, variant: str, players: int, score_max: int) -> None:
        """Append one entry per player straight to a variant's log (a rebuild ranks them)."""
        log = keys.log_key(game, variant)
        at = int(time.time() * 1000) - 60_000
        pipe = self.data.pipeline(transaction=False)
        for i in range(players):
            pipe.xadd(
                log,
                {
                    "sid": f"seed-{i:08d}",
                    "pid": f"seeded-player-{i:08d}",
                    "name": f"P{i}",
                    "score": 1 + i % score_max,
                    "at": f"{at + i:013d}",
                },
            )
            if i % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()

    def url(self, path: str) -> str:
        return self.base_url + path

    def send(self, payload: Any) -> None:
        """Put an ingest message on the queue directly, as a (possibly hostile) producer."""
        self.celery.send_task("hiscore.ingest", args=[payload], queue="ingest")

    def status(self, submission_id: str, wait: float = 0) -> dict[str, Any] | None:
        """The submission's status (long-polled up to ``wait`` s), or None while unknown."""
        resp = requests.get(
            self.url(f"/api/v1/submissions/{submission_id}"),
            params={"wait": wait},
            timeout=wait + 10,
        )
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def verdict(self, submission_id: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the submission is accepted or rejected.

        Long-polls while the submission is known; a message sent straight to the broker is
        unknown to the web until its verdict exists, so that case is polled.
        """

        def final() -> dict[str, Any] | None:
            status = self.status(submission_id, wait=5)
            return status if status and status["status"] != "queued" else None

        return wait_for(final, timeout, f"a verdict for {submission_id}")
