"""Compaction of a family's log by the prune job: what stays, what goes, what is archived, and
that the boards read the same before, after, and rebuilt from what stays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.leaderboard import compaction
from app.leaderboard.boards import Board, Entry, apply_entries, read_page, read_standing
from app.leaderboard.compaction import Compaction, compact_family, prune_and_compact
from app.leaderboard.games import load_registry
from app.leaderboard.players import remove_player
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.storage import keys
from app.storage.archive import read_lines

GUESS = load_registry().get("guess")
DAY = 86_400_000
HOUR = 3_600_000
WINDOW_S = 86_400


def _ms(month: int, day: int, hour: int = 12, minute: int = 0, year: int = 2036) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# A Wednesday of ISO week 47. Readable then: the days from 2036-11-12 (its board lasts until
# 11-20) and the weeks from W42 (2036-10-13, which lasts until 11-24).
NOW = _ms(11, 19)
LOG = keys.log_key("guess", "100")
APPLIED = keys.applied_key("guess", "100")


@pytest.fixture
def instant() -> int:
    return NOW


def pid(player: str) -> str:
    return f"player-{player * 12}"


def scored(sid: str, score: int, at: int, applied: int | None = None, name: str | None = None):
    """An entry (``sid``'s first letter is the player), with when it is applied (a second after
    it was achieved unless said)."""
    entry = Entry(sid, GUESS, "100", pid(sid[0]), name or sid[0].upper(), score, at)
    return entry, applied if applied is not None else at + 1000


# Why each is kept or dropped at NOW with a day's window (from 2036-11-18 12:00).
HISTORY = [
    scored("a1", 2, _ms(9, 1)),  # kept: a's all-time best
    scored("a2", 4, _ms(9, 2)),  # dropped
    scored("a3", 3, _ms(10, 14)),  # kept: a's best of W42 (its day is no longer readable)
    scored("a4", 6, _ms(10, 15)),  # dropped: worse in W42
    scored("a5", 5, _ms(11, 12, 10)),  # kept: a's best of 11-12 and of W46
    scored("a6", 7, _ms(11, 12, 11)),  # dropped
    scored("a7", 9, _ms(11, 16)),  # kept: a's best (only) of 11-16
    scored("a9", 9, _ms(11, 18, 10), applied=_ms(11, 18, 14)),  # kept: applied in the window
    scored("a8", 8, _ms(11, 18, 13)),  # kept: in the window, and a's latest
    scored("b1", 1, _ms(9, 5)),  # kept: b's all-time best
    scored("b2", 3, _ms(9, 6)),  # dropped
    scored("b3", 8, _ms(10, 1)),  # dropped: W40 and its day are no longer readable
    scored("b4", 9, _ms(11, 10)),  # kept: b's best of W46
    scored("b5", 10, _ms(11, 11, 10)),  # dropped: worse in W46, 11-11 not readable
    scored("b6", 12, _ms(11, 11, 20), name="Bee"),  # kept: b's latest ...
    scored("b7", 11, _ms(11, 11, 20), name="B. B."),  # kept: ... at the same ms
    scored("c1", 3, _ms(9, 1)),  # kept, like every entry of c: c is banned
    scored("c2", 4, _ms(9, 2)),
    scored("c3", 5, _ms(11, 12)),
    scored("d1", 7, _ms(8, 1)),  # kept: d's only entry (best and latest)
    scored("e1", 4, _ms(11, 14, 8)),  # kept: e's all-time best, best of 11-14 and W46
    scored("e2", 6, _ms(11, 14, 9)),  # dropped
    scored("e3", 5, _ms(11, 15)),  # kept: e's best of 11-15, and their latest
]
DROPPED = {"a2", "a4", "a6", "b2", "b3", "b5", "e2"}
BANNED_AT = _ms(11, 17)


def play(r, clock, history=HISTORY, ban_at=BANNED_AT):
    """Apply the history in the order it arrives, each at its time, and ban c on the way."""
    banned = False
    for entry, applied in sorted(history, key=lambda pair: pair[1]):
        if not banned and applied > ban_at:
            clock.move_to(ban_at)
            remove_player(r, GUESS, pid("c"), clock.now)
            banned = True
        clock.move_to(applied)
        assert apply_entries(r, [entry], clock.now)[0].fresh
    clock.move_to(NOW)


def boards_read(r, now=NOW):
    """Every readable board, as the read functions give it (all rows, and each player's
    standing with a neighbour each side); the time of the last change aside."""
    read = {}
    for board in readable_boards(GUESS, "100", now):
        page = read_page(r, board, 0, 1000)
        standings = {
            row.player_id: read_standing(r, board, row.player_id, around=1) for row in page.rows
        }
        read[board.window, board.period] = (
            page.rows,
            page.total,
            {p: (s.row, s.neighbours, s.total) for p, s in standings.items() if s},
        )
    return read


def logged(r):
    return [fields["sid"] for _, fields in r.xrange(LOG)]


def test_the_log_keeps_the_window_the_rows_the_latest_and_the_banned(redis_client, clock):
    play(redis_client, clock)
    before = boards_read(redis_client)
    assert any(rows for rows, _, _ in before.values())

    report = compact_family(redis_client, GUESS, "100", NOW, WINDOW_S)

    everything = [entry.submission_id for entry, _ in sorted(HISTORY, key=lambda p: p[1])]
    assert logged(redis_client) == [sid for sid in everything if sid not in DROPPED]
    assert report.read == len(HISTORY)
    assert (report.kept, report.dropped, report.archived) == (len(HISTORY) - 7, 7, 0)
    # Only a9 and a8 were applied inside the window: their ids still answer a redelivery.
    assert sorted(redis_client.hkeys(APPLIED)) == ["a8", "a9"]
    assert report.applied_dropped == len(HISTORY) - 2
    assert boards_read(redis_client) == before
    rebuild_family(redis_client, GUESS, "100", NOW)
    assert boards_read(redis_client) == before

    again = compact_family(redis_client, GUESS, "100", NOW, WINDOW_S)
    assert (again.read, again.dropped, again.applied_dropped) == (len(HISTORY) - 7, 0, 0)
    assert redis_client.exists(keys.log_copy_key("guess", "100")) == 0


def test_an_unban_ranks_the_banned_players_entries_as_before(redis_client, clock):
    play(redis_client, clock)
    compact_family(redis_client, GUESS, "100", NOW, WINDOW_S)
    redis_client.srem(keys.banned_key("guess", "100"), pid("c"))
    rebuild_family(redis_client, GUESS, "100", NOW)
    alltime = read_page(redis_client, Board(GUESS, "100"), 0, 100).rows
    assert [(row.player_id, row.score) for row in alltime if row.player_id == pid("c")] == [
        (pid("c"), 3)
    ]
    day = read_page(redis_client, Board(GUESS, "100", "daily", "2036-11-12"), 0, 100).rows
    assert pid("c") in {row.player_id for row in day}


def test_a_shorter_window_keeps_less_and_forgets_more(redis_client, clock):
    play(redis_client, clock)
    report = compact_family(redis_client, GUESS, "100", NOW, 0)
    # a9 goes too once outside the window: it is no row and not a's latest.
    assert set(logged(redis_client)) == {e.submission_id for e, _ in HISTORY} - DROPPED - {"a9"}
    assert redis_client.hlen(APPLIED) == 0 and report.applied_dropped == len(HISTORY)


def test_the_log_keeps_giving_new_ids_after_its_newest_entry_went(redis_client, clock):
    late = [*HISTORY, scored("e4", 9, _ms(11, 14, 10), applied=_ms(11, 18, 15))]
    play(redis_client, clock, late)
    ((newest_id, _),) = redis_client.xrevrange(LOG, count=1)
    compact_family(redis_client, GUESS, "100", NOW, 0)
    assert "e4" not in logged(redis_client)  # an old, worse entry applied last
    assert redis_client.xinfo_stream(LOG)["last-generated-id"] == newest_id
    clock.move_to(_ms(11, 18, 15) + 1000)  # the log's clock: behind the id it last gave
    new_id = redis_client.xadd(LOG, {"sid": "z"})
    assert new_id > newest_id


@pytest.mark.parametrize(("arriving", "swaps"), [(2, [1]), (6, [0, 1])])
def test_entries_logged_during_a_compaction_are_kept(
    redis_client, clock, monkeypatch, arriving, swaps
):
    """Entries that arrive after the last slice was judged are copied by the swap, unless more
    than a slice's worth wait: then the swap refuses, and the compaction judges on first."""
    play(redis_client, clock)
    monkeypatch.setattr(compaction, "SLICE", 4)
    swapped: list[int] = []
    real_script = compaction.scripts.script

    def spied(client, name, library=None):
        bound = real_script(client, name, library)
        if name != "swap_log":
            return bound

        def call(keys, args):
            reply = bound(keys=keys, args=args)
            swapped.append(reply[0])
            return reply

        return call

    monkeypatch.setattr(compaction.scripts, "script", spied)
    arrived = False

    def meanwhile(done: int, total: int) -> None:
        nonlocal arrived
        if done == total and not arrived:  # the last slice is judged
            arrived = True
            for i in range(arriving):
                entry = Entry(f"n{i}", GUESS, "100", pid("n"), "N", 50 + i, NOW - i)
                apply_entries(redis_client, [entry], NOW)

    report = compact_family(redis_client, GUESS, "100", NOW, WINDOW_S, progress=meanwhile)
    assert swapped == swaps
    assert {f"n{i}" for i in range(arriving)} <= set(logged(redis_client))
    assert report.read == len(HISTORY) + arriving and report.dropped == len(DROPPED)
    assert report.kept == len(HISTORY) + arriving - len(DROPPED)


