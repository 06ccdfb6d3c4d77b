"""Scores travel over real HTTP, through the Redis broker and a real Celery worker, to boards
that match a ranking computed here independently."""

from __future__ import annotations

import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from app.storage import keys
from tests.processes import Stack

VARIANTS = ["10", "25", "100", "1000"]
DAY = 86_400_000


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def week_of(ms: int) -> str:
    year, week, _ = datetime.fromtimestamp(ms / 1000, UTC).date().isocalendar()
    return f"{year}-W{week:02d}"


def expected_boards(accepted: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[tuple]]:
    """Rank accepted games by hand: best score per player, earlier achievement first on ties;
    each row shows the name of its player's latest game of the variant (of two at the same
    ms, the greater name)."""
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for game in accepted:
        mine = (game["variant"], game["player_id"])
        latest[mine] = max(latest.get(mine, (-1, "")), (game["achieved_at"], game["name"]))
    best: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for game in accepted:
        at = game["achieved_at"]
        for window, period in (("alltime", "all"), ("daily", day_of(at)), ("weekly", week_of(at))):
            rows = best[(game["variant"], window, period)]
            mine = rows.get(game["player_id"])
            if mine is None or (game["score"], at) < (mine["score"], mine["achieved_at"]):
                rows[game["player_id"]] = game
    boards = {}
    for board, rows in best.items():
        ordered = sorted(
            rows.values(), key=lambda g: (g["score"], g["achieved_at"], g["player_id"])
        )
        boards[board] = [
            (
                rank,
                g["player_id"],
                latest[g["variant"], g["player_id"]][1],
                g["score"],
                g["achieved_at"],
            )
            for rank, g in enumerate(ordered, 1)
        ]
    return boards


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def read_board(stack: Stack, variant: str, window: str, period: str) -> list[tuple]:
    rows, offset = [], 0
    while True:
        page = requests.get(
            stack.url(f"/api/v1/games/guess-claimed/boards/{variant}"),
            params={"window": window, "period": period, "limit": 100, "offset": offset},
            timeout=10,
        ).json()
        rows += [
            (
                e["rank"],
                e["player_id"],
                e["name"],
                e["score"],
                int(datetime.fromisoformat(e["achieved_at"]).timestamp() * 1000),
            )
            for e in page["entries"]
        ]
        offset += 100
        if offset >= page["total"]:
            assert len(rows) == page["total"]
            return rows


def assert_boards_match(stack: Stack, accepted: list[dict[str, Any]]) -> int:
    expected = expected_boards(accepted)
    for (variant, window, period), rows in expected.items():
        assert read_board(stack, variant, window, period) == rows, (variant, window, period)
    return len(expected)


def test_a_thousand_games_from_a_hundred_players(live):
    rng = random.Random(2026)
    http = requests.Session()
    players = []
    for i in range(100):
        # No cookie jar: each sign-up is a new browser, so a new player.
        resp = requests.post(live.url("/api/v1/games/guess-claimed/sessions"), json={}, timeout=10)
        assert resp.status_code == 201
        name = rng.choice(["Ann", "Bo", "Zoë", "名前", "a:b", "{x}", "*"]) + f" {i}"
        players.append((resp.json()["player_id"], resp.json()["player_key"], name))
    assert len({player_id for player_id, _, _ in players}) == 100

    games = []
    for _ in range(1000):
        player_id, key, name = rng.choice(players)
        variant = rng.choice(VARIANTS)
        score = rng.randint(1, min(int(variant), 12))
        games.append(
            {
                "player_id": player_id,
                "player_key": key,
                "name": name,
                "variant": variant,
                "score": score,
                "duration_ms": score * 700,
            }
        )

    def submit(game: dict[str, Any]) -> dict[str, Any]:
        resp = requests.post(live.url("/api/v1/games/guess-claimed/scores"), json=game, timeout=30)
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "queued"
        return {**game, "submission_id": resp.json()["submission_id"]}

    def settle(game: dict[str, Any]) -> dict[str, Any]:
        verdict = live.verdict(game["submission_id"])
        assert verdict["status"] == "accepted", verdict
        return {**game, "achieved_at": epoch_ms(verdict["achieved_at"])}

    with ThreadPoolExecutor(16) as pool:
        submitted = list(pool.map(submit, games))
        accepted = list(pool.map(settle, submitted))

    boards = assert_boards_match(live, accepted)
    assert boards >= 12  # four variants, each on all three windows

    # The log holds every accepted entry exactly once.
    for variant in VARIANTS:
        in_log = live.data.xrange(keys.log_key("guess-claimed", variant))
        sent = sorted(g["submission_id"] for g in accepted if g["variant"] == variant)
        assert sorted(fields["sid"] for _, fields in in_log) == sent

    # A player's standing agrees with the board around them.
    ranked = expected_boards(accepted)[("100", "alltime", "all")]
    for rank, player_id, _name, score, _at in ranked[:: max(1, len(ranked) // 7)]:
        body = http.get(
            live.url(f"/api/v1/games/guess-claimed/boards/100/players/{player_id}"),
            params={"around": 2},
            timeout=10,
        ).json()
        assert (body["rank"], body["score"]) == (rank, score)
        neighbours = [(n["rank"], n["player_id"]) for n in body["neighbours"]]
        assert neighbours == [(r, p) for r, p, *_ in ranked[max(0, rank - 3) : rank + 2]]


def test_games_fall_into_the_windows_of_their_own_time(live):
    """Messages dated over the past days, sent straight to the broker, rank per day and week."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    rng = random.Random(7)
    games = []
    for i in range(300):
        games.append(
            {
                "game": "guess-claimed",
                "variant": "25",
                "player_id": f"player-{rng.randrange(40):015d}",
                "name": f"P{i % 40}",
                "score": rng.randint(1, 25),
                "duration_ms": 30_000,
                "token": None,
                "submission_id": f"dated-{i:06d}",
                "received_at": now - rng.randrange(5 * DAY),
            }
        )
    for game in games:
        live.send(game)
    accepted = []
    for game in games:
        verdict = live.verdict(game["submission_id"])
        assert verdict["status"] == "accepted"
        assert epoch_ms(verdict["achieved_at"]) == game["received_at"]
        accepted.append({**game, "achieved_at": game["received_at"]})
    # A player's name differs between games here: a row shows the name of the latest game.
    assert assert_boards_match(live, accepted) >= 1 + 5 + 1


def test_a_repeated_submission_over_http_is_one_entry(live):
    body = {
        "name": "Ann",
        "score": 3,
        "variant": "10",
        "duration_ms": 4000,
        "submission_id": "same-game-twice",
    }
    first = requests.post(live.url("/api/v1/games/guess-claimed/scores"), json=body, timeout=10)
    assert live.verdict("same-game-twice")["status"] == "accepted"
    second = requests.post(live.url("/api/v1/games/guess-claimed/scores"), json=body, timeout=10)
    assert first.status_code == second.status_code == 202
    assert second.json()["status"] == "accepted"  # the retry learns the verdict at once
    assert live.data.xlen(keys.log_key("guess-claimed", "10")) == 1
