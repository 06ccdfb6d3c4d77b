"""Compaction of a family's log: keep what can still change a readable board, drop the rest.

The prune job runs it on each family after dropping the entries past the game's retention. An
entry is kept when

(a) it was applied inside the idempotency window (its log id's ms is at least now - window):
    a redelivery of its submission must find it, and the applied id of an older one is
    forgotten in the same pass;
(b) its ranking member ``<subscore key><at>:<pid>`` is on one of its boards that is still
    readable (its all-time board, and those of its day, week, month and season the game has,
    while readable): it is the player's row there;
(c) it is its player's latest (greatest achieved ms; every entry at that ms), whose name the
    boards show;
(d) its player is banned: an unban ranks their entries again, and their rows are off the boards;

and dropped otherwise, after being appended to the archive when there is one
(:mod:`app.storage.archive`). The rows of the readable boards are thus each player's row per
readable period, as the game keeps it (the best entry, or the latest); a rebuild from the
compacted log gives the boards the entries built. A row whose entry passes the game's
retention later falls back to the best entry the log still holds (the player's rows on the
readable periods, the latest, the window), not to the best of the whole retention, which the
log no longer has. A game that keeps a sum keeps every entry (each is part of a total): its
compaction forgets the applied ids older than the window, and deletes the entry metadata no
readable board shows. A sum's row shows the metadata of its member's (at, pid), the player's
latest entry of the period, so one pass of the metadata hash keeps a field ``<at>:<pid>`` when
the player's record places a row at that ms on a readable board of the periods holding it, or
the player is banned (:file:`app/lua/forget_metadata.lua`, one script per chunk, so an apply
that moves a row comes before or after the check, never between it and the delete).

An entry dropped takes its metadata along (the field ``<at>:<pid>`` of the family's entry
metadata hash), unless the field still serves: an entry of the same player achieved at the
same ms shares it, so it stays when such an entry is kept in the same slice, or when the
player's record places one of their rows on the entry's boards at that ms (the row shows it).

Dropping rewrites the log rather than deleting from it: ``XDEL`` only marks an entry deleted
inside its stream node, and a node's memory is freed once every entry in it is deleted, which
scattered keepers (one best per player per period) all but never allow; deleting 90 % of a
200,000-entry stream that way freed 0.4 % of it here. So each slice is judged and its kept
entries copied, with their ids, into a copy of the log, and once the copy has caught up with
the log one script puts it in the log's place (:file:`app/lua/swap_log.lua`).

Judging is atomic where it matters. A slice is judged in one script, which checks the boards
and copies the keepers in the same step; the copy replaces the log later, so an entry dropped
must not become a row (nor its player need it after an unban) in between. It cannot: an apply
adds one new entry and offers only that one to the boards, so a logged entry that is not a row
never becomes one by an apply; it could only in a rebuild after a better entry of its board
left the log, and entries leave the log only through this prune (retention, then this), while
rebuilds take the family lock this prune holds throughout. A ban in between needs nothing more
kept: the player's rows were rows when judged, so they were kept, and they are what an unban
ranks again. Entries logged after the judging are copied unjudged by the swap.

With an archive, a slice's dropped entries are written and fsynced, then deleted from the log
(``XDEL``) at once, so a compaction cut short (a crash) leaves them neither in the log nor
missing from the archive, and a later run does not archive them again. Only a crash between
the fsync and that ``XDEL`` can leave an entry archived twice: the two lines are the same log
id, and a reader keeps one.

Cost: two passes over the log, each in slices of :data:`~app.leaderboard.rebuild.SLICE`
entries (one ``XRANGE`` each for the players' latest achievements, then one ``XRANGE`` and
one script call each to judge and copy), and the copy's writes; memory in this process is one
entry of a dict per player of the family (their id and latest ms, about 150 bytes), and in
Redis the copy (the entries kept) beside the log until the swap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

from app.leaderboard.boards import Board, entry_boards, subscore_key
from app.leaderboard.games import Game
from app.leaderboard.rebuild import SLICE, Progress, prune_family, readable_boards
from app.leaderboard.windows import period_of
from app.storage import keys, scripts
from app.storage.archive import Archive
from app.storage.connection import DataClient

DAY_MS = 86_400_000

#: How many entry metadata fields one script of a sum game's compaction judges (an ``HSCAN``
#: count: a hint, a chunk may be larger).
METADATA_CHUNK = 300

#: The idempotency window's default, in seconds (``HISCORE_IDEMPOTENCY_WINDOW``).
DEFAULT_WINDOW_S = 86_400


def _no_progress(done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class Compaction:
    """How the prune job compacts logs: the idempotency window, and where dropped entries go
    (``None``: nowhere)."""

    window_s: int = DEFAULT_WINDOW_S
    archive_dir: str | None = None


@dataclass
class Compacted:
    """What compacting one family's log did."""

    read: int = 0  # entries judged (or copied unjudged, logged during the compaction)
    kept: int = 0
    dropped: int = 0
    archived: int = 0  # lines appended to the archive
    applied_dropped: int = 0  # applied ids forgotten (entries applied before the window)
    metadata_dropped: int = 0  # entry metadata fields deleted (no readable board shows them)


