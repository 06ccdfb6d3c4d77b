"""The board cache: one best row per player, exact ordinal ranks, windows, idempotency."""

import itertools
import random
from datetime import UTC, datetime

import pytest

from app.leaderboard.boards import (
    Board,
    Entry,
    Page,
    PlayerRecord,
    apply_entries,
    read_page,
    read_standing,
)
from app.leaderboard.games import game_from_table, load_registry
from app.leaderboard.rebuild import rebuild_family
from app.storage import keys

GUESS = load_registry().get("guess")
HIGHER = game_from_table("points", {"order": "higher", "integer": False, "score_max": 1e6})
DAY = 86_400_000
# Noon of a Wednesday of ISO week 47. Every test here runs with the clock stopped then, so the
# boards fakeredis keeps, and their labels below, hold whatever the real date.
T0 = int(datetime(2036, 11, 19, 12, tzinfo=UTC).timestamp() * 1000)
_ids = itertools.count()

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return T0


def entry(player, score, at, game=GUESS, variant="100", name=None, sid=None):
    return Entry(
        submission_id=sid or f"sub-{next(_ids):06d}",
        game=game,
        variant=variant,
        player_id=f"player-{player:012d}",
        name=name or f"P{player}",
        score=score,
        achieved_at=at,
    )


def board(window="alltime", period="all", game=GUESS, variant="100"):
    return Board(game, variant, window, period)


def top(r, b=None, limit=100):
    return [
        (row.rank, row.player_id[-3:], row.score)
        for row in read_page(r, b or board(), 0, limit).rows
    ]


def test_lower_scores_rank_first_with_ordinal_ranks(redis_client):
    apply_entries(redis_client, [entry(1, 7, T0), entry(2, 3, T0 + 1), entry(3, 5, T0 + 2)], T0)
    assert top(redis_client) == [(1, "002", 3), (2, "003", 5), (3, "001", 7)]


def test_higher_is_better_games_rank_high_scores_first(redis_client):
    b = board(game=HIGHER, variant="default")
    apply_entries(
        redis_client,
        [entry(1, 10.5, T0, HIGHER, "default"), entry(2, 99.25, T0, HIGHER, "default")],
        T0,
    )
    assert top(redis_client, b) == [(1, "002", 99.25), (2, "001", 10.5)]


def test_ties_rank_the_earlier_achievement_first_and_ranks_stay_ordinal(redis_client):
    apply_entries(
        redis_client, [entry(1, 4, T0 + 50), entry(2, 4, T0 + 10), entry(3, 4, T0 + 30)], T0
    )
    assert top(redis_client) == [(1, "002", 4), (2, "003", 4), (3, "001", 4)]


def test_one_row_per_player_holding_the_best_score(redis_client):
    apply_entries(
        redis_client,
        [entry(1, 9, T0), entry(1, 4, T0 + 1), entry(1, 6, T0 + 2), entry(2, 5, T0 + 3)],
        T0,
    )
    assert top(redis_client) == [(1, "001", 4), (2, "002", 5)]
    row = read_standing(redis_client, board(), "player-000000000001").row
    assert row.achieved_at == T0 + 1


def test_an_equal_score_later_does_not_move_the_player(redis_client):
    apply_entries(redis_client, [entry(1, 4, T0), entry(2, 4, T0 + 5)], T0)
    applied = apply_entries(redis_client, [entry(1, 4, T0 + 10)], T0)
    assert applied[0].improved == {"alltime": False, "daily": False, "weekly": False}
    assert top(redis_client) == [(1, "001", 4), (2, "002", 4)]
    assert read_standing(redis_client, board(), "player-000000000001").row.achieved_at == T0


def test_the_verdict_reports_the_players_rank_on_each_window(redis_client):
    apply_entries(redis_client, [entry(1, 2, T0 - 7 * DAY), entry(2, 3, T0)], T0)
    (applied,) = apply_entries(redis_client, [entry(3, 4, T0)], T0)
    assert applied.fresh
    assert applied.ranks == {"alltime": 3, "daily": 2, "weekly": 2}


def test_entries_land_in_the_daily_and_weekly_boards_of_their_own_time(redis_client):
    monday = T0 - 2 * DAY  # 2036-11-17, W47
    last_sunday = T0 - 3 * DAY  # 2036-11-16, W46
    apply_entries(
        redis_client, [entry(1, 5, T0), entry(2, 6, monday), entry(3, 7, last_sunday)], T0
    )
    assert top(redis_client) == [(1, "001", 5), (2, "002", 6), (3, "003", 7)]
    assert top(redis_client, board("daily", "2036-11-19")) == [(1, "001", 5)]
    assert top(redis_client, board("daily", "2036-11-17")) == [(1, "002", 6)]
    assert top(redis_client, board("weekly", "2036-W47")) == [(1, "001", 5), (2, "002", 6)]
    assert top(redis_client, board("weekly", "2036-W46")) == [(1, "003", 7)]


