"""Rebuild, reconcile, compaction and prune of the games of SPEC §11 (keep modes, subscores,
metadata, dense ties, monthly and season windows), from logs written here entry by entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.leaderboard import compaction
from app.leaderboard.boards import Board, PlayerRecord, subscore_key
from app.leaderboard.compaction import compact_family
from app.leaderboard.games import game_from_table
from app.leaderboard.rebuild import (
    FamilyBuild,
    prune_family,
    readable_boards,
    rebuild_family,
    reconcile_family,
    value_member,
)
from app.storage import keys

DAY = 86_400_000
HOUR = 3_600_000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# A Thursday noon; the seasons (a week each) begin on Wednesdays, S8 on 2036-11-19.
NOW = _ms(2036, 11, 20, 12)
SEASON = {"every": "7d", "starts_at": "2036-10-01T00:00:00Z"}
ALL_WINDOWS = ["alltime", "daily", "weekly", "monthly", "season"]

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


def game(slug: str, **settings):
    return game_from_table(
        slug, {"order": "higher", "windows": ALL_WINDOWS, "season": SEASON, **settings}
    )


TALLY = game("tally", keep="sum", subscore_order="higher", ties="dense")
LATEST = game("latest", keep="latest", order="lower", ties="dense")
BEST = game("best", subscore_order="lower", metadata_max_bytes=64)
VARIANT = "default"


def pid(player: str) -> str:
    return f"player-{player * 12}"


def log(r, g, sid: str, score: int, at: int, sub: int | None = None, meta: dict | None = None):
    """Append an entry to the family's log as the apply script writes it (and note its id)."""
    fields = {"sid": sid, "pid": pid(sid[0]), "name": sid[0].upper(), "score": score}
    fields["at"] = f"{at:013d}"
    if sub is not None:
        fields["sub"] = sub
    if meta is not None:
        fields["meta"] = json.dumps(meta, separators=(",", ":"))
        r.hset(keys.entry_metadata_key(g.slug, VARIANT), f"{at:013d}:{pid(sid[0])}", fields["meta"])
    log_id = r.xadd(keys.log_key(g.slug, VARIANT), fields)
    r.hset(keys.applied_key(g.slug, VARIANT), sid, log_id)
    return log_id


def ranking(r, board: Board):
    return r.zrange(board.ranking_key, 0, -1, withscores=True)


def member(g, sub: int | None, at: int, player: str) -> str:
    return f"{subscore_key(g, sub)}{at:013d}:{pid(player)}"


def test_readable_boards_list_the_games_own_windows_and_their_readable_periods():
    labels = [(b.window, b.period) for b in readable_boards(TALLY, VARIANT, NOW)]
    assert labels[0] == ("alltime", "all")
    months = [period for window, period in labels if window == "monthly"]
    assert months == ["2036-11", "2036-10", "2036-09", "2036-08"]  # August ended < 93 days ago
    seasons = [period for window, period in labels if window == "season"]
    assert seasons == [f"S{n}" for n in range(8, 0, -1)]  # none has ended 90 days ago
    assert ("daily", "2036-11-20") in labels and ("weekly", "2036-W47") in labels

    alltime_only = game_from_table("plain", {"windows": ["alltime", "monthly"]})
    assert {b.window for b in readable_boards(alltime_only, VARIANT, NOW)} == {"alltime", "monthly"}
    later = game("later", season={"every": "7d", "starts_at": "2037-01-01T00:00:00Z"})
    assert not [b for b in readable_boards(later, VARIANT, NOW) if b.window == "season"]


def test_a_sum_game_rebuilds_totals_with_the_latest_time_and_subscore_totals(redis_client):
    t1, t2, t3 = NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR
    log(redis_client, TALLY, "a1", 5, t1, sub=1)
    log(redis_client, TALLY, "b1", 12, t1, sub=3)
    log(redis_client, TALLY, "c1", 3, t3)  # no subscore: 0
    log(redis_client, TALLY, "a2", 7, t2, sub=2)
    assert rebuild_family(redis_client, TALLY, VARIANT, NOW) == 4

    alltime = Board(TALLY, VARIANT)
    # a and b both total 12 with subscore 3: the earlier (b, whose latest is t1) first.
    assert ranking(redis_client, alltime) == [
        (member(TALLY, 3, t1, "b"), -12.0),
        (member(TALLY, 3, t2, "a"), -12.0),
        (member(TALLY, 0, t3, "c"), -3.0),
    ]
    assert float(redis_client.hget(alltime.meta_key, "sum")) == 27
    assert redis_client.zrange(alltime.values_key, 0, -1, withscores=True) == [
        (value_member(-12, subscore_key(TALLY, 3)), -12.0),
        (value_member(-3, subscore_key(TALLY, 0)), -3.0),
    ]
    assert redis_client.hgetall(alltime.value_counts_key) == {
        value_member(-12, subscore_key(TALLY, 3)): "2",
        value_member(-3, subscore_key(TALLY, 0)): "1",
    }
    record = PlayerRecord.decode(redis_client.hget(keys.players_key("tally", VARIANT), pid("a")))
    boards = readable_boards(TALLY, VARIANT, NOW)
    mine = [b for b in boards if record.member(b, pid("a"))]
    assert {b.window for b in mine} == set(ALL_WINDOWS)
    for board in mine:
        assert record.member(board, pid("a")) == member(TALLY, 3, t2, "a")
        assert redis_client.zscore(board.ranking_key, member(TALLY, 3, t2, "a")) == -12
    assert (record.name_at, record.name) == (t2, "A")
    # Each board's values carry its expiry.
    daily = next(b for b in boards if b.window == "daily" and b.period == "2036-11-20")
    assert redis_client.pexpiretime(daily.values_key) == daily.expire_at()
    assert redis_client.pexpiretime(daily.value_counts_key) == daily.expire_at()


