from datetime import UTC, datetime

import pytest

from app.leaderboard.windows import normalize_period, period_end_ms, period_of


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
