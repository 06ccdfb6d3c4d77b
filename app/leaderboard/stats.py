"""Statistics of each board, computed from the board itself by the stats job and stored for
reads.

A board's ranking is a sorted set in rank order, so its order statistics are single lookups:
the best is rank 1, the median and p90 are the rows at their ranks, and a histogram bin is a
``ZCOUNT`` over its range of sort keys. The board's meta hash adds what the ranking cannot say:
the sum of its rows' scores (for the mean) and the entries accepted per time bucket (for
``count`` and ``over_time``), both kept up to date by the scripts that write the board. So
the stats of a board cost two round trips and O(bins x log players) work in Redis, whatever
the number of players or submissions; nothing reads the log.

``count`` and ``over_time`` count accepted entries; ``players``, ``best``, ``mean``,
``median``, ``p90`` and ``histogram`` describe the rows of the board, one per player: the
board as it is shown. (Per-entry distributions would need every entry kept, which is what
the log's compaction stops doing.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, cast

from app.leaderboard.boards import Board
from app.leaderboard.games import Game
from app.leaderboard.rebuild import readable_boards
from app.storage import keys
from app.storage.connection import DataClient

HISTOGRAM_BINS = 20

#: Prefix of the meta hash fields that count entries per time bucket (``t:<bucket start ms>``).
BUCKET_FIELD = "t:"


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values (``fraction`` in 0..1)."""
    return ordered[percentile_rank(len(ordered), fraction) - 1]


def percentile_rank(size: int, fraction: float) -> int:
    """The 1-based rank of the nearest-rank percentile among ``size`` values."""
    return max(1, math.ceil(fraction * size))


