"""The one place that reads the wall clock, so tests can pass time in everywhere else."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


def iso_time(ms: int | None) -> str | None:
    """Epoch ms as an ISO 8601 UTC timestamp with milliseconds (``...T12:00:00.000Z``)."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