def _log_ms(log_id: str) -> int:
    return int(log_id.split("-", 1)[0])


def _part(progress: Progress, total: int, start: float, end: float) -> Progress:
    """A stage's progress reported as the share ``start``..``end`` of ``total``."""

    def report(done: int, of: int) -> None:
        share = min(done / of, 1.0) if of else 1.0
        progress(int(total * (start + (end - start) * share)), total)

    return report


class _Rankings:
    """The boards an entry belongs to that are still readable (its all-time board first)."""

    def __init__(self, game: Game, variant: str, now_ms: int) -> None:
        self.game, self.variant, self.now_ms = game, variant, now_ms
        self.readable = {board.ranking_key for board in readable_boards(game, variant, now_ms)}
        self._by_day: dict[tuple[int, int | None], tuple[Board, ...]] = {}

    def of(self, at: int) -> tuple[Board, ...]:
        # A day lies in one week and one month; a season may begin at any time of a day.
        season = self.game.season
        where = (at // DAY_MS, season.index(at) if season is not None else None)
        found = self._by_day.get(where)
        if found is None:
            found = self._by_day[where] = tuple(
                board
                for board in entry_boards(self.game, self.variant, at)
                if self._readable(board)
            )
        return found

    def _readable(self, board: Board) -> bool:
        if board.window == "alltime":
            return True
        # A period not over yet is readable even if rebuilds do not list it yet (an entry
        # achieved a moment ahead of this clock).
        _, end = board.achieved_range()
        return board.ranking_key in self.readable or end > self.now_ms


def latest_achieved(
    client: DataClient, log: str, progress: Progress = _no_progress
) -> dict[str, int]:
    """Each player's greatest achieved ms in the log, in one pass of slices."""
    latest: dict[str, int] = {}
    total = cast(int, client.xlen(log))
    start, read = "-", 0
    while True:
        entries = cast(list[Any], client.xrange(log, start, "+", count=SLICE))
        for _, fields in entries:
            pid, at = fields["pid"], int(fields["at"])
            if at > latest.get(pid, -1):
                latest[pid] = at
        read += len(entries)
        progress(read, max(total, read))
        if len(entries) < SLICE:
            return latest
        start = f"({entries[-1][0]}"


def _score(game: Game, text: str) -> int | float:
    return int(text) if game.integer else float(text)


def compact_family(
    client: DataClient,
    game: Game,
    variant: str,
    now_ms: int,
    window_s: int,
    archive_dir: str | None = None,
    progress: Progress = _no_progress,
) -> Compacted:
    """Drop the log entries of a family that can no longer change a readable board (see the
    module's docstring), archiving them first under ``archive_dir`` when given."""
    log, copy = keys.log_key(game.slug, variant), keys.log_copy_key(game.slug, variant)
    applied, banned = keys.applied_key(game.slug, variant), keys.banned_key(game.slug, variant)
    emeta, players = (
        keys.entry_metadata_key(game.slug, variant),
        keys.players_key(game.slug, variant),
    )
    report = Compacted()
    total = cast(int, client.xlen(log))
    client.delete(copy)  # what a compaction cut short left
    if not total:
        return report
    since = now_ms - window_s * 1000
    if game.keep == "sum":
        # Every entry is part of a total: only the applied ids older than the window go, and
        # the metadata no row shows (a row shows its latest entry's).
        report.read = report.kept = total
        report.applied_dropped = _forget_applied(client, log, applied, since)
        rankings = _Rankings(game, variant, now_ms)
        report.metadata_dropped = _forget_metadata(client, game, variant, rankings)
        progress(total, total)
        return report
    latest = latest_achieved(client, log, _part(progress, total, 0.0, 0.5))
    judged = _part(progress, total, 0.5, 1.0)
    rankings = _Rankings(game, variant, now_ms)
    archive = Archive(archive_dir, game.slug, variant) if archive_dir else None
    judge = scripts.script(client, "compact_log", library="board_lib")
    position = "-"
    while True:
        while True:
            start = "-" if position == "-" else f"({position}"
            entries = cast(list[Any], client.xrange(log, start, "+", count=SLICE))
            if not entries:
                break
            zsets, verdicts = _verdicts(game, entries, since, latest, rankings)
            reply = judge(
                keys=[log, copy, applied, banned, emeta, players, *zsets],
                args=[since, start, entries[-1][0], *verdicts],
            )
            forgotten, dropped = int(reply[0]), cast(list[str], reply[2:])
            if archive is not None and dropped:
                report.archived += _archive(archive, game, entries, dropped)
                client.xdel(log, *dropped)
            position = entries[-1][0]
            report.read += len(entries)
            report.kept += len(entries) - len(dropped)
            report.dropped += len(dropped)
            report.applied_dropped += forgotten
            report.metadata_dropped += int(reply[1])
            judged(report.read, max(total, report.read))
            if len(entries) < SLICE:
                break
        if position == "-":  # nothing was left to judge
            client.delete(copy)
            return report
        swapped, copied = scripts.script(client, "swap_log")(
            keys=[log, copy], args=[position, SLICE]
        )
        if swapped:
            report.read += copied
            report.kept += copied
            return report


def _forget_applied(client: DataClient, log: str, applied: str, since: int) -> int:
    """Forget the applied ids of the entries logged before ``since`` (ms); how many were."""
    forgotten, start = 0, "-"
    while True:
        # Log ids grow with the time of logging: the entries before the window come first.
        entries = cast(list[Any], client.xrange(log, start, f"{since - 1}", count=SLICE))
        if entries:
            forgotten += cast(int, client.hdel(applied, *(f["sid"] for _, f in entries)))
        if len(entries) < SLICE:
            return forgotten
        start = f"({entries[-1][0]}"


class _Groups:
    """The boards a compaction script is given, as ``board_groups`` in
    :file:`app/lua/board_lib.lua` reads them: each board once (its tag and period start), then
    each set of boards once, by their numbers; :meth:`number` gives a set's number (from 1)."""

    def __init__(self) -> None:
        self.zsets: list[str] = []  # the boards' ranking zsets, in the order numbered
        self._tags: list[str | int] = []
        self._slot: dict[str, int] = {}  # zset -> its number (from 1) among the zsets
        self._groups: dict[tuple[Board, ...], int] = {}
        self._members: list[str | int] = []

    def number(self, boards: tuple[Board, ...]) -> int:
        number = self._groups.get(boards)
        if number is None:
            numbers = []
            for board in boards:
                key = board.ranking_key
                if key not in self._slot:
                    self._slot[key] = len(self.zsets) + 1
                    self.zsets.append(key)
                    self._tags.extend(board.tag)
                numbers.append(self._slot[key])
            number = self._groups[boards] = len(self._groups) + 1
            self._members.extend((len(numbers), *numbers))
        return number

    def args(self) -> list[str | int]:
        return [len(self.zsets), *self._tags, len(self._groups), *self._members]


def _verdicts(
    game: Game, entries: Sequence[Any], since: int, latest: dict[str, int], rankings: _Rankings
) -> tuple[list[str], list[str | int]]:
    """The ranking zsets a slice's script is given, and its arguments after the slice's
    bounds: the groups of zsets (the readable boards of a set of periods), then per entry its
    group (0: kept anyway) and subscore key."""
    groups = _Groups()
    verdicts: list[str | int] = []
    for log_id, fields in entries:
        at = int(fields["at"])
        # Kept whatever the boards say: applied inside the window, or the player's latest (a
        # player the first pass did not see logged it since, so it is their latest too).
        if _log_ms(log_id) >= since or at >= latest.get(fields["pid"], at):
            verdicts += (0, "")
        else:
            sub = fields.get("sub")
            verdicts += (groups.number(rankings.of(at)), subscore_key(game, int(sub) if sub else 0))
    return groups.zsets, [*groups.args(), *verdicts]


def _forget_metadata(client: DataClient, game: Game, variant: str, rankings: _Rankings) -> int:
    """Delete the entry metadata fields that no readable board shows (a game that keeps a
    sum, whose log keeps every entry); how many were. One pass of ``HSCAN``, each chunk
    judged and deleted by one script, atomically against applies."""
    emeta = keys.entry_metadata_key(game.slug, variant)
    judge = scripts.script(client, "forget_metadata", library="board_lib")
    family = [emeta, keys.players_key(game.slug, variant), keys.banned_key(game.slug, variant)]
    deleted, cursor = 0, 0
    while True:
        cursor, chunk = cast(
            tuple[int, dict[str, str]], client.hscan(emeta, cursor, count=METADATA_CHUNK)
        )
        if chunk:
            groups = _Groups()
            judged: list[str | int] = []
            for field in chunk:
                judged += (field, groups.number(rankings.of(int(field.split(":", 1)[0]))))
            deleted += int(judge(keys=family, args=[*groups.args(), *judged]))
        if not cursor:
            return deleted


def _archive(archive: Archive, game: Game, entries: Sequence[Any], dropped: Sequence[str]) -> int:
    """Append the dropped entries of a slice to the files of their days, in log order."""
    gone = set(dropped)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for log_id, fields in entries:
        if log_id in gone:
            at = int(fields["at"])
            line: dict[str, Any] = {
                "id": log_id,
                "sid": fields["sid"],
                "pid": fields["pid"],
                "name": fields["name"],
                "score": _score(game, fields["score"]),
                "at": at,
            }
            if "sub" in fields:
                line["sub"] = int(fields["sub"])
            if "meta" in fields:
                line["meta"] = json.loads(fields["meta"])
            by_day.setdefault(period_of("daily", at), []).append(line)
    return sum(archive.append(day, records) for day, records in by_day.items())


def prune_and_compact(
    client: DataClient,
    game: Game,
    variant: str,
    now_ms: int,
    progress: Progress = _no_progress,
    *,
    compaction: Compaction | None = None,
) -> dict[str, int]:
    """The prune job on one family: drop the entries past retention (rebuilding the boards if
    any went), then compact the log. Returns what each step did."""
    settings = compaction or Compaction()
    total = cast(int, client.xlen(keys.log_key(game.slug, variant)))
    past = prune_family(client, game, variant, now_ms, _part(progress, total, 0.0, 1 / 3))
    compacted = compact_family(
        client,
        game,
        variant,
        now_ms,
        settings.window_s,
        settings.archive_dir,
        _part(progress, total, 1 / 3, 1.0),
    )
    return {"past_retention": past, **asdict(compacted)}
