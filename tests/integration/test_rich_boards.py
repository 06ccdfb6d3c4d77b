"""Games of SPEC §11 over real HTTP, through the broker and a real Celery worker: a best score
with a subscore ranked lower first and dense ranks (``rich``), and totals with a subscore
ranked higher first and competition ranks (``tally``), both with metadata on all five windows;
each board, standing, lookup and list of periods against what is computed here."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import requests

from app.leaderboard.games import Game, load_registry
from app.leaderboard.windows import period_of
from tests.processes import TEST_GAMES

REGISTRY = load_registry(str(TEST_GAMES))


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def kept_row(game: Game, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A player's row on one board, by the game's keep rule: the best entry (score, then
    subscore, then time), the latest (of two at one ms, the better), or the sums of the scores
    and subscores at the latest entry. It shows the metadata of its (time, player): of two
    entries at one ms, the greater compact text."""
    if game.keep == "sum":
        at = max(e["achieved_at"] for e in entries)
        score, sub = sum(e["score"] for e in entries), sum(e["subscore"] for e in entries)
    else:
        best = min(
            entries,
            key=lambda e: (
                -e["achieved_at"] if game.keep == "latest" else 0,
                game.sign * e["score"],
                game.sub_sign * e["subscore"],
                e["achieved_at"],
            ),
        )
        at, score, sub = best["achieved_at"], best["score"], best["subscore"]
    text = max(e["metadata_text"] for e in entries if e["achieved_at"] == at)
    return {"score": score, "subscore": sub, "at": at, "metadata": json.loads(text)}


def expected_boards(game: Game, accepted: list[dict[str, Any]]) -> dict[tuple[str, str], list]:
    """Every board by hand: (shown rank, player id, score, subscore, metadata) per row, in
    board order; dense ranks count the better values, competition ranks the better rows."""
    entries: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for entry in accepted:
        for window in game.windows:
            period = period_of(window, entry["achieved_at"], game.season)
            entries[(window, period)][entry["player_id"]].append(entry)
    boards = {}
    for board, players in entries.items():
        rows = {pid: kept_row(game, mine) for pid, mine in players.items()}

        def value(row: dict[str, Any]) -> tuple[int, int]:
            return (game.sign * row["score"], game.sub_sign * row["subscore"])

        ordered = sorted(rows.items(), key=lambda p: (*value(p[1]), p[1]["at"], p[0]))
        values = sorted({value(row) for row in rows.values()})
        shown = []
        for pid, row in ordered:
            if game.ties == "dense":
                rank = values.index(value(row)) + 1
            else:
                rank = 1 + sum(value(other) < value(row) for other in rows.values())
            shown.append((rank, pid, row["score"], row["subscore"], row["metadata"]))
        boards[board] = shown
    return boards


def read_board(live, game: Game, window: str, period: str) -> list[tuple]:
    page = requests.get(
        live.url(f"/api/v1/games/{game.slug}/boards/default"),
        params={"window": window, "period": period, "limit": 100, "metadata": 1},
        timeout=10,
    ).json()
    assert len(page["entries"]) == page["total"]
    return [
        (e["rank"], e["player_id"], e["score"], e["subscore"], e["metadata"])
        for e in page["entries"]
    ]