def test_a_latest_game_keeps_the_latest_entry_and_the_better_of_two_at_one_ms(redis_client):
    t1, t2 = NOW - 2 * HOUR, NOW - HOUR
    log(redis_client, LATEST, "a1", 3, t1)
    log(redis_client, LATEST, "a2", 9, t2)  # worse but later: a's row
    log(redis_client, LATEST, "b2", 4, t2)
    log(redis_client, LATEST, "b3", 2, t2)  # at the same ms, lower is better: b's row
    log(redis_client, LATEST, "b1", 1, t1)  # earlier, logged last: not the row
    rebuild_family(redis_client, LATEST, VARIANT, NOW)
    assert ranking(redis_client, Board(LATEST, VARIANT)) == [
        (f"{t2:013d}:{pid('b')}", 2.0),
        (f"{t2:013d}:{pid('a')}", 9.0),
    ]
    assert redis_client.hgetall(Board(LATEST, VARIANT).value_counts_key) == {"2|": "1", "9|": "1"}


def test_a_best_game_ranks_equal_scores_by_subscore_before_time(redis_client):
    t1, t2 = NOW - 2 * HOUR, NOW - HOUR
    log(redis_client, BEST, "a1", 10, t1, sub=5)
    log(redis_client, BEST, "a2", 10, t2, sub=4)  # later, but a lower subscore ranks first
    log(redis_client, BEST, "b1", 10, t1, sub=6)
    log(redis_client, BEST, "c1", 11, t2, sub=99)
    rebuild_family(redis_client, BEST, VARIANT, NOW)
    alltime = Board(BEST, VARIANT)
    assert ranking(redis_client, alltime) == [
        (member(BEST, 99, t2, "c"), -11.0),
        (member(BEST, 4, t2, "a"), -10.0),
        (member(BEST, 6, t1, "b"), -10.0),
    ]
    text = redis_client.hget(keys.players_key("best", VARIANT), pid("a"))
    assert f"a={t2},{subscore_key(BEST, 4)}" in text
    # No values for a game whose ties are not dense.
    assert not redis_client.exists(alltime.values_key, alltime.value_counts_key)


def _forge_count(r, board):
    value = r.hkeys(board.value_counts_key)[0]
    r.hincrby(board.value_counts_key, value, 1)


def _forge_value(r, board):
    value = r.zrange(board.values_key, 0, 0)[0]
    r.zadd(board.values_key, {value: 12345})


def _forge_lost(r, board):
    r.delete(board.values_key)


@pytest.mark.parametrize("forge", [_forge_count, _forge_value, _forge_lost])
def test_reconcile_repairs_a_drifted_values_zset_or_counts_hash(redis_client, forge):
    for n, player in enumerate("abcd"):
        log(redis_client, TALLY, f"{player}1", n % 2, NOW - HOUR - n, sub=1)
    rebuild_family(redis_client, TALLY, VARIANT, NOW)
    boards = readable_boards(TALLY, VARIANT, NOW)
    good = {
        b: (
            redis_client.zrange(b.values_key, 0, -1, withscores=True),
            redis_client.hgetall(b.value_counts_key),
        )
        for b in boards
    }
    assert reconcile_family(redis_client, TALLY, VARIANT, NOW) == []
    monthly = next(b for b in boards if b.window == "monthly" and good[b][0])
    forge(redis_client, monthly)
    assert reconcile_family(redis_client, TALLY, VARIANT, NOW) == [monthly]
    assert {
        b: (
            redis_client.zrange(b.values_key, 0, -1, withscores=True),
            redis_client.hgetall(b.value_counts_key),
        )
        for b in boards
    } == good


