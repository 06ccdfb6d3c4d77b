"""Rebuild, reconcile, compaction and prune of the games of SPEC §11 on the real redis-server
(whose Lua and number formatting are the production ones): a game that keeps a sum with
subscores and dense ties over five windows, and one that keeps the best with subscores and
metadata, and one that keeps a sum with metadata. Boards built entry by entry, rebuilt from
the log, repaired after a drift, and compacted, read the same."""

from __future__ import annotations

import json
import random
import time

from app.leaderboard.boards import Entry, PlayerRecord, apply_entries, split_member
from app.leaderboard.compaction import compact_family
from app.leaderboard.games import game_from_table
from app.leaderboard.rebuild import prune_family, readable_boards, rebuild_family, reconcile_family
from app.storage import keys

DB = 12  # a database of the session's redis-server that nothing else uses
DAY = 86_400_000
VARIANT = "default"
WINDOWS = ["alltime", "daily", "weekly", "monthly", "season"]
SEASON = {"every": "7d", "starts_at": "2020-01-06T00:00:00Z"}

TALLY = game_from_table(
    "tally",
    {
        "order": "higher",
        "keep": "sum",
        "subscore_order": "higher",
        "ties": "dense",
        "windows": WINDOWS,
        "season": SEASON,
    },
)
SUMS = game_from_table(
    "sums",
    {
        "order": "higher",
        "keep": "sum",
        "metadata_max_bytes": 64,
        "windows": WINDOWS,
        "season": SEASON,
    },
)
BEST = game_from_table(
    "best",
    {
        "order": "lower",
        "subscore_order": "lower",
        "ties": "competition",
        "metadata_max_bytes": 64,
        "windows": WINDOWS,
        "season": SEASON,
        "retention_days": 60,
    },
)


def history(game, now: int, n: int = 600, seed: int = 3) -> list[Entry]:
    """Entries of 40 players over the 80 days before ``now``, at quarter days: scores from 0
    (a zero of a higher-is-better game is -0 on its board), subscores, some metadata, ties."""
    rng = random.Random(seed)
    return [
        Entry(
            f"s-{i:05d}",
            game,
            VARIANT,
            f"player-{rng.randrange(40):012d}",
            rng.choice(["Ann", "Bob", "Cy"]),
            rng.randint(0, 6),
            now - rng.randrange(1, 320) * (DAY // 4) - rng.choice([0, 1]),  # ties in time
            subscore=rng.randint(-3, 3),
            metadata=json.dumps({"n": rng.randrange(5)}) if rng.random() < 0.5 else None,
        )
        for i in range(n)
    ]


def shown(client, game, now: int) -> dict:
    """Every readable board: its ranking, its players' records of it, its rows' metadata and
    (dense ties) its values and their counts."""
    players = keys.players_key(game.slug, VARIANT)
    emeta = keys.entry_metadata_key(game.slug, VARIANT)
    read = {}
    for board in readable_boards(game, VARIANT, now):
        ranked = client.zrange(board.ranking_key, 0, -1, withscores=True)
        rows = []
        for member, sort in ranked:
            _, at, pid = split_member(member)
            record = PlayerRecord.decode(client.hget(players, pid))
            rows.append(
                (
                    member,
                    sort,
                    record.name,
                    record.member(board, pid),
                    client.hget(emeta, f"{at:013d}:{pid}"),
                )
            )
        values = (
            client.zrange(board.values_key, 0, -1, withscores=True),
            client.hgetall(board.value_counts_key),
        )
        read[board.window, board.period] = (rows, values)
    return read


def test_a_sum_game_rebuilds_and_reconciles_its_boards_and_values(data):
    now = int(time.time() * 1000)
    entries = history(TALLY, now)
    for first in range(0, len(entries), 50):
        apply_entries(data, entries[first : first + 50], now)
    before = shown(data, TALLY, now)
    assert sum(len(rows) for rows, _ in before.values()) > 100
    alltime = before[("alltime", "all")]
    assert alltime[1][0] and len(alltime[1][0]) < len(alltime[0])  # players share totals

    assert rebuild_family(data, TALLY, VARIANT, now) == len(entries)
    assert shown(data, TALLY, now) == before
    assert reconcile_family(data, TALLY, VARIANT, now) == []

    monthly = next(b for b in readable_boards(TALLY, VARIANT, now) if b.window == "monthly")
    value = data.zrange(monthly.values_key, 0, 0)[0]
    data.hincrby(monthly.value_counts_key, value, 5)
    assert reconcile_family(data, TALLY, VARIANT, now) == [monthly]
    assert shown(data, TALLY, now) == before

    # Compaction keeps every entry of a sum.
    report = compact_family(data, TALLY, VARIANT, now + 1000, 0)
    assert (report.dropped, data.xlen(keys.log_key("tally", VARIANT))) == (0, len(entries))


def test_compaction_and_prune_keep_the_boards_and_the_metadata_they_show(data):
    now = int(time.time() * 1000)
    entries = history(BEST, now, seed=5)
    for first in range(0, len(entries), 50):
        apply_entries(data, entries[first : first + 50], now)
    emeta = keys.entry_metadata_key("best", VARIANT)

    # Prune: entries past the 60 days' retention go, with their metadata.
    deleted = prune_family(data, BEST, VARIANT, now)
    assert deleted > 0
    cutoff = now - 60 * DAY
    assert all(int(field.split(":")[0]) >= cutoff for field in data.hkeys(emeta))
    before = shown(data, BEST, now)
    fields = data.hlen(emeta)

    report = compact_family(data, BEST, VARIANT, now + 1000, 0)
    assert report.dropped > 0
    assert shown(data, BEST, now) == before
    assert data.hlen(emeta) < fields
    # What is left is the metadata of entries still logged.
    logged = {f"{f['at']}:{f['pid']}" for _, f in data.xrange(keys.log_key("best", VARIANT))}
    assert set(data.hkeys(emeta)) <= logged
    rebuild_family(data, BEST, VARIANT, now)
    assert shown(data, BEST, now) == before


def test_compacting_a_sum_game_keeps_the_metadata_its_rows_show_and_no_more(data):
    now = int(time.time() * 1000)
    entries = history(SUMS, now, seed=7)
    for first in range(0, len(entries), 50):
        apply_entries(data, entries[first : first + 50], now)
    emeta = keys.entry_metadata_key("sums", VARIANT)
    before = shown(data, SUMS, now)
    fields = data.hlen(emeta)
    rows_shown = {
        f"{split_member(member)[1]:013d}:{split_member(member)[2]}"
        for rows, _ in before.values()
        for member, _, _, _, meta in rows
        if meta is not None
    }
    assert len(rows_shown) < fields

    report = compact_family(data, SUMS, VARIANT, now + 1000, 0)
    assert (report.dropped, data.xlen(keys.log_key("sums", VARIANT))) == (0, len(entries))
    assert set(data.hkeys(emeta)) == rows_shown
    assert report.metadata_dropped == fields - len(rows_shown)
    assert shown(data, SUMS, now) == before
    rebuild_family(data, SUMS, VARIANT, now)
    assert shown(data, SUMS, now) == before
