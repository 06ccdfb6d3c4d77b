"""Rebuild a family's boards from its log, check them against it, and prune it.

A rebuild reads the log once, in slices, and works out here each player's row (as the game
keeps it: the best, the latest or the sum) on every readable board of a game variant, each
player's record and, for dense ties, each board's distinct values; it writes them into copies
of the boards and of the players hash with commands of many members each, then replays in Lua (in
short slices, so Redis is never blocked for long) the entries appended meanwhile, and swaps all
copies in with one atomic script that first checks the copies have seen the log's newest entry;
if entries arrived meanwhile it reads on and tries again. Readers see the old boards until the
swap and the new ones after it, never a missing or partial board. Plain functions over a redis
client.
"""

from __future__ import annotations

import gc
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, cast

from app.leaderboard.boards import (
    Board,
    Horizon,
    PlayerRecord,
    board_keys,
    entry_boards,
    ranking_member,
    script,
    split_member,
    subscore_key,
    tag_order,
)
from app.leaderboard.games import Game
from app.leaderboard.windows import index_start_ms, period_of, readable_indexes
from app.storage import keys
from app.storage.connection import DataClient, node_client

#: Log entries replayed per Lua call: small enough to keep each call to a few milliseconds.
SLICE = 2000

#: Log entries per read of a rebuild's pass over the log (each a few milliseconds of Redis's).
READ_SLICE = 5000

#: Members per ZADD (fields per HSET) of the copies a rebuild writes, and commands per pipeline.
WRITE_CHUNK, WRITE_PIPELINE = 1000, 20

#: Slices of the log read, and pipelines of the copies sent, ahead of the thread that works
#: out the rows.
READS_AHEAD, WRITES_AHEAD = 3, 2


#: Called with (entries read so far, entries in the log).
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


def readable_boards(game: Game, variant: str, now_ms: int) -> list[Board]:
    """The all-time board of a variant and every board of the game's other windows that is
    still readable (its period has begun and ended less than the window's retention ago), in
    the game's order of windows, each window's newest first."""
    boards = [Board(game, variant)]
    for window in game.windows:
        if window == "alltime":
            continue
        keep = game.window_retention_ms(window) or 0
        for index in readable_indexes(window, keep, now_ms, game.season):
            start = index_start_ms(window, index, game.season)
            boards.append(Board(game, variant, window, period_of(window, start, game.season)))
    return boards


def value_member(sort: float, sub_key: str) -> str:
    """A row's member in its board's values zset (dense ties): ``<sort, %.17g>|<subscore key>``,
    the text the scripts write for the same double (0 for -0 too, as servers answer -0 either
    way)."""
    return f"{sort + 0.0:.17g}|{sub_key}"


