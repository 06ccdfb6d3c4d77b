"""Where a web worker's CPU goes under load: a sampling profile of one gunicorn worker by
py-spy, summed up as the functions that take the largest share of the samples.

py-spy runs in a process of its own and reads the worker's stacks from its memory, from
outside; with ``--nonblocking`` it never even pauses the worker to do so. The worker pays next
to nothing for being watched; the machine pays py-spy's own CPU, which the report gives apart
from the load generators'. Only samples of a thread on the CPU are kept (py-spy leaves idle
ones out), so the shares are of the worker's busy time, and the samples against the rate say
how busy it was; a stack read while the worker changed it is dropped (py-spy counts it as an
error), the price of never pausing the worker.

"On the CPU" is the kernel's "R" state, running or ready to run: where every core is busy, as
at saturation on two cores, a worker waiting for a core counts too, so the frame it was
preempted in weighs more than the CPU it used there; most often a socket send, which wakes
the process at the other end (Redis, wrk) on the same cores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.processes import BIN

RATE_HZ = 200
#: Lines of each list the JSON keeps, and (fewer) that the printed report shows.
TOP_INCLUSIVE, TOP_SELF = 30, 20
SHOWN_INCLUSIVE, SHOWN_SELF = 15, 10


def py_spy() -> str | None:
    """The py-spy binary: this venv's (the project's test extras install it), else the PATH's."""
    mine = BIN / "py-spy"
    return str(mine) if mine.exists() else shutil.which("py-spy")


#: A frame as the profile groups it: function and file, whatever the line.
Frame = tuple[str, str]


def frame_of(text: str) -> Frame:
    """``(function, file)`` of one frame of py-spy's raw output, ``function (file:line)``."""
    function, sep, where = text.rpartition(" (")
    if not sep or not where.endswith(")"):
        return text, ""
    file, _, line = where[:-1].rpartition(":")
    return function, (file if file and line.isdigit() else where[:-1])


def summarize(raw: str, top: int = TOP_INCLUSIVE, top_self: int = TOP_SELF) -> dict[str, Any]:
    """The frames with the largest inclusive share of the samples (on the stack at all) and
    the largest self share (the frame running), grouped by function and file.

    ``raw`` is py-spy's ``--format raw``: one line per distinct stack, root first, frames
    separated by ``;``, then a space and the number of samples. Frames that are on exactly
    the same stacks (a chain of wrappers, each calling the next and nothing else) make one
    line of the inclusive list: the deepest of them, with the others named under ``with``.
    """
    samples = 0
    own: Counter[Frame] = Counter()
    counts: list[int] = []  # samples of each distinct stack
    stacks_of: dict[Frame, set[int]] = {}  # the stacks a frame is on
    depth: Counter[Frame] = Counter()  # summed position from the root, to order a chain
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, index = int(count), len(counts)
        counts.append(n)
        frames = [frame_of(frame) for frame in stack.split(";")]
        samples += n
        seen: set[Frame] = set()
        for position, frame in enumerate(frames):
            if frame in seen:  # a recursive function counts once per sample
                continue
            seen.add(frame)
            stacks_of.setdefault(frame, set()).add(index)
            depth[frame] += position
        own[frames[-1]] += n
    chains: dict[frozenset[int], list[Frame]] = {}
    for frame, on in stacks_of.items():
        chains.setdefault(frozenset(on), []).append(frame)
    inclusive = []
    for chain, frames in chains.items():
        frames.sort(key=lambda frame: depth[frame], reverse=True)
        n = sum(counts[i] for i in chain)
        inclusive.append((n, frames[0], [f"{f} ({file})" for f, file in frames[1:]]))
    inclusive.sort(key=lambda row: row[0], reverse=True)

    def row(frame: Frame, n: int) -> dict[str, Any]:
        return {"function": frame[0], "file": frame[1], "samples": n, "share": n / samples}

    return {
        "samples": samples,
        "inclusive": [{**row(frame, n), "with": others} for n, frame, others in inclusive[:top]],
        "self": [row(frame, n) for frame, n in own.most_common(top_self)],
    }


