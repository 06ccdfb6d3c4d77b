"""Rebuild, reconcile and prune against the log, on fakeredis, with time passed in."""

import random

import pytest

from app.leaderboard.boards import Board, PlayerRecord, apply_entries, read_page
from app.leaderboard.rebuild import prune_family, readable_boards, rebuild_family, reconcile_family
from app.storage import keys
from tests.unit.test_boards import DAY, GUESS, T0, entry

# Midnight at the end of T0's day: the clock of every test here stops then.
NOW = T0 + DAY // 2

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


def snapshot(r, boards):
    return {b: (read_page(r, b, 0, 10_000).rows, r.pexpiretime(b.ranking_key)) for b in boards}


def seeded(r, n=400, seed=1):
    rng = random.Random(seed)
    batch = [
        entry(rng.randrange(60), rng.randint(1, 40), T0 - rng.randrange(9 * DAY)) for _ in range(n)
    ]
    apply_entries(r, batch, NOW)
    return batch


def test_readable_boards_cover_the_retained_periods():
    boards = readable_boards(GUESS, "100", NOW)
    labels = [(b.window, b.period) for b in boards]
    assert labels[0] == ("alltime", "all")
    assert ("daily", "2036-11-20") in labels and ("daily", "2036-11-13") in labels
    assert ("daily", "2036-11-12") not in labels  # ended 7 days before NOW (2036-11-20 00:00)
    assert ("weekly", "2036-W47") in labels and ("weekly", "2036-W42") in labels
    assert ("weekly", "2036-W41") not in labels  # ended 2036-10-13, kept 35 days


def boards_held(r):
    """Every board of guess/100 that Redis holds: (window, period) -> its players."""
    held = {}
    for key in r.scan_iter(match=keys.ranking_key("guess", "100", "*", "*")):
        window, period = key.rsplit(":", 2)[1:]
        rows = read_page(r, Board(GUESS, "100", window, period), 0, 100).rows
        held[window, period] = sorted(row.player_id for row in rows)
    return held


def test_a_rebuild_recreates_each_readable_board_from_the_log_and_no_other(redis_client):
    # One player a day, late on each of the 60 days before NOW (2036-11-20 00:00).
    apply_entries(redis_client, [entry(d, 5, NOW - d * DAY - 1) for d in range(60)], NOW)
    for window, period in boards_held(redis_client):  # every board lost: only the log is left
        board = Board(GUESS, "100", window, period)
        redis_client.delete(board.ranking_key, board.meta_key)
    redis_client.delete(keys.players_key("guess", "100"))
    assert boards_held(redis_client) == {}

    assert rebuild_family(redis_client, GUESS, "100", NOW) == 60
    held = boards_held(redis_client)
    days = {f"2036-11-{d}" for d in range(13, 20)}  # 2036-11-12 ended 7 days ago
    weeks = {f"2036-W{w}" for w in range(42, 48)}  # W41 ended more than 35 days ago
    assert set(held) == {("alltime", "all")} | {("daily", d) for d in days} | {
        ("weekly", w) for w in weeks
    }
    player = "player-{:012d}".format
    assert held[("alltime", "all")] == sorted(player(d) for d in range(60))
    assert held[("daily", "2036-11-19")] == [player(0)]
    assert held[("daily", "2036-11-13")] == [player(6)]
    assert held[("weekly", "2036-W47")] == sorted(player(d) for d in range(3))  # Mon-Wed
    assert held[("weekly", "2036-W46")] == sorted(player(d) for d in range(3, 10))


def test_a_rebuild_equals_the_boards_built_incrementally(redis_client):
    seeded(redis_client)
    boards = readable_boards(GUESS, "100", NOW)
    before = snapshot(redis_client, boards)
    for b in boards:  # wreck the caches: the log alone must bring them back
        redis_client.delete(b.ranking_key)
    redis_client.delete(keys.players_key("guess", "100"))
    progress = []
    read = rebuild_family(redis_client, GUESS, "100", NOW, lambda d, t: progress.append((d, t)))
    assert read == 400 and progress[-1] == (400, 400)
    after = snapshot(redis_client, boards)
    assert after == before
    assert sum(len(rows) for rows, _ in after.values()) > 60
    assert not redis_client.keys("*:build")


def _forge_score(r, board, victim):
    (member,) = [m for m in r.zrange(board.ranking_key, 0, -1) if m.endswith(victim)]
    r.zadd(board.ranking_key, {member: 77})


