"""Leaderboards in Redis: apply accepted entries in batches, read pages and a player's rank.

A board is (game, variant, window, period). Its cache is a sorted set whose members are
``<subscore key><achieved ms>:<player id>`` scored by the game's sort key, so ascending order is
rank order: equal scores rank the better subscore first (the key is empty for a game without
subscores: :func:`subscore_key`), then the earlier achievement. Beside it a small meta hash
keeps its last change, the sum of its scores and its counts of entries. A family (game and
variant) keeps one record per player, shared by all its boards: the name to show and where the
player's row is on each board (:class:`PlayerRecord`). Every accepted entry is first appended
to the family's log stream, from which the caches can always be rebuilt. Plain functions over a
redis client: nothing here knows Flask or Celery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import redis

from app.leaderboard.games import Game
from app.leaderboard.windows import (
    ALLTIME_PERIOD,
    DAY_MS,
    NoPeriod,
    Window,
    bucket_ms,
    index_start_ms,
    oldest_readable,
    period_end_ms,
    period_of,
    period_range,
    period_tag,
    readable_indexes,
)
from app.storage import keys, scripts, topology
from app.storage.connection import DataClient
from app.storage.topology import NO_WAIT, Replication

# Wide enough for any epoch-ms until the year 2286, so members sort by time as text.
_AT_WIDTH = 13

#: Added to a signed subscore to make it a whole number from 0 that sorts as text once written
#: with :data:`SUB_WIDTH` digits and that a double (a Lua number) holds exactly; a total beyond
#: either end (beyond 4.5e15) is held there.
SUB_OFFSET = 2**52
SUB_WIDTH = 16


def subscore_key(game: Game, subscore: int | None) -> str:
    """The text a row's subscore puts at the head of its ranking member: empty for a game
    without subscores, else ``sub_sign * subscore + SUB_OFFSET`` in 16 digits, so that members
    of equal scores sort by subscore as text."""
    if not game.sub_sign:
        return ""
    value = min(max(game.sub_sign * (subscore or 0) + SUB_OFFSET, 0), 2 * SUB_OFFSET - 1)
    return f"{value:0{SUB_WIDTH}d}"


def subscore_of_key(game: Game, key: str) -> int | None:
    """The subscore a member's key stands for (None for a game without subscores)."""
    if not key:
        return None
    return game.sub_sign * (int(key) - SUB_OFFSET)


def ranking_member(sub_key: str, at: int, player_id: str) -> str:
    """A board's member for a row: ``<subscore key><achieved ms, 13 digits>:<player id>``."""
    return f"{sub_key}{at:0{_AT_WIDTH}d}:{player_id}"


def split_member(member: str) -> tuple[str, int, str]:
    """A ranking member's (subscore key, achieved ms, player id)."""
    head, player_id = member.split(":", 1)
    return head[:-_AT_WIDTH], int(head[-_AT_WIDTH:]), player_id


def script(client: DataClient, name: str) -> scripts.BoundScript:
    """The Lua script ``app/lua/<name>.lua`` (with the board library) bound to ``client``."""
    return scripts.script(client, name, library="board_lib")


@dataclass(frozen=True)
class Board:
    """One leaderboard: a game's variant over one period of one window."""

    game: Game
    variant: str
    window: Window = "alltime"
    period: str = ALLTIME_PERIOD

    @property
    def ranking_key(self) -> str:
        """The sorted set of this board."""
        return keys.ranking_key(self.game.slug, self.variant, self.window, self.period)

    @property
    def meta_key(self) -> str:
        """The meta hash of this board (last change, sum of scores, counts of entries)."""
        return keys.meta_key(self.game.slug, self.variant, self.window, self.period)

    @property
    def players_key(self) -> str:
        """The players hash of this board's family."""
        return keys.players_key(self.game.slug, self.variant)

    @property
    def values_key(self) -> str:
        """The sorted set of this board's distinct values (a game with dense ties)."""
        return keys.values_key(self.game.slug, self.variant, self.window, self.period)

    @property
    def value_counts_key(self) -> str:
        """The rows per distinct value of this board (a game with dense ties)."""
        return keys.value_counts_key(self.game.slug, self.variant, self.window, self.period)

    @property
    def tag(self) -> tuple[str, int]:
        """The tag that names this board in a player's record, and its period's start ms."""
        return period_tag(self.window, self.period, self.game.season)

    def expire_at(self) -> int:
        """Epoch ms at which this board stops being readable (0: never)."""
        end = period_end_ms(self.window, self.period, self.game.season)
        keep = self.game.window_retention_ms(self.window)
        return end + keep if end is not None and keep is not None else 0

    def achieved_range(self) -> tuple[int, int]:
        """The achieved ms that belong on this board: ``[start, end)``, ``(0, 0)`` for all."""
        return period_range(self.window, self.period, self.game.season)