@pytest.mark.parametrize("slug", ["rich", "tally", "recent"])
def test_a_rich_game_over_http(live, slug):
    game = REGISTRY.get(slug)
    api = f"/api/v1/games/{slug}"
    rng = random.Random(slug)
    players = []
    for _ in range(12):
        resp = requests.post(live.url(f"{api}/sessions"), json={}, timeout=10)
        assert resp.status_code == 201
        players.append((resp.json()["player_id"], resp.json()["player_key"]))
    entries = []
    for n, (player_id, key) in enumerate(players):
        # Few scores and subscores, so that players share ranks.
        for throw in range(rng.choice([1, 1, 2, 3])):
            entries.append(
                {
                    "player_id": player_id,
                    "player_key": key,
                    "name": f"Pilot {n}",
                    "variant": "default",
                    "score": rng.choice([10, 20]),
                    "subscore": rng.choice([1, 1, 2]),
                    "metadata": {"plane": rng.choice(["dart", "glider"]), "throw": throw},
                }
            )

    def submit(entry: dict[str, Any]) -> dict[str, Any]:
        resp = requests.post(live.url(f"{api}/scores"), json=entry, timeout=30)
        assert resp.status_code == 202, resp.text
        return {**entry, "submission_id": resp.json()["submission_id"]}

    def settle(entry: dict[str, Any]) -> dict[str, Any]:
        verdict = live.verdict(entry["submission_id"])
        assert verdict["status"] == "accepted", verdict
        text = json.dumps(entry["metadata"], separators=(",", ":"))
        return {**entry, "achieved_at": epoch_ms(verdict["achieved_at"]), "metadata_text": text}

    with ThreadPoolExecutor(8) as pool:
        accepted = list(pool.map(settle, list(pool.map(submit, entries))))

    boards = expected_boards(game, accepted)
    assert {window for window, _ in boards} == set(game.windows)
    for (window, period), rows in boards.items():
        assert read_board(live, game, window, period) == rows, (window, period)
    alltime = boards[("alltime", "all")]
    assert len({rank for rank, *_ in alltime}) < len(alltime)  # some ranks are shared

    # A standing: the player's shown rank, and the share of the board ranked below it.
    total = len(alltime)
    for rank, player_id, score, sub, _meta in alltime:
        standing = requests.get(
            live.url(f"{api}/boards/default/players/{player_id}"), timeout=10
        ).json()
        mine = (game.sign * score, game.sub_sign * sub)
        below = sum((game.sign * s, game.sub_sign * b) > mine for _, _, s, b, _ in alltime)
        assert (standing["rank"], standing["score"], standing["subscore"]) == (rank, score, sub)
        assert (standing["percentile"], standing["total"]) == (round(100 * below / total, 1), total)

    # A friends board on the current season: some players and an unknown id, in one request.
    friends = [player_id for player_id, _ in players[::3]] + ["nobody-at-all-here"]
    body = requests.post(
        live.url(f"{api}/boards/default/lookup"),
        json={"player_ids": friends, "window": "season"},
        timeout=10,
    ).json()
    season = requests.get(
        live.url(f"{api}/boards/default/periods"), params={"window": "season"}, timeout=10
    ).json()["periods"][0]["period"]  # the current season (entries made now are all in it)
    wanted = [(rank, pid) for rank, pid, *_ in boards[("season", season)] if pid in set(friends)]
    assert [(r["rank"], r["player_id"]) for r in body["rows"]] == wanted
    assert body["missing"] == ["nobody-at-all-here"]
    assert (body["period"], body["total"]) == (season, len(boards[("season", season)]))
    too_many = requests.post(
        live.url(f"{api}/boards/default/lookup"),
        json={"player_ids": [f"player-{n:012d}" for n in range(101)]},
        timeout=10,
    )
    assert too_many.status_code == 400
    assert list(too_many.json()["errors"]) == ["player_ids"]

    # The game's settings, and each board's period among the readable ones of its window, the
    # current one first, ending when the game says.
    info = requests.get(live.url(api), timeout=10).json()
    assert (info["keep"], info["ties"], info["subscore_order"]) == (
        game.keep,
        game.ties,
        game.subscore_order,
    )
    assert info["windows"] == list(game.windows)
    for window, period in boards:
        periods = requests.get(
            live.url(f"{api}/boards/default/periods"), params={"window": window}, timeout=10
        ).json()["periods"]
        assert period in [p["period"] for p in periods], window
        assert periods[0]["ends_at"] == info["ends_at"][window]
    no_such = requests.get(
        live.url("/api/v1/games/guess-claimed/boards/10"), params={"window": "season"}, timeout=10
    )
    assert no_such.status_code == 400
    assert list(no_such.json()["errors"]) == ["window"]