@dataclass
class FamilyBuild:
    """Copies of a family's boards, and of its players hash, being built from its log.

    ``boards`` are every board of the family that is still readable: the players hash is
    shared by them all, and its copy replaces the live one. A board of a game with dense ties
    is four keys (its ranking, meta hash, values zset and counts hash), each with its copy.
    """

    client: DataClient
    game: Game
    variant: str
    boards: list[Board]
    now_ms: int
    position: str = "-"  # the last log id the copies have seen
    read: int = 0
    caught_up: bool = field(default=False, init=False)

    @classmethod
    def readable(cls, client: DataClient, game: Game, variant: str, now_ms: int) -> FamilyBuild:
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

    @property
    def _dense(self) -> bool:
        return self.game.ties == "dense"

    def _built(self, board: Board) -> tuple[str, ...]:
        return tuple(keys.build_key(key) for key in board_keys(board))

    def _copy(self, board: Board) -> _Copy:
        built = self._built(board)
        if self._dense:
            return _Copy(built[0], built[1], values=built[2], counts=built[3])
        return _Copy(built[0], built[1])

    def start(self) -> FamilyBuild:
        """Drop copies a crashed rebuild may have left."""
        self.client.delete(
            self._built_players, *(key for board in self.boards for key in self._built(board))
        )
        return self

    def load(self, progress: Progress = _no_progress) -> None:
        """Build the copies from the whole log: read it once, work out every board's rows and
        every player's record here, and write them with commands of many members each.

        Entries appended while this runs may be left out: :meth:`read_on` replays them.
        Players banned meanwhile are taken off the copies by :meth:`swap`.
        """
        # Two threads more talk to Redis: one reads the log ahead, one sends the copies' rows,
        # so that Redis works while this thread works out the rows of a slice.
        with (
            _collector_paused(),
            ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as reading,
            ThreadPoolExecutor(1, thread_name_prefix="rebuild-write") as writing,
        ):
            sender = _Sender(self.client, writing)
            copies = [self._copy(board) for board in self.boards]
            names = self._read_log(copies, sender, reading, progress)
            sign = self.game.sign
            for copy in copies:
                if copy.best:
                    # The text the scripts write (board_lib.lua's num).
                    total = sign * sum(row[0] for row in copy.best.values()) + 0.0  # no -0
                    sender.pipe.hset(copy.meta, "sum", f"{total:.17g}")
                    copy.send_values(sender)
            self._write_records(copies, names, sender)
            sender.finish()
            # Freed now, so that the collector, once back on, finds them gone.
            del copies, names

    def _read_log(
        self, copies: list[_Copy], sender: _Sender, reading: Executor, progress: Progress
    ) -> dict[str, tuple[int, str]]:
        """One pass over the log from :attr:`position`, keeping each player's row on each board
        and sending the rows a slice changed; returns each player's latest (achieved ms,
        name)."""
        found = _Pass(
            self.game,
            self.variant,
            cast(set[str], self.client.smembers(self._banned)),
            list(zip(self.boards, copies, strict=True)),
        )
        total = cast(int, self.client.xlen(self._log))
        # XRANGE's replies as Redis gives them (redis-py would make a dict of each entry):
        # [[id, [field, value, ...]], ...].
        raw = node_client(self.client, self._log)
        raw.set_response_callback("XRANGE", lambda reply, **_: reply)

        def fetch(after: str) -> list[Any]:
            start = "-" if after == "-" else f"({after}"
            return cast(list[Any], raw.xrange(self._log, start, "+", count=READ_SLICE))

        slices = _ReadAhead(reading, fetch, self.position)
        try:
            for entries in slices:
                found.take(entries)
                for copy in copies:
                    copy.send(sender)
                if entries:
                    self.position = entries[-1][0]
                self.read += len(entries)
                progress(self.read, max(total, self.read))
        finally:
            slices.stop()  # let the other thread go, whatever happened here
        return found.names

    def _write_records(
        self, copies: list[_Copy], names: dict[str, tuple[int, str]], sender: _Sender
    ) -> None:
        """Write the copy of the players hash: each player's latest name and rows' tags (with
        the row's subscore key in a game with subscores)."""
        tagged = sorted(
            ((board.tag, copy.best) for board, copy in zip(self.boards, copies, strict=True)),
            key=lambda pair: tag_order(pair[0][0]),
        )
        tagged = [pair for pair in tagged if pair[1]]
        subscored = bool(self.game.sub_sign)
        records: list[str] = []
        for pid, (name_at, name) in names.items():
            tags = ";".join(
                [
                    f"{tag}={row[2] - start},{row[1]}" if subscored else f"{tag}={row[2] - start}"
                    for (tag, start), best in tagged
                    if (row := best.get(pid)) is not None
                ]
            )
            records += (pid, f"{name_at}|{tags}|{name}")  # as PlayerRecord.encode writes it
            if len(records) == 2 * WRITE_CHUNK:
                sender.pipe.execute_command("HSET", self._built_players, *records)
                sender.send()
                records = []
        if records:
            sender.pipe.execute_command("HSET", self._built_players, *records)

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
                    self.now_ms,
                    *horizon.args(),
                    self.game.sign,
                    self.game.keep,
                    self.game.sub_sign,
                    "1" if self._dense else "0",
                    *per_board,
                ],
            )
            self.position, self.read = position, self.read + read
            progress(self.read, max(total, self.read))
            if read < SLICE:
                return

    def swap(self) -> bool:
        """Swap every copy in at once if they have seen the whole log; False if it grew."""
        written: list[str] = []
        per_board: list[str | int] = []
        for board in self.boards:
            written += [*self._built(board), *board_keys(board)]
            per_board += (board.expire_at(), *board.tag)
        return bool(
            script(self.client, "swap_boards")(
                keys=[self._log, self._banned, self._built_players, self._players, *written],
                args=[
                    self.position,
                    self.now_ms,
                    self.game.sign,
                    1 if self._dense else 0,
                    *per_board,
                ],
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
        their rankings, the sum of their scores, what their players' records say of them, or
        (dense ties) their values and the rows counted for each."""
        return [b for b in self.boards if not self._same_board(b)]

    def _same_board(self, board: Board) -> bool:
        built_z, built_m = self._built(board)[:2]
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
            players = [split_member(member)[2] for member, _ in live]
            if players:
                pipe.hmget(self._players, players)
                pipe.hmget(self._built_players, players)
                live_records, built_records = pipe.execute()
                if [_shown(text, tag) for text in live_records] != [
                    _shown(text, tag) for text in built_records
                ]:
                    return False
        return not self._dense or self._same_values(board, step)

    def _same_values(self, board: Board, step: int) -> bool:
        """Whether a board's values zset and counts hash equal their copies (dense ties)."""
        live_v, live_c = board.values_key, board.value_counts_key
        built_v, built_c = self._built(board)[2:]
        pipe = self.client.pipeline(transaction=False)
        for key in (live_v, built_v):
            pipe.zcard(key)
        for key in (live_c, built_c):
            pipe.hlen(key)
        live_size, built_size, live_len, built_len = pipe.execute()
        if live_size != built_size or live_len != built_len:
            return False
        for first in range(0, live_size, step):
            pipe.zrange(live_v, first, first + step - 1, withscores=True)
            pipe.zrange(built_v, first, first + step - 1, withscores=True)
            live, built = pipe.execute()
            if live != built:
                return False
            values = [member for member, _ in live]
            if values:
                pipe.hmget(live_c, values)
                pipe.hmget(built_c, values)
                live_counts, built_counts = pipe.execute()
                if live_counts != built_counts:
                    return False
        return True


#: A row as a rebuild keeps it: (sort key, subscore key, achieved ms, member), and for a game
#: that keeps a sum also the total of its subscores. Tuples compare as rows rank.
_Row = tuple[Any, ...]


@dataclass
class _Copy:
    """The copy of one board as a rebuild's load builds it."""

    ranking: str
    meta: str
    values: str | None = None  # dense ties: the copy of the values zset, and of its counts
    counts: str | None = None
    best: dict[str, _Row] = field(default_factory=dict)  # each player's row so far
    fresh: dict[str, _Row] = field(default_factory=dict)  # rows changed since last sent
    gone: list[str] = field(default_factory=list)  # members sent that are rows no more

    def send(self, sender: _Sender) -> None:
        """Queue the changes since the last call: members gone first, then the new rows."""
        for first in range(0, len(self.gone), WRITE_CHUNK):
            sender.pipe.execute_command(
                "ZREM", self.ranking, *self.gone[first : first + WRITE_CHUNK]
            )
            sender.send()
        flat: list[float | str] = []
        # In order of score (ties mostly in order of time already, as the log is): members
        # inserted next to each other cost Redis half the time.
        for row in sorted(self.fresh.values(), key=itemgetter(0)):
            flat += (row[0], row[3])
            if len(flat) == 2 * WRITE_CHUNK:
                sender.pipe.execute_command("ZADD", self.ranking, *flat)
                sender.send()
                flat = []
        if flat:
            sender.pipe.execute_command("ZADD", self.ranking, *flat)
            sender.send()
        self.fresh.clear()
        self.gone.clear()

    def send_values(self, sender: _Sender) -> None:
        """Queue the values zset and counts hash of the rows (dense ties; else nothing)."""
        if self.values is None or self.counts is None:
            return
        found: dict[str, list[Any]] = {}  # value member -> [sort, rows]
        for row in self.best.values():
            value = value_member(row[0], row[1])
            seen = found.get(value)
            if seen is None:
                found[value] = [row[0], 1]
            else:
                seen[1] += 1
        items = list(found.items())
        for first in range(0, len(items), WRITE_CHUNK):
            chunk = items[first : first + WRITE_CHUNK]
            sender.pipe.execute_command(
                "ZADD", self.values, *(x for value, (sort, _) in chunk for x in (sort, value))
            )
            sender.pipe.execute_command(
                "HSET", self.counts, *(x for value, (_, rows) in chunk for x in (value, rows))
            )
            sender.send()


class _Pass:
    """What a pass over a log has found so far: each player's row on each board (in the
    boards' copies), kept as the game's ``keep`` says, and each player's latest (achieved ms,
    name).

    Rows compare as tuples (sort key, subscore key, achieved ms), smaller ranking first, as
    ``app/lua/board_lib.lua`` places them: ``best`` keeps the smallest; ``latest`` the greatest
    achieved ms, the smallest (sort, subscore key) of those; ``sum`` adds every entry's score
    and subscore to the row and keeps the greatest achieved ms.
    """

    def __init__(
        self, game: Game, variant: str, banned: set[str], boards: list[tuple[Board, _Copy]]
    ) -> None:
        self.game, self.variant, self.banned = game, variant, banned
        self.number: Callable[[str], float] = int if game.integer else float
        self.names: dict[str, tuple[int, str]] = {}
        self.by_tag = {board.tag[0]: copy for board, copy in boards}
        # The copies of the boards of an entry's periods, and the span of achieved ms that
        # belong on the same ones (the intersection of those periods).
        self.span = (0, 0)
        self.targets: list[tuple[dict[str, _Row], dict[str, _Row], list[str]]] = []

    def _aim(self, at: int) -> None:
        low, high = -(2**63), 2**63
        season = self.game.season
        if season is not None and "season" in self.game.windows and at < season.starts_at_ms:
            high = season.starts_at_ms  # on no season board, until the first season starts
        targets = []
        for board in entry_boards(self.game, self.variant, at):
            if board.window != "alltime":
                start, end = board.achieved_range()
                low, high = max(low, start), min(high, end)
            copy = self.by_tag.get(board.tag[0])
            if copy is not None:
                targets.append((copy.best, copy.fresh, copy.gone))
        self.span, self.targets = (low, high), targets

    def take(self, entries: list[Any]) -> None:
        """Take in a slice of the log, as XRANGE answers it."""
        banned, names, sign, number = self.banned, self.names, self.game.sign, self.number
        keep, subscored = self.game.keep, bool(self.game.sub_sign)
        latest = keep == "latest"
        for _, flat in entries:
            sub_text: str | None = None
            if flat[2:10:2] == _LOGGED:  # as the apply script writes an entry
                pid, name, score_text, at_text = flat[3], flat[5], flat[7], flat[9]
                if subscored and len(flat) > 11 and flat[10] == "sub":
                    sub_text = flat[11]
            else:
                entry = dict(zip(flat[::2], flat[1::2], strict=True))
                pid, name, score_text, at_text = (entry[k] for k in _LOGGED)
                sub_text = entry.get("sub")
            if pid in banned:
                continue
            at = int(at_text)
            if not self.span[0] <= at < self.span[1]:
                self._aim(at)
            sort = sign * number(score_text)
            sub = int(sub_text) if subscored and sub_text else 0
            if keep == "sum":
                self._add(pid, sort, sub, at)
            else:
                key = subscore_key(self.game, sub) if subscored else ""
                # ranking_member's text, written here: this loop runs once per logged entry.
                row = (sort, key, at, f"{key}{at:013d}:{pid}")
                for best, fresh, gone in self.targets:
                    old = best.setdefault(pid, row)
                    if old is row:  # the player's first row on the board
                        fresh[pid] = row
                    elif (
                        (at > old[2] or (at == old[2] and row[:2] < old[:2]))
                        if latest
                        else row < old
                    ):
                        if pid not in fresh:
                            gone.append(old[3])  # sent already: to be taken off
                        best[pid] = fresh[pid] = row
            named = (at, name)
            known = names.setdefault(pid, named)
            if known is not named and named > known:
                names[pid] = named

    def _add(self, pid: str, sort: float, sub: int, at: int) -> None:
        """Add an entry to the player's total on each target board (keep sum)."""
        game = self.game
        subscored = bool(game.sub_sign)
        for best, fresh, gone in self.targets:
            old = best.get(pid)
            if old is None:
                total, sub_total, last = sort, sub, at
            else:
                total, sub_total, last = old[0] + sort, old[4] + sub, max(old[2], at)
                if pid not in fresh:
                    gone.append(old[3])
            key = subscore_key(game, sub_total) if subscored else ""
            best[pid] = fresh[pid] = (total, key, last, ranking_member(key, last, pid), sub_total)


#: The fields a rebuild reads of a log entry, in the order the apply script writes them (after
#: ``sid``); ``sub`` and ``meta`` may follow.
_LOGGED = ["pid", "name", "score", "at"]


class _Sender:
    """Pipelines executed in order by another thread (one), while the next one is filled."""

    def __init__(self, client: DataClient, pool: Executor) -> None:
        self.client, self.pool = client, pool
        self.pipe = client.pipeline(transaction=False)
        self._sending: deque[Future[Any]] = deque()

    def send(self, full_only: bool = True) -> None:
        """Hand the pipeline over once it holds enough commands (any, with ``full_only``
        false); wait while two handed over before are still being executed."""
        if len(self.pipe) < (WRITE_PIPELINE if full_only else 1):
            return
        while len(self._sending) >= WRITES_AHEAD:
            self._sending.popleft().result()
        self._sending.append(self.pool.submit(self.pipe.execute))
        self.pipe = self.client.pipeline(transaction=False)

    def finish(self) -> None:
        """Send what is left and wait until every command has been executed."""
        self.send(full_only=False)
        while self._sending:
            self._sending.popleft().result()


class _ReadAhead:
    """The slices of a log, read by another thread a few slices ahead of their reader."""

    def __init__(self, pool: Executor, fetch: Callable[[str], list[Any]], after: str) -> None:
        self._slices: queue.Queue[list[Any] | Exception] = queue.Queue(maxsize=READS_AHEAD)
        self._stopped = threading.Event()
        pool.submit(self._produce, fetch, after)

    def _produce(self, fetch: Callable[[str], list[Any]], after: str) -> None:
        try:
            while not self._stopped.is_set():
                entries = fetch(after)
                self._put(entries)
                if len(entries) < READ_SLICE:
                    return
                after = entries[-1][0]
        except Exception as error:  # raised again in the thread that reads the slices
            self._put(error)

    def _put(self, item: list[Any] | Exception) -> None:
        while not self._stopped.is_set():
            try:
                self._slices.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[list[Any]]:
        while True:
            item = self._slices.get()
            if isinstance(item, Exception):
                raise item
            yield item
            if len(item) < READ_SLICE:
                return

    def stop(self) -> None:
        """Let the other thread go, the slices read or not."""
        self._stopped.set()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: the load makes millions of small objects and
    no cycle, and each collection would walk all the live ones again (half its time)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _shown(text: str | None, tag: str) -> tuple[int, str, int | None, str | None] | None:
    """What a player's record says of one board: the name, its time, and the row's time and
    subscore key."""
    if text is None:
        return None
    record = PlayerRecord.decode(text)
    return record.name_at, record.name, record.tags.get(tag), record.subs.get(tag)


def rebuild_family(
    client: DataClient,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
) -> int:
    """Rebuild every readable board of a variant from its log; return the entries read."""
    build = FamilyBuild.readable(client, game, variant, now_ms)
    build.start().load(progress)
    build.finish(progress)
    return build.read


def reconcile_family(
    client: DataClient,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
) -> list[Board]:
    """Compare each board with its log; if any drifted, swap rebuilt boards in. Return those."""
    build = FamilyBuild.readable(client, game, variant, now_ms)
    build.start().load(progress)
    build.read_on(progress)
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
    client: DataClient,
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
    emeta = keys.entry_metadata_key(game.slug, variant)
    total = client.xlen(log)
    position, read, deleted = "-", 0, 0
    while True:
        start = "-" if position == "-" else f"({position}"
        position, got, gone = prune(keys=[log, applied, emeta], args=[start, SLICE, cutoff])
        read, deleted = read + got, deleted + gone
        progress(read, max(total, read))
        if got < SLICE:
            break
    if deleted:
        rebuild_family(client, game, variant, now_ms)
    return deleted
