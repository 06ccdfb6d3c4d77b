"""Load generators, outside the web processes: ``wrk`` for closed-loop saturation runs, and a
small open-loop client (asyncio streams, raw HTTP/1.1 keep-alive) for a fixed request rate,
whose connection also serves the closed-loop players of :mod:`bench.games`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"
#: wrk's threads per run (fewer if there are fewer connections); scripts that read pre-made
#: bodies get one slice of them per thread.
WRK_THREADS = 2
#: How often a run that stops on a condition checks it (seconds).
STOP_POLL_S = 0.02


def ensure_wrk() -> str:
    """The ``wrk`` binary; as root on Debian, install the ``wrk`` package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk for the benchmarks", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("the benchmarks need wrk: sudo apt-get install wrk")
    return found


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True)
class WrkRun:
    """The outcome of one wrk run."""

    requests: int  # completed responses
    seconds: float
    errors: int  # socket errors (connect, read, write, timeout)
    bad_status: int  # responses with a status of 400 or more
    p50_ms: float
    p99_ms: float
    connections: int
    # What the script itself reported (bodies.lua: the bodies it had, sent and sent again).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Completed responses per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        """Responses with a status below 400."""
        return self.requests - self.bad_status


def run_wrk(
    url: str,
    seconds: float,
    connections: int,
    script: str | None = None,
    script_args: Sequence[str] = (),
    threads: int = WRK_THREADS,
    timeout_s: int = 10,
    work_dir: Path | None = None,
    stop_when: Callable[[], bool] | None = None,
) -> WrkRun:
    """Run wrk against ``url`` for ``seconds`` with ``connections`` open connections, or until
    ``stop_when()`` (polled meanwhile) says it has done enough: wrk ends its run on SIGINT as
    at the end of its duration, within a tenth of a second, and reports it all the same."""
    work_dir = work_dir or Path("/tmp")
    text = (WRK_SCRIPTS / script).read_text() if script else ""
    combined = work_dir / f"wrk-{script or 'get'}"
    combined.write_text(text + "\n" + (WRK_SCRIPTS / "report.lua").read_text())
    args = [
        ensure_wrk(),
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "--latency",
        f"--script={combined}",
        url,
    ]
    if script_args:
        args += ["--", *script_args]
    # To files, not pipes: a script's errors could fill a pipe nobody reads while polling.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        wrk = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        signalled = -math.inf
        while stop_when is not None and wrk.poll() is None:
            # Again if it is still running a second later: wrk ignores SIGINT until its
            # threads have started.
            if time.monotonic() - signalled > 1 and stop_when():
                wrk.send_signal(signal.SIGINT)
                signalled = time.monotonic()
            time.sleep(STOP_POLL_S)
        wrk.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if wrk.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {stdout[-2000:]}{stderr}")
    data = json.loads(line.removeprefix("BENCH-RESULT "))
    known = ("requests", "duration_us", "connect", "read", "write", "timeout", "status")
    return WrkRun(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        bad_status=data["status"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        connections=connections,
        extra={k: v for k, v in data.items() if k not in known and not k.endswith("_us")},
    )


@dataclass
class Sent:
    """One request of an open-loop run, timed from when it was due (monotonic seconds)."""

    key: str
    due: float
    raw: bytes
    answered: float | None = None
    status: int | None = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            # Both servers measured send a Content-Length; a chunked body would be misread.
            raise ValueError(f"unexpected Transfer-Encoding: {value.strip()}")
    body = await reader.readexactly(length)
    return status, close, body


class KeepAlive:
    """One HTTP/1.1 keep-alive connection, one request at a time (as a browser tab's)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` and read the answer: its status and body; status 0 if it failed twice."""
        for _ in (1, 2):  # a keep-alive connection the server closed: once more, anew
            try:
                if self._writer is None or self._reader is None:
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
                self._writer.write(raw)
                status, close, body = await _read_response(self._reader)
                if close:
                    self.close()
                return status, body
            except (OSError, asyncio.IncompleteReadError):
                self.close()
        return 0, b""

    def close(self) -> None:
        """Close the connection (the next request opens another)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _connection(host: str, port: int, queue: asyncio.Queue[Sent | None]) -> None:
    connection = KeepAlive(host, port)
    while (job := await queue.get()) is not None:
        job.status, _ = await connection.request(job.raw)
        if job.status:
            job.answered = time.monotonic()
    connection.close()


async def open_loop(
    host: str,
    port: int,
    make_request: Callable[[int], tuple[str, bytes]],
    rate: float,
    seconds: float,
    connections: int,
) -> list[Sent]:
    """Send ``rate`` requests a second for ``seconds``, whatever the answers' pace (open loop).

    ``make_request(i)`` returns a key for the request and its raw HTTP/1.1 bytes. Each request
    is timed from the moment it was due, so queueing in front of a slow server counts.
    """
    queue: asyncio.Queue[Sent | None] = asyncio.Queue()
    workers = [asyncio.create_task(_connection(host, port, queue)) for _ in range(connections)]
    sent: list[Sent] = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        key, raw = make_request(i)
        job = Sent(key, due, raw)
        sent.append(job)
        queue.put_nowait(job)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return sent


def post_json(host: str, port: int, path: str, body: dict) -> bytes:
    """The raw bytes of a keep-alive HTTP/1.1 POST of ``body`` as JSON."""
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def get(host: str, port: int, path: str) -> bytes:
    """The raw bytes of a keep-alive HTTP/1.1 GET of ``path``."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