@pytest.mark.parametrize("banned", ["before", "during"])
def test_a_banned_player_leaves_the_values_of_a_rebuild(redis_client, banned):
    log(redis_client, TALLY, "a1", 4, NOW - HOUR)
    log(redis_client, TALLY, "b1", 4, NOW - HOUR)
    log(redis_client, TALLY, "c1", 6, NOW - HOUR)
    log(redis_client, TALLY, "d1", 4, NOW - HOUR, sub=2)
    log(redis_client, TALLY, "d2", 4, NOW - HOUR)
    build = FamilyBuild.readable(redis_client, TALLY, VARIANT, NOW).start()
    if banned == "before":
        redis_client.sadd(keys.banned_key("tally", VARIANT), pid("c"), pid("d"))
    build.load()
    # Banned while the copies were being built: the swap takes them off.
    redis_client.sadd(keys.banned_key("tally", VARIANT), pid("c"), pid("d"))
    build.finish()
    alltime = Board(TALLY, VARIANT)
    four = value_member(-4, subscore_key(TALLY, 0))
    assert redis_client.hgetall(alltime.value_counts_key) == {four: "2"}
    assert redis_client.zrange(alltime.values_key, 0, -1, withscores=True) == [(four, -4.0)]
    assert float(redis_client.hget(alltime.meta_key, "sum")) == 8


def test_compacting_a_sum_game_keeps_every_entry_and_forgets_old_applied_ids(redis_client):
    ids = [log(redis_client, TALLY, f"a{n}", 1, NOW - 40 * DAY + n * DAY) for n in range(5)]
    rebuild_family(redis_client, TALLY, VARIANT, NOW)
    before = ranking(redis_client, Board(TALLY, VARIANT))
    # Every entry was logged at NOW: a second's window two seconds later holds none of them.
    report = compact_family(redis_client, TALLY, VARIANT, NOW + 2000, 1)
    assert [i for i, _ in redis_client.xrange(keys.log_key("tally", VARIANT))] == ids
    assert (report.read, report.kept, report.dropped) == (5, 5, 0)
    assert report.applied_dropped == 5
    assert redis_client.hlen(keys.applied_key("tally", VARIANT)) == 0
    rebuild_family(redis_client, TALLY, VARIANT, NOW)
    assert (
        ranking(redis_client, Board(TALLY, VARIANT))
        == before
        == [(member(TALLY, 0, NOW - 36 * DAY, "a"), -5.0)]
    )


def _metadata(r):
    return r.hgetall(keys.entry_metadata_key("best", VARIANT))


@pytest.mark.parametrize("slice_size", [1, 1000])
def test_a_dropped_entry_takes_its_metadata_unless_a_row_or_a_kept_entry_shares_it(
    redis_client, monkeypatch, slice_size
):
    monkeypatch.setattr(compaction, "SLICE", slice_size)
    t1, t2, t3, t4 = (NOW - DAY * d for d in (80, 70, 60, 50))
    log(redis_client, BEST, "a1", 5, t1, meta={"n": 1})  # dropped: its field goes
    log(redis_client, BEST, "a2", 9, t2, sub=1, meta={"n": 2})  # a's best: kept
    log(redis_client, BEST, "a3", 9, t2, sub=3, meta={"n": 3})  # dropped, shares a2's field
    log(redis_client, BEST, "a4", 6, t3, meta={"n": 4})  # dropped: its field goes
    log(redis_client, BEST, "a5", 1, t4)  # a's latest: kept
    rebuild_family(redis_client, BEST, VARIANT, NOW)
    assert ranking(redis_client, Board(BEST, VARIANT)) == [(member(BEST, 1, t2, "a"), -9.0)]

    report = compact_family(redis_client, BEST, VARIANT, NOW + 10_000, 1)
    logged = [f["sid"] for _, f in redis_client.xrange(keys.log_key("best", VARIANT))]
    assert logged == ["a2", "a5"] and (report.dropped, report.metadata_dropped) == (3, 2)
    assert _metadata(redis_client) == {f"{t2:013d}:{pid('a')}": '{"n":3}'}


def test_prune_deletes_the_metadata_of_the_entries_past_retention(redis_client):
    old, kept = NOW - (BEST.retention_days + 1) * DAY, NOW - DAY
    log(redis_client, BEST, "a1", 5, old, meta={"n": 1})
    log(redis_client, BEST, "b1", 5, old)
    log(redis_client, BEST, "a2", 4, kept, meta={"n": 2})
    assert prune_family(redis_client, BEST, VARIANT, NOW) == 2
    assert _metadata(redis_client) == {f"{kept:013d}:{pid('a')}": '{"n":2}'}
