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

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
HOUR_MS = 3_600_000
# 1970-01-01 was a Thursday: the ISO week that holds the epoch began on Monday 1969-12-29.
_EPOCH_WEEK_START_MS = -3 * DAY_MS

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


def day_index(ms: int) -> int:
    """Whole UTC days from the epoch to the instant ``ms``: the number of its daily period."""
    return ms // DAY_MS


def week_index(ms: int) -> int:
    """ISO weeks from the epoch's own week (Monday 1969-12-29) to the instant ``ms``."""
    return (ms - _EPOCH_WEEK_START_MS) // WEEK_MS


def day_start_ms(index: int) -> int:
    """Epoch ms at which the daily period numbered ``index`` begins."""
    return index * DAY_MS


def week_start_ms(index: int) -> int:
    """Epoch ms at which the weekly period numbered ``index`` begins."""
    return index * WEEK_MS + _EPOCH_WEEK_START_MS


def period_tag(window: str, period: str) -> tuple[str, int]:
    """The short tag that names a board's period inside a player's record, and the period's
    start in epoch ms: ``("a", 0)`` for all-time, ``d<day index>`` for a day, ``w<week index>``
    for an ISO week. ValueError if the label is bad."""
    start, _ = period_range(window, period)
    if window == "alltime":
        return "a", 0
    if window == "daily":
        return f"d{day_index(start)}", start
    return f"w{week_index(start)}", start


def oldest_readable(window: str, keep_ms: int, now_ms: int) -> int:
    """The index of the oldest daily or weekly period still readable at ``now_ms`` when a
    finished period stays readable ``keep_ms``: the first whose end + ``keep_ms`` is after now."""
    if window == "daily":
        return (now_ms - keep_ms) // DAY_MS
    if window == "weekly":
        return (now_ms - keep_ms - _EPOCH_WEEK_START_MS) // WEEK_MS
    raise ValueError(f"{window!r} has no periods that end")


def bucket_ms(window: str) -> int:
    """The length of the time buckets a board counts its entries in: an hour for a day's board,
    a day for a week's and for all-time."""
    return HOUR_MS if window == "daily" else DAY_MS