def current_end_ms(game: Game, window: Window, now_ms: int) -> int | None:
    """When the current period of ``window`` ends (None for all-time); before the game's first
    season, when the first season starts."""
    if window == "alltime":
        return None
    if window == "season" and game.season is not None and game.season.index(now_ms) is None:
        return game.season.starts_at_ms
    return period_end_ms(window, current_period(game, window, now_ms), game.season)


@dataclass(frozen=True)
class Period:
    """One period of a window: its label and epoch ms ``[starts_at, ends_at)`` (None for
    all-time's)."""

    label: str
    starts_at: int | None
    ends_at: int | None


def readable_periods(game: Game, window: Window, now_ms: int) -> list[Period]:
    """The periods of ``window`` whose boards are readable at ``now_ms``, newest first: the
    current one (none of the season window before the first season) back to the oldest still
    within its retention."""
    if window == "alltime":
        return [Period(ALLTIME_PERIOD, None, None)]
    keep = game.window_retention_ms(window) or 0
    periods = []
    for index in readable_indexes(window, keep, now_ms, game.season):
        start = index_start_ms(window, index, game.season)
        end = index_start_ms(window, index + 1, game.season)
        periods.append(Period(period_of(window, start, game.season), start, end))
    return periods


@dataclass(frozen=True)
class Entry:
    """An accepted score on its way to the boards."""

    submission_id: str
    game: Game
    variant: str
    player_id: str
    name: str
    score: int | float
    achieved_at: int  # epoch ms
    run_id: str | None = None  # the run token's id, used up by this entry
    run_ttl_ms: int = 0  # how long to remember that use (at least 1 ms reaches Redis)
    subscore: int | None = None  # a game with subscores: its entries' second sort key
    metadata: str | None = None  # the JSON object the entry carries, as compact text

    def boards(self) -> list[Board]:
        """The boards this entry belongs to: one period of each of its game's windows (none of
        the season window before the first season starts)."""
        return entry_boards(self.game, self.variant, self.achieved_at)


def current_period(game: Game, window: Window, now_ms: int) -> str:
    """The period of ``window`` a read names when it names none: the one under way (before a
    game's first season, that season, whose board is empty until it starts)."""
    try:
        return period_of(window, now_ms, game.season)
    except NoPeriod:
        return "S1"


def entry_boards(game: Game, variant: str, at: int) -> list[Board]:
    """The boards an entry of ``game`` achieved at ``at`` belongs to, in the game's order."""
    boards = []
    for window in game.windows:
        try:
            boards.append(Board(game, variant, window, period_of(window, at, game.season)))
        except NoPeriod:
            continue
    return boards


@dataclass(frozen=True)
class Applied:
    """What applying one entry did."""

    submission_id: str
    fresh: bool  # False when this submission had been applied before
    banned: bool  # the player is banned from this game: nothing was applied
    score: int | float | None  # as logged when first applied (a replay may claim another)
    achieved_at: int | None  # epoch ms, as logged
    ranks: dict[str, int | None]  # window -> the rank the board shows the player afterwards
    improved: dict[str, bool]  # window -> whether this entry became the player's best
    run_reused: bool = False  # its run token was used by another submission: nothing applied


@dataclass(frozen=True)
class Row:
    """One line of a board."""

    rank: int
    player_id: str
    name: str
    score: int | float
    achieved_at: int  # epoch ms
    subscore: int | None = None
    metadata: str | None = None  # the JSON text of the row's entry, when it was read


@dataclass(frozen=True)
class Page:
    """A slice of a board with its size and last change."""

    rows: list[Row]
    total: int
    updated_at: int | None


@dataclass(frozen=True)
class Standing:
    """A player's row on a board, with neighbours on each side."""

    row: Row
    neighbours: list[Row]
    total: int
    updated_at: int | None
    #: The share of the board's rows ranked below the player's (rows of the same shown rank
    #: excluded), in percent with one decimal.
    percentile: float = 0.0


