"""Properties of the boards of every keep mode, tie policy and subscore, against their log: the
same entries applied in two orders (with redeliveries) give the same boards, records, values and
metadata; a rebuild from the log gives the boards the entries built one by one, whether it reads
the log in one pass or replays entries logged while it ran; and a compaction of the log, then a
rebuild from what it kept, changes no board.

Entries come from a few players with few scores (zero among them: -0 in a higher-is-better
game), subscores, names and metadata, at a few instants (equal times are common) around the turn
of a day, a week, a month and a season.
"""

from __future__ import annotations

import itertools
import json
from unittest.mock import patch

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.leaderboard import rebuild
from app.leaderboard.boards import Entry, PlayerRecord, apply_entries, split_member
from app.leaderboard.compaction import compact_family
from app.leaderboard.rebuild import FamilyBuild, readable_boards, rebuild_family
from app.storage import keys
from tests.rich_games import DAY, NOW, TURN, rich_game

VARIANT = "default"
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


# Every keep mode with every tie policy, with and without a subscore; the sort orders and
# subscore orders alternate.
GAMES = [
    rich_game(keep, ties, ("higher" if n % 2 else "lower") if subscored else None, n % 3 != 1)
    for n, (keep, ties, subscored) in enumerate(
        itertools.product(("best", "latest", "sum"), ("unique", "dense", "competition"), (0, 1))
    )
]
AT = st.sampled_from([TURN - DAY, TURN - 1, TURN, TURN + 5, NOW - 10])
META = st.none() | st.sampled_from([{"plane": "dart"}, {"plane": "glider"}, {"w": 3}])
NAMES = st.sampled_from(["Ann", "Bob", "Ann B."])


@st.composite
def entry_lists(draw, game):
    """Distinct submissions of one game, then some of them again (redeliveries)."""
    drawn = draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(-2, 2), AT, META, NAMES),
            min_size=1,
            max_size=12,
        )
    )
    entries = [
        Entry(
            f"sub-{i:04d}",
            game,
            VARIANT,
            f"player-{p:012d}",
            name,
            score,
            at,
            subscore=sub if game.sub_sign else None,
            metadata=None if meta is None else json.dumps(meta, separators=(",", ":")),
        )
        for i, (p, score, sub, at, meta, name) in enumerate(drawn)
    ]
    again = draw(st.lists(st.sampled_from(entries), max_size=4))
    return entries, again


def fresh_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def apply_one_by_one(r, entries) -> None:
    for entry in entries:
        apply_entries(r, [entry], NOW)


def state(r, game) -> dict:
    """Every key of the family but the log and its applied ids (which differ by arrival), with
    its content and expiry: rankings, values zsets and counts, the players hash, the entries'
    metadata, and each meta hash with its sum as a number (its text depends on the order of
    additions)."""
    family = keys.log_key(game.slug, VARIANT).removesuffix(":log")
    found = {}
    for key in r.scan_iter(match=f"{family}:*"):
        kind = r.type(key)
        if kind == "zset":
            content = r.zrange(key, 0, -1, withscores=True)
        elif key.endswith((":log", ":applied")):
            continue
        elif ":meta:" in key:
            meta = r.hgetall(key)
            content = {**meta, "sum": float(meta.get("sum", 0))}
        else:
            content = r.hgetall(key)
        found[key] = (content, r.pexpiretime(key))
    return found


def boards(r, game, now: int = NOW) -> dict:
    """The readable boards as they are shown: rankings, values (dense ties), the records of
    their players, and the metadata of their rows."""
    shown = {}
    players = keys.players_key(game.slug, VARIANT)
    emeta = keys.entry_metadata_key(game.slug, VARIANT)
    for board in readable_boards(game, VARIANT, now):
        ranked = r.zrange(board.ranking_key, 0, -1, withscores=True)
        tag, _ = board.tag
        rows = []
        for member, sort in ranked:
            _, at, pid = split_member(member)
            record = PlayerRecord.decode(r.hget(players, pid))
            field = f"{at:013d}:{pid}"
            rows.append(
                (member, sort, record.name, record.member(board, pid), r.hget(emeta, field))
            )
        values = (
            r.zrange(board.values_key, 0, -1, withscores=True),
            r.hgetall(board.value_counts_key),
        )
        shown[board.window, board.period] = (rows, values)
    return shown


FAST = settings(max_examples=10, deadline=None)
EACH_GAME = pytest.mark.parametrize("game", GAMES, ids=lambda game: game.slug)


@EACH_GAME
@FAST
@given(data=st.data())
def test_two_orders_of_arrival_give_the_same_boards(game, data):
    entries, again = data.draw(entry_lists(game))
    shuffled = data.draw(st.permutations(entries))
    in_order, reordered = fresh_redis(), fresh_redis()
    apply_one_by_one(in_order, entries + again)
    apply_entries(reordered, [*again, *shuffled], NOW)
    apply_one_by_one(reordered, again)
    assert state(reordered, game) == state(in_order, game)
    for r in (in_order, reordered):
        assert r.xlen(keys.log_key(game.slug, VARIANT)) == len(entries)


@EACH_GAME
@FAST
@given(data=st.data())
def test_a_rebuild_from_the_log_gives_the_boards_built_one_by_one(game, data):
    entries, again = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_one_by_one(r, entries + again)
    incremental = state(r, game)
    # A slice of two makes rows sent, and changed by a later slice, the rule.
    with patch.object(rebuild, "READ_SLICE", 2):
        assert rebuild_family(r, game, VARIANT, NOW) == len(entries)
    assert state(r, game) == incremental
    # From the log alone, every ranking, value and record lost (the meta hashes keep their
    # counts of entries, which the log need not hold).
    family = keys.log_key(game.slug, VARIANT).removesuffix(":log")
    lost = [k for k in incremental if ":meta:" not in k and not k.endswith(":emeta")]
    assert any(f"{family}:rank:" in k for k in lost)
    r.delete(*lost)
    rebuild_family(r, game, VARIANT, NOW)
    assert state(r, game) == incremental


@EACH_GAME
@FAST
@given(data=st.data())
def test_entries_logged_while_a_rebuild_reads_are_replayed_as_they_were_applied(game, data):
    entries, again = data.draw(entry_lists(game))
    cut = data.draw(st.integers(0, len(entries)))
    whole, rebuilt = fresh_redis(), fresh_redis()
    apply_one_by_one(whole, entries + again)
    apply_one_by_one(rebuilt, entries[:cut])
    build = FamilyBuild.readable(rebuilt, game, VARIANT, NOW).start()
    build.load()
    # Applied to the live boards after the copies' pass: the replay brings them to the copies.
    apply_one_by_one(rebuilt, entries[cut:] + again)
    build.finish()
    assert build.read == len(entries)
    assert state(rebuilt, game) == state(whole, game)
    assert not rebuilt.keys("*:build")


@EACH_GAME
@FAST
@given(data=st.data())
def test_a_compaction_then_a_rebuild_changes_no_board(game, data):
    entries, again = data.draw(entry_lists(game))
    r = fresh_redis()
    apply_one_by_one(r, entries + again)
    before = boards(r, game)
    # Every entry was logged at NOW: a window of 0 s a second later judges them all.
    report = compact_family(r, game, VARIANT, NOW + 1000, 0)
    if game.keep == "sum":
        assert report.dropped == 0
    assert r.xlen(keys.log_key(game.slug, VARIANT)) == len(entries) - report.dropped
    assert boards(r, game) == before
    rebuild_family(r, game, VARIANT, NOW)
    assert boards(r, game) == before