def test_window_boards_expire_after_the_games_retention(redis_client):
    apply_entries(redis_client, [entry(1, 5, T0)], T0)
    daily = board("daily", "2036-11-19")
    end_of_day = int(datetime(2036, 11, 20, tzinfo=UTC).timestamp() * 1000)
    expected = end_of_day + GUESS.daily_retention_days * DAY
    assert redis_client.pexpiretime(daily.ranking_key) == expected
    assert redis_client.pexpiretime(daily.meta_key) == expected
    assert redis_client.pexpiretime(board().ranking_key) == -1  # all-time is kept


def test_a_window_boards_expiry_follows_the_entries_that_improve_it(redis_client):
    import dataclasses

    daily = board("daily", "2036-11-19")
    end_of_day = int(datetime(2036, 11, 20, tzinfo=UTC).timestamp() * 1000)
    apply_entries(redis_client, [entry(1, 5, T0)], T0)
    redis_client.persist(daily.meta_key)  # as a board written before expiries would be
    apply_entries(redis_client, [entry(2, 4, T0 + 1)], T0)
    kept = end_of_day + GUESS.daily_retention_days * DAY
    assert redis_client.pexpiretime(daily.meta_key) == kept
    # The retention shortened: the next entry that improves the board moves its expiry.
    shorter = dataclasses.replace(GUESS, daily_retention_days=2)
    apply_entries(redis_client, [entry(3, 3, T0 + 2, game=shorter)], T0)
    assert redis_client.pexpiretime(daily.ranking_key) == end_of_day + 2 * DAY
    assert redis_client.pexpiretime(daily.meta_key) == end_of_day + 2 * DAY


def test_applying_a_submission_twice_changes_nothing(redis_client):
    first = entry(1, 5, T0, sid="same-submission")
    apply_entries(redis_client, [first], T0)
    log = keys.log_key("guess", "100")
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    (again,) = apply_entries(redis_client, [first], T0 + 999)
    assert not again.fresh
    assert again.ranks["alltime"] == 1
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before
    assert redis_client.xlen(log) == 1


def test_a_replayed_id_with_another_score_is_still_one_entry(redis_client):
    apply_entries(redis_client, [entry(1, 5, T0, sid="dup-1")], T0)
    apply_entries(redis_client, [entry(1, 2, T0 + 1, sid="dup-1")], T0)
    assert top(redis_client) == [(1, "001", 5)]


def test_a_batch_is_applied_after_redis_forgot_the_script(redis_client):
    apply_entries(redis_client, [entry(1, 5, T0)], T0)
    redis_client.script_flush()  # as a restarted Redis has
    batch = [entry(2, 3, T0 + 1), entry(3, 4, T0 + 2, variant="10"), entry(4, 9, T0 + 3)]
    applied = apply_entries(redis_client, batch, T0)
    assert [(a.fresh, a.ranks["alltime"]) for a in applied] == [(True, 1), (True, 1), (True, 3)]
    assert top(redis_client) == [(1, "002", 3), (2, "001", 5), (3, "004", 9)]


def test_entries_of_one_batch_land_on_the_boards_of_their_own_day_and_family(redis_client):
    # Boards are worked out once per family and day of a batch: each entry still gets its own.
    batch = [
        entry(1, 5, T0),
        entry(2, 6, T0 + DAY),
        entry(3, 7, T0, variant="10"),
        entry(4, 8, T0 + 7 * DAY),
        entry(5, 4, T0 + 1),
    ]
    applied = apply_entries(redis_client, batch, T0 + 7 * DAY)
    assert [a.ranks for a in applied] == [
        {"alltime": 1, "daily": 1, "weekly": 1},
        {"alltime": 2, "daily": 1, "weekly": 2},
        {"alltime": 1, "daily": 1, "weekly": 1},
        {"alltime": 3, "daily": 1, "weekly": 1},
        {"alltime": 1, "daily": 1, "weekly": 1},
    ]
    assert top(redis_client, board("daily", "2036-11-19")) == [(1, "005", 4), (2, "001", 5)]
    assert top(redis_client, board("daily", "2036-11-20")) == [(1, "002", 6)]
    assert top(redis_client, board("weekly", "2036-W48")) == [(1, "004", 8)]
    assert top(redis_client, board("daily", "2036-11-19", variant="10")) == [(1, "003", 7)]