@dataclass(frozen=True)
class Lookup:
    """Some players' rows on a board, best first, and the ids of those without one."""

    rows: list[Row]
    missing: list[str]
    total: int
    updated_at: int | None


def format_score(game: Game, score: float) -> str:
    """The canonical text of a score, as stored in the log."""
    if game.integer:
        return str(int(score))
    return repr(float(score))


def parse_score(game: Game, text: str) -> int | float:
    """The inverse of :func:`format_score`."""
    return int(text) if game.integer else float(text)


def score_of_sort(game: Game, sort: str | float) -> int | float:
    """The score of a board row from its sorted-set score (``sign * score``, exact as Redis
    answers it: 17 significant digits)."""
    score = game.sign * float(sort)
    return int(score) if game.integer else score + 0.0  # + 0.0: no -0.0


#: The windows whose periods end, in the order a record lists their tags.
_ENDING: tuple[Window, ...] = ("daily", "weekly", "monthly", "season")


@dataclass(frozen=True)
class Horizon:
    """The oldest daily, weekly, monthly and season periods (by index) still readable: the
    scripts drop the tags of older ones from a player's record when they next write it."""

    day: int
    week: int
    month: int = 0
    season: int = 0

    @classmethod
    def of(cls, game: Game, now_ms: int) -> Horizon:
        """The horizon of a game's boards at ``now_ms`` (0 for a window it does not have)."""
        oldest = [
            oldest_readable(window, game.window_retention_ms(window) or 0, now_ms, game.season)
            if window in game.windows or window in ("daily", "weekly")
            else 0
            for window in _ENDING
        ]
        return cls(*oldest)

    def args(self) -> list[int]:
        """The oldest index of each kind of period, as the scripts take them (d, w, m, s)."""
        return [self.day, self.week, self.month, self.season]


def tag_order(tag: str) -> tuple[int, int]:
    """Where a tag goes in a record: all-time first, then days, weeks, months and seasons, each
    in time order."""
    return "adwms".index(tag[0]), int(tag[1:] or 0)


@dataclass(frozen=True)
class PlayerRecord:
    """A player's record in a family's players hash, text ``<name_at>|<tags>|<name>``.

    ``name`` is the name of the player's latest entry (the greatest achieved ms, ``name_at``;
    of two entries achieved at the same ms, the greater name), so it does not depend on the
    order entries arrive in. ``tags`` maps the tag of each board the player has a row on
    (``a``, ``d<day>``, ``w<week>``, ``m<month>``, ``s<season>``: see
    :func:`app.leaderboard.windows.period_tag`) to that row's achieved ms less the start of
    the board's period, written ``<tag>=<rel>``, or ``<tag>=<rel>,<subscore key>`` in a game
    with subscores (``subs``). The name comes last: it may hold ``|``.
    ``app/lua/board_lib.lua`` reads and writes the same text.
    """

    name_at: int
    name: str
    tags: Mapping[str, int] = field(default_factory=dict)
    subs: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> str:
        """The record's text."""
        tags = ";".join(
            f"{tag}={self.tags[tag]}" + (f",{self.subs[tag]}" if tag in self.subs else "")
            for tag in sorted(self.tags, key=tag_order)
        )
        return f"{self.name_at}|{tags}|{self.name}"

    @classmethod
    def decode(cls, text: str) -> PlayerRecord:
        """The record a text holds."""
        name_at, tags, name = text.split("|", 2)
        rels: dict[str, int] = {}
        subs: dict[str, str] = {}
        for part in tags.split(";"):
            if part:
                tag, spot = part.split("=")
                rel, _, sub = spot.partition(",")
                rels[tag] = int(rel)
                if sub:
                    subs[tag] = sub
        return cls(int(name_at), name, rels, subs)

    def member(self, board: Board, player_id: str) -> str | None:
        """The ranking member of the player's row on ``board``, if the record names one."""
        tag, start = board.tag
        rel = self.tags.get(tag)
        if rel is None:
            return None
        return ranking_member(self.subs.get(tag, ""), start + rel, player_id)


def apply_entries(client: DataClient, entries: Sequence[Entry], now_ms: int) -> list[Applied]:
    """Apply a batch of entries in one round trip; each entry is atomic and idempotent.

    For each entry: unless its submission was applied before, append it to the log and make it
    the player's row on every board it belongs to where it beats the player's best. The first
    entry whose script fails raises its error, once every entry has been tried.
    """
    outcomes = apply_entries_each(client, entries, now_ms)
    for outcome in outcomes:
        if isinstance(outcome, redis.RedisError):
            raise outcome
    return cast(list[Applied], outcomes)


