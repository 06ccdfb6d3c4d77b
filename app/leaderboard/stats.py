"""Statistics of each board, computed from the log by the stats job and stored for reads."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from app.leaderboard.boards import Board, parse_score
from app.leaderboard.games import Game
from app.leaderboard.rebuild import SLICE, readable_boards
from app.storage import keys

HISTOGRAM_BINS = 20


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values (``fraction`` in 0..1)."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def histogram(values: Sequence[float], integer: bool) -> list[dict[str, float | int]]:
    """Counts of scores in at most :data:`HISTOGRAM_BINS` equal bins covering them all."""
    if not values:
        return []
    low, high = min(values), max(values)
    if integer:
        width = max(1, math.ceil((high - low + 1) / HISTOGRAM_BINS))
        bins = Counter(int((v - low) // width) for v in values)
        return [
            {"from": low + i * width, "to": low + (i + 1) * width - 1, "count": bins.get(i, 0)}
            for i in range(int((high - low) // width) + 1)
        ]
    step = (high - low) / HISTOGRAM_BINS or 1.0
    bins = Counter(min(HISTOGRAM_BINS - 1, int((v - low) / step)) for v in values)
    count = HISTOGRAM_BINS if high > low else 1
    return [
        {"from": low + i * step, "to": low + (i + 1) * step, "count": bins.get(i, 0)}
        for i in range(count)
    ]


def summarize(
    game: Game, board: Board, entries: Iterable[tuple[str, float, int]], now_ms: int
) -> dict[str, Any]:
    """Stats of the entries (player id, score, achieved ms) of one board."""
    rows = list(entries)
    scores = sorted((score for _, score, _ in rows), reverse=not game.lower_is_better)
    per_bucket = 3_600_000 if board.window == "daily" else 86_400_000
    over_time = Counter(at // per_bucket * per_bucket for _, _, at in rows)
    ascending = sorted(scores)
    return {
        "game": game.slug,
        "variant": board.variant,
        "window": board.window,
        "period": board.period,
        "count": len(rows),
        "players": len({player for player, _, _ in rows}),
        "best": scores[0] if scores else None,
        "mean": statistics.fmean(scores) if scores else None,
        "median": statistics.median(ascending) if scores else None,
        # The score that 90% of entries match or beat, whichever way the game sorts.
        "p90": percentile(scores, 0.9) if scores else None,
        "histogram": histogram(ascending, game.integer),
        "over_time": {
            "bucket_ms": per_bucket,
            "counts": [{"at": at, "count": n} for at, n in sorted(over_time.items())],
        },
        "computed_at": now_ms,
    }


def compute_family(client: redis.Redis, game: Game, variant: str, now_ms: int) -> list[dict]:
    """Read a variant's log once and store the stats of each of its readable boards."""
    boards = readable_boards(game, variant, now_ms)
    ranges = [board.achieved_range() for board in boards]
    banned = cast(set[str], client.smembers(keys.banned_key(game.slug, variant)))
    members: list[list[tuple[str, float, int]]] = [[] for _ in boards]
    log = keys.log_key(game.slug, variant)
    start = "-"
    while True:
        chunk = cast(list[Any], client.xrange(log, start, "+", count=SLICE))
        for _id, fields in chunk:
            if fields["pid"] in banned:
                continue
            at = int(fields["at"])
            row = (fields["pid"], parse_score(game, fields["score"]), at)
            for i, (low, high) in enumerate(ranges):
                if at >= low and (high == 0 or at < high):
                    members[i].append(row)
        if len(chunk) < SLICE:
            break
        start = f"({chunk[-1][0]}"
    results = [summarize(game, b, rows, now_ms) for b, rows in zip(boards, members, strict=True)]
    pipe = client.pipeline(transaction=False)
    for board, result in zip(boards, results, strict=True):
        key = keys.stats_key(game.slug, variant, board.window, board.period)
        pipe.set(key, json.dumps(result))
        if board.expire_at():
            pipe.pexpireat(key, board.expire_at())
    pipe.execute()
    return results


def read_stats(client: redis.Redis, board: Board) -> dict[str, Any] | None:
    """The stored stats of a board, or None if the stats job has not computed them."""
    raw = cast(
        str | None,
        client.get(keys.stats_key(board.game.slug, board.variant, board.window, board.period)),
    )
    return json.loads(raw) if raw else None
