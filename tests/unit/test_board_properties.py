"""Properties of the boards, for any sequence of entries: applying is idempotent, the order of
arrival does not matter, the boards (rankings, players' records, meta hashes) are those a plain
Python model computes, and a rebuild from the log gives the boards the entries built one by one.

Entries come from a few players with a few scores, achieved around the boundaries of a day and
of an ISO week (and anywhere in between), for a lower-is-better and a higher-is-better game.
"""

from datetime import UTC, datetime
from unittest.mock import patch

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.leaderboard import rebuild
from app.leaderboard.boards import Board, Entry, PlayerRecord, apply_entries, read_page
from app.leaderboard.games import Registry, game_from_table, load_registry
from app.leaderboard.rebuild import rebuild_family
from app.leaderboard.windows import bucket_ms, period_of
from app.storage import keys

REGISTRY = Registry(
    {
        "guess": load_registry().get("guess"),
        "points": game_from_table("points", {"order": "higher", "integer": False}),
    }
)
VARIANT = {"guess": "100", "points": "default"}
SCORES = {
    "guess": st.integers(1, 4),
    "points": st.sampled_from([0.5, 1.0, 2.25, 7.0]),
}

DAY = 86_400_000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# 2036-11-17 is a Monday: the start of ISO week 47. Every test here runs with the clock
# stopped at NOW, so fakeredis expires nothing early whatever the real date.
NEW_WEEK = _ms(2036, 11, 17)
NEW_DAYS = (_ms(2036, 11, 19), _ms(2036, 11, 20))
NOW = _ms(2036, 11, 20, 12)  # every entry is achieved before now, on a board still readable

# Used rather than asked for (Hypothesis refuses function-scoped fixture arguments): the
# clock stays stopped at NOW across all the examples of a test.
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


AT = st.one_of(
    # Just before, at and just after a period boundary: ties, and entries a ms apart on two
    # different daily (and weekly) boards.
    st.sampled_from([NEW_WEEK, *NEW_DAYS]).flatmap(lambda b: st.integers(b - 2, b + 1)),
    st.integers(NEW_WEEK - DAY, NOW - 1),
)
PLAYERS = st.integers(0, 3)
NAMES = st.sampled_from(["Ann", "Bob", "Ann B."])  # a player may change name


@st.composite
def entry_lists(draw, game):
    """A sequence of entries of one game (distinct submissions)."""
    drawn = draw(
        st.lists(st.tuples(PLAYERS, SCORES[game.slug], AT, NAMES), min_size=1, max_size=14)
    )
    return [
        Entry(f"sub-{i:04d}", game, VARIANT[game.slug], f"player-{p:012d}", name, score, at)
        for i, (p, score, at, name) in enumerate(drawn)
    ]


def fresh_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def boards_of(r, game) -> dict:
    """Every board key of the game's family (rankings, meta hashes, the players hash), with its
    content and expiry, and the log's size; a meta's sum as a number (Redis writes its own text).

    Any key under ``rank:``, ``meta:`` or ``players`` is listed, so a copy a rebuild left behind
    shows too.
    """
    family = keys.log_key(game.slug, VARIANT[game.slug]).removesuffix(":log")
    state: dict = {"log length": r.xlen(f"{family}:log")}
    for key in r.scan_iter(match=f"{family}:rank:*"):
        state[key] = (r.zrange(key, 0, -1, withscores=True), r.pexpiretime(key))
    for key in r.scan_iter(match=f"{family}:meta:*"):
        meta = r.hgetall(key)
        state[key] = ({**meta, "sum": float(meta["sum"])}, r.pexpiretime(key))
    for key in r.scan_iter(match=f"{family}:players*"):
        state[key] = (r.hgetall(key), r.pexpiretime(key))
    return state


def everything(r) -> dict:
    """Every key of the store, byte for byte, with its expiry."""
    return {key: (r.dump(key), r.pexpiretime(key)) for key in r.scan_iter()}


def apply_one_by_one(r, entries) -> None:
    for entry in entries:
        apply_entries(r, [entry], NOW)


def model(game, entries) -> dict:
    """The boards as plain Python: on each board, each player's best entry (by score, then the
    earlier achievement), ranked by score, then by time, then by player id."""
    best: dict[tuple[str, str], dict[str, Entry]] = {}
    for entry in entries:
        for window in game.windows:
            rows = best.setdefault((window, period_of(window, entry.achieved_at)), {})
            old = rows.get(entry.player_id)
            key = (game.sign * entry.score, entry.achieved_at)
            if old is None or key < (game.sign * old.score, old.achieved_at):
                rows[entry.player_id] = entry
    return {
        board: sorted(
            rows.values(), key=lambda e: (game.sign * e.score, e.achieved_at, e.player_id)
        )
        for board, rows in best.items()
    }


def model_names(entries) -> dict[str, tuple[int, str]]:
    """Each player's shown name: that of their latest entry, the greater name of two at once."""
    latest: dict[str, tuple[int, str]] = {}
    for e in entries:
        latest[e.player_id] = max(latest.get(e.player_id, (-1, "")), (e.achieved_at, e.name))
    return latest