def apply_entries_each(
    client: DataClient,
    entries: Sequence[Entry],
    now_ms: int,
    replication: Replication = NO_WAIT,
) -> list[Applied | redis.RedisError]:
    """As :func:`apply_entries`, with the error of an entry whose script fails in its place.

    The entries around it are applied all the same (a pipeline is no transaction), so this is
    how a caller learns what each of them did: applying them again would report a replay.
    With ``replication``, each family's master is waited for until its replicas hold what the
    batch wrote there (an entry whose master fell short has the shortfall, a passing error,
    in its place: applied, but not yet to be acknowledged).
    """
    if not entries:
        return []
    # A batch's entries share a few families and days: their boards, keys and expiries are
    # worked out once each, not once per entry. A UTC day lies in one week and one month, but
    # a season may begin at any time of day.
    families: dict[tuple[str, str, int, int | None], _Family] = {}
    placed: list[_Family] = []
    calls: list[scripts.Call] = []
    for entry in entries:
        season = entry.game.season
        where = (
            entry.game.slug,
            entry.variant,
            entry.achieved_at // DAY_MS,
            season.index(entry.achieved_at) if season else None,
        )
        family = families.get(where)
        if family is None:
            family = families[where] = _Family.of(entry, now_ms)
        placed.append(family)
        at = entry.achieved_at
        per_board: list[str | int] = []
        for tag, start, expire_at, bucket in family.boards:
            per_board += (tag, start, expire_at, at - at % bucket)
        calls.append(
            (
                [
                    *family.keys_before,
                    keys.run_key(*where[:2], entry.run_id or "-"),
                    family.players,
                    family.metadata,
                    *family.keys,
                ],
                [
                    entry.submission_id,
                    entry.player_id,
                    entry.name,
                    format_score(entry.game, entry.score),
                    entry.game.sign,
                    f"{at:0{_AT_WIDTH}d}",
                    now_ms,
                    entry.run_id or "",
                    entry.run_ttl_ms,
                    *family.horizon.args(),
                    *family.rule,
                    "" if entry.subscore is None or not entry.game.sub_sign else entry.subscore,
                    entry.metadata or "",
                    entry.game.ties,
                    *per_board,
                ],
            )
        )
    results = topology.run_each(client, "apply_entry", calls, "board_lib", replication)
    applied: list[Applied | redis.RedisError] = []
    for entry, family, result in zip(entries, placed, results, strict=True):
        if isinstance(result, redis.RedisError):
            applied.append(result)
            continue
        if result[0] in (-1, -2):
            applied.append(
                Applied(
                    entry.submission_id,
                    fresh=False,
                    banned=result[0] == -1,
                    run_reused=result[0] == -2,
                    score=None,
                    achieved_at=None,
                    ranks={},
                    improved={},
                )
            )
            continue
        fresh, score, at = result[:3]
        ranks: dict[str, int | None] = {}
        improved: dict[str, bool] = {}
        for i, window in enumerate(family.windows):
            rank, better = result[3 + 2 * i], result[4 + 2 * i]
            ranks[window] = int(rank) or None
            improved[window] = bool(better)
        applied.append(
            Applied(
                entry.submission_id,
                fresh=bool(fresh),
                banned=False,
                score=parse_score(entry.game, score),
                achieved_at=int(at),
                ranks=ranks,
                improved=improved,
            )
        )
    return applied


@dataclass(frozen=True)
class _Family:
    """What the apply script is told of the boards of one family on one UTC day."""

    keys_before: tuple[str, str, str]  # log, applied ids, banned (the run's key comes next)
    players: str
    metadata: str
    keys: tuple[str, ...]  # (ranking, meta[, values, value counts]) per board
    boards: tuple[tuple[str, int, int, int], ...]  # (tag, period start, expire-at, bucket ms)
    horizon: Horizon
    windows: tuple[Window, ...]
    rule: tuple[str, int]  # keep, sub_sign

    @classmethod
    def of(cls, entry: Entry, now_ms: int) -> _Family:
        boards = entry.boards()
        game, slug, variant = entry.game, entry.game.slug, entry.variant
        return cls(
            (
                keys.log_key(slug, variant),
                keys.applied_key(slug, variant),
                keys.banned_key(slug, variant),
            ),
            keys.players_key(slug, variant),
            keys.entry_metadata_key(slug, variant),
            tuple(key for board in boards for key in board_keys(board)),
            tuple((*board.tag, board.expire_at(), bucket_ms(board.window)) for board in boards),
            Horizon.of(game, now_ms),
            tuple(board.window for board in boards),
            (game.keep, game.sub_sign),
        )


