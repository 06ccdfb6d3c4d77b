"""Boards of a chosen size, filled fast: entries appended straight to a family's log (as the
service's apply script writes them) and ranked by the project's own rebuild; and the same
entries as the tutorial's list, for the baseline.
"""

from __future__ import annotations

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

#: Entries per script call while seeding: each call holds Redis a few tens of milliseconds.
_CHUNK = 10_000

# Each seeded entry's strings, as entries() makes them, built by Redis from the entry's index,
# so that only the scores (the random part) cross the socket: much faster than a pipeline of
# commands built by redis-py. ARGV: the first entry's index, its epoch ms less that index, and
# one score per entry. Strings only from the index and time: no escaping is needed.
_SEED_LOG = """
local first, first_at = tonumber(ARGV[1]), tonumber(ARGV[2])
for n = 3, #ARGV do
  local i = first + n - 3
  local at = first_at + i
  local id = string.format('%d-0', at)
  local sid = string.format('seed%010d', i)
  redis.call('XADD', KEYS[1], id, 'sid', sid, 'pid', string.format('bench-player-%08d', i),
    'name', string.format('Player %d', i), 'score', ARGV[n], 'at', string.format('%013d', at))
  redis.call('HSET', KEYS[2], sid, id)
end
return #ARGV - 2
"""
# The same entries as json.dumps writes the tutorial's documents (its separators, its order).
_SEED_LIST = """
local first, first_at = tonumber(ARGV[1]), tonumber(ARGV[2])
for n = 3, #ARGV do
  local i = first + n - 3
  redis.call('RPUSH', KEYS[1], string.format(
    '{"player_id": "bench-player-%08d", "name": "Player %d", "score": %s, "at": %d}',
    i, i, ARGV[n], first_at + i))
end
return #ARGV - 2
"""


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


def _scores(count: int, seed: int) -> Iterator[int]:
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randint(1, SCORE_MAX)


def entries(count: int, first_at: int, seed: int = 1) -> Iterator[Seeded]:
    """``count`` entries of distinct players, one millisecond apart from ``first_at`` (the
    scripts that seed them build the same strings)."""
    for i, score in enumerate(_scores(count, seed)):
        yield Seeded(f"seed{i:010d}", player_id(i), f"Player {i}", score, first_at + i)


def _seed(script: str, client: redis.Redis, keys_: list[str], count: int, first_at: int) -> int:
    run = client.register_script(script)
    done = 0
    scores = _scores(count, 1)
    while done < count:
        chunk = [score for _, score in zip(range(_CHUNK), scores, strict=False)]
        done += int(run(keys=keys_, args=[done, first_at, *chunk]))
    return done


def seed_log(client: redis.Redis, game: str, variant: str, count: int, first_at: int) -> int:
    """Append :func:`entries` ``(count, first_at)`` to the family's log and mark them applied;
    return the count."""
    keys_ = [keys.log_key(game, variant), keys.applied_key(game, variant)]
    return _seed(_SEED_LOG, client, keys_, count, first_at)


def seed_tutorial_list(
    client: redis.Redis, game: str, variant: str, count: int, first_at: int
) -> int:
    """The same entries as the tutorial keeps them: one JSON document per score in a list."""
    key = list_key(game, variant)
    client.delete(key)
    return _seed(_SEED_LIST, client, [key], count, first_at)
