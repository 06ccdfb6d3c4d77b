"""The benchmarks' report: the machine, a table of figures beside their baselines, and JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis


@dataclass(frozen=True)
class Figure:
    """One line of the table: hiscore's value beside the baseline measured in the same run."""

    name: str
    hiscore: float | str | None
    baseline: float | str | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def compare(
    name: str,
    hiscore: float | None,
    baseline: float | None,
    baseline_name: str,
    target: str = "",
    at_least: float | None = None,
    at_most: float | None = None,
) -> Figure:
    """A figure with its ratio to the baseline, checked against a bound on that ratio."""
    ratio = hiscore / baseline if hiscore is not None and baseline else None
    met = None
    if ratio is not None and at_least is not None:
        met = ratio >= at_least
    if ratio is not None and at_most is not None:
        met = ratio <= at_most
    return Figure(name, hiscore, baseline, baseline_name, ratio, target, met)


def machine() -> dict[str, Any]:
    """CPU model, cores, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    debian = Path("/etc/debian_version")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}"
        + (f" (Debian {debian.read_text().strip()})" if debian.exists() else ""),
        "python": platform.python_version(),
    }


def redis_server(client: redis.Redis) -> dict[str, Any]:
    """Version and allocator of the Redis the benchmarks ran against."""
    info = client.info("server")
    memory = client.info("memory")
    return {"version": info["redis_version"], "allocator": memory.get("mem_allocator")}


def _cell(value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table."""
    head = ("figure", "hiscore", "baseline", "ratio", "target", "met")
    rows = [head]
    for f in figures:
        baseline = _cell(f.baseline) + (f" ({f.baseline_name})" if f.baseline_name else "")
        met = "" if f.met is None else ("yes" if f.met else "NO")
        ratio = "—" if f.ratio is None else f"{f.ratio:.3g}"
        rows.append((f.name, _cell(f.hiscore), baseline, ratio, f.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, header: dict[str, Any], figures: list[Figure], details: Any) -> None:
    """Write the run's header, figures and raw details as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**header, "figures": [asdict(f) for f in figures], "details": details}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
