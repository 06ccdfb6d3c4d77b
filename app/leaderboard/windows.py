"""Time windows of a board: all-time, daily, weekly, monthly and season periods in UTC.

A period is named by a label: ``all``, ``2026-11-21``, ``2026-W47`` (ISO week), ``2026-12``,
``S3`` (the third season of a game's schedule: see :class:`Season`). Labels of one window sort
in time order, but for seasons past ``S9``, which callers compare by index. Time is always
passed in; nothing here reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Window = Literal["alltime", "daily", "weekly", "monthly", "season"]
#: Every window a game may declare, in the order they are listed.
WINDOWS: tuple[Window, ...] = ("alltime", "daily", "weekly", "monthly", "season")
#: The windows of a game that declares none.
DEFAULT_WINDOWS: tuple[Window, ...] = ("alltime", "daily", "weekly")
ALLTIME_PERIOD = "all"

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
HOUR_MS = 3_600_000
# 1970-01-01 was a Thursday: the ISO week that holds the epoch began on Monday 1969-12-29.
_EPOCH_WEEK_START_MS = -3 * DAY_MS

_DAILY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEKLY = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTHLY = re.compile(r"^(\d{4})-(\d{2})$")
_SEASON = re.compile(r"^S([1-9]\d{0,6})$")


@dataclass(frozen=True)
class Season:
    """A game's schedule of seasons: the first starts at ``starts_at_ms``, each lasts
    ``every_ms``; season ``n`` (from 1) is ``[starts_at + (n-1)*every, starts_at + n*every)``.
    Nothing achieved before the first season's start is on a season board."""

    every_ms: int
    starts_at_ms: int

    def index(self, ms: int) -> int | None:
        """The number of the season that holds ``ms``, or None before the first."""
        if ms < self.starts_at_ms:
            return None
        return 1 + (ms - self.starts_at_ms) // self.every_ms

    def start_ms(self, index: int) -> int:
        """Epoch ms at which season ``index`` begins."""
        return self.starts_at_ms + (index - 1) * self.every_ms


class NoPeriod(ValueError):
    """The instant lies in no period of the window (before a game's first season)."""


def _needs(season: Season | None) -> Season:
    if season is None:
        raise ValueError("this game has no season window")
    return season


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def period_of(window: str, ms: int, season: Season | None = None) -> str:
    """The label of the period of ``window`` that contains the instant ``ms`` (epoch ms);
    :class:`NoPeriod` for a season window before its first season."""
    if window == "alltime":
        return ALLTIME_PERIOD
    if window == "season":
        index = _needs(season).index(ms)
        if index is None:
            raise NoPeriod("the first season has not started")
        return f"S{index}"
    day = _day(ms)
    if window == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    if window == "daily":
        return day.isoformat()
    if window == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    raise ValueError(f"unknown window {window!r}")


def _ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)


def _month_start(year: int, month: int) -> date:
    if not 1 <= month <= 12:
        raise ValueError(f"{year:04d}-{month:02d} is not a month")
    return date(year, month, 1)


def period_range(window: str, period: str, season: Season | None = None) -> tuple[int, int]:
    """The epoch ms ``[start, end)`` of a period; ``(0, 0)`` (everything) for all-time.
    ValueError if the label is bad."""
    try:
        return _period_range(window, period, season)
    except OverflowError:  # the last day or week of the year 9999 ends after the calendar
        raise ValueError(f"{period!r} ends beyond the calendar") from None


def _period_range(window: str, period: str, season: Season | None) -> tuple[int, int]:
    if window == "alltime":
        if period != ALLTIME_PERIOD:
            raise ValueError(f"the all-time window has one period, {ALLTIME_PERIOD!r}")
        return 0, 0
    if window == "daily" and (m := _DAILY.match(period)):
        start = date(int(m[1]), int(m[2]), int(m[3]))
        return _ms(start), _ms(start + timedelta(days=1))
    if window == "weekly" and (m := _WEEKLY.match(period)):
        start = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        return _ms(start), _ms(start + timedelta(days=7))
    if window == "monthly" and (m := _MONTHLY.match(period)):
        year, month = int(m[1]), int(m[2])
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        return _ms(_month_start(year, month)), _ms(_month_start(*following))
    if window == "season" and (m := _SEASON.match(period)):
        plan = _needs(season)
        return plan.start_ms(int(m[1])), plan.start_ms(int(m[1]) + 1)
    raise ValueError(f"{period!r} is not a {window} period label")


