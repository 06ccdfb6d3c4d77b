"""The read scripts on the real redis-server (its Lua, its text of scores): shown ranks of
every ties policy, with and without subscores, for pages starting anywhere, standings with
percentiles, and lookups, on boards laid out as the apply script stores them."""

from __future__ import annotations

import random

import pytest

from app.leaderboard.boards import Board, read_page, read_players, read_standing
from app.leaderboard.games import game_from_table
from tests.hand_boards import Spot, expected, lay

DB = 13


@pytest.mark.parametrize("order", ["lower", "higher"])
@pytest.mark.parametrize("ties", ["unique", "competition", "dense"])
@pytest.mark.parametrize("subscore", [None, "lower", "higher"])
def test_reads_show_the_ranks_of_the_ties_policy(data, order, ties, subscore):
    table = {"order": order, "ties": ties, "integer": False, "metadata_max_bytes": 64}
    if subscore:
        table["subscore_order"] = subscore
    game = game_from_table("rich", table)
    board = Board(game, "default")
    rng = random.Random(f"{order}{ties}{subscore}")
    # Fractional and negative scores too: their text must survive ZCOUNT bounds and %.17g.
    spots = [
        Spot(
            n,
            rng.choice([-2.5, 0.1, 0.1, 3, 3, 1e15]),
            10_000 + rng.randrange(30),
            rng.choice([-1, 4]) if subscore else None,
            f'{{"n":{n}}}' if n % 3 == 0 else None,
        )
        for n in range(30)
    ]
    lay(data, board, spots)
    want = expected(game, spots)
    ranks = [(pid, rank) for pid, rank, _ in want]
    for offset in range(len(spots)):
        page = read_page(data, board, offset, 4, metadata=True)
        assert [(row.player_id, row.rank) for row in page.rows] == ranks[offset : offset + 4]
    metadata = {spot.player_id: spot.metadata for spot in spots}
    page = read_page(data, board, 0, 100, metadata=True)
    assert [row.metadata for row in page.rows] == [metadata[row.player_id] for row in page.rows]
    for pid, rank, share in want:
        standing = read_standing(data, board, pid, around=2)
        assert standing is not None
        assert (standing.row.rank, standing.percentile) == (rank, share)
    asked = [pid for pid, _, _ in want][::2] + ["nobody-at-all-here"]
    rng.shuffle(asked)
    lookup = read_players(data, board, asked)
    assert [(row.player_id, row.rank) for row in lookup.rows] == [
        pair for pair in ranks if pair[0] in set(asked)
    ]
    assert lookup.missing == ["nobody-at-all-here"]