def test_every_accepted_entry_is_in_the_log(redis_client):
    batch = [entry(p, 3 + p % 5, T0 + p) for p in range(20)]
    apply_entries(redis_client, batch, T0)
    log = redis_client.xrange(keys.log_key("guess", "100"))
    assert [fields["sid"] for _, fields in log] == [e.submission_id for e in batch]
    assert log[0][1] == {
        "sid": batch[0].submission_id,
        "pid": batch[0].player_id,
        "name": "P0",
        "score": "3",
        "at": f"{T0:013d}",
    }


@pytest.mark.parametrize("seed", range(5))
def test_boards_do_not_depend_on_the_order_entries_arrive_in(seed):
    import fakeredis

    rng = random.Random(seed)
    batch = [
        entry(rng.randrange(8), rng.randint(1, 12), T0 + rng.randrange(5 * DAY)) for _ in range(60)
    ]
    shuffled = batch[:]
    rng.shuffle(shuffled)

    def state(entries):
        r = fakeredis.FakeRedis(decode_responses=True)
        for e in entries:
            apply_entries(r, [e], T0)
        boards = [board()] + [
            board(w, p)
            for w in ("daily", "weekly")
            for p in {e.boards()[1 if w == "daily" else 2].period for e in batch}
        ]
        return {b: read_page(r, b, 0, 100).rows for b in boards}

    assert state(batch) == state(shuffled)


def test_hostile_names_are_stored_verbatim_and_never_become_keys(redis_client):
    names = ["*", "a:b", "{evil}", "x|y|z", "🙂", "DROP TABLE"]
    apply_entries(redis_client, [entry(i, 3, T0 + i, name=n) for i, n in enumerate(names)], T0)
    assert [row.name for row in read_page(redis_client, board(), 0, 10).rows] == names
    for key in redis_client.keys("*"):
        for name in names:
            assert name not in key


def test_pages_and_neighbours(redis_client):
    apply_entries(redis_client, [entry(p, p, T0) for p in range(1, 31)], T0)
    page = read_page(redis_client, board(), 10, 5)
    assert page.total == 30
    assert [row.rank for row in page.rows] == [11, 12, 13, 14, 15]
    assert [row.score for row in page.rows] == [11, 12, 13, 14, 15]
    assert page.updated_at == T0
    assert read_page(redis_client, board(), 40, 5).rows == []

    standing = read_standing(redis_client, board(), "player-000000000002", around=3)
    assert standing.row.rank == 2
    assert [row.rank for row in standing.neighbours] == [1, 2, 3, 4, 5]
    last = read_standing(redis_client, board(), "player-000000000030", around=2)
    assert [row.rank for row in last.neighbours] == [28, 29, 30]
    assert read_standing(redis_client, board(), "player-000000000099") is None


def record_of(r, player, game=GUESS, variant="100"):
    return r.hget(keys.players_key(game.slug, variant), f"player-{player:012d}")


def test_a_record_keeps_its_name_last_whatever_it_holds():
    record = PlayerRecord(T0, "a|b||c=d;e", {"w3489": 5, "a": T0, "d24429": 7})
    text = record.encode()
    assert text == f"{T0}|a={T0};d24429=7;w3489=5|a|b||c=d;e"
    assert PlayerRecord.decode(text) == record
    assert PlayerRecord.decode(f"{T0}||x").tags == {}


def test_a_players_record_holds_the_latest_name_and_their_row_on_each_board(redis_client):
    day_start = int(datetime(2036, 11, 19, tzinfo=UTC).timestamp() * 1000)
    week_start = day_start - 2 * DAY  # Monday 2036-11-17
    apply_entries(
        redis_client,
        [
            entry(1, 5, T0, name="Old"),
            entry(1, 7, T0 + 9, name="New|er"),  # worse, but the latest: its name shows
            entry(1, 4, T0 - DAY, name="Older"),  # the best all-time and weekly
        ],
        T0,
    )
    day, week = day_start // DAY, (week_start + 3 * DAY) // (7 * DAY)
    assert record_of(redis_client, 1) == (
        f"{T0 + 9}|a={T0 - DAY};d{day - 1}={T0 - DAY - (day_start - DAY)};"
        f"d{day}={T0 - day_start};w{week}={T0 - DAY - week_start}|New|er"
    )
    assert {
        row.name
        for b in (board(), board("daily", "2036-11-19"))
        for row in read_page(redis_client, b, 0, 10).rows
    } == {"New|er"}


