"""The real processes a benchmark drives, on loopback ports: the project's redis-server (AOF on,
as in production), hiscore's gunicorn and Celery ingest worker as the Procfile runs them, and
the baseline app under the same gunicorn settings.

Each child runs in a session of its own and is stopped by signalling its whole process group
(gunicorn's and Celery's workers included), so nothing outlives the run.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.storage.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def http_get(url: str, timeout: float = 5) -> tuple[int, Any]:
    """GET ``url``; return the status and the decoded JSON body (None if not JSON)."""
    status, _, body = _http(urllib.request.Request(url), timeout)
    return status, body


def http_get_headers(url: str, timeout: float = 5) -> tuple[int, dict[str, str], Any]:
    """GET ``url``; return the status, the headers and the decoded JSON body."""
    return _http(urllib.request.Request(url), timeout)


def http_post_json(url: str, body: Any, timeout: float = 5) -> tuple[int, dict[str, str], Any]:
    """POST ``body`` as JSON; return the status, the headers and the decoded JSON answer."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    return _http(request, timeout)


def _http(request: urllib.request.Request, timeout: float) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, None
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, None


def _stat_fields(entry: os.DirEntry[str]) -> list[str] | None:
    try:
        stat = Path(entry.path, "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, lowest pid first (Linux)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(entry)) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the processes of a process group (Linux)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (fields := _stat_fields(entry)) is None:
            continue
        if int(fields[2]) == pgid:
            # utime, stime, and those of its children that ended (an AOF rewrite, say)
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy since boot, all cores together (Linux)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


class Service:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        """Start the process (cwd: the repository, so gunicorn reads ``gunicorn.conf.py``)."""
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self) -> None:
        """SIGTERM the process group."""
        if self.popen is not None:
            _signal_group(self.popen.pid, signal.SIGTERM)  # the session leader's pid: the group's

    def wait_stopped(self, timeout: float = 15) -> None:
        """Wait for the process to end, then SIGKILL whatever of its group is left."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever of the group is left."""
        self.terminate()
        self.wait_stopped(timeout)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Stack:
    """Redis, hiscore (web + ingest worker) and the baseline web, for one benchmark run."""

    def __init__(self, run_dir: Path, env: dict[str, str], worker_concurrency: int) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.base_env = env
        self.worker_concurrency = worker_concurrency
        self.redis = EmbeddedRedis(run_dir / "redis")
        self.web_port = free_port()
        self.baseline_port = free_port()
        self.services: list[Service] = []
        #: CPU seconds of the services stopped during the run, as they last read.
        self._retired_cpu: dict[str, float] = {}

    @property
    def redis_url(self) -> str:
        """Data and broker: one URL, the production default."""
        return self.redis.url(0)

    @property
    def web_url(self) -> str:
        """hiscore's base URL."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def baseline_url(self) -> str:
        """The baseline app's base URL."""
        return f"http://127.0.0.1:{self.baseline_port}"

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **self.base_env,
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
            "HISCORE_INSTANCE_PATH": str(self.run_dir / "instance"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def _gunicorn(self, name: str, app: str, port: int, **extra: str) -> Service:
        metrics = self.run_dir / f"metrics-{name}"
        metrics.mkdir(exist_ok=True)
        env = self._env(
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
            **extra,
        )
        # The deployment's own settings: gevent workers, as gunicorn.conf.py says.
        args = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app]
        return Service(name, args, env, self.logs)

    def start(self) -> Stack:
        """Start everything; return once hiscore is ready (a worker reported in)."""
        self.redis.start()
        worker = Service(
            "worker",
            # As the Procfile's `worker` line.
            [
                str(BIN / "celery"),
                "-A",
                "celery_worker",
                "worker",
                "--loglevel=INFO",
                "--queues=ingest",
                f"--concurrency={self.worker_concurrency}",
                "--hostname=ingest@%h",
            ],
            self._env(),
            self.logs,
        )
        web = self._gunicorn("web", "app:create_app()", self.web_port)
        baseline = self._gunicorn("baseline", "bench.baseline_app:create_app()", self.baseline_port)
        for service in (worker, web, baseline):
            self.services.append(service.start())
        self._wait_ready(web, f"{self.web_url}/readyz", "hiscore to be ready (/readyz)")
        self._wait_ready(baseline, f"{self.baseline_url}/healthz", "the baseline app")
        if not worker.alive:
            raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
        return self

    def start_web(self, name: str, **env: str) -> str:
        """Start another hiscore web beside the first, on the same Redis with the same settings
        but ``env``; return its base URL once it is ready. :meth:`stop_service` stops it."""
        port = free_port()
        web = self._gunicorn(name, "app:create_app()", port, **env)
        self.services.append(web.start())
        url = f"http://127.0.0.1:{port}"
        self._wait_ready(web, f"{url}/readyz", f"{name} to be ready (/readyz)")
        return url

    def stop_service(self, name: str) -> None:
        """Stop one service before the end of the run; its CPU time stays counted."""
        service = self.service(name)
        if service.popen is not None:
            self._retired_cpu[name] = group_cpu_seconds(service.popen.pid)
        service.stop()
        self.services.remove(service)

    def _wait_ready(self, service: Service, url: str, what: str) -> None:
        def ready() -> bool:
            if not service.alive:
                raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
            return http_get(url, timeout=2)[0] == 200

        wait_until(ready, 90, what, every=0.2)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each service, Redis, and the load generators (this process
        and the children it has waited for, such as wrk)."""
        used = dict(self._retired_cpu)
        used.update({s.name: group_cpu_seconds(s.popen.pid) for s in self.services if s.popen})
        if self.redis.process is not None:
            used["redis"] = group_cpu_seconds(self.redis.process.pid)
        me, children = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        used["load"] = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        return used

    def service(self, name: str) -> Service:
        """The running service called ``name``."""
        return next(s for s in self.services if s.name == name)

    def web_workers(self) -> list[int]:
        """The pids of hiscore's gunicorn workers (the children of its master)."""
        web = self.service("web")
        return children(web.popen.pid) if web.popen else []

    def check_alive(self) -> None:
        """Raise if a service died during the run."""
        for service in self.services:
            if not service.alive:
                raise RuntimeError(f"{service.name} died:\n{service.log_tail()}")

    def stop(self) -> None:
        """Stop the writers first, all at once, Redis last."""
        for service in self.services:
            service.terminate()
        for service in self.services:
            service.wait_stopped()
        self.redis.stop(timeout=60)
        self.redis.kill()