def bins(low: float, high: float, integer: bool) -> list[tuple[float, float]]:
    """At most :data:`HISTOGRAM_BINS` equal bins from ``low`` to ``high``, as (from, to).

    Integer bins are closed (``from <= v <= to``); other bins hold ``from <= v < to``, except
    the last, which holds ``high`` too.
    """
    if integer:
        width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
        return [
            (low + i * width, low + (i + 1) * width - 1)
            for i in range(int((high - low) // width) + 1)
        ]
    if high <= low:
        return [(low, low + 1.0)]
    step = (high - low) / HISTOGRAM_BINS
    edges = [low + i * step for i in range(HISTOGRAM_BINS)] + [high]
    return list(zip(edges, edges[1:], strict=False))


def in_bin(value: float, low: float, high: float, last: bool, integer: bool) -> bool:
    """Whether a score falls in the bin ``(low, high)`` of :func:`bins`."""
    if integer or last:
        return low <= value <= high
    return low <= value < high


def histogram(values: Sequence[float], integer: bool) -> list[dict[str, float | int]]:
    """Counts of scores in the bins of :func:`bins` covering them all (a reference: the stats
    job counts the same bins on the board itself)."""
    if not values:
        return []
    edges = bins(min(values), max(values), integer)
    return [
        {
            "from": low,
            "to": high,
            "count": sum(in_bin(v, low, high, i == len(edges) - 1, integer) for v in values),
        }
        for i, (low, high) in enumerate(edges)
    ]


def _count_args(game: Game, low: float, high: float, last: bool) -> tuple[str, str]:
    """``ZCOUNT`` bounds of the sort keys (sign x score) of a bin's scores."""
    closed = game.integer or last

    def text(value: float) -> str:
        return str(int(value)) if game.integer else repr(float(value))

    if game.sign == 1:
        return text(low), text(high) if closed else f"({text(high)}"
    return (f"{text(-high)}" if closed else f"({text(-high)}"), text(-low)


def _ranked(game: Game, reply: list[tuple[str, float]]) -> int | float:
    """The score of the one row of a ``ZRANGE .. WITHSCORES`` reply (score = sign x key)."""
    score = game.sign * reply[0][1]
    return int(score) if game.integer else score


def _meta_key(board: Board) -> str:
    return keys.meta_key(board.game.slug, board.variant, board.window, board.period)


def compute_boards(
    client: DataClient, game: Game, boards: Sequence[Board], now_ms: int
) -> list[dict[str, Any]]:
    """The stats of ``boards`` (of one family), in two round trips."""
    pipe = client.pipeline(transaction=False)
    for board in boards:
        pipe.zcard(board.ranking_key)
        pipe.zrange(board.ranking_key, 0, 0, withscores=True)
        pipe.zrange(board.ranking_key, -1, -1, withscores=True)
        pipe.hgetall(_meta_key(board))
    first = pipe.execute()
    plans = []
    for i, board in enumerate(boards):
        players, best, worst, meta = first[4 * i : 4 * i + 4]
        plans.append((board, cast(int, players), best, worst, cast(dict[str, str], meta)))
        if not players:
            continue
        for rank in _order_ranks(players):
            pipe.zrange(board.ranking_key, rank - 1, rank - 1, withscores=True)
        low, high = sorted((_ranked(game, best), _ranked(game, worst)))
        edges = bins(low, high, game.integer)
        for j, (lo, hi) in enumerate(edges):
            pipe.zcount(board.ranking_key, *_count_args(game, lo, hi, j == len(edges) - 1))
    second = iter(pipe.execute())
    results = []
    for board, players, best, worst, meta in plans:
        results.append(_summary(game, board, players, best, worst, meta, second, now_ms))
    return results


def _order_ranks(players: int) -> tuple[int, int, int]:
    """The ranks (1-based, best first) of the two middle rows and of p90."""
    return (players + 1) // 2, players // 2 + 1, percentile_rank(players, 0.9)


def _summary(
    game: Game,
    board: Board,
    players: int,
    best: list[tuple[str, float]],
    worst: list[tuple[str, float]],
    meta: dict[str, str],
    replies: Any,
    now_ms: int,
) -> dict[str, Any]:
    per_bucket = 3_600_000 if board.window == "daily" else 86_400_000
    over_time = sorted(
        (int(field[len(BUCKET_FIELD) :]), int(count))
        for field, count in meta.items()
        if field.startswith(BUCKET_FIELD)
    )
    summary: dict[str, Any] = {
        "game": game.slug,
        "variant": board.variant,
        "window": board.window,
        "period": board.period,
        "count": sum(count for _, count in over_time),
        "players": players,
        "best": None,
        "mean": None,
        "median": None,
        "p90": None,
        "histogram": [],
        "over_time": {
            "bucket_ms": per_bucket,
            "counts": [{"at": at, "count": n} for at, n in over_time],
        },
        "computed_at": now_ms,
    }
    if not players:
        return summary
    upper, lower, p90 = (_ranked(game, next(replies)) for _ in range(3))
    low, high = sorted((_ranked(game, best), _ranked(game, worst)))
    edges = bins(low, high, game.integer)
    total = float(meta.get("sum", 0))
    summary.update(
        best=_ranked(game, best),
        mean=total / players,
        median=upper if upper == lower else (upper + lower) / 2,
        p90=p90,
        histogram=[{"from": lo, "to": hi, "count": next(replies)} for lo, hi in edges],
    )
    return summary


def compute_family(client: DataClient, game: Game, variant: str, now_ms: int) -> list[dict]:
    """Store the stats of each readable board of a variant; return them.

    The all-time board's entry counts of days past the game's retention are dropped first, so
    that its ``count`` and ``over_time`` cover the entries the game keeps, as its log did.
    """
    boards = readable_boards(game, variant, now_ms)
    _forget_old_buckets(client, game, boards[0], now_ms)
    results = compute_boards(client, game, boards, now_ms)
    pipe = client.pipeline(transaction=False)
    for board, result in zip(boards, results, strict=True):
        key = keys.stats_key(game.slug, variant, board.window, board.period)
        pipe.set(key, json.dumps(result))
        if board.expire_at():
            pipe.pexpireat(key, board.expire_at())
    pipe.execute()
    return results


def _forget_old_buckets(client: DataClient, game: Game, board: Board, now_ms: int) -> None:
    cutoff = now_ms - game.retention_days * 86_400_000
    meta = _meta_key(board)
    old = [
        field
        for field in cast(list[str], client.hkeys(meta))
        if field.startswith(BUCKET_FIELD) and int(field[len(BUCKET_FIELD) :]) + 86_400_000 <= cutoff
    ]
    if old:
        client.hdel(meta, *old)


def read_stats(client: DataClient, board: Board) -> dict[str, Any] | None:
    """The stored stats of a board, or None if the stats job has not computed them."""
    raw = cast(
        str | None,
        client.get(keys.stats_key(board.game.slug, board.variant, board.window, board.period)),
    )
    return json.loads(raw) if raw else None