def board_keys(board: Board) -> tuple[str, ...]:
    """The keys a script that writes a board is given for it: its ranking and meta, and its
    values and value counts when the game's ties are dense."""
    if board.game.ties == "dense":
        return board.ranking_key, board.meta_key, board.values_key, board.value_counts_key
    return board.ranking_key, board.meta_key


def _rows(game: Game, flat: Sequence[str | int | None], metadata: bool) -> list[Row]:
    """Rows from the flat (member, sorted-set score, name, shown rank[, metadata]) tuples the
    read scripts answer; a row without a name (no player record: a drift that reconcile
    repairs) is left out."""
    width = 5 if metadata else 4
    rows = []
    for i in range(0, len(flat), width):
        member, sort, name, rank = flat[i : i + 4]
        if not name:
            continue
        sub_key, at, player_id = split_member(str(member))
        rows.append(
            Row(
                int(cast(int, rank)),
                player_id,
                str(name),
                score_of_sort(game, cast(str, sort)),
                at,
                subscore_of_key(game, sub_key),
                cast(str | None, flat[i + 4]) if metadata else None,
            )
        )
    return rows


def _read_keys(board: Board) -> list[str]:
    """The keys every read script takes: ranking, players, meta, values, entry metadata."""
    return [
        board.ranking_key,
        board.players_key,
        board.meta_key,
        board.values_key,
        keys.entry_metadata_key(board.game.slug, board.variant),
    ]


def _flag(metadata: bool) -> str:
    return "1" if metadata else ""


def read_page(
    client: DataClient, board: Board, offset: int, limit: int, *, metadata: bool = False
) -> Page:
    """Rows ``offset+1 .. offset+limit`` of a board, each with its shown rank (the game's
    ties) and, with ``metadata``, its entry's metadata: read atomically in one round trip."""
    result = script(client, "read_range")(
        keys=_read_keys(board),
        args=[offset, offset + limit - 1, board.game.ties, _flag(metadata)],
    )
    total, updated = int(result[0]), result[1]
    rows = _rows(board.game, result[2:], metadata)
    return Page(rows, total, int(updated) if updated else None)


def percentile(below: int, total: int) -> float:
    """The share of ``total`` rows that ``below`` is, in percent with one decimal."""
    return round(100 * below / total, 1) if total else 0.0


def read_standing(
    client: DataClient,
    board: Board,
    player_id: str,
    around: int = 0,
    *,
    metadata: bool = False,
) -> Standing | None:
    """The player's row and ``around`` neighbours on each side, or None if unranked."""
    tag, start = board.tag
    result = script(client, "read_player")(
        keys=_read_keys(board),
        args=[player_id, around, tag, start, board.game.ties, _flag(metadata)],
    )
    total, updated, rank0, below = int(result[0]), result[1], int(result[2]), int(result[4])
    if rank0 < 0:
        return None
    rows = _rows(board.game, result[5:], metadata)
    mine = next((row for row in rows if row.player_id == player_id), None)
    if mine is None:
        return None
    return Standing(mine, rows, total, int(updated) if updated else None, percentile(below, total))


def read_players(
    client: DataClient, board: Board, player_ids: Sequence[str], *, metadata: bool = False
) -> Lookup:
    """The rows of some players on a board, best first, each with its shown rank on the whole
    board, and the ids (in the order asked, once each) of those without a row: one round trip
    however many ids."""
    asked = list(dict.fromkeys(player_ids))
    tag, start = board.tag
    result = script(client, "read_players")(
        keys=_read_keys(board), args=[tag, start, board.game.ties, _flag(metadata), *asked]
    )
    total, updated = int(result[0]), result[1]
    rows = _rows(board.game, result[2:], metadata)
    ranked = {row.player_id for row in rows}
    missing = [player_id for player_id in asked if player_id not in ranked]
    return Lookup(rows, missing, total, int(updated) if updated else None)
