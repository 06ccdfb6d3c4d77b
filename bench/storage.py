"""Rebuild and memory: the project's rebuild of a large board from its log against a bare
pipelined ``ZADD`` + ``RENAME`` of the same pairs, and Redis bytes per board entry.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence

import redis

from app.clock import now_ms
from app.leaderboard.games import Game
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.storage import keys


def time_rebuild(client: redis.Redis, game: Game, variant: str) -> tuple[float, int]:
    """Seconds to rebuild every readable board of a variant from its log, and entries read."""
    started = time.perf_counter()
    read = rebuild_family(client, game, variant, now_ms())
    return time.perf_counter() - started, read


def time_bare_zadd(
    client: redis.Redis, pairs: Sequence[tuple[float, str]], dest: str, batch: int = 10_000
) -> float:
    """Seconds to ``ZADD`` each (score, member) into a new key, ``batch`` commands per
    pipeline, then ``RENAME`` it to ``dest`` (replacing ``dest`` if it exists): the floor any
    rebuild is measured against."""
    building = f"{dest}:building"
    client.delete(building)
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, (score, member) in enumerate(pairs, 1):
        pipe.zadd(building, {member: score})
        if i % batch == 0:
            pipe.execute()
    pipe.execute()
    client.rename(building, dest)
    return time.perf_counter() - started


def board_pairs(client: redis.Redis, game: Game, variant: str) -> list[list[tuple[float, str]]]:
    """The (score, member) pairs of every readable board of a variant that has rows: what a
    rebuild of the variant writes."""
    pairs = []
    for board in readable_boards(game, variant, now_ms()):
        rows = [
            (score, member)
            for member, score in client.zrange(board.ranking_key, 0, -1, withscores=True)
        ]
        if rows:
            pairs.append(rows)
    return pairs


def time_bare_boards(
    client: redis.Redis, boards: Sequence[Sequence[tuple[float, str]]], dest: str
) -> float:
    """Seconds of :func:`time_bare_zadd` for each board's pairs in turn: the floor of writing
    the boards a rebuild writes, board by board."""
    total = 0.0
    for i, pairs in enumerate(boards):
        total += time_bare_zadd(client, pairs, f"{dest}:{i}")
        client.unlink(f"{dest}:{i}")
    return total


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` of ``INFO memory``."""
    return int(client.info("memory")["used_memory"])


def _key_kinds(game: Game, variant: str) -> dict[str, str]:
    kinds = {
        keys.log_key(game.slug, variant): "log (stream)",
        keys.applied_key(game.slug, variant): "applied (hash)",
        keys.players_key(game.slug, variant): "players (hash)",
    }
    for board in readable_boards(game, variant, now_ms()):
        kinds[board.ranking_key] = f"{board.window} ranking (zset)"
        kinds[board.meta_key] = f"{board.window} meta (hash)"
    return kinds


def family_memory(client: redis.Redis, game: Game, variant: str, entries: int) -> dict:
    """``MEMORY USAGE`` of every key of a board family, per kind of key and per entry; and per
    board its ranking and meta, per player on it, beside the players hash per player."""
    prefix = os.path.commonprefix(
        [keys.log_key(game.slug, variant), keys.applied_key(game.slug, variant)]
    )
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    found = sorted(client.scan_iter(match=pattern, count=10_000))
    pipe = client.pipeline(transaction=False)
    for key in found:
        pipe.memory_usage(key, samples=0)
    sizes = dict(zip(found, pipe.execute(), strict=True))
    kinds = _key_kinds(game, variant)
    by_kind: dict[str, int] = {}
    for key, size in sizes.items():
        kind = kinds.get(key, "other")
        by_kind[kind] = by_kind.get(kind, 0) + (size or 0)
    total = sum(by_kind.values())
    players_key = keys.players_key(game.slug, variant)
    players = int(client.hlen(players_key))
    boards = {}
    for board in readable_boards(game, variant, now_ms()):
        on_board = int(client.zcard(board.ranking_key))
        if on_board:
            zset, meta = sizes.get(board.ranking_key) or 0, sizes.get(board.meta_key) or 0
            boards[f"{board.window} {board.period}"] = {
                "players": on_board,
                "ranking_bytes": zset,
                "meta_bytes": meta,
                "ranking_per_player": zset / on_board,
            }
    return {
        "entries": entries,
        "keys": len(found),
        "bytes": total,
        "bytes_per_entry": total / entries if entries else None,
        "per_entry_by_kind": {k: v / entries for k, v in sorted(by_kind.items())}
        if entries
        else {},
        "players": players,
        "players_per_player": (sizes.get(players_key) or 0) / players if players else None,
        "boards": boards,
    }


def key_bytes(client: redis.Redis, key: str) -> int:
    """``MEMORY USAGE`` of one key, counted in full."""
    return int(client.memory_usage(key, samples=0) or 0)