def test_tags_of_periods_no_longer_readable_go_when_the_record_is_next_written(redis_client):
    long_ago = T0 - 20 * DAY  # its day's board is gone 7 days after it ended; its week's is not
    apply_entries(redis_client, [entry(1, 3, long_ago)], long_ago)
    old = PlayerRecord.decode(record_of(redis_client, 1))
    assert len(old.tags) == 3
    apply_entries(redis_client, [entry(1, 9, T0)], T0)  # worse: only the new day's row is added
    new = PlayerRecord.decode(record_of(redis_client, 1))
    old_day = next(tag for tag in old.tags if tag[0] == "d")
    assert old_day not in new.tags
    assert set(old.tags) - {old_day} < set(new.tags)
    assert len(new.tags) == 4  # all-time, the old week, today and this week


def test_float_scores_read_back_exactly(redis_client):
    scores = [0.1 + 0.2, 1 / 3, 123456.789012345678, 5e-324, 1e300]
    b = board(game=HIGHER, variant="default")
    apply_entries(
        redis_client,
        [entry(i, s, T0 + i, HIGHER, "default") for i, s in enumerate(scores)],
        T0,
    )
    assert sorted(row.score for row in read_page(redis_client, b, 0, 10).rows) == sorted(scores)
    rebuild_family(redis_client, HIGHER, "default", T0)
    assert sorted(row.score for row in read_page(redis_client, b, 0, 10).rows) == sorted(scores)
    standing = read_standing(redis_client, b, "player-000000000001")
    assert standing.row.score == 1 / 3


def test_updated_at_is_the_last_change_of_the_ranking(redis_client):
    apply_entries(redis_client, [entry(1, 5, T0), entry(2, 6, T0)], T0 + 10)
    apply_entries(redis_client, [entry(1, 8, T0 + 1)], T0 + 20)  # not better: no change
    assert read_page(redis_client, board(), 0, 10).updated_at == T0 + 10
    apply_entries(redis_client, [entry(2, 4, T0 + 2)], T0 + 30)
    assert read_page(redis_client, board(), 0, 10).updated_at == T0 + 30
    standing = read_standing(redis_client, board(), "player-000000000001", around=1)
    assert standing.updated_at == T0 + 30
    assert [(row.rank, row.name, row.score) for row in standing.neighbours] == [
        (1, "P2", 4),
        (2, "P1", 5),
    ]
    assert read_page(redis_client, board("daily", "2036-11-18"), 0, 10) == Page([], 0, None)


def test_a_boards_meta_counts_entries_and_sums_the_rows(redis_client):
    apply_entries(
        redis_client,
        [entry(1, 5, T0), entry(1, 3, T0 + 1), entry(2, 6, T0 + 3_600_000), entry(1, 9, T0 + 2)],
        T0,
    )
    hour = T0 - T0 % 3_600_000
    assert redis_client.hgetall(board("daily", "2036-11-19").meta_key) == {
        "n": "4",
        f"t:{hour}": "3",
        f"t:{hour + 3_600_000}": "1",
        "sum": "9",
        "updated": str(T0),
    }
    assert redis_client.hget(board().meta_key, f"t:{T0 - T0 % DAY}") == "4"
    # A replay counts nothing.
    apply_entries(redis_client, [entry(1, 1, T0, sid="again")], T0)
    apply_entries(redis_client, [entry(1, 1, T0, sid="again")], T0)
    assert redis_client.hmget(board().meta_key, "n", "sum") == ["5", "7"]


def test_removing_a_player_takes_their_rows_record_and_scores_away(redis_client):
    from app.leaderboard.players import remove_player

    apply_entries(redis_client, [entry(1, 3, T0), entry(2, 4, T0), entry(1, 2, T0 - 7 * DAY)], T0)
    # All-time, and the days and weeks of both their entries.
    assert remove_player(redis_client, GUESS, "player-000000000001", T0 + 5) == 5
    assert record_of(redis_client, 1) is None
    assert top(redis_client) == [(1, "002", 4)]
    for b in (board(), board("daily", "2036-11-19"), board("weekly", "2036-W47")):
        assert redis_client.hmget(b.meta_key, "sum", "updated") == ["4", str(T0 + 5)]
    assert top(redis_client, board("daily", "2036-11-12")) == []
    assert redis_client.hget(board("daily", "2036-11-12").meta_key, "sum") == "0"
    assert redis_client.hget(board().meta_key, "n") == "3"  # entries made are still counted
    assert remove_player(redis_client, GUESS, "player-000000000001", T0 + 6) == 0
    (applied,) = apply_entries(redis_client, [entry(1, 1, T0 + 1)], T0)
    assert applied.banned