def model_counts(entries) -> dict[tuple[str, str], dict[str, str]]:
    """Each board's ``n`` and ``t:<bucket>``: every entry achieved in its period, counted."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for e in entries:
        for window in e.game.windows:
            board = counts.setdefault((window, period_of(window, e.achieved_at)), {})
            bucket = f"t:{e.achieved_at - e.achieved_at % bucket_ms(window)}"
            for name in ("n", bucket):
                board[name] = board.get(name, 0) + 1
    return {b: {k: str(v) for k, v in c.items()} for b, c in counts.items()}


GAMES = pytest.mark.parametrize("game", list(REGISTRY), ids=lambda game: game.slug)
FAST = settings(max_examples=60, deadline=None)


@GAMES
@FAST
@given(data=st.data())
def test_applying_the_entries_again_changes_nothing(game, data):
    entries = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_one_by_one(r, entries)
    once, log_length = everything(r), r.xlen(keys.log_key(game.slug, VARIANT[game.slug]))
    # Again one by one, and again as one batch, as a redelivered batch would be.
    apply_one_by_one(r, entries)
    applied = apply_entries(r, entries, NOW + DAY)
    assert everything(r) == once
    assert r.xlen(keys.log_key(game.slug, VARIANT[game.slug])) == log_length == len(entries)
    assert not any(a.fresh for a in applied)


@GAMES
@FAST
@given(data=st.data())
def test_the_order_of_arrival_does_not_change_the_boards(game, data):
    entries = data.draw(entry_lists(game))
    shuffled = data.draw(st.permutations(entries))
    in_order, reordered, batched = fresh_redis(), fresh_redis(), fresh_redis()
    apply_one_by_one(in_order, entries)
    apply_one_by_one(reordered, shuffled)
    apply_entries(batched, shuffled, NOW)
    assert boards_of(reordered, game) == boards_of(in_order, game)
    assert boards_of(batched, game) == boards_of(in_order, game)


@GAMES
@FAST
@given(data=st.data())
def test_the_boards_are_what_a_plain_model_computes(game, data):
    entries = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_one_by_one(r, entries)
    expected = model(game, entries)
    names, counts = model_names(entries), model_counts(entries)
    variant = VARIANT[game.slug]
    players = keys.players_key(game.slug, variant)
    state = boards_of(r, game)
    board_keys = {k for k in state if k != "log length"}
    assert board_keys == {players} | {
        key
        for window, period in expected
        for key in (
            keys.ranking_key(game.slug, variant, window, period),
            keys.meta_key(game.slug, variant, window, period),
        )
    }
    tags: dict[str, dict[str, int]] = {}
    for (window, period), ranked in expected.items():
        board = Board(game, variant, window, period)
        tag, start = board.tag
        for e in ranked:
            tags.setdefault(e.player_id, {})[tag] = e.achieved_at - start
        assert state[board.ranking_key][0] == [
            (f"{e.achieved_at:013d}:{e.player_id}", float(game.sign * e.score)) for e in ranked
        ]
        assert state[board.meta_key][0] == {
            "updated": str(NOW),
            "sum": sum(e.score for e in ranked),
            **counts[window, period],
        }
        page = read_page(r, board, 0, 100)
        assert page.total == len(ranked)
        assert page.updated_at == NOW
        assert [
            (row.rank, row.player_id, row.score, row.achieved_at, row.name) for row in page.rows
        ] == [
            (rank, e.player_id, e.score, e.achieved_at, names[e.player_id][1])
            for rank, e in enumerate(ranked, 1)
        ]
    assert state[players][0] == {
        pid: PlayerRecord(*names[pid], tags[pid]).encode() for pid in names
    }
    assert state["log length"] == len(entries)


# A rebuild reads the log in slices and sends each slice's rows before it reads the next: a
# slice of two makes rows sent, and bettered by a later slice, the rule.
SLICES = pytest.mark.parametrize("read_slice", [2, rebuild.READ_SLICE], ids=["2", "default"])


@GAMES
@SLICES
@FAST
@given(data=st.data())
def test_a_rebuild_from_the_log_gives_the_same_boards(game, read_slice, data):
    entries = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_one_by_one(r, entries)
    incremental = boards_of(r, game)
    variant = VARIANT[game.slug]
    with patch.object(rebuild, "READ_SLICE", read_slice):
        assert rebuild_family(r, game, variant, NOW) == len(entries)
        assert boards_of(r, game) == incremental
        # And from the log alone, with every ranking and record lost: the meta hashes keep
        # their counts of entries (the log need not hold every entry counted).
        lost = [k for k in incremental if ":rank:" in k or k.endswith(":players")]
        r.delete(*lost)
        rebuild_family(r, game, variant, NOW)
    assert boards_of(r, game) == incremental
    # Without the meta hashes too, the sums and times of change come back, not the counts.
    metas = [k for k in incremental if ":meta:" in k]
    r.delete(*metas)
    rebuild_family(r, game, variant, NOW)
    rebuilt = boards_of(r, game)
    for key in metas:
        meta, expiry = incremental[key]
        assert rebuilt[key] == ({"sum": meta["sum"], "updated": str(NOW)}, expiry)
    assert {k: v for k, v in rebuilt.items() if k not in metas} == {
        k: v for k, v in incremental.items() if k not in metas
    }


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_of_two_entries_at_one_ms_the_greater_name_shows_whatever_the_order(order):
    game = REGISTRY.get("guess")
    both = [
        Entry("sub-a", game, "100", "player-000000000001", "Ann", 3, NOW - DAY),
        Entry("sub-b", game, "100", "player-000000000001", "Ann B.", 3, NOW - DAY),
    ]
    r = fresh_redis()
    apply_one_by_one(r, [both[i] for i in order])
    board = Board(game, "100")
    assert [row.name for row in read_page(r, board, 0, 10).rows] == ["Ann B."]
    rebuild_family(r, game, "100", NOW)
    assert [row.name for row in read_page(r, board, 0, 10).rows] == ["Ann B."]
