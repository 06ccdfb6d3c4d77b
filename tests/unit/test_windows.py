from datetime import UTC, datetime

import pytest

from app.leaderboard.windows import (
    DAY_MS,
    NoPeriod,
    Season,
    day_index,
    day_start_ms,
    month_index,
    month_start_ms,
    normalize_period,
    oldest_readable,
    period_end_ms,
    period_of,
    period_range,
    period_tag,
    readable_indexes,
    week_index,
    week_start_ms,
)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("window", "instant", "label"),
    [
        ("alltime", ms(2026, 11, 21, 12), "all"),
        ("daily", ms(2026, 11, 21, 0, 0, 0), "2026-11-21"),
        ("daily", ms(2026, 11, 21, 23, 59, 59) + 999, "2026-11-21"),
        ("weekly", ms(2026, 11, 16), "2026-W47"),  # a Monday starts the ISO week
        ("weekly", ms(2026, 11, 22, 23, 59), "2026-W47"),  # Sunday ends it
        ("weekly", ms(2026, 11, 23), "2026-W48"),
        ("weekly", ms(2027, 1, 1), "2026-W53"),  # early January can belong to last year's week
    ],
)
def test_period_labels_follow_utc_days_and_iso_weeks(window, instant, label):
    assert period_of(window, instant) == label


def test_period_ends_are_exclusive_utc_midnights():
    assert period_end_ms("daily", "2026-11-21") == ms(2026, 11, 22)
    assert period_end_ms("weekly", "2026-W47") == ms(2026, 11, 23)
    assert period_end_ms("alltime", "all") is None
    # The last millisecond of a period is inside it; its end is not.
    end = period_end_ms("daily", "2026-11-21")
    assert period_of("daily", end - 1) == "2026-11-21"
    assert period_of("daily", end) == "2026-11-22"


@pytest.mark.parametrize(
    ("window", "label"),
    [
        ("daily", "2026-02-30"),
        ("daily", "2026-W47"),
        ("daily", "today"),
        ("weekly", "2026-W54"),
        ("weekly", "2026-11-21"),
        ("alltime", "2026"),
    ],
)
def test_malformed_period_labels_are_refused(window, label):
    with pytest.raises(ValueError):
        normalize_period(window, label)


def test_period_labels_are_canonical():
    assert normalize_period("weekly", "2026-W05") == "2026-W05"
    assert normalize_period("daily", "2026-01-09") == "2026-01-09"
    assert normalize_period("alltime", "all") == "all"


INSTANTS = [
    ms(1970, 1, 1),
    ms(1969, 12, 29, 5),  # the Monday that began the epoch's ISO week
    ms(2026, 11, 16),
    ms(2026, 11, 22, 23, 59, 59) + 999,
    ms(2027, 1, 1, 8),
    ms(2036, 2, 29, 12),
    *(ms(2026, 1, 1) + k * 7_919_999_977 for k in range(40)),
]


@pytest.mark.parametrize("instant", INSTANTS)
def test_a_periods_tag_and_start_are_those_of_its_label(instant):
    for window, index, start_of in (
        ("daily", day_index, day_start_ms),
        ("weekly", week_index, week_start_ms),
    ):
        label = period_of(window, instant)
        tag, start = period_tag(window, label)
        assert (start, period_end_ms(window, label)) == period_range(window, label)
        assert start <= instant < period_range(window, label)[1]
        assert tag == f"{window[0]}{index(instant)}"
        assert start_of(index(instant)) == start
        assert period_of(window, start_of(index(instant) + 1)) != label
    assert period_tag("alltime", "all") == ("a", 0)


def test_tags_count_days_and_weeks_from_the_epoch():
    assert period_tag("daily", "1970-01-01") == ("d0", 0)
    assert period_tag("daily", "1970-01-02") == ("d1", 86_400_000)
    assert period_tag("weekly", "1970-W01") == ("w0", -3 * 86_400_000)
    assert period_tag("weekly", "1970-W02") == ("w1", 4 * 86_400_000)
    assert (
        period_tag("weekly", "2026-W47")[0]
        == f"w{(ms(2026, 11, 16) - ms(1969, 12, 29)) // (7 * 86_400_000)}"
    )


@pytest.mark.parametrize("keep_days", [0, 1, 7, 35])
@pytest.mark.parametrize("instant", INSTANTS[:8])
def test_the_oldest_readable_period_is_the_first_whose_retention_runs_past_now(instant, keep_days):
    keep = keep_days * 86_400_000
    for window, start_of in (("daily", day_start_ms), ("weekly", week_start_ms)):
        oldest = oldest_readable(window, keep, instant)
        ends = {
            i: period_end_ms(window, period_of(window, start_of(i))) for i in (oldest - 1, oldest)
        }
        assert ends[oldest] + keep > instant >= ends[oldest - 1] + keep


@pytest.mark.parametrize(
    ("instant", "label", "start", "end"),
    [
        (ms(2026, 12, 1), "2026-12", ms(2026, 12, 1), ms(2027, 1, 1)),
        (ms(2026, 12, 31, 23, 59), "2026-12", ms(2026, 12, 1), ms(2027, 1, 1)),
        (ms(2028, 2, 29, 12), "2028-02", ms(2028, 2, 1), ms(2028, 3, 1)),
    ],
)
def test_monthly_periods_are_utc_calendar_months(instant, label, start, end):
    assert period_of("monthly", instant) == label
    assert period_range("monthly", label) == (start, end)
    tag, begins = period_tag("monthly", label)
    assert begins == start and tag == f"m{month_index(instant)}"
    assert month_start_ms(month_index(instant)) == start


SEASON = Season(every_ms=14 * DAY_MS, starts_at_ms=ms(2026, 1, 5))


def test_seasons_follow_the_games_schedule_from_its_start():
    assert period_of("season", ms(2026, 1, 5), SEASON) == "S1"
    assert period_of("season", ms(2026, 1, 18, 23, 59), SEASON) == "S1"
    assert period_of("season", ms(2026, 1, 19), SEASON) == "S2"
    assert period_range("season", "S2", SEASON) == (ms(2026, 1, 19), ms(2026, 2, 2))
    assert period_tag("season", "S2", SEASON) == ("s2", ms(2026, 1, 19))
    with pytest.raises(NoPeriod):
        period_of("season", ms(2026, 1, 4), SEASON)
    with pytest.raises(ValueError):
        period_of("season", ms(2026, 1, 6))  # a game without a schedule has no seasons
    for bad in ("S0", "2026-12", "S01"):
        with pytest.raises(ValueError):
            normalize_period("season", bad, SEASON)


def test_readable_periods_run_from_the_current_back_to_the_retention():
    now = ms(2026, 12, 2, 12)
    assert list(readable_indexes("monthly", 62 * DAY_MS, now)) == [
        month_index(ms(2026, m, 1)) for m in (12, 11, 10)
    ]
    # S1 ended 2026-01-19; a season stays readable 30 days after its end.
    assert list(readable_indexes("season", 30 * DAY_MS, ms(2026, 2, 17), SEASON)) == [4, 3, 2, 1]
    assert list(readable_indexes("season", 30 * DAY_MS, ms(2026, 2, 19), SEASON)) == [4, 3, 2]
    assert list(readable_indexes("season", 30 * DAY_MS, ms(2025, 12, 1), SEASON)) == []


@pytest.mark.parametrize(
    ("window", "label"), [("daily", "9999-12-31"), ("weekly", "9999-W52"), ("monthly", "9999-12")]
)
def test_a_period_that_ends_beyond_the_calendar_is_a_bad_label(window, label):
    with pytest.raises(ValueError):
        normalize_period(window, label)
