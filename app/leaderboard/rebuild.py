"""Rebuild a family's boards from its log, check them against it, and prune it.

A rebuild replays the log into copies of every readable board of a game variant, in slices
(each an atomic Lua call, so Redis is never blocked for long), then swaps all copies in with
one atomic script that first checks the copies have seen the log's newest entry; if entries
arrived meanwhile it reads on and tries again. Readers see the old boards until the swap and
the new ones after it, never a missing or partial board. Plain functions over a redis client.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from app.leaderboard.boards import Board, Horizon, PlayerRecord, script
from app.leaderboard.games import Game
from app.leaderboard.windows import day_index, day_start_ms, period_of, week_index, week_start_ms
from app.storage import keys

#: Log entries replayed per Lua call: small enough to keep each call to a few milliseconds.
SLICE = 2000

#: Called with (entries read so far, entries in the log).
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def readable_boards(game: Game, variant: str, now_ms: int) -> list[Board]:
    """All-time and every daily and weekly board of a variant that is still readable (its
    period ended less than the window's retention ago), the newest first."""
    horizon = Horizon.of(game, now_ms)
    days = range(day_index(now_ms), horizon.day - 1, -1)
    weeks = range(week_index(now_ms), horizon.week - 1, -1)
    return [
        Board(game, variant),
        *(Board(game, variant, "daily", period_of("daily", day_start_ms(d))) for d in days),
        *(Board(game, variant, "weekly", period_of("weekly", week_start_ms(w))) for w in weeks),
    ]


@dataclass
class FamilyBuild:
    """Copies of a family's boards, and of its players hash, being built from its log.

    ``boards`` are every board of the family that is still readable: the players hash is
    shared by them all, and its copy replaces the live one.
    """

    client: redis.Redis
    game: Game
    variant: str
    boards: list[Board]
    now_ms: int
    position: str = "-"  # the last log id the copies have seen
    read: int = 0
    caught_up: bool = field(default=False, init=False)

    @classmethod
    def readable(cls, client: redis.Redis, game: Game, variant: str, now_ms: int) -> FamilyBuild:
        """A build of every board of a variant that is still readable at ``now_ms``."""
        return cls(client, game, variant, readable_boards(game, variant, now_ms), now_ms)

    @property
    def _log(self) -> str:
        return keys.log_key(self.game.slug, self.variant)

    @property
    def _banned(self) -> str:
        return keys.banned_key(self.game.slug, self.variant)

    @property
    def _players(self) -> str:
        return keys.players_key(self.game.slug, self.variant)

    @property
    def _built_players(self) -> str:
        return keys.build_key(self._players)

    def _built(self, board: Board) -> tuple[str, str]:
        return keys.build_key(board.ranking_key), keys.build_key(board.meta_key)

    def start(self) -> FamilyBuild:
        """Drop copies a crashed rebuild may have left."""
        self.client.delete(
            self._built_players, *(key for board in self.boards for key in self._built(board))
        )
        return self

    def read_on(self, progress: Progress = _no_progress) -> None:
        """Replay the log from where the copies are up to its current end."""
        build = script(self.client, "build_boards")
        horizon = Horizon.of(self.game, self.now_ms)
        built_keys: list[str] = []
        per_board: list[str | int] = []
        for board in self.boards:
            built_keys += self._built(board)
            per_board += (*board.achieved_range(), *board.tag)
        total = cast(int, self.client.xlen(self._log))
        while True:
            start = "-" if self.position == "-" else f"({self.position}"
            position, read = build(
                keys=[self._log, self._banned, self._built_players, *built_keys],
                args=[
                    start,
                    SLICE,
                    self.game.sign,
                    self.now_ms,
                    horizon.day,
                    horizon.week,
                    *per_board,
                ],
            )
            self.position, self.read = position, self.read + read
            progress(self.read, max(total, self.read))
            if read < SLICE:
                return

    def swap(self) -> bool:
        """Swap every copy in at once if they have seen the whole log; False if it grew."""
        quads: list[str] = []
        per_board: list[str | int] = []
        for board in self.boards:
            quads += [*self._built(board), board.ranking_key, board.meta_key]
            per_board += (board.expire_at(), *board.tag)
        return bool(
            script(self.client, "swap_boards")(
                keys=[self._log, self._banned, self._built_players, self._players, *quads],
                args=[self.position, self.now_ms, self.game.sign, *per_board],
            )
        )

    def finish(self, progress: Progress = _no_progress) -> None:
        """Read on and swap until the swap finds nothing new in the log."""
        while True:
            self.read_on(progress)
            if self.swap():
                return

    def at_head(self) -> bool:
        """Whether the copies have seen the log's newest entry."""
        newest = cast(list[Any], self.client.xrevrange(self._log, count=1))
        return (newest[0][0] if newest else "-") == self.position

    def discard(self) -> None:
        """Forget the copies."""
        self.start()

    def differing(self) -> list[Board]:
        """The boards whose live cache differs from its copy (compare after :meth:`read_on`):
        their rankings, the sum of their scores, or what their players' records say of them."""
        return [b for b in self.boards if not self._same_board(b)]

    def _same_board(self, board: Board) -> bool:
        built_z, built_m = self._built(board)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(board.ranking_key)
        pipe.zcard(built_z)
        pipe.hget(board.meta_key, "sum")
        pipe.hget(built_m, "sum")
        live_size, built_size, live_sum, built_sum = pipe.execute()
        if live_size != built_size:
            return False
        if live_size and not math.isclose(
            float(live_sum or 0), float(built_sum or 0), rel_tol=1e-9, abs_tol=1e-9
        ):
            return False
        tag, _ = board.tag
        step = 5000
        for first in range(0, live_size, step):
            pipe.zrange(board.ranking_key, first, first + step - 1, withscores=True)
            pipe.zrange(built_z, first, first + step - 1, withscores=True)
            live, built = pipe.execute()
            if live != built:
                return False
            players = [member.split(":", 1)[1] for member, _ in live]
            if players:
                pipe.hmget(self._players, players)
                pipe.hmget(self._built_players, players)
                live_records, built_records = pipe.execute()
                if [_shown(text, tag) for text in live_records] != [
                    _shown(text, tag) for text in built_records
                ]:
                    return False
        return True


def _shown(text: str | None, tag: str) -> tuple[int, str, int | None] | None:
    """What a player's record says of one board: the name, its time, and the row's time."""
    if text is None:
        return None
    record = PlayerRecord.decode(text)
    return record.name_at, record.name, record.tags.get(tag)


def rebuild_family(
    client: redis.Redis,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
) -> int:
    """Rebuild every readable board of a variant from its log; return the entries read."""
    build = FamilyBuild.readable(client, game, variant, now_ms)
    build.start().finish(progress)
    return build.read


def reconcile_family(
    client: redis.Redis,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
) -> list[Board]:
    """Compare each board with its log; if any drifted, swap rebuilt boards in. Return those."""
    build = FamilyBuild.readable(client, game, variant, now_ms)
    build.start().read_on(progress)
    # Entries applied while comparing would look like drift: compare again until the log
    # stood still during a comparison (a few tries; swapping a board that was right is safe).
    for _ in range(3):
        drifted = build.differing()
        if build.at_head():
            break
        build.read_on(progress)
    if drifted:
        build.finish(progress)
    else:
        build.discard()
    return drifted


def prune_family(
    client: redis.Redis,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
) -> int:
    """Delete log entries older than the game's retention and rebuild the boards if any went.

    Returns how many entries were deleted. Window boards past their own retention expire by
    themselves (their keys carry a TTL).
    """
    cutoff = now_ms - game.retention_days * 86_400_000
    prune = script(client, "prune_log")
    log, applied = keys.log_key(game.slug, variant), keys.applied_key(game.slug, variant)
    total = client.xlen(log)
    position, read, deleted = "-", 0, 0
    while True:
        start = "-" if position == "-" else f"({position}"
        position, got, gone = prune(keys=[log, applied], args=[start, SLICE, cutoff])
        read, deleted = read + got, deleted + gone
        progress(read, max(total, read))
        if got < SLICE:
            break
    if deleted:
        rebuild_family(client, game, variant, now_ms)
    return deleted
