"""Reading boards: shown ranks of each ties policy, subscores, metadata, percentiles and lookups
of many players, on boards laid out by hand as the apply script stores them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from app.leaderboard.boards import (
    Board,
    Entry,
    PlayerRecord,
    apply_entries,
    read_page,
    read_players,
    read_standing,
)
from app.leaderboard.games import Game, game_from_table
from tests.hand_boards import Spot, expected, lay

T0 = int(datetime(2036, 11, 19, 12, tzinfo=UTC).timestamp() * 1000)
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return T0


TIES = ("unique", "competition", "dense")


def rich_game(ties: str = "unique", subscore: bool = True, slug="rich", **settings) -> Game:
    table = {"order": "higher", "ties": ties, "metadata_max_bytes": 256, **settings}
    if subscore:
        table["subscore_order"] = "lower"
    return game_from_table(slug, table)


def ranks_of(rows) -> list[tuple[str, int]]:
    return [(row.player_id, row.rank) for row in rows]


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("subscore", [False, True])
def test_every_page_shows_the_ranks_of_the_ties_policy(redis_client, ties, subscore):
    game = rich_game(ties, subscore)
    board = Board(game, "default")
    rng = random.Random(f"{ties}-{subscore}")
    # Few distinct scores and subscores, so that groups of ties are long and pages start
    # anywhere inside them.
    spots = [
        Spot(n, rng.choice([3, 5, 5, 8]), 1000 + rng.randrange(40), rng.choice([1, 2]))
        for n in range(24)
    ]
    if not subscore:
        spots = [Spot(s.n, s.score, s.at) for s in spots]
    lay(redis_client, board, spots)
    want = [(pid, rank) for pid, rank, _ in expected(game, spots)]
    assert ranks_of(read_page(redis_client, board, 0, 100).rows) == want
    for offset in range(len(spots)):
        for limit in (1, 2, 5):
            page = read_page(redis_client, board, offset, limit)
            assert ranks_of(page.rows) == want[offset : offset + limit], (offset, limit)


def test_competition_and_dense_ranks_of_a_known_board(redis_client):
    spots = [Spot(1, 10, 5), Spot(2, 10, 6), Spot(3, 8, 1), Spot(4, 8, 2), Spot(5, 8, 3)]
    spots.append(Spot(6, 5, 0))
    shown = {}
    for ties in TIES:
        game = rich_game(ties, subscore=False)
        board = Board(game, f"v-{ties}", "alltime")
        lay(redis_client, board, spots)
        shown[ties] = [row.rank for row in read_page(redis_client, board, 0, 10).rows]
    assert shown == {
        "unique": [1, 2, 3, 4, 5, 6],
        "competition": [1, 1, 3, 3, 3, 6],
        "dense": [1, 1, 2, 2, 2, 3],
    }


def test_a_subscore_breaks_ties_of_the_score_before_the_time(redis_client):
    game = rich_game("competition")  # lower subscores first
    board = Board(game, "default")
    lay(
        redis_client,
        board,
        [Spot(1, 10, 100, sub=2), Spot(2, 10, 300, sub=1), Spot(3, 10, 200, sub=1)],
    )
    rows = read_page(redis_client, board, 0, 10).rows
    assert [(row.player_id[-1], row.rank, row.subscore) for row in rows] == [
        ("3", 1, 1),
        ("2", 1, 1),
        ("1", 3, 2),
    ]


def test_a_page_that_starts_inside_a_group_of_ties_shows_the_groups_rank(redis_client):
    spots = [Spot(n, 7, 100 + n, sub=4) for n in range(5)] + [Spot(9, 6, 1, sub=0)]
    for ties, first in (("competition", 1), ("dense", 1), ("unique", 4)):
        board = Board(rich_game(ties), f"v-{ties}")
        lay(redis_client, board, spots)
        page = read_page(redis_client, board, 3, 3)
        assert [row.rank for row in page.rows][0] == first, ties
        assert page.rows[-1].player_id.endswith("09")


@pytest.mark.parametrize("ties", TIES)
def test_a_standing_has_its_shown_rank_and_percentile(redis_client, ties):
    game = rich_game(ties, subscore=False)
    board = Board(game, "default")
    spots = [Spot(1, 10, 5), Spot(2, 10, 6), Spot(3, 8, 1), Spot(4, 8, 2), Spot(5, 5, 3)]
    lay(redis_client, board, spots)
    for pid, rank, share in expected(game, spots):
        standing = read_standing(redis_client, board, pid, around=1)
        assert standing is not None
        assert (standing.row.rank, standing.percentile) == (rank, share), (ties, pid)
        assert standing.total == 5 and standing.updated_at == 1234
    standing = read_standing(redis_client, board, spots[3].player_id, around=1)
    assert [row.player_id for row in standing.neighbours] == [
        spots[2].player_id,
        spots[3].player_id,
        spots[4].player_id,
    ]
    assert {"unique": 20.0, "competition": 20.0, "dense": 20.0}[ties] == standing.percentile


def test_percentiles_leave_out_the_players_own_group(redis_client):
    board = Board(rich_game("competition"), "default")
    lay(redis_client, board, [Spot(n, 5, n, sub=1) for n in range(4)])
    standing = read_standing(redis_client, board, Spot(0, 0, 0).player_id)
    assert standing.percentile == 0.0  # everyone shares the top: nobody is ranked below
    top = Board(rich_game("unique"), "other")
    lay(redis_client, top, [Spot(n, 5, n, sub=1) for n in range(4)])
    assert read_standing(redis_client, top, Spot(0, 0, 0).player_id).percentile == 75.0


def test_an_unranked_player_has_no_standing(redis_client):
    board = Board(rich_game("dense"), "default")
    lay(redis_client, board, [Spot(1, 5, 1, sub=1)])
    assert read_standing(redis_client, board, Spot(2, 0, 0).player_id) is None
    # A record naming a row the board does not have (an expired board) is no standing either.
    redis_client.zrem(board.ranking_key, *redis_client.zrange(board.ranking_key, 0, -1))
    assert read_standing(redis_client, board, Spot(1, 0, 0).player_id) is None


def test_rows_carry_their_entrys_metadata_only_when_asked(redis_client):
    board = Board(rich_game("unique"), "default")
    lay(
        redis_client,
        board,
        [Spot(1, 9, 10, 0, '{"plane":"dart"}'), Spot(2, 8, 11, 0)],
    )
    plain = read_page(redis_client, board, 0, 10)
    assert [row.metadata for row in plain.rows] == [None, None]
    rich = read_page(redis_client, board, 0, 10, metadata=True)
    assert [row.metadata for row in rich.rows] == ['{"plane":"dart"}', None]
    assert json.loads(rich.rows[0].metadata) == {"plane": "dart"}
    standing = read_standing(redis_client, board, Spot(2, 0, 0).player_id, 1, metadata=True)
    assert [row.metadata for row in standing.neighbours] == ['{"plane":"dart"}', None]
    lookup = read_players(redis_client, board, [Spot(1, 0, 0).player_id], metadata=True)
    assert [row.metadata for row in lookup.rows] == ['{"plane":"dart"}']


def test_a_periods_board_finds_rows_by_the_records_tag_and_subscore(redis_client):
    game = rich_game(
        "competition",
        windows=["alltime", "daily", "weekly", "monthly", "season"],
        season={"every": "7d", "starts_at": "2036-11-03T00:00:00Z"},
    )
    for window, period in (("monthly", "2036-11"), ("season", "S3"), ("daily", "2036-11-19")):
        board = Board(game, f"v-{window}", window, period)
        start = board.achieved_range()[0]
        spots = [Spot(1, 4, start + 5, sub=7), Spot(2, 4, start + 9, sub=3)]
        lay(redis_client, board, spots)
        standing = read_standing(redis_client, board, spots[0].player_id)
        assert standing is not None, window
        assert (standing.row.rank, standing.row.subscore) == (2, 7)
        assert standing.row.achieved_at == start + 5


def test_a_lookup_answers_the_ranked_best_first_and_lists_the_missing(redis_client):
    game = rich_game("competition", subscore=False)
    board = Board(game, "default")
    spots = [Spot(n, score, n) for n, score in enumerate([9, 7, 7, 7, 3, 1])]
    lay(redis_client, board, spots)
    # A player ranked on another board of the family only: a record, no row here.
    daily = Board(game, "default", "daily", "2036-11-19")
    redis_client.hset(
        board.players_key,
        Spot(40, 0, 0).player_id,
        PlayerRecord(5, "Daily", {daily.tag[0]: 5}).encode(),
    )
    asked = [
        spots[4].player_id,
        Spot(40, 0, 0).player_id,
        spots[3].player_id,
        Spot(99, 0, 0).player_id,
        spots[0].player_id,
        spots[3].player_id,  # twice: once in the answer
    ]
    lookup = read_players(redis_client, board, asked)
    assert [(row.player_id, row.rank, row.score) for row in lookup.rows] == [
        (spots[0].player_id, 1, 9),
        (spots[3].player_id, 2, 7),
        (spots[4].player_id, 5, 3),
    ]
    assert lookup.missing == [Spot(40, 0, 0).player_id, Spot(99, 0, 0).player_id]
    assert (lookup.total, lookup.updated_at) == (6, 1234)


@pytest.mark.parametrize("ties", TIES)
def test_a_lookup_of_a_hundred_players_is_one_script_call(redis_client, monkeypatch, ties):
    game = rich_game(ties)
    board = Board(game, "default")
    rng = random.Random(ties)
    spots = [Spot(n, rng.randrange(5), n, rng.randrange(3)) for n in range(150)]
    lay(redis_client, board, spots)
    asked = [spot.player_id for spot in spots[::3]] + [
        Spot(500 + n, 0, 0).player_id for n in range(50)
    ]
    assert len(asked) == 100
    read_players(redis_client, board, asked[:1])  # the script is loaded once per server
    sent = []
    command = redis_client.execute_command
    monkeypatch.setattr(
        redis_client, "execute_command", lambda *a, **k: sent.append(a[0]) or command(*a, **k)
    )
    lookup = read_players(redis_client, board, asked)
    assert sent == ["EVALSHA"]
    wanted = set(asked)
    in_board_order = [(pid, rank) for pid, rank, _ in expected(game, spots) if pid in wanted]
    assert [(row.player_id, row.rank) for row in lookup.rows] == in_board_order
    assert len(lookup.missing) == 50


def keep_rows(game: Game, entries: list[Entry]) -> list[Spot]:
    """Each player's row by the game's keep rule, worked out here: ``best`` the entry of the
    least (sort, sub_sign * subscore, at), ``latest`` the greatest at (then the least sort and
    subscore), ``sum`` the totals at the greatest at. A row shows the metadata of its entry's
    (at, player): of two at one ms, the greater text."""
    by_player: dict[str, list[Entry]] = {}
    for entry in entries:
        by_player.setdefault(entry.player_id, []).append(entry)

    def value(e: Entry) -> tuple[float, int, int]:
        return (game.sign * e.score, game.sub_sign * (e.subscore or 0), e.achieved_at)

    rows = []
    for player_id, mine in by_player.items():
        n = int(player_id.rsplit("-", 1)[1])
        if game.keep == "sum":
            at = max(e.achieved_at for e in mine)
            score, sub = sum(e.score for e in mine), sum(e.subscore or 0 for e in mine)
        else:
            if game.keep == "best":
                kept = min(mine, key=value)
            else:
                kept = min(mine, key=lambda e: (-e.achieved_at, *value(e)[:2]))
            at, score, sub = kept.achieved_at, kept.score, kept.subscore or 0
        texts = [e.metadata or "" for e in mine if e.achieved_at == at]
        rows.append(Spot(n, score, at, sub if game.sub_sign else None, max(texts) or None))
    return rows


@pytest.mark.parametrize("keep", ["best", "latest", "sum"])
@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("subscore", [False, True])
def test_reads_of_applied_entries_rank_by_the_keep_rule_and_ties(
    redis_client, keep, ties, subscore
):
    game = rich_game(ties, subscore, keep=keep, slug=f"g-{keep}-{ties}-{int(subscore)}")
    board = Board(game, "default")
    rng = random.Random(f"{keep}{ties}{subscore}")
    entries = [
        Entry(
            submission_id=f"sub-{keep}-{ties}-{i:05d}",
            game=game,
            variant="default",
            player_id=Spot(rng.randrange(15), 0, 0).player_id,
            name="P",
            score=rng.choice([1, 2, 2, 3]),
            achieved_at=T0 - rng.randrange(4) * 1000,
            subscore=rng.choice([0, 5]) if subscore else None,
            metadata=rng.choice([None, '{"a":1}', '{"b":2}']),
        )
        for i in range(60)
    ]
    apply_entries(redis_client, entries, T0)
    spots = keep_rows(game, entries)
    want = expected(game, spots)
    page = read_page(redis_client, board, 0, 100, metadata=True)
    assert [(row.player_id, row.rank) for row in page.rows] == [(p, r) for p, r, _ in want]
    kept = {spot.player_id: spot for spot in spots}
    for row in page.rows:
        spot = kept[row.player_id]
        assert (row.score, row.subscore, row.achieved_at) == (spot.score, spot.sub, spot.at)
        assert row.metadata == spot.metadata
    for pid, rank, share in want:
        standing = read_standing(redis_client, board, pid)
        assert (standing.row.rank, standing.percentile) == (rank, share)
    lookup = read_players(redis_client, board, [p for p, _, _ in want][::-2])
    assert [(row.player_id, row.rank) for row in lookup.rows] == [
        (p, r) for p, r, _ in want[::-1][::2][::-1]
    ]