def period_end_ms(window: str, period: str, season: Season | None = None) -> int | None:
    """Epoch ms at which a period ends (exclusive), or None for all-time."""
    if window == "alltime":
        period_range(window, period)
        return None
    return period_range(window, period, season)[1]


def normalize_period(window: str, period: str, season: Season | None = None) -> str:
    """Validate a period label sent by a client and return its canonical form."""
    if window == "alltime":
        period_range(window, period)
        return ALLTIME_PERIOD
    start, _ = period_range(window, period, season)
    return period_of(window, start, season)


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


def month_index(ms: int) -> int:
    """Months from January 1970 to the instant ``ms``: the number of its monthly period."""
    day = _day(ms)
    return (day.year - 1970) * 12 + day.month - 1


def month_start_ms(index: int) -> int:
    """Epoch ms at which the monthly period numbered ``index`` begins."""
    return _ms(date(1970 + index // 12, index % 12 + 1, 1))


#: The letter that names a window's periods in a player's record.
TAG_KIND: dict[str, str] = {
    "alltime": "a",
    "daily": "d",
    "weekly": "w",
    "monthly": "m",
    "season": "s",
}


def period_index(window: str, start_ms: int, season: Season | None = None) -> int:
    """The number of the period of ``window`` that begins at (or holds) ``start_ms``."""
    if window == "daily":
        return day_index(start_ms)
    if window == "weekly":
        return week_index(start_ms)
    if window == "monthly":
        return month_index(start_ms)
    if window == "season":
        index = _needs(season).index(start_ms)
        if index is None:
            raise NoPeriod("the first season has not started")
        return index
    raise ValueError(f"{window!r} has no numbered periods")


def index_start_ms(window: str, index: int, season: Season | None = None) -> int:
    """Epoch ms at which the period of ``window`` numbered ``index`` begins."""
    if window == "daily":
        return day_start_ms(index)
    if window == "weekly":
        return week_start_ms(index)
    if window == "monthly":
        return month_start_ms(index)
    if window == "season":
        return _needs(season).start_ms(index)
    raise ValueError(f"{window!r} has no numbered periods")


def period_tag(window: str, period: str, season: Season | None = None) -> tuple[str, int]:
    """The short tag that names a board's period inside a player's record, and the period's
    start in epoch ms: ``("a", 0)`` for all-time, else the window's letter (:data:`TAG_KIND`)
    and the period's number: ``d<day>``, ``w<ISO week>``, ``m<month>``, ``s<season>``.
    ValueError if the label is bad."""
    start, _ = period_range(window, period, season)
    if window == "alltime":
        return "a", 0
    return f"{TAG_KIND[window]}{period_index(window, start, season)}", start


def oldest_readable(window: str, keep_ms: int, now_ms: int, season: Season | None = None) -> int:
    """The index of the oldest period of ``window`` still readable at ``now_ms`` when a
    finished period stays readable ``keep_ms``: the first whose end + ``keep_ms`` is after now.
    (For seasons, 1 until the first one has ended that long ago.)"""
    if window == "daily":
        return (now_ms - keep_ms) // DAY_MS
    if window == "weekly":
        return (now_ms - keep_ms - _EPOCH_WEEK_START_MS) // WEEK_MS
    if window == "monthly":
        # The month that holds the instant keep_ms ago ends after that instant.
        return month_index(now_ms - keep_ms)
    if window == "season":
        plan = _needs(season)
        return max(1, plan.index(now_ms - keep_ms) or 1)
    raise ValueError(f"{window!r} has no periods that end")


def readable_indexes(window: str, keep_ms: int, now_ms: int, season: Season | None = None) -> range:
    """The numbers of the periods of ``window`` readable at ``now_ms``, newest first: the
    current one (if it has begun) back to the oldest still within ``keep_ms`` of its end."""
    oldest = oldest_readable(window, keep_ms, now_ms, season)
    if window == "season":
        newest = _needs(season).index(now_ms)
        if newest is None:
            return range(0)
    else:
        newest = period_index(window, now_ms)
    return range(newest, oldest - 1, -1)


def bucket_ms(window: str) -> int:
    """The length of the time buckets a board counts its entries in: an hour for a day's board,
    a day for every other."""
    return HOUR_MS if window == "daily" else DAY_MS
