"""Time windows of a board: all-time, daily and weekly periods in UTC.

A period is named by a label that sorts in time order: ``all``, ``2026-11-21``, ``2026-W47``
(ISO week). Time is always passed in; nothing here reads the clock.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Window = Literal["alltime", "daily", "weekly"]
WINDOWS: tuple[Window, ...] = ("alltime", "daily", "weekly")
ALLTIME_PERIOD = "all"

_DAILY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEKLY = re.compile(r"^(\d{4})-W(\d{2})$")


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def period_of(window: str, ms: int) -> str:
    """The label of the period of ``window`` that contains the instant ``ms`` (epoch ms)."""
    if window == "alltime":
        return ALLTIME_PERIOD
    day = _day(ms)
    if window == "daily":
        return day.isoformat()
    if window == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    raise ValueError(f"unknown window {window!r}")


def period_start(window: str, period: str) -> date | None:
    """The first UTC day of a period, or None for all-time; ValueError if the label is bad."""
    if window == "alltime":
        if period != ALLTIME_PERIOD:
            raise ValueError(f"the all-time window has one period, {ALLTIME_PERIOD!r}")
        return None
    if window == "daily" and (m := _DAILY.match(period)):
        return date(int(m[1]), int(m[2]), int(m[3]))
    if window == "weekly" and (m := _WEEKLY.match(period)):
        return date.fromisocalendar(int(m[1]), int(m[2]), 1)
    raise ValueError(f"{period!r} is not a {window} period label")


def period_end_ms(window: str, period: str) -> int | None:
    """Epoch ms at which a period ends (exclusive), or None for all-time."""
    start = period_start(window, period)
    if start is None:
        return None
    length = timedelta(days=1 if window == "daily" else 7)
    end = datetime.combine(start + length, datetime.min.time(), UTC)
    return int(end.timestamp() * 1000)


def period_range(window: str, period: str) -> tuple[int, int]:
    """The epoch ms ``[start, end)`` of a period; ``(0, 0)`` (everything) for all-time."""
    start = period_start(window, period)
    end = period_end_ms(window, period)
    if start is None or end is None:
        return 0, 0
    return int(datetime.combine(start, datetime.min.time(), UTC).timestamp() * 1000), end


def normalize_period(window: str, period: str) -> str:
    """Validate a period label sent by a client and return its canonical form."""
    start = period_start(window, period)
    if start is None:
        return ALLTIME_PERIOD
    midday = datetime.combine(start, datetime.min.time(), UTC) + timedelta(hours=12)
    return period_of(window, int(midday.timestamp() * 1000))
