"""The reads of SPEC §11 over the HTTP API: a game's settings and period ends, the windows a
game has, periods, shown ranks, subscores, metadata, percentiles and lookups of many players."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import create_app
from app.clock import iso_time
from app.leaderboard.boards import Board
from app.leaderboard.windows import DAY_MS
from config import celery_settings
from tests.hand_boards import Spot, expected, lay

# Noon of Wednesday 2036-11-19 (ISO week 47); the rich game's third weekly season runs from
# Monday 2036-11-17 to Monday 2036-11-24.
T0 = int(datetime(2036, 11, 19, 12, tzinfo=UTC).timestamp() * 1000)

GAMES = """
[games.rich]
title = "Rich"
order = "higher"
score_min = 0
score_max = 1000
keep = "sum"
subscore_order = "lower"
metadata_max_bytes = 128
windows = ["alltime", "daily", "weekly", "monthly", "season"]
season = { every = "7d", starts_at = "2036-11-03T00:00:00Z" }
ties = "competition"
format = "decimal:1"
unit = "m"
monthly_retention_days = 40
season_retention_days = 10

[games.dense]
order = "lower"
ties = "dense"
format = "time_ms"

[games.early]
windows = ["alltime", "season"]
season = { every = "14d", starts_at = "2037-01-05T00:00:00Z" }
"""

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return T0


@pytest.fixture
def app(redis_client, tmp_path):
    games = tmp_path / "games.toml"
    games.write_text(GAMES)
    return create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(games),
        },
    )


@pytest.fixture
def registry(app):
    return app.extensions["hiscore.games"]


def board_of(registry, slug, window="alltime", period="all", variant="default") -> Board:
    return Board(registry.get(slug), variant, window, period)


API = "/api/v1/games"


def test_a_game_tells_its_settings_and_when_each_current_period_ends(client):
    rich = client.get(f"{API}/rich").get_json()
    assert {key: rich[key] for key in ("keep", "ties", "format", "unit")} == {
        "keep": "sum",
        "ties": "competition",
        "format": "decimal:1",
        "unit": "m",
    }
    assert (rich["subscore_order"], rich["metadata_max_bytes"]) == ("lower", 128)
    assert rich["windows"] == ["alltime", "daily", "weekly", "monthly", "season"]
    assert rich["ends_at"] == {
        "alltime": None,
        "daily": "2036-11-20T00:00:00.000Z",
        "weekly": "2036-11-24T00:00:00.000Z",
        "monthly": "2036-12-01T00:00:00.000Z",
        "season": "2036-11-24T00:00:00.000Z",
    }
    # Before its first season, a season window's current period ends when that season begins.
    early = client.get(f"{API}/early").get_json()
    assert early["ends_at"] == {"alltime": None, "season": "2037-01-05T00:00:00.000Z"}
    assert early["windows"] == ["alltime", "season"]
    dense = client.get(f"{API}/dense").get_json()
    assert (dense["subscore_order"], dense["keep"], dense["ties"]) == (None, "best", "dense")
    assert dense["windows"] == ["alltime", "daily", "weekly"]


def test_the_list_of_games_describes_each_as_its_own_page_does(client):
    games = {game["slug"]: game for game in client.get(API).get_json()["games"]}
    for slug in ("rich", "dense", "early", "guess"):
        assert games[slug] == client.get(f"{API}/{slug}").get_json()
    assert games["guess"]["windows"] == ["alltime", "daily", "weekly"]
    assert games["guess"]["ends_at"]["alltime"] is None


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/dense/boards/default?window=monthly", "window"),
        ("/dense/boards/default?window=season", "window"),
        ("/dense/boards/default/players/player-0000000001?window=monthly", "window"),
        ("/dense/boards/default/stats?window=season", "window"),
        ("/dense/boards/default/periods?window=monthly", "window"),
        ("/early/boards/default?window=daily", "window"),
        ("/rich/boards/default?window=yearly", "window"),
        ("/rich/boards/default?window=monthly&period=2036-13", "period"),
        ("/rich/boards/default?window=monthly&period=2036-11-01", "period"),
        ("/rich/boards/default?window=season&period=S0", "period"),
        ("/rich/boards/default?window=season&period=2036-11", "period"),
        ("/rich/boards/default?metadata=maybe", "metadata"),
    ],
)
def test_a_window_the_game_does_not_have_or_a_bad_period_is_a_400(client, redis_client, url, field):
    resp = client.get(API + url)
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    assert list(resp.get_json()["errors"]) == [field]
    assert redis_client.keys("*") == []


def test_monthly_and_season_periods_are_read_by_label(client, redis_client, registry):
    for window, period in (("monthly", "2036-10"), ("season", "S2"), ("season", "S3")):
        board = board_of(registry, "rich", window, period)
        start = board.achieved_range()[0]
        lay(redis_client, board, [Spot(1, 50, start + 1, 0)])
    current = client.get(f"{API}/rich/boards/default?window=season").get_json()
    assert (current["period"], current["total"]) == ("S3", 1)
    old = client.get(f"{API}/rich/boards/default?window=season&period=S2").get_json()
    assert (old["period"], old["entries"][0]["score"]) == ("S2", 50)
    month = client.get(f"{API}/rich/boards/default?window=monthly&period=2036-10").get_json()
    assert (month["period"], month["total"]) == ("2036-10", 1)
    now = client.get(f"{API}/rich/boards/default?window=monthly").get_json()
    assert (now["period"], now["total"]) == ("2036-11", 0)


def test_before_the_first_season_the_season_board_is_the_first_seasons_and_empty(client):
    board = client.get(f"{API}/early/boards/default?window=season").get_json()
    assert (board["period"], board["total"], board["entries"]) == ("S1", 0, [])
    standing = client.get(f"{API}/early/boards/default/players/player-0000000001?window=season")
    assert standing.status_code == 404
    periods = client.get(f"{API}/early/boards/default/periods?window=season").get_json()
    assert periods["periods"] == []


def test_rows_show_shared_ranks_and_subscores(client, redis_client, registry):
    board = board_of(registry, "rich")
    spots = [Spot(1, 90, 5, 2), Spot(2, 90, 7, 1), Spot(3, 90, 6, 1), Spot(4, 40, 1, 0)]
    lay(redis_client, board, spots)
    page = client.get(f"{API}/rich/boards/default?limit=10").get_json()
    assert [
        (e["player_id"][-1], e["rank"], e["score"], e["subscore"]) for e in page["entries"]
    ] == [
        ("3", 1, 90, 1),
        ("2", 1, 90, 1),
        ("1", 3, 90, 2),
        ("4", 4, 40, 0),
    ]
    assert all("metadata" not in e for e in page["entries"])
    middle = client.get(f"{API}/rich/boards/default?offset=1&limit=2").get_json()
    assert [e["rank"] for e in middle["entries"]] == [1, 3]


def test_dense_ranks_and_no_subscore_field_in_a_game_without_one(client, redis_client, registry):
    board = board_of(registry, "dense")
    spots = [Spot(1, 300, 1), Spot(2, 300, 2), Spot(3, 450, 3), Spot(4, 500, 4), Spot(5, 500, 5)]
    lay(redis_client, board, spots)
    entries = client.get(f"{API}/dense/boards/default").get_json()["entries"]
    assert [e["rank"] for e in entries] == [1, 1, 2, 3, 3]
    assert all(set(e) == {"rank", "player_id", "name", "score", "achieved_at"} for e in entries)


def test_metadata_is_answered_when_asked(client, redis_client, registry):
    board = board_of(registry, "rich")
    lay(redis_client, board, [Spot(1, 80, 5, 0, '{"plane":"dart","wind":-2}'), Spot(2, 70, 6, 0)])
    for flag in ("1", "true"):
        page = client.get(f"{API}/rich/boards/default?metadata={flag}").get_json()
        assert [e["metadata"] for e in page["entries"]] == [{"plane": "dart", "wind": -2}, None]
    plain = client.get(f"{API}/rich/boards/default?metadata=0").get_json()
    assert all("metadata" not in e for e in plain["entries"])
    pid = Spot(2, 0, 0).player_id
    standing = client.get(f"{API}/rich/boards/default/players/{pid}?around=1&metadata=1")
    body = standing.get_json()
    assert body["metadata"] is None and body["subscore"] == 0
    assert [n["metadata"] for n in body["neighbours"]] == [{"plane": "dart", "wind": -2}, None]


@pytest.mark.parametrize("slug", ["rich", "dense"])
def test_a_standing_has_its_percentile_and_the_boards_total(client, redis_client, registry, slug):
    board = board_of(registry, slug)
    sub = 0 if board.game.sub_sign else None
    spots = [Spot(n, score, n, sub) for n, score in enumerate([100, 100, 200, 300, 300, 300, 400])]
    lay(redis_client, board, spots)
    for pid, rank, share in expected(board.game, spots):
        body = client.get(f"{API}/{slug}/boards/default/players/{pid}").get_json()
        assert (body["rank"], body["percentile"], body["total"]) == (rank, share, 7), pid
        assert ("subscore" in body) == (slug == "rich")
        assert "metadata" not in body


def test_the_periods_of_each_window_newest_first(client, registry):
    def periods(window, slug="rich"):
        body = client.get(f"{API}/{slug}/boards/default/periods?window={window}").get_json()
        assert (body["game"], body["variant"], body["window"]) == (slug, "default", window)
        return [(p["period"], p["starts_at"], p["ends_at"]) for p in body["periods"]]

    assert periods("alltime") == [("all", None, None)]
    daily = periods("daily")
    assert daily[0] == ("2036-11-19", "2036-11-19T00:00:00.000Z", "2036-11-20T00:00:00.000Z")
    assert len(daily) == 8  # today and the 7 days of daily_retention_days before it
    assert daily[-1][0] == "2036-11-12"
    assert [p[0] for p in daily] == sorted((p[0] for p in daily), reverse=True)
    assert all(p[2] == q[1] for p, q in zip(daily[1:], daily, strict=False))
    weekly = periods("weekly")
    assert weekly[0] == ("2036-W47", "2036-11-17T00:00:00.000Z", "2036-11-24T00:00:00.000Z")
    assert weekly[-1][0] == "2036-W42"  # ended 2036-10-20, less than 35 days ago
    assert periods("monthly") == [
        ("2036-11", "2036-11-01T00:00:00.000Z", "2036-12-01T00:00:00.000Z"),
        ("2036-10", "2036-10-01T00:00:00.000Z", "2036-11-01T00:00:00.000Z"),
    ]
    assert periods("season") == [
        ("S3", "2036-11-17T00:00:00.000Z", "2036-11-24T00:00:00.000Z"),
        ("S2", "2036-11-10T00:00:00.000Z", "2036-11-17T00:00:00.000Z"),
        ("S1", "2036-11-03T00:00:00.000Z", "2036-11-10T00:00:00.000Z"),  # ended 9.5 days ago
    ]
    # Each period listed is one the board reads by its label.
    for window in ("daily", "weekly", "monthly", "season"):
        for label, _, _ in periods(window):
            board = client.get(f"{API}/rich/boards/default?window={window}&period={label}")
            assert board.get_json()["period"] == label


def test_a_season_board_stays_listed_its_retention_after_it_ends(client, clock):
    clock.move_to(T0 + 15 * DAY_MS)  # 2036-12-04: S5 runs, S3 ended 10 days ago
    body = client.get(f"{API}/rich/boards/default/periods?window=season").get_json()
    assert [p["period"] for p in body["periods"]] == ["S5", "S4"]
    assert body["periods"][0]["starts_at"] == iso_time(
        int(datetime(2036, 12, 1, tzinfo=UTC).timestamp() * 1000)
    )


def lookup(client, slug, body, **kwargs):
    return client.post(f"{API}/{slug}/boards/default/lookup", json=body, **kwargs)


def test_a_lookup_answers_the_players_rows_best_first_with_whole_board_ranks(
    client, redis_client, registry
):
    board = board_of(registry, "rich")
    spots = [Spot(n, score, n, 0) for n, score in enumerate([900, 700, 700, 700, 300, 100])]
    lay(redis_client, board, spots)
    asked = [spots[5].player_id, "nobody-at-all-here", spots[2].player_id, spots[3].player_id]
    body = lookup(client, "rich", {"player_ids": asked}).get_json()
    assert [(r["player_id"], r["rank"], r["score"]) for r in body["rows"]] == [
        (spots[2].player_id, 2, 700),
        (spots[3].player_id, 2, 700),
        (spots[5].player_id, 6, 100),
    ]
    assert body["missing"] == ["nobody-at-all-here"]
    assert (body["total"], body["window"], body["period"]) == (6, "alltime", "all")
    assert body["updated_at"] == iso_time(1234)
    assert all(
        set(r) == {"rank", "player_id", "name", "score", "achieved_at", "subscore"}
        for r in body["rows"]
    )
    with_meta = lookup(client, "rich", {"player_ids": asked[:1], "metadata": True}).get_json()
    assert with_meta["rows"][0]["metadata"] is None


def test_a_lookup_reads_a_window_and_period(client, redis_client, registry):
    board = board_of(registry, "rich", "season", "S2")
    start = board.achieved_range()[0]
    lay(redis_client, board, [Spot(1, 10, start, 0)])
    pid = Spot(1, 0, 0).player_id
    body = lookup(client, "rich", {"player_ids": [pid], "window": "season", "period": "S2"})
    assert [r["player_id"] for r in body.get_json()["rows"]] == [pid]
    now = lookup(client, "rich", {"player_ids": [pid], "window": "season"}).get_json()
    assert (now["period"], now["rows"], now["missing"]) == ("S3", [], [pid])


def test_a_lookup_of_a_hundred_players_is_one_redis_call(
    client, redis_client, registry, monkeypatch
):
    board = board_of(registry, "dense")
    spots = [Spot(n, n % 7, n) for n in range(120)]
    lay(redis_client, board, spots)
    asked = [spot.player_id for spot in spots[:100]]
    lookup(client, "dense", {"player_ids": asked[:1]})  # loads the script
    sent = []
    command = redis_client.execute_command
    monkeypatch.setattr(
        redis_client, "execute_command", lambda *a, **k: sent.append(a[0]) or command(*a, **k)
    )
    body = lookup(client, "dense", {"player_ids": asked}).get_json()
    assert sent == ["EVALSHA"]
    assert len(body["rows"]) == 100 and body["missing"] == []
    want = [(pid, rank) for pid, rank, _ in expected(board.game, spots) if pid in set(asked)]
    assert [(r["player_id"], r["rank"]) for r in body["rows"]] == want


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"player_ids": [f"player-{n:010d}" for n in range(101)]}, "player_ids"),
        ({"player_ids": []}, "player_ids"),
        ({}, "player_ids"),
        ({"player_ids": ["short"]}, "player_ids"),
        ({"player_ids": "player-0000000001"}, "player_ids"),
        ({"player_ids": ["player-0000000001"], "window": "monthly"}, "window"),
        ({"player_ids": ["player-0000000001"], "window": "season", "period": "2036"}, "period"),
        ({"player_ids": ["player-0000000001"], "limit": 5}, "limit"),
        ({"player_ids": ["player-0000000001"], "metadata": "yes"}, "metadata"),
    ],
)
def test_a_bad_lookup_is_a_400_naming_the_field(client, redis_client, body, field):
    slug = "dense" if field == "window" else "rich"
    resp = lookup(client, slug, body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    assert list(resp.get_json()["errors"]) == [field]
    assert redis_client.keys("*") == []


def test_a_lookup_must_be_json_of_a_known_board(client):
    assert client.post(f"{API}/rich/boards/default/lookup", data="x").status_code == 415
    resp = client.post(
        f"{API}/rich/boards/default/lookup", data="{", content_type="application/json"
    )
    assert resp.status_code == 400
    assert lookup(client, "chess", {"player_ids": ["player-0000000001"]}).status_code == 404
    resp = client.post(f"{API}/rich/boards/other/lookup", json={"player_ids": ["x" * 16]})
    assert resp.status_code == 404