def _forge_tag(r, board, victim):
    players = keys.players_key("guess", "100")
    record = PlayerRecord.decode(r.hget(players, victim))
    tag, _ = board.tag
    r.hset(
        players, victim, PlayerRecord(record.name_at, record.name, {**record.tags, tag: 1}).encode()
    )


def _forge_sum(r, board, victim):
    r.hincrbyfloat(board.meta_key, "sum", 3)


@pytest.mark.parametrize("forge", [_forge_score, _forge_tag, _forge_sum])
def test_reconcile_finds_and_repairs_only_the_drifted_board(redis_client, forge):
    seeded(redis_client)
    boards = readable_boards(GUESS, "100", NOW)
    good = snapshot(redis_client, boards)
    sums = {b: redis_client.hget(b.meta_key, "sum") for b in boards}
    assert reconcile_family(redis_client, GUESS, "100", NOW) == []
    weekly = next(b for b in boards if b.window == "weekly" and good[b][0])
    victim = good[weekly][0][0].player_id
    forge(redis_client, weekly, victim)
    drifted = reconcile_family(redis_client, GUESS, "100", NOW)
    assert drifted == [weekly]
    assert snapshot(redis_client, boards) == good
    assert {b: redis_client.hget(b.meta_key, "sum") for b in boards} == sums
    assert reconcile_family(redis_client, GUESS, "100", NOW) == []


def test_reconcile_finds_a_forged_name_on_every_board_of_its_player(redis_client):
    seeded(redis_client)
    boards = readable_boards(GUESS, "100", NOW)
    good = snapshot(redis_client, boards)
    victim = good[boards[0]][0][0].player_id
    players = keys.players_key("guess", "100")
    record = PlayerRecord.decode(redis_client.hget(players, victim))
    redis_client.hset(players, victim, PlayerRecord(record.name_at, "forged", record.tags).encode())
    drifted = reconcile_family(redis_client, GUESS, "100", NOW)
    assert drifted == [b for b in boards if victim in {row.player_id for row in good[b][0]}]
    assert len(drifted) > 1
    assert snapshot(redis_client, boards) == good


def test_a_rebuild_skips_banned_players(redis_client):
    apply_entries(redis_client, [entry(1, 3, T0), entry(2, 4, T0)], NOW)
    redis_client.sadd(keys.banned_key("guess", "100"), "player-000000000001")
    rebuild_family(redis_client, GUESS, "100", NOW)
    rows = read_page(redis_client, readable_boards(GUESS, "100", NOW)[0], 0, 10).rows
    assert [(r.rank, r.player_id) for r in rows] == [(1, "player-000000000002")]


def test_prune_removes_exactly_the_entries_past_retention(redis_client):
    keep_days = GUESS.retention_days
    stale = [entry(1, 2, NOW - (keep_days + 1) * DAY), entry(2, 3, NOW - (keep_days + 30) * DAY)]
    fresh = [entry(1, 5, NOW - (keep_days - 1) * DAY), entry(3, 4, NOW - DAY)]
    apply_entries(redis_client, stale + fresh, NOW)
    deleted = prune_family(redis_client, GUESS, "100", NOW)
    assert deleted == 2
    log = redis_client.xrange(keys.log_key("guess", "100"))
    assert sorted(f["sid"] for _, f in log) == sorted(e.submission_id for e in fresh)
    assert sorted(redis_client.hkeys(keys.applied_key("guess", "100"))) == sorted(
        e.submission_id for e in fresh
    )
    alltime = read_page(redis_client, readable_boards(GUESS, "100", NOW)[0], 0, 10).rows
    # Player 1's old best (2) is gone with its entry; their newer 5 stands.
    assert [(r.player_id[-1], r.score) for r in alltime] == [("3", 4), ("1", 5)]
    assert prune_family(redis_client, GUESS, "100", NOW) == 0


def test_a_ban_during_a_rebuild_survives_the_swap(redis_client):
    from app.leaderboard.players import remove_player
    from app.leaderboard.rebuild import FamilyBuild

    apply_entries(redis_client, [entry(1, 3, T0), entry(2, 4, T0)], NOW)
    boards = readable_boards(GUESS, "100", NOW)
    build = FamilyBuild(redis_client, GUESS, "100", boards, NOW).start()
    build.read_on()  # the copies now hold player 1 ...
    remove_player(redis_client, GUESS, "player-000000000001", NOW)  # ... who is banned now
    build.finish()
    rows = read_page(redis_client, boards[0], 0, 10).rows
    assert [r.player_id for r in rows] == ["player-000000000002"]