class Profiler:
    """py-spy recording one process for ``seconds``, from ``delay`` seconds on, in the
    background; a context manager that stops it if it is still running on the way out.

    With ``idle``, every sample counts, a thread waiting (on a socket, a sleep) as much as one
    running, so the shares are of the wall-clock time; stacks with a frame named in ``drop``
    (a helper thread's) are left out of the summary."""

    def __init__(
        self,
        pid: int | None,
        seconds: float,
        output: Path,
        delay: float = 0,
        idle: bool = False,
        drop: str | None = None,
    ) -> None:
        self.pid = pid
        self.seconds = max(1, round(seconds))
        self.delay = delay
        self.output = output
        self.popen: subprocess.Popen[str] | None = None
        self._launch = threading.Timer(delay, self._start)
        self.unavailable: str | None = None
        self.idle = idle
        self.drop = drop
        binary = py_spy()
        if binary is None:
            self.unavailable = "py-spy is not installed (pip install -e '.[test]')"
        elif pid is None:
            self.unavailable = "no web worker to profile"
        else:
            self.command = [
                binary,
                "record",
                f"--pid={pid}",
                "--format=raw",
                f"--duration={self.seconds}",
                f"--rate={RATE_HZ}",
                "--nonblocking",
                *(["--idle"] if idle else []),
                f"--output={output}",
            ]

    def _start(self) -> None:
        self.popen = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def __enter__(self) -> Profiler:
        if self.unavailable is None:
            self._launch.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._launch.cancel()
        self._launch.join()
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def finish(self, timeout: float = 30) -> dict[str, Any]:
        """Wait for py-spy to end; its summary, or why there is none."""
        if self.unavailable is None:
            self._launch.join()
        if self.popen is None:
            return {"available": False, "reason": self.unavailable}
        # wait4, not wait: py-spy's own CPU is reported apart from the load generators'.
        deadline = time.monotonic() + timeout
        while (done := os.wait4(self.popen.pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                self.popen.kill()
                done = os.wait4(self.popen.pid, 0)
                break
            time.sleep(0.05)
        _, status, usage = done
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        said = self.popen.stdout.read() if self.popen.stdout else ""
        cpu_s = usage.ru_utime + usage.ru_stime
        raw = self.output.read_text() if self.output.exists() else ""
        if self.popen.returncode != 0 or not raw.strip():
            return {"available": False, "reason": f"py-spy could not sample: {_why(said, self)}"}
        if self.drop:
            raw = "\n".join(line for line in raw.splitlines() if self.drop not in line)
        summary = summarize(raw)
        # Stacks read while the worker changed them (it is never paused) are py-spy's errors.
        counted = re.search(r"Samples: (\d+) Errors: (\d+)", said)
        return {
            "available": True,
            "pid": self.pid,
            "rate_hz": RATE_HZ,
            "from_s": self.delay,
            "seconds": self.seconds,
            "asked": RATE_HZ * self.seconds,
            "unreadable": int(counted.group(2)) if counted else None,
            "idle_included": self.idle,
            "profiler_cpu_s": round(cpu_s, 2),
            **summary,
        }


def _why(said: str, profiler: Profiler) -> str:
    """py-spy's own reason (its ``Error:`` or ``Permission Denied`` line, not its backtrace)."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Permission"):
            return (
                f"{line} (py-spy reads the worker's memory as a debugger would: it needs ptrace "
                "permission, e.g. root, CAP_SYS_PTRACE or kernel.yama.ptrace_scope=0)"
            )
        if line.startswith("Error"):
            return line
    if lines:
        return lines[-1]
    return f"py-spy exited with {profiler.popen.returncode if profiler.popen else None}"


def render(profile: dict[str, Any], what: str) -> str:
    """The profile as the text section under the report's table."""
    if not profile.get("available"):
        return f"{what}: no profile — {profile.get('reason')}"
    unreadable = profile.get("unreadable")
    head = (
        f"{what}\n(py-spy at {profile['rate_hz']} Hz for {profile['seconds']} s from "
        f"{profile.get('from_s', 0):.3g} s into the run: of "
        f"{profile['asked']:,} samples, {profile['samples']:,} "
        + (
            "kept, running or waiting (idle ones included)"
            if profile.get("idle_included")
            else "found the worker running or ready"
        )
        + (f", {unreadable:,} unreadable" if unreadable else "")
        + f"; py-spy itself took {profile['profiler_cpu_s']:.1f} CPU s)"
    )
    lines = [head]
    shown = (("inclusive", "inclusive share", SHOWN_INCLUSIVE), ("self", "self share", SHOWN_SELF))
    for kind, label, count in shown:
        lines.append(f"  {label:>15}  function (file)")
        for row in profile[kind][:count]:
            n = len(row.get("with") or ())
            chain = f" [+{n} caller{'s' if n > 1 else ''} on exactly these stacks]" if n else ""
            lines.append(f"  {row['share']:>15.1%}  {row['function']} ({row['file']}){chain}")
    return "\n".join(lines)
