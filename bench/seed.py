"""Boards of a chosen size, filled fast: entries appended straight to a family's log (as the
service's apply script writes them) and ranked by the project's own rebuild; and the same
entries as the tutorial's list, for the baseline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import redis

from app.storage import keys
from bench.baseline_app import list_key

#: A game of the benchmarks' own, so its boards never mix with the guessing game's.
GAME = "bench"
#: The game the ingest benchmark submits to.
INGEST_GAME = "bench-claimed"
SMALL, LARGE = "small", "large"
#: The claimed game's boards that whole games are played on (:mod:`bench.games`), seeded first.
PLAY_SMALL, PLAY_LARGE = "play-small", "play-large"
SCORE_MAX = 1000
#: The ingest game's least play time per point: a score of s claims at least s × this (ms).
MIN_MS_PER_POINT = 200

GAMES_TOML = f"""\
[games.{GAME}]
title = "Benchmark boards"
order = "lower"
integer = true
score_min = 1
score_max = {SCORE_MAX}
variants = ["{SMALL}", "{LARGE}"]

# The ingest benchmark's: the guessing game's rules with claimed scores (the guessing game's
# own are computed by the service from its runs, which wrk cannot play).
[games.{INGEST_GAME}]
title = "Benchmark submissions"
order = "lower"
integer = true
min_ms_per_point = {MIN_MS_PER_POINT}
duration_required = true
variants.25 = {{ score_min = 1, score_max = 25 }}
variants.100 = {{ score_min = 1, score_max = 100 }}
# Boards seeded with scores as the `{GAME}` game's, which the players of whole games join.
variants.{PLAY_SMALL} = {{ score_min = 1, score_max = {SCORE_MAX} }}
variants.{PLAY_LARGE} = {{ score_min = 1, score_max = {SCORE_MAX} }}
"""

# Commands per pipeline round trip while seeding.
_CHUNK = 10_000


class Seeded(NamedTuple):
    """One seeded entry, as the log holds it."""

    sid: str
    pid: str
    name: str
    score: int
    at: int  # epoch ms; unique and increasing


def write_games_file(path: Path) -> Path:
    """Write the benchmarks' games file (for ``HISCORE_GAMES_FILE``) and return its path."""
    path.write_text(GAMES_TOML)
    return path


def player_id(i: int) -> str:
    """The id of seeded player ``i`` (``bench/wrk/around.lua`` builds the same)."""
    return f"bench-player-{i:08d}"


def entries(count: int, first_at: int, seed: int = 1) -> Iterator[Seeded]:
    """``count`` entries of distinct players, one millisecond apart from ``first_at``."""
    rng = random.Random(seed)
    for i in range(count):
        yield Seeded(
            f"seed{i:010d}", player_id(i), f"Player {i}", rng.randint(1, SCORE_MAX), first_at + i
        )


def seed_log(client: redis.Redis, game: str, variant: str, rows: Iterator[Seeded]) -> int:
    """Append ``rows`` to the family's log and mark them applied, pipelined; return the count."""
    log, applied = keys.log_key(game, variant), keys.applied_key(game, variant)
    pipe = client.pipeline(transaction=False)
    marks: dict[str, str] = {}
    count = 0
    for row in rows:
        entry_id = f"{row.at}-0"
        fields = {"sid": row.sid, "pid": row.pid, "name": row.name, "score": row.score}
        pipe.xadd(log, {**fields, "at": f"{row.at:013d}"}, id=entry_id)
        marks[row.sid] = entry_id
        count += 1
        if len(marks) == _CHUNK:
            pipe.hset(applied, mapping=marks)
            pipe.execute()
            marks = {}
    if marks:
        pipe.hset(applied, mapping=marks)
    pipe.execute()
    return count


def seed_tutorial_list(client: redis.Redis, game: str, variant: str, rows: Iterator[Seeded]) -> int:
    """The same entries as the tutorial keeps them: one JSON document per score in a list."""
    key = list_key(game, variant)
    client.delete(key)
    pipe = client.pipeline(transaction=False)
    batch: list[str] = []
    count = 0
    for row in rows:
        document = {"player_id": row.pid, "name": row.name, "score": row.score, "at": row.at}
        batch.append(json.dumps(document))
        count += 1
        if len(batch) == 1000:
            pipe.rpush(key, *batch)
            batch = []
            if count % _CHUNK == 0:
                pipe.execute()
    if batch:
        pipe.rpush(key, *batch)
    pipe.execute()
    return count
