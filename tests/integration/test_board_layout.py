"""The boards' layout on a real redis-server: what a row costs (its ranking member and its tag in
the player's record), and the scripts as Redis itself runs them giving the boards a rebuild gives.

A server of its own, so that the sizes measured are of these keys alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from app.leaderboard.boards import Entry, apply_entries, read_page, read_standing
from app.leaderboard.games import game_from_table, load_registry
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.storage import keys
from app.storage.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

GUESS = load_registry().get("guess")
DAY = 86_400_000
# A Wednesday noon. The boards are read as of then: readable_boards and the scripts are told
# the time, and the sizes do not depend on Redis's own clock.
NOW = int(datetime(2036, 11, 19, 12, tzinfo=UTC).timestamp() * 1000)
PLAYERS = 20_000
#: Days before NOW of each player's entries on the family of twelve boards: today and the seven
#: days before (eight daily boards, over two ISO weeks), and a day of the week before those.
TWELVE = (0, 1, 2, 3, 4, 5, 6, 7, 10)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[redis.Redis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as embedded:
        client = redis.Redis(port=embedded.port, decode_responses=True)
        yield client
        client.close()


def player(i: int) -> str:
    return f"p{i:021d}"  # as long as the ids the service issues


def seed_log(client: redis.Redis, variant: str, days: tuple[int, ...]) -> None:
    """Entries of every player on each of ``days`` before NOW, appended to the log as the apply
    script appends them."""
    log = keys.log_key("guess", variant)
    pipe = client.pipeline(transaction=False)
    for i in range(PLAYERS):
        for d in days:
            fields = {
                "sid": f"s-{i}-{d}",
                "pid": player(i),
                "name": f"Player {i}",
                "score": 1 + (i + d) % 10,
                "at": f"{NOW - d * DAY - 1000 - i:013d}",
            }
            pipe.xadd(log, fields)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def costs(client: redis.Redis, variant: str) -> tuple[dict[str, float], float]:
    """Bytes per player of each board's ranking (``MEMORY USAGE``, every member counted) and of
    the family's players hash."""
    rankings = {}
    for board in readable_boards(GUESS, variant, NOW):
        if size := client.zcard(board.ranking_key):
            used = client.memory_usage(board.ranking_key, samples=0)
            rankings[f"{board.window} {board.period}"] = used / size
    players = keys.players_key("guess", variant)
    return rankings, client.memory_usage(players, samples=0) / client.hlen(players)


def test_a_row_costs_at_most_150_bytes_and_a_player_about_100_more_per_family(server):
    seed_log(server, "10", (0,))
    seed_log(server, "25", TWELVE)
    assert rebuild_family(server, GUESS, "10", NOW) == PLAYERS
    assert rebuild_family(server, GUESS, "25", NOW) == PLAYERS * len(TWELVE)
    three, record3 = costs(server, "10")
    twelve, record12 = costs(server, "25")
    assert (len(three), len(twelve)) == (3, 12)
    # The nine more tags in each record of the family of twelve boards.
    tag = (record12 - record3) / 9
    base = record3 - 3 * tag
    rows = {f"3 boards: {b}": z + tag for b, z in three.items()}
    rows |= {f"12 boards: {b}": z + tag for b, z in twelve.items()}
    figures = f"tag {tag:.1f} B, record base {base:.1f} B, rows {rows}"
    assert 14 <= tag <= 18, figures  # ';d24429=43186655' and the like: 16 characters
    assert base <= 120, figures
    assert max(rows.values()) <= 150, figures

    # Rows written one entry at a time (a better score for every player) cost no more.
    batch = [
        Entry(f"again-{i}", GUESS, "10", player(i), f"Player {i}", 1, NOW - 500 - i)
        for i in range(PLAYERS)
    ]
    for start in range(0, PLAYERS, 500):
        apply_entries(server, batch[start : start + 500], NOW)
    three, record3 = costs(server, "10")
    assert record3 - 3 * tag <= 120
    assert max(three.values()) + tag <= 150, three


POINTS = game_from_table("points", {"order": "higher", "integer": False, "score_max": 1e6})


def everything(client: redis.Redis, family: str) -> tuple[dict, dict]:
    """Every key of a family, and when each expires (epoch ms by Redis's clock; -1: never).
    Redis 6.2 has no PEXPIRETIME: the expiry is read as a PTTL from the time of the read."""
    state, expiries = {}, {}
    for key in client.scan_iter(match=f"{family}:*"):
        kind = client.type(key)
        if kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key] = client.hgetall(key)
        seconds, micros = client.time()
        left = client.pttl(key)
        expiries[key] = -1 if left < 0 else seconds * 1000 + micros // 1000 + left
    return state, expiries


def test_the_scripts_redis_runs_give_the_boards_a_rebuild_gives(server):
    rng = random.Random(7)
    names = ["Ann", "Bob", "Zoë", "a|b", "Ann B.", "ÉLA", "Ω"]
    entries = [
        Entry(
            f"eq-{n}",
            POINTS,
            "default",
            player(rng.randrange(40)),
            rng.choice(names),
            rng.choice([0.1, 0.2 + 0.1, 1 / 3, 7.0, 2.5, 123456.789012345678]),
            NOW - rng.randrange(12 * DAY) - rng.choice([0, 0, 1]),
        )
        for n in range(1500)
    ]
    rng.shuffle(entries)
    for start in range(0, len(entries), 100):
        apply_entries(server, entries[start : start + 100], NOW)
    family = keys.log_key("points", "default").removesuffix(":log")
    incremental, expiries = everything(server, family)
    assert rebuild_family(server, POINTS, "default", NOW) == len(entries)
    rebuilt, rebuilt_expiries = everything(server, family)
    assert rebuilt_expiries == pytest.approx(expiries, abs=50)
    assert sum(at > 0 for at in expiries.values()) > 10
    sums = {k: v.pop("sum") for k, v in incremental.items() if ":meta:" in str(k)}
    assert {k: float(v.pop("sum")) for k, v in rebuilt.items() if ":meta:" in str(k)} == (
        pytest.approx({k: float(v) for k, v in sums.items()}, rel=1e-12)
    )
    assert rebuilt == incremental

    latest: dict[str, tuple[int, str]] = {}
    for e in entries:
        latest[e.player_id] = max(latest.get(e.player_id, (-1, "")), (e.achieved_at, e.name))
    alltime = readable_boards(POINTS, "default", NOW)[0]
    page = read_page(server, alltime, 0, 100)
    assert page.total == 40 and page.updated_at == NOW
    assert {row.player_id: row.name for row in page.rows} == {
        pid: name for pid, (_, name) in latest.items()
    }
    best = max(e.score for e in entries)
    assert page.rows[0].score == best == 123456.789012345678
    standing = read_standing(server, alltime, page.rows[20].player_id, around=2)
    assert standing is not None and [row.rank for row in standing.neighbours] == [
        19,
        20,
        21,
        22,
        23,
    ]
