"""One clock for the web, the worker's tasks and the commands; and the windows at any date.

The window tests below run twice: today, and with the clock stopped ten years from now, where
fakeredis expires keys by the stopped clock too. Nothing here may depend on the real date.
"""

import json

import pytest

from app.clock import iso_time, now_ms
from app.leaderboard.boards import Board, apply_entries, read_page
from app.leaderboard.maintenance import read_beat_runs
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.leaderboard.stats import read_stats
from app.leaderboard.windows import period_end_ms, period_of
from app.storage import keys, operations
from tests.cases import GOOD, NOW, noon_utc
from tests.conftest import record_of, stream_entries
from tests.unit.test_boards import DAY, GUESS, entry

# Ten years (3,652 days, leap days included) from the real now, to the second.
TEN_YEARS_ON = (now_ms() // 1000 + 3652 * 86_400) * 1000


@pytest.fixture(params=[NOW, TEN_YEARS_ON], ids=["today", "in-ten-years"])
def instant(request) -> int:
    return request.param


def ranked(r, board):
    return [(row.rank, row.player_id[-3:], row.score) for row in read_page(r, board, 0, 100).rows]


def test_an_entry_lands_on_todays_and_this_weeks_boards_and_ranks_there(redis_client, clock):
    (first,) = apply_entries(redis_client, [entry(1, 6, clock.now)], clock.now)
    (better,) = apply_entries(redis_client, [entry(2, 4, clock.now)], clock.now)
    assert first.ranks == better.ranks == {"alltime": 1, "daily": 1, "weekly": 1}
    for window in ("alltime", "daily", "weekly"):
        board = Board(GUESS, "100", window, period_of(window, clock.now))
        assert ranked(redis_client, board) == [(1, "002", 4), (2, "001", 6)], window
    # Yesterday's and last week's boards got nothing.
    for window, back in (("daily", DAY), ("weekly", 7 * DAY)):
        board = Board(GUESS, "100", window, period_of(window, clock.now - back))
        assert ranked(redis_client, board) == [], window


@pytest.mark.parametrize("window", ["daily", "weekly"])
def test_a_finished_period_stays_readable_until_its_retention_then_expires(
    redis_client, clock, window
):
    apply_entries(redis_client, [entry(1, 5, clock.now)], clock.now)
    board = Board(GUESS, "100", window, period_of(window, clock.now))
    ends = period_end_ms(window, board.period)
    kept = {"daily": GUESS.daily_retention_days, "weekly": GUESS.weekly_retention_days}[window]

    clock.move_to(ends)  # the period is over: it is no longer the current one ...
    assert period_of(window, clock.now) != board.period
    assert ranked(redis_client, board) == [(1, "001", 5)]  # ... and still readable
    expires = ends + kept * DAY
    assert redis_client.pexpiretime(board.ranking_key) == expires
    clock.move_to(expires - 1)
    assert ranked(redis_client, board) == [(1, "001", 5)]
    assert board in readable_boards(GUESS, "100", clock.now)

    clock.advance(2)  # its retention is over (Redis drops a key once its expiry has passed)
    assert ranked(redis_client, board) == []
    assert not redis_client.exists(board.ranking_key, board.meta_key)
    assert board not in readable_boards(GUESS, "100", clock.now)
    # The all-time board keeps the entry.
    assert ranked(redis_client, Board(GUESS, "100")) == [(1, "001", 5)]


def test_a_rebuild_brings_back_todays_and_this_weeks_boards(redis_client, clock):
    apply_entries(redis_client, [entry(p, p + 2, clock.now - p) for p in range(1, 4)], clock.now)
    boards = [Board(GUESS, "100", w, period_of(w, clock.now)) for w in ("daily", "weekly")]
    before = {b: (ranked(redis_client, b), redis_client.pexpiretime(b.ranking_key)) for b in boards}
    for board in boards:
        redis_client.delete(board.ranking_key, board.meta_key)
    assert rebuild_family(redis_client, GUESS, "100", clock.now) == 3
    after = {b: (ranked(redis_client, b), redis_client.pexpiretime(b.ranking_key)) for b in boards}
    assert after == before
    assert all(len(rows) == 3 and expiry > clock.now for rows, expiry in after.values())


def test_the_web_ranks_a_score_on_the_daily_board_of_its_day(client, work, clock):
    resp = client.post("/api/v1/games/guess-claimed/scores", json=GOOD)
    assert resp.status_code == 202
    work()
    daily = client.get("/api/v1/games/guess-claimed/boards/10?window=daily").get_json()
    assert daily["period"] == period_of("daily", clock.now)
    assert [(e["rank"], e["name"]) for e in daily["entries"]] == [(1, "Ann")]
    assert daily["entries"][0]["achieved_at"] == iso_time(clock.now)


# Two days before the real today: another day than the real one, and one whose daily board
# Redis still keeps by the real clock (no time travel in what follows).
PINNED = noon_utc(now_ms()) - 2 * DAY


@pytest.fixture
def pinned(app) -> int:
    """The app's clock stopped at :data:`PINNED`; the process's own clock left alone."""
    app.config["CLOCK"] = lambda: PINNED
    return PINNED


def test_the_web_takes_the_time_from_the_apps_clock(client, redis_client, work, pinned):
    session = client.post("/api/v1/games/guess-claimed/sessions", json={"variant": "10"}).get_json()
    assert session["token_expires_at"] == iso_time(pinned + 2 * 3600 * 1000)

    resp = client.post("/api/v1/games/guess-claimed/scores", json=GOOD)
    assert resp.status_code == 202
    ((_, fields),) = stream_entries(redis_client)
    assert json.loads(fields["p"])["received_at"] == pinned
    work()  # by the app's clock too

    status = client.get(resp.get_json()["status_url"]).get_json()
    assert status["status"] == "accepted" and status["achieved_at"] == iso_time(pinned)
    daily = client.get("/api/v1/games/guess-claimed/boards/10?window=daily").get_json()
    assert daily["period"] == period_of("daily", pinned) != period_of("daily", now_ms())
    assert [e["name"] for e in daily["entries"]] == ["Ann"]
    real_today = period_of("daily", now_ms())
    url = f"/api/v1/games/guess-claimed/boards/10?window=daily&period={real_today}"
    assert client.get(url).get_json()["total"] == 0


def test_the_tasks_take_the_time_from_the_apps_clock(app, client, redis_client, pinned):
    from app.worker.tasks import drain, stats

    resp = client.post("/api/v1/games/guess-claimed/scores", json=GOOD)
    with app.app_context():
        drain.apply()
        stats.apply()
    sid = resp.get_json()["submission_id"]
    # Stored in the generation of the app's time, two days before the real one: a read by the
    # real clock looks only at the last day's generations.
    assert record_of(redis_client, sid, now=pinned)["status"] == "accepted"
    assert record_of(redis_client, sid, now=now_ms()) is None
    run = read_beat_runs(redis_client)["stats"]
    assert (run["started_at"], run["finished_at"]) == (pinned, pinned)
    day = Board(GUESS, "10", "daily", period_of("daily", pinned))
    assert read_stats(redis_client, day)["computed_at"] == pinned


def test_the_commands_take_the_time_from_the_apps_clock(runner, redis_client, pinned):
    result = runner.invoke(args=["seed-demo", "--players", "3", "--games", "2", "--days", "1"])
    assert result.exit_code == 0, result.output
    log = [f for v in GUESS.variants for _, f in redis_client.xrange(keys.log_key("guess", v))]
    assert len(log) == 6
    assert all(pinned - DAY <= int(f["at"]) <= pinned for f in log)

    result = runner.invoke(args=["rebuild", "--game", "guess", "--variant", "10"])
    assert result.exit_code == 0, result.output
    (task_key,) = redis_client.keys(keys.task_key("*"))
    task = operations.read_task(redis_client, task_key.rsplit(":", 1)[1])
    assert (task["created_at"], task["started_at"], task["finished_at"]) == (pinned,) * 3
