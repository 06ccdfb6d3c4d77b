"""Properties of the boards of every keep mode, tie policy and subscore: for any sequence of
entries, each board (its ranking, its distinct values when ties are dense, the players'
records, the entries' metadata) is what a plain Python model computes. (That the order of
arrival and redeliveries change nothing is test_rich_board_properties.py's.)

Entries come from a few players with few scores and subscores (so that ties are common), at a
few instants (so that equal times are too), over two months and two seasons.
"""

import itertools
import json

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.leaderboard.boards import (
    Board,
    Entry,
    PlayerRecord,
    apply_entries,
    entry_boards,
    ranking_member,
    subscore_key,
)
from app.leaderboard.games import game_from_table
from app.storage import keys
from tests.rich_games import DAY, NOW, TURN, ms, rich_game

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


GAMES = [
    rich_game(keep, ties, order, higher)
    for keep, ties, order, higher in itertools.product(
        ("best", "latest", "sum"),
        ("unique", "dense", "competition"),
        (None, "higher", "lower"),
        (True, False),
    )
    # Every keep mode with every tie policy and subscore order, each sort order once in all.
    if higher == ((("best", "latest", "sum").index(keep) + len(ties)) % 2 == 0)
]
AT = st.sampled_from([TURN - DAY, TURN - 1, TURN, TURN + 5, NOW - 10])
META = st.none() | st.sampled_from([{"plane": "dart"}, {"plane": "glider"}, {"w": 3}])


@st.composite
def entry_lists(draw, game):
    drawn = draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(-2, 2), AT, META),
            min_size=1,
            max_size=12,
        )
    )
    return [
        Entry(
            f"sub-{i:04d}",
            game,
            "default",
            f"player-{p:012d}",
            "Ann",
            score,
            at,
            subscore=sub if game.sub_sign else None,
            metadata=None if meta is None else json.dumps(meta, separators=(",", ":")),
        )
        for i, (p, score, sub, at, meta) in enumerate(drawn)
    ]


def model(game, entries):
    """Each board's rows as (member, sorted-set score), best first, by the keep rule."""
    rows: dict[tuple[str, str], dict[str, tuple[float, int, int]]] = {}
    for e in entries:
        entry = (game.sign * e.score, game.sub_sign * (e.subscore or 0), e.achieved_at)
        for board in entry_boards(game, e.variant, e.achieved_at):
            held = rows.setdefault((board.window, board.period), {})
            old = held.get(e.player_id)
            if old is None:
                held[e.player_id] = entry
            elif game.keep == "best":
                held[e.player_id] = min(old, entry)
            elif game.keep == "latest":
                later = (-entry[2], entry[0], entry[1]) < (-old[2], old[0], old[1])
                held[e.player_id] = entry if later else old
            else:
                held[e.player_id] = (old[0] + entry[0], old[1] + entry[1], max(old[2], entry[2]))
    return {
        board: sorted(
            (
                (ranking_member(subscore_key(game, game.sub_sign * sub), at, pid), float(sort))
                for pid, (sort, sub, at) in held.items()
            ),
            key=lambda row: (row[1], row[0]),
        )
        for board, held in rows.items()
    }


