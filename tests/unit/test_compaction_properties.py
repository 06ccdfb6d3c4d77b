"""Properties of compaction, for any history: entries from a few players applied over several
simulated days, bans and unbans, and the prune job's compaction run at random moments with
any idempotency window.

- Each compaction keeps exactly the entries applied inside the window, the players' rows on
  the readable boards (as read_page shows them), each player's latest entries and every entry
  of a banned player, in log order;
- the boards read the same as those of a twin store that never compacts, and a rebuild from
  the compacted log gives them again, even after an unban.

The days' and weeks' boards of these games stay readable one day and one week after their
period, so boards stop being readable, and their rows stop keeping entries, within a history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import time_machine
from hypothesis import given, settings, target
from hypothesis import strategies as st

from app.clock import now_ms
from app.leaderboard.boards import Entry, apply_entries, read_page, read_standing
from app.leaderboard.compaction import compact_family
from app.leaderboard.games import game_from_table
from app.leaderboard.players import remove_player
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.leaderboard.windows import period_of
from app.storage import keys

SHORT = {"daily_retention_days": 1, "weekly_retention_days": 7}
GAMES = {
    "lower": game_from_table("lower", {"order": "lower", "score_max": 10, **SHORT}),
    "higher": game_from_table("higher", {"order": "higher", "integer": False, **SHORT}),
}
SCORES = {"lower": st.integers(1, 4), "higher": st.sampled_from([0.5, 1.0, 2.25, 7.0])}
VARIANT = "default"
HOUR = 3_600_000
# A Saturday evening: the first day and week end within hours.
START = datetime(2036, 11, 15, 20, tzinfo=UTC)

PLAYERS = st.integers(0, 3)
NAMES = st.sampled_from(["Ann", "Bob", "Ann B."])
WINDOWS_S = st.sampled_from([0, 3600, 6 * 3600, 86_400])


def steps(game: str):
    """A history: per step, time passes, a few entries arrive (each achieved up to 3 hours
    before it is applied, often at the same ms as another: ties), then perhaps a compaction,
    a ban or an unban."""
    entry = st.tuples(
        PLAYERS, SCORES[game], st.sampled_from([0, 1, 2 * HOUR]) | st.integers(0, 3 * HOUR), NAMES
    )
    return st.lists(
        st.tuples(
            st.integers(0, 30 * HOUR),
            st.lists(entry, max_size=4),
            st.none() | WINDOWS_S,
            st.none() | st.tuples(st.sampled_from(["ban", "unban"]), PLAYERS),
        ),
        min_size=1,
        max_size=16,
    )


def pid(player: int) -> str:
    return f"player-{player:012d}"


def boards_read(r, game, now: int) -> dict:
    """Every board readable at ``now`` through the read functions: all its rows, and each
    player's standing with a neighbour on each side (the time of the last change aside)."""
    read = {}
    for board in readable_boards(game, VARIANT, now):
        page = read_page(r, board, 0, 100)
        standings = {}
        for player in range(4):
            standing = read_standing(r, board, pid(player), around=1)
            if standing is not None:
                standings[player] = (standing.row, standing.neighbours, standing.total)
        read[board.window, board.period] = (page.rows, page.total, standings)
    return read


def expected_kept(r, game, now: int, window_s: int) -> list[str]:
    """The log ids a compaction at ``now`` must keep, worked out from what the read functions
    show and the log, not from how compaction works it out."""
    log = r.xrange(keys.log_key(game.slug, VARIANT))
    rows = {
        (board.window, board.period, row.player_id): row.achieved_at
        for board in readable_boards(game, VARIANT, now)
        for row in read_page(r, board, 0, 100).rows
    }
    latest: dict[str, int] = {}
    for _, fields in log:
        latest[fields["pid"]] = max(latest.get(fields["pid"], 0), int(fields["at"]))
    banned = r.smembers(keys.banned_key(game.slug, VARIANT))
    kept = []
    for log_id, fields in log:
        player, at = fields["pid"], int(fields["at"])
        if (
            int(log_id.split("-")[0]) >= now - window_s * 1000
            or any(rows.get((w, period_of(w, at), player)) == at for w in ("alltime", "daily"))
            or rows.get(("weekly", period_of("weekly", at), player)) == at
            or at == latest[player]
            or player in banned
        ):
            kept.append(log_id)
    return kept


def fresh() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def unban(r, game, player: int, now: int) -> None:
    """What lifting a ban does: the player's logged entries rank again."""
    r.srem(keys.banned_key(game.slug, VARIANT), pid(player))
    rebuild_family(r, game, VARIANT, now)


@pytest.mark.parametrize("slug", list(GAMES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_compacting_at_any_moment_keeps_what_boards_need_and_changes_none(slug, data):
    game = GAMES[slug]
    history = data.draw(steps(slug))
    compacted, whole = fresh(), fresh()
    log = keys.log_key(game.slug, VARIANT)
    dropped = 0
    with time_machine.travel(START, tick=False) as traveller:
        for n, (wait, entries, window_s, moderation) in enumerate(history):
            traveller.shift(timedelta(milliseconds=wait))
            for i, (player, score, back, name) in enumerate(entries):
                now = now_ms()
                entry = Entry(f"s{n}-{i}", game, VARIANT, pid(player), name, score, now - back)
                for r in (compacted, whole):
                    apply_entries(r, [entry], now)
                traveller.shift(timedelta(milliseconds=1))  # a log id per ms, as a drain's
            now = now_ms()
            if window_s is not None:
                kept = expected_kept(compacted, game, now, window_s)
                report = compact_family(compacted, game, VARIANT, now, window_s)
                assert [log_id for log_id, _ in compacted.xrange(log)] == kept
                assert (report.kept, report.read) == (len(kept), len(kept) + report.dropped)
                dropped += report.dropped
            if moderation is not None:
                action, player = moderation
                for r in (compacted, whole):
                    if action == "ban":
                        remove_player(r, game, pid(player), now)
                    else:
                        unban(r, game, player, now)
                if action == "unban":  # rebuilt from the compacted log: nothing of theirs lost
                    assert boards_read(compacted, game, now) == boards_read(whole, game, now)
        target(float(dropped))

        now = now_ms()
        expected = boards_read(whole, game, now)
        rebuild_family(compacted, game, VARIANT, now)
        assert boards_read(compacted, game, now) == expected
        rebuild_family(whole, game, VARIANT, now)  # the twin's boards are its log's
        assert boards_read(whole, game, now) == expected