def test_dropped_entries_are_archived_by_the_day_they_were_achieved(redis_client, clock, tmp_path):
    play(redis_client, clock)
    report = compact_family(redis_client, GUESS, "100", NOW, WINDOW_S, str(tmp_path))
    assert report.archived == report.dropped == len(DROPPED)
    folder = tmp_path / "guess" / "100"
    files = sorted(p.name for p in folder.iterdir())
    by_sid = {entry.submission_id: entry for entry, _ in HISTORY}
    days = {datetime.fromtimestamp(by_sid[s].achieved_at / 1000, UTC).date() for s in DROPPED}
    assert files == sorted(f"{day.isoformat()}.ndjson.gz" for day in days)
    lines = [line for name in files for line in read_lines(folder / name)]
    assert sorted(line["sid"] for line in lines) == sorted(DROPPED)
    for line in lines:
        entry = by_sid[line["sid"]]
        assert line == {
            "id": line["id"],
            "sid": entry.submission_id,
            "pid": entry.player_id,
            "name": entry.name,
            "score": entry.score,
            "at": entry.achieved_at,
        }
        assert int(line["id"].split("-")[0]) == entry.achieved_at + 1000  # when applied
    # A second run has nothing left to archive.
    assert compact_family(redis_client, GUESS, "100", NOW, WINDOW_S, str(tmp_path)).archived == 0
    assert [line for name in files for line in read_lines(folder / name)] == lines


def test_prune_drops_entries_past_retention_then_compacts(redis_client, clock, tmp_path):
    stale = scored("f1", 1, NOW - (GUESS.retention_days + 2) * DAY)
    play(redis_client, clock, [*HISTORY, stale, scored("f2", 6, _ms(11, 1))])
    seen: list[tuple[int, int]] = []
    result = prune_and_compact(
        redis_client,
        GUESS,
        "100",
        NOW,
        lambda done, total: seen.append((done, total)),
        compaction=Compaction(WINDOW_S, str(tmp_path)),
    )
    assert result == {
        "past_retention": 1,
        "read": len(HISTORY) + 1,
        "kept": len(HISTORY) + 1 - len(DROPPED),
        "dropped": len(DROPPED),
        "archived": len(DROPPED),
        "applied_dropped": len(HISTORY) - 2 + 1,
        "metadata_dropped": 0,
    }
    assert "f1" not in logged(redis_client) and "f2" in logged(redis_client)
    alltime = read_page(redis_client, Board(GUESS, "100"), 0, 100).rows
    assert (pid("f"), 6) in [(row.player_id, row.score) for row in alltime]
    total = len(HISTORY) + 2
    assert all(t == total for _, t in seen) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
