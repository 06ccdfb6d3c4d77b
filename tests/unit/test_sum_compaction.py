"""Compaction of a game that keeps a sum and takes metadata: every entry stays in the log, and
the entry metadata keeps only the fields the readable boards show (each row shows its latest
entry's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.leaderboard import compaction
from app.leaderboard.boards import Entry, apply_entries, read_page
from app.leaderboard.compaction import compact_family
from app.leaderboard.games import game_from_table
from app.leaderboard.players import remove_player
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.storage import keys

VARIANT = "default"
TALLY = game_from_table(
    "tally",
    {
        "order": "higher",
        "keep": "sum",
        "subscore_order": "higher",
        "metadata_max_bytes": 64,
        "windows": ["alltime", "daily", "weekly"],
    },
)
EMETA = keys.entry_metadata_key("tally", VARIANT)


def _ms(month: int, day: int, hour: int = 12) -> int:
    return int(datetime(2036, month, day, hour, tzinfo=UTC).timestamp() * 1000)


# A Wednesday of ISO week 47. Readable then: the days from 2036-11-12 and the weeks from W42.
NOW = _ms(11, 19)
BANNED_AT = _ms(11, 17)


@pytest.fixture
def instant() -> int:
    return NOW


def pid(player: str) -> str:
    return f"player-{player * 12}"


def entry(sid: str, at: int, n: int | None) -> Entry:
    """An entry of the player ``sid`` begins with, scoring 1, with metadata ``{"n": n}``."""
    meta = json.dumps({"n": n}, separators=(",", ":")) if n is not None else None
    return Entry(sid, TALLY, VARIANT, pid(sid[0]), sid[0].upper(), 1, at, subscore=n, metadata=meta)


# Which row of the readable boards shows each entry's metadata, if any does.
HISTORY = [
    entry("a1", _ms(10, 14, 10), 1),  # gone: W42 shows a2 (its day is no longer readable)
    entry("a2", _ms(10, 14, 11), 2),  # a's row of W42
    entry("a3", _ms(11, 12, 10), 3),  # gone: 11-12 shows a4
    entry("a4", _ms(11, 12, 11), 4),  # a's row of 11-12
    entry("a5", _ms(11, 16, 10), 5),  # gone: 11-16 and W46 show a6 (and its lack of metadata)
    entry("a6", _ms(11, 16, 11), None),
    entry("a7", _ms(11, 18, 13), 7),  # a's row of 11-18, W47 and all time
    entry("b1", _ms(11, 10, 10), 1),  # gone: 11-10 is no longer readable, W46 shows b3
    entry("b2", _ms(11, 13, 9), 2),  # gone: 11-13 shows b3
    entry("b3", _ms(11, 13, 10), 3),  # b's row of 11-13, W46 and all time
    entry("c1", _ms(11, 12, 10), 1),  # kept, like every field of c: c is banned
    entry("c2", _ms(11, 12, 11), 2),
]
SHOWN = {"a2", "a4", "a7", "b3", "c1", "c2"}


def field(e: Entry) -> str:
    return f"{e.achieved_at:013d}:{e.player_id}"


def play(r, clock) -> None:
    """Apply the history, each entry an hour after it was achieved, and ban c on the way."""
    for e in sorted(HISTORY, key=lambda e: e.achieved_at):
        clock.move_to(e.achieved_at + 3_600_000)
        assert apply_entries(r, [e], clock.now)[0].fresh
    clock.move_to(BANNED_AT)
    remove_player(r, TALLY, pid("c"), clock.now)
    clock.move_to(NOW)


def boards_read(r) -> dict:
    """Every readable board's rows, with their metadata."""
    return {
        (board.window, board.period): read_page(r, board, 0, 100, metadata=True).rows
        for board in readable_boards(TALLY, VARIANT, NOW)
    }


@pytest.mark.parametrize("chunk", [1, 300])
def test_compaction_keeps_exactly_the_metadata_the_rows_show(
    redis_client, clock, monkeypatch, chunk
):
    monkeypatch.setattr(compaction, "METADATA_CHUNK", chunk)
    play(redis_client, clock)
    assert redis_client.hlen(EMETA) == len([e for e in HISTORY if e.metadata])
    before = boards_read(redis_client)
    shown = {
        f"{row.achieved_at:013d}:{row.player_id}"
        for rows in before.values()
        for row in rows
        if row.metadata
    }

    report = compact_family(redis_client, TALLY, VARIANT, NOW, 86_400)
    assert (report.read, report.kept, report.dropped) == (len(HISTORY), len(HISTORY), 0)
    kept = {field(e) for e in HISTORY if e.submission_id in SHOWN}
    assert set(redis_client.hkeys(EMETA)) == kept
    assert kept - shown == {field(e) for e in HISTORY if e.player_id == pid("c")}
    assert report.metadata_dropped == len([e for e in HISTORY if e.metadata]) - len(SHOWN)
    assert boards_read(redis_client) == before
    assert json.loads(redis_client.hget(EMETA, field(HISTORY[1]))) == {"n": 2}

    # Nothing more to drop; a rebuild from the log shows the same metadata.
    assert compact_family(redis_client, TALLY, VARIANT, NOW, 86_400).metadata_dropped == 0
    rebuild_family(redis_client, TALLY, VARIANT, NOW)
    assert boards_read(redis_client) == before
    assert set(redis_client.hkeys(EMETA)) == kept


def test_a_field_the_record_no_longer_shows_goes_and_one_it_shows_stays(redis_client, clock):
    play(redis_client, clock)
    compact_family(redis_client, TALLY, VARIANT, NOW, 86_400)
    # A later entry of a on 11-18 moves their rows of 11-18, W47 and all time on: a7's field
    # goes at the next compaction, the new one stays.
    later = entry("a8", _ms(11, 18, 14), 8)
    assert apply_entries(redis_client, [later], NOW)[0].fresh
    report = compact_family(redis_client, TALLY, VARIANT, NOW, 86_400)
    assert report.metadata_dropped == 1
    assert field(HISTORY[6]) not in redis_client.hkeys(EMETA)
    assert redis_client.hget(EMETA, field(later)) == '{"n":8}'
