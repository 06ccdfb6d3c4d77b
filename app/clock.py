"""The one place that reads the wall clock, so tests can pass time in everywhere else."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000