def fresh_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def state(r, game) -> dict:
    """Every key of the family but the log and its applied ids, which differ by arrival."""
    family = keys.log_key(game.slug, "default").removesuffix(":log")
    found = {}
    for key in r.scan_iter(match=f"{family}:*"):
        kind = r.type(key)
        if kind == "zset":
            found[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == "hash" and ":meta:" not in key and not key.endswith(":applied"):
            found[key] = r.hgetall(key)
    return found


FAST = settings(max_examples=15, deadline=None)
EACH_GAME = pytest.mark.parametrize("game", GAMES, ids=lambda game: game.slug)


@EACH_GAME
@FAST
@given(data=st.data())
def test_the_boards_are_what_the_keep_rule_computes(game, data):
    entries = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_entries(r, entries, NOW)
    expected = model(game, entries)
    records: dict[str, PlayerRecord] = {}
    for (window, period), rows in expected.items():
        board = Board(game, "default", window, period)
        assert r.zrange(board.ranking_key, 0, -1, withscores=True) == rows
        if game.ties == "dense":
            values: dict[str, int] = {}
            for member, sort in rows:
                value = f"{sort:.17g}|{member.split(':')[0][:-13]}"
                values[value] = values.get(value, 0) + 1
            assert r.hgetall(board.value_counts_key) == {v: str(n) for v, n in values.items()}
            assert r.zrange(board.values_key, 0, -1) == sorted(
                values, key=lambda v: (float(v.split("|")[0]), v)
            )
        else:
            assert not r.exists(board.values_key, board.value_counts_key)
        tag, start = board.tag
        for member, _ in rows:
            head, pid = member.split(":")
            record = records.setdefault(pid, PlayerRecord(0, "Ann", {}, {}))
            record.tags[tag] = int(head[-13:]) - start  # type: ignore[index]
            if game.sub_sign:
                record.subs[tag] = head[:-13]  # type: ignore[index]
    stored = r.hgetall(keys.players_key(game.slug, "default"))
    for pid, record in records.items():
        held = PlayerRecord.decode(stored[pid])
        assert (held.tags, held.subs) == (record.tags, record.subs)
    metadata: dict[str, str] = {}
    for e in entries:
        if e.metadata:
            field = f"{e.achieved_at:013d}:{e.player_id}"
            metadata[field] = max(metadata.get(field, ""), e.metadata)
    assert r.hgetall(keys.entry_metadata_key(game.slug, "default")) == metadata


def test_a_sum_board_adds_every_entry_and_shows_the_latest_time():
    game = rich_game("sum", "unique", "higher", True)
    r = fresh_redis()
    pid = "player-000000000001"
    entries = [
        Entry("sub-a", game, "default", pid, "Ann", 3, TURN - 1, subscore=1),
        Entry("sub-b", game, "default", pid, "Ann", 4, TURN + 5, subscore=2),
    ]
    apply_entries(r, entries + entries[:1], NOW)
    alltime = Board(game, "default")
    member = ranking_member(subscore_key(game, 3), TURN + 5, pid)
    assert r.zrange(alltime.ranking_key, 0, -1, withscores=True) == [(member, -7.0)]
    # The entry before the month's turn is on November's board only.
    november = Board(game, "default", "monthly", "2036-11")
    assert r.zrange(november.ranking_key, 0, -1, withscores=True) == [
        (ranking_member(subscore_key(game, 1), TURN - 1, pid), -3.0)
    ]


@pytest.mark.parametrize(("ties", "ranks"), [("unique", [1, 2, 3]), ("competition", [1, 1, 3])])
def test_a_verdict_tells_the_rank_the_board_shows(ties, ranks):
    game = rich_game("best", ties, None, True)
    r = fresh_redis()
    scores = [(f"player-{p:012d}", s, TURN + p) for p, s in enumerate([5, 5, 4])]
    applied = apply_entries(
        r,
        [Entry(f"sub-{pid[-4:]}", game, "default", pid, "Ann", s, at) for pid, s, at in scores],
        NOW,
    )
    assert [a.ranks["alltime"] for a in applied] == ranks


def test_a_batch_across_a_season_that_begins_at_noon_puts_each_entry_on_its_season():
    game = game_from_table(
        "noon",
        {
            "windows": ["alltime", "season"],
            "season": {"every": "7d", "starts_at": "2036-11-24T12:00:00Z"},
        },
    )
    noon = ms(2036, 12, 1, 12)  # S1 ends, S2 begins
    entries = [
        Entry("sub-late", game, "default", "player-000000000001", "Ann", 3, noon + 60_000),
        Entry("sub-early", game, "default", "player-000000000002", "Bob", 4, noon - 60_000),
        Entry("sub-first", game, "default", "player-000000000003", "Cy", 5, ms(2036, 11, 24, 11)),
    ]
    batched, one_by_one = fresh_redis(), fresh_redis()
    applied = apply_entries(batched, entries, NOW)
    for entry in entries:
        apply_entries(one_by_one, [entry], NOW)
    assert state(batched, game) == state(one_by_one, game)
    assert [sorted(a.ranks) for a in applied] == [["alltime", "season"]] * 2 + [["alltime"]]
    s1, s2 = (Board(game, "default", "season", f"S{n}").ranking_key for n in (1, 2))
    assert [m.split(":")[1] for m in batched.zrange(s1, 0, -1)] == ["player-000000000002"]
    assert [m.split(":")[1] for m in batched.zrange(s2, 0, -1)] == ["player-000000000001"]
