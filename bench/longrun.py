"""``python -m bench.longrun`` (or ``./dev bench --long-run``): Redis memory over a long
simulated run, through the service's own code with the time passed in.

A seeded, deterministic stream (by default 2,000,000 submissions from 20,000 players over 60
simulated days) goes through the code a worker and beat run: the entries through
:func:`app.leaderboard.boards.apply_entries` in batches of 500, with ``now_ms`` the simulated
time; their verdicts through the worker's own record builders and
:func:`app.storage.submissions.settle` in the generation of that time, for the configured
idempotency window (``HISCORE_IDEMPOTENCY_WINDOW``, a day by default); the beat jobs through
:func:`app.leaderboard.maintenance.run_operation`, prune (with its compaction of the logs, for
that window, no archive) every 6 simulated hours and stats once a simulated day. Each
simulated day ends with ``used_memory`` (``INFO memory``), the bytes of each kind of key
(``MEMORY USAGE`` of every key of a kind, or of a sample of 500 scaled to their number) and
their elements, the logs' lengths and the boards' rows; and a corrected ``used_memory`` (see
Time). Against each day stand the previous layout's run of the same stream
(:data:`PREVIOUS_RUN`, measured) and what the previous layout holds for it by its measured
per-kind costs and the stream's own counts (:data:`PREVIOUS_FORMULA`); the memory is held to
a bound worked out from the players, the readable periods and the window's submissions
(:func:`bound_formula`). Each day's figures are taken at its end, after what expires by then
and before the jobs due at midnight.

The stream: players join over the first quarter of the run; a player's share of the
submissions is heavy-tailed (Pareto, shape 1.2: a few play thousands of times, most a few
times); submissions follow a daily rhythm (peak at 20:00 UTC, a fifth of it at 08:00) and
weekends bring a quarter more; two families, the guessing game's variants 100 and 1000 of the
default registry, each player mostly playing one; integer scores (so ties, which rank by time);
one submission in 300 comes under a new name; 3% are rejected (a rejected record, no log entry).
No submission is sent twice, no player is banned, no entry carries a run token.

Time. The simulated clock starts at the first Monday's UTC midnight after the real now (so
every run's weeks fall alike) and runs ahead of the real one. Redis expires keys by its own
clock, so after each simulated day (or ``--expire-hours``) every key is SCANned, its PTTL read
(in a script, a SCAN step at a time), its absolute expiry taken as the server's now plus its
PTTL, and the keys whose absolute expiry is at or before the simulated now are deleted. That
is faithful for a key whose expiry the code sets absolutely from the injected time (PEXPIREAT:
the boards' zsets and meta hashes, their stats). A key given a relative TTL (EX, PX, PEXPIRE)
would expire relative to the real time it was written, so at the wrong simulated time. Those
of this run:

- the status records' hashes, ``hs:{ingest:<partition>}:subs:<gen>:<bucket>``, given a
  PEXPIRE of their generation's expiry less the caller's now
  (``app/lua/store_submissions.lua``): their generation is in their name (gen = now_s // G,
  G = max(1, ceil(W / 4)) for the window W in seconds) and a hash expires at (gen + 1) × G + W
  seconds, so the pass deletes such a hash when that instant, from its name, is at or before
  the simulated now, whatever its PTTL says (which counts from the real time it was written:
  Redis itself expires none of them during a run shorter than W);
- a family's lock (SET ... EX), which prune holds while it runs and deletes when done: never
  alive at a pass.

Run-token keys (PX) are not used here. The report lists the kinds of key that had a TTL at
each pass (``with_ttl`` of each day), to show which others appear.

The log's entry ids come from Redis (XADD ``*``), from its own clock, not the simulated one,
and the compaction keeps the entries applied inside the idempotency window by their ids (log
id ms >= now - W), forgetting the applied ids of the others. Seen from the simulated now every
entry was applied at the run's real start, days before, so the run's logs keep none for the
window, and its applied hashes only the ids applied since the last prune: the measured curve
lacks about a window of entries and ids that the service holds. The service is measured as it
is, and the lack is measured beside it (:class:`Applying`): each day's end counts the entries
applied (at the simulated now) since the last prune's now less W, which that compaction would
have kept, that the logs no longer hold, and those whose ids the applied hashes no longer
hold; the corrected ``used_memory`` adds them at the day's own bytes per log entry and per
applied id (:data:`CORRECTED_FORMULA`). Flatness and the targets are judged on the corrected
curve. The report says whether the ids followed the simulated clock (``log_ids.simulated``).

The server is the project's redis-server started as the other benchmarks start it, with its
append-only file turned off after the start: its rewrites fork the whole dataset, which cost
this 2-core machine minutes and add buffers to ``used_memory`` that are not the dataset's.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import itertools
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import redis

from app.clock import now_ms as real_now_ms
from app.leaderboard import ingest, statuses
from app.leaderboard.boards import Applied, Entry, apply_entries
from app.leaderboard.compaction import Compaction
from app.leaderboard.games import Game, Registry, load_registry
from app.leaderboard.maintenance import families_of, record_beat_run, run_operation
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.records import SubmissionRecord
from app.leaderboard.validation import Rejection
from app.storage import keys, submissions
from app.storage.embedded_redis import EmbeddedRedis
from bench.report import Figure, compare, machine, redis_server, table, write_json
from config import Config

RESULTS = Path(__file__).resolve().parent / "results"

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

#: The families of the stream: the default registry's guessing game, two of its variants.
GAME = "guess"
VARIANTS = ("100", "1000")


# ---------------------------------------------------------------------------------------------
# The service's entry points, as this version of the code has them. When the layout changes,
# this block is what changes with it.


class Layout:
    """The domain entry points the run drives, and what it knows of this version's keys."""

    name = "players × periods"
    described = (
        "per board a ranking zset and a meta hash, per family a players hash; the log compacted "
        "by the prune job to the boards' rows, each player's latest entry and the entries "
        "applied inside the idempotency window, applied ids for that window; status records in "
        "bucketed hashes per generation, kept for the window (to 1.25 of it)"
    )
    #: Which bound the run's memory is held to (see :func:`bounds`).
    bound = "players × periods"

    def __init__(self, client: redis.Redis, registry: Registry) -> None:
        self.client, self.registry = client, registry
        config = Config()
        self.window_s = config.IDEMPOTENCY_WINDOW_SECONDS
        self.partitions = config.INGEST_PARTITIONS
        self.compaction = Compaction(self.window_s)

    def kinds(self) -> list[tuple[str, str]]:
        """(kind, an example key with placeholders, or a SCAN pattern) for each kind of key
        measured apart."""
        g, v, w, p = "\0g", "\0v", "\0w", "\0p"
        return [
            ("log", keys.log_key(g, v)),
            ("applied", keys.applied_key(g, v)),
            ("zsets", keys.ranking_key(g, v, w, p)),
            ("players", keys.players_key(g, v)),
            ("meta", keys.meta_key(g, v, w, p)),
            ("stats", keys.stats_key(g, v, w, p)),
            ("status records", keys.PARTITION_SUBMISSIONS_PATTERN),
        ]

    #: The command that counts the elements of a key of each kind (kinds not named: none).
    elements = {
        "log": "XLEN",
        "applied": "HLEN",
        "zsets": "ZCARD",
        "players": "HLEN",
        "meta": "HLEN",
        "status records": "HLEN",
    }

    #: Kinds given a relative TTL, and what the run does about it (see the module's docstring).
    relative_ttl = {
        "status records": "PEXPIRE of the generation's expiry less the caller's now: deleted "
        "when the expiry their name gives, (gen + 1) × G + W seconds, is at or before the "
        "simulated now"
    }

    def named_expiry(self) -> tuple[str, int, int]:
        """The keys whose expiry their name gives (the status records' hashes,
        ``<partition's prefix>:subs:<generation>:<bucket>``): a Lua pattern that captures the
        generation, G and W in seconds."""
        generation = submissions.Generation.at(0, self.window_s, self.partitions)
        example = keys.partition_submissions_key(0, 0, 0)
        prefix = example[: example.index("{")]
        pattern = "^" + _lua_escaped(prefix) + "{ingest:%d+}:subs:(%d+):"
        return pattern, generation.seconds, generation.window_s

    def apply(self, entries: Sequence[Entry], now_ms: int) -> list[Applied]:
        """Apply a batch of entries to the boards at ``now_ms``."""
        return apply_entries(self.client, entries, now_ms)

    # The worker's own record builders (private to its module): the records are the worker's.
    def accepted(self, entry: Entry, applied: Applied, fingerprint: str) -> SubmissionRecord:
        """The record the worker stores for an applied entry."""
        return ingest._accepted(entry, applied, fingerprint)

    def rejected(self, payload: dict[str, Any], rejection: Rejection) -> SubmissionRecord:
        """The record the worker stores for a rejected submission."""
        return ingest._rejected(payload, rejection)

    def settle(self, verdicts: Sequence[tuple[str, SubmissionRecord]], now_ms: int) -> None:
        """Store the verdicts as the worker does, at ``now_ms``."""
        now = submissions.Generation.at(now_ms, self.window_s, self.partitions)
        stored = [statuses.verdict(sid, record, now) for sid, record in verdicts]
        submissions.settle(self.client, stored, now, now_ms)

    def beat(self, kind: str, now_ms: int) -> dict[str, Any]:
        """Run a beat job (prune, stats) over every family at ``now_ms``, as beat runs it."""
        outcome = run_operation(
            self.client,
            self.registry,
            kind,
            families_of(self.registry),
            f"longrun-{kind}",
            lambda: now_ms,
            record=False,
            compaction=self.compaction,
        )
        record_beat_run(self.client, kind, now_ms, now_ms, outcome)
        return outcome


# ---------------------------------------------------------------------------------------------
# The stream.

#: A player's share of the submissions: Pareto of this shape, capped at this many times the
#: least (a few players play thousands of times, most a handful).
ACTIVITY_SHAPE, ACTIVITY_CAP = 1.2, 2000.0
#: Each hour's weight in a UTC day: peak at 20:00, a fifth of it at 08:00.
HOURLY = tuple(1 + 0.667 * math.cos(2 * math.pi * (h - 20) / 24) for h in range(24))
WEEKEND = 1.25
#: The share of a player's submissions on their main family.
MAIN_FAMILY = 0.85
RENAME = 1 / 300
REJECTED = 0.03
_MISMATCH = "the score differs from what the run's moves prove"
_REUSED = "this run token was already used by another submission"
#: Rejection reasons of a verified game's scores, weighted as the worker would meet them.
_EXPIRED = "the score waited too long to be checked against its run token"
REJECTIONS = (
    Rejection("run_mismatch", _MISMATCH, {"score": [_MISMATCH]}),
    Rejection("token_expired", _EXPIRED),
    Rejection("token_missing", "no run"),
    Rejection("token_reused", _REUSED, {"token": [_REUSED]}),
)
REJECTION_WEIGHTS = (5, 2, 2, 1)
#: Typical guesses per variant (a person halving the range, with slips) and their spread.
SKILL = {"100": (7.5, 1.2), "1000": (10.5, 1.5)}
SCORE_SPREAD = 1.6
_ADJECTIVES = "swift brave quiet lucky clever sly bold calm wild keen odd grim shy deft".split()
_NOUNS = "fox owl lynx crow hare wolf mole newt orca yak ibis toad wren pike".split()


def _token(rng: random.Random) -> str:
    """A 22-character URL-safe id, as :func:`app.storage.submissions.new_id` makes them."""
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).rstrip(b"=").decode()


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_ADJECTIVES)}{rng.choice(_NOUNS)}{rng.randrange(1000)}"


@dataclass
class Player:
    """A player of the stream: who, how much, from when, where, how well."""

    pid: str
    weight: float
    join_day: int
    main: str
    skill: dict[str, float]
    name: str


class Submission(NamedTuple):
    """One submission of the stream, in time order."""

    at: int  # received (achieved) ms
    sid: str
    pid: str
    variant: str
    name: str
    score: int
    fingerprint: str
    rejection: Rejection | None


@dataclass(frozen=True)
class StreamSpec:
    """The size and seed of a stream."""

    submissions: int
    players: int
    days: int
    seed: int
    start_ms: int  # a UTC midnight

    def day_counts(self) -> list[int]:
        """Submissions per day: weekends a quarter more, summing to ``submissions``."""
        weights = [
            WEEKEND if _weekday(self.start_ms + d * DAY_MS) >= 5 else 1.0 for d in range(self.days)
        ]
        total = sum(weights)
        counts = [int(self.submissions * w / total) for w in weights]
        for d in range(self.submissions - sum(counts)):
            counts[d % self.days] += 1
        return counts


def _weekday(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, UTC).weekday()


class Stream:
    """The deterministic stream of a :class:`StreamSpec`, generated day by day."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        rng = random.Random(f"longrun:{spec.seed}:players")
        joining = max(1, spec.days // 4)
        players = []
        for _ in range(spec.players):
            skill = {v: rng.gauss(*SKILL[v]) for v in VARIANTS}
            players.append(
                Player(
                    pid=_token(rng),
                    weight=min(ACTIVITY_CAP, rng.paretovariate(ACTIVITY_SHAPE)),
                    # A third of the players are there from the start, the others join later.
                    join_day=0 if rng.random() < 1 / 3 else rng.randrange(joining),
                    main=VARIANTS[0] if rng.random() < 0.65 else VARIANTS[1],
                    skill=skill,
                    name=_name(rng),
                )
            )
        players.sort(key=lambda p: p.join_day)
        self.players = players
        self._cum = list(itertools.accumulate(p.weight for p in players))
        self._joined = [p.join_day for p in players]
        self.counts = spec.day_counts()
        self.renames = 0

    def day(self, d: int) -> list[Submission]:
        """The submissions of day ``d`` in time order (days must be asked for in order)."""
        rng = random.Random(f"longrun:{self.spec.seed}:day:{d}")
        k = self.counts[d]
        joined = bisect.bisect_right(self._joined, d)
        picks = rng.choices(range(joined), cum_weights=self._cum[:joined], k=k)
        hours = rng.choices(range(24), weights=HOURLY, k=k)
        start = self.spec.start_ms + d * DAY_MS
        times = sorted(start + h * HOUR_MS + rng.randrange(HOUR_MS) for h in hours)
        out = []
        for at, i in zip(times, picks, strict=True):
            p = self.players[i]
            variant = p.main if rng.random() < MAIN_FAMILY else _other(p.main)
            if rng.random() < RENAME:
                p.name = _name(rng)
                self.renames += 1
            top = int(variant)
            score = min(top, max(1, round(rng.gauss(p.skill[variant], SCORE_SPREAD))))
            rejection = (
                rng.choices(REJECTIONS, REJECTION_WEIGHTS)[0] if rng.random() < REJECTED else None
            )
            sid, fingerprint = _token(rng), f"{rng.getrandbits(128):032x}"
            out.append(Submission(at, sid, p.pid, variant, p.name, score, fingerprint, rejection))
        return out


def _other(variant: str) -> str:
    return VARIANTS[1] if variant == VARIANTS[0] else VARIANTS[0]


# ---------------------------------------------------------------------------------------------
# The stream's own counts, from which the previous layout's cost and the bounds are worked out.


@dataclass
class Tally:
    """What the stream has put through so far."""

    accepted: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (day ms, count)
    settled_per_day: list[tuple[int, int]] = field(default_factory=list)  # (day ms, records)
    players: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    per_player: Counter[str] = field(default_factory=Counter)
    rejected: int = 0

    def add(self, game: Game, day_ms: int, subs: Sequence[Submission]) -> None:
        """Count one day's submissions (all of them achieved on the UTC day ``day_ms``)."""
        self.settled_per_day.append((day_ms, len(subs)))
        accepted: Counter[str] = Counter()
        # A day's entries all go to the same boards of their family.
        boards = {
            v: [
                self.players.setdefault((v, b.window, b.period), set())
                for b in Entry("", game, v, "", "", 0, day_ms).boards()
            ]
            for v in VARIANTS
        }
        for s in subs:
            self.per_player[s.pid] += 1
            if s.rejection is not None:
                self.rejected += 1
                continue
            accepted[s.variant] += 1
            for players in boards[s.variant]:
                players.add(s.pid)
        for variant in VARIANTS:
            self.accepted.setdefault(variant, []).append((day_ms, accepted[variant]))

    def accepted_since(self, variant: str, since_ms: int) -> int:
        """Accepted entries of a family achieved on days from ``since_ms`` on."""
        return sum(n for day, n in self.accepted.get(variant, []) if day >= since_ms)

    def settled_since(self, since_ms: int) -> int:
        """Submissions settled on days from ``since_ms`` on."""
        return sum(n for day, n in self.settled_per_day if day >= since_ms)

    def board_players(self, game: Game, now_ms: int) -> tuple[int, int, int]:
        """(players of each family, rows on the readable boards, readable boards) at ``now_ms``."""
        players = rows = boards = 0
        for variant in VARIANTS:
            players += len(self.players.get((variant, "alltime", "all"), ()))
            for board in readable_boards(game, variant, now_ms):
                rows += len(self.players.get((variant, board.window, board.period), ()))
                boards += 1
        return players, rows, boards


#: The previous layout's measured costs (bytes): per accepted entry kept for the game's
#: retention, its log entry and applied id; per player per readable board, the zset member and
#: the rows hash field; per status record, kept for its TTL.
PREVIOUS_COSTS = {"log": 86, "applied": 80, "zset": 120, "rows": 98, "record": 472}
PREVIOUS_FORMULA = (
    "previous layout bytes = (log 86 + applied 80) × accepted entries of the game's retention "
    "(365 days) + (zset 120 + rows 98) × players summed over the readable boards (all-time, "
    "daily, weekly) + 472 × status records of the last 7 days"
)


def previous_layout_bytes(tally: Tally, game: Game, now_ms: int) -> dict[str, int]:
    """What the previous layout holds at ``now_ms`` for the stream so far, term by term."""
    c = PREVIOUS_COSTS
    since = now_ms - game.retention_days * DAY_MS
    entries = sum(tally.accepted_since(v, since) for v in VARIANTS)
    _, rows, _ = tally.board_players(game, now_ms)
    records = tally.settled_since(now_ms - 7 * DAY_MS)
    terms = {
        "log_and_applied": (c["log"] + c["applied"]) * entries,
        "boards": (c["zset"] + c["rows"]) * rows,
        "records": c["record"] * records,
    }
    return {
        **terms,
        "total": sum(terms.values()),
        "accepted_kept": entries,
        "board_rows": rows,
        "status_records": records,
    }


#: What the layout that memory should grow with players, not submissions, costs at most
#: (bytes), from the entry costs measured on this machine's Redis 6.2: per player per family,
#: its record (~100 B) and the log entry of its latest name (86 B); per row on a readable
#: board, its zset member (129 B), its tag in the player's record (~16 B) and the log entry it
#: keeps (86 B); per submission of the last 1.25 idempotency windows, its status record
#: (<= 150 B), log entry and applied id; per readable board, its meta and stats hashes; per
#: rejected submission its audit entry (the stream is capped at 100,000).
BOUND_COSTS = {"player": 200, "row": 240, "window_submission": 330, "board": 16_384, "audit": 160}


def window_days(window_s: int) -> int:
    """The whole days that hold the submissions of the last 1.25 idempotency windows (records
    live to 1.25 windows; a compaction every quarter window keeps entries applied up to 1.25
    windows before)."""
    return math.ceil(1.25 * window_s * 1000 / DAY_MS)


def bound_formula(window_s: int) -> str:
    """The players × periods bound, said in words."""
    return (
        "players × periods bound = empty server + 200 × players of each family + 240 × players "
        f"summed over the readable boards + 330 × submissions of the last {window_days(window_s)} "
        "days (1.25 idempotency windows) + 16 KiB × readable boards + 160 × rejections audited "
        "(at most 100,000)"
    )


def players_periods_bytes(tally: Tally, game: Game, now_ms: int, base: int, window_s: int) -> int:
    """The players × periods bound at ``now_ms`` (see :func:`bound_formula`)."""
    c = BOUND_COSTS
    players, rows, boards = tally.board_players(game, now_ms)
    window = tally.settled_since(now_ms - window_days(window_s) * DAY_MS)
    audit = min(tally.rejected, submissions.REJECTED_STREAM_MAXLEN)
    return (
        base
        + c["player"] * players
        + c["row"] * rows
        + c["window_submission"] * window
        + c["board"] * boards
        + c["audit"] * audit
    )


# ---------------------------------------------------------------------------------------------
# Redis: expiry by the simulated clock, and what each kind of key holds.

_SCAN = 10_000
SAMPLE_KEYS = 500


class Kinds:
    """Tells the kind of a key from the layout's example keys (``other`` if none matches)."""

    def __init__(self, layout: Layout) -> None:
        self.names = [kind for kind, _ in layout.kinds()] + ["other"]
        alternatives = []
        for n, (_, example) in enumerate(layout.kinds()):
            text = re.escape(example)
            for holder in ("\0g", "\0v"):  # inside the hash tag
                text = text.replace(re.escape(holder), "[^:{}]+")
            for holder in ("\0w", "\0p", "*"):  # "*": a SCAN pattern's
                text = text.replace(re.escape(holder), ".+")
            alternatives.append(f"(?P<k{n}>{text})")
        self._pattern = re.compile("|".join(alternatives))

    def of(self, key: str) -> str:
        """The kind of ``key``."""
        found = self._pattern.fullmatch(key)
        return self.names[int(found.lastgroup[1:])] if found and found.lastgroup else "other"


def _lua_escaped(text: str) -> str:
    """``text`` as a Lua pattern that matches it literally."""
    return "".join(f"%{c}" if not c.isalnum() else c for c in text)


# One SCAN step, server-side: each key's absolute expiry is the server's time plus its PTTL,
# or, for a key whose name matches the Lua pattern ARGV[4] (capturing its generation), the end
# of its generation (of ARGV[5] seconds) plus the idempotency window (ARGV[6] seconds); the keys
# whose expiry is at or before the simulated now (ARGV[3]) are deleted. A PTTL read and judged in
# Redis costs a tenth of one pipelined from here. Returns the next cursor, and the keys deleted,
# left with a TTL, and left without one.
_EXPIRE_STEP = """
local step = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local simulated = tonumber(ARGV[3])
local prefix, generation_s, window_s = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local gone, timed, kept = {}, {}, {}
for _, key in ipairs(step[2]) do
  local left = redis.call('PTTL', key)
  local expire_at = left >= 0 and now + left or nil
  if left >= 0 then
    local generation = tonumber(string.match(key, prefix))
    if generation then expire_at = ((generation + 1) * generation_s + window_s) * 1000 end
  end
  if expire_at and expire_at <= simulated then
    redis.call('DEL', key)
    gone[#gone + 1] = key
  elseif left >= 0 then
    timed[#timed + 1] = key
  elseif left == -1 then
    kept[#kept + 1] = key
  end
end
return {step[1], gone, timed, kept}
"""


@dataclass
class Expired:
    """What one expiry pass did."""

    alive: list[str]  # the keys left
    deleted: Counter[str]  # by kind
    with_ttl: Counter[str]  # keys left with a TTL, by kind


def expire_pass(
    client: redis.Redis, kinds: Kinds, named: tuple[str, int, int], sim_now_ms: int
) -> Expired:
    """Delete every key whose expiry, said in Redis's clock (or by its name, for the keys
    ``named``: a pattern capturing the generation, generation and window seconds), is at or
    before the simulated now."""
    step = client.register_script(_EXPIRE_STEP)
    cursor = "0"
    deleted: Counter[str] = Counter()
    timed: dict[str, None] = {}
    kept: dict[str, None] = {}
    while True:
        cursor, gone, with_ttl, without = step(args=[cursor, _SCAN, sim_now_ms, *named])
        deleted.update(kinds.of(key) for key in gone)
        # SCAN may return a key more than once.
        timed.update(dict.fromkeys(with_ttl))
        kept.update(dict.fromkeys(without))
        if cursor == "0":
            break
    return Expired(list(kept) + list(timed), deleted, Counter(kinds.of(key) for key in timed))


def kind_memory(
    client: redis.Redis,
    kinds: Kinds,
    elements: dict[str, str],
    alive: Sequence[str],
    rng: random.Random,
) -> dict[str, dict[str, int]]:
    """Bytes, keys and elements of each kind: ``MEMORY USAGE`` (every element counted) of every
    key of a kind, or of :data:`SAMPLE_KEYS` of them scaled to their number; the elements (of
    the kinds ``elements`` gives a counting command for) of every key."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in kinds.names}
    for key in alive:
        by_kind[kinds.of(key)].append(key)
    out = {}
    pipe = client.pipeline(transaction=False)
    for kind, found in by_kind.items():
        # Sorted first: SCAN's order varies from one server to the next.
        sample = found if len(found) <= SAMPLE_KEYS else rng.sample(sorted(found), SAMPLE_KEYS)
        for key in sample:
            pipe.memory_usage(key, samples=0)
        sizes = [s or 0 for s in pipe.execute()]
        scale = len(found) / len(sample) if sample else 0
        out[kind] = {"keys": len(found), "bytes": round(sum(sizes) * scale), "sampled": len(sample)}
        if kind in elements:
            for key in found:
                pipe.execute_command(elements[kind], key)
            out[kind]["elements"] = sum(n or 0 for n in pipe.execute())
    return out


def board_rows(client: redis.Redis, game: Game, now_ms: int) -> dict[str, int]:
    """Rows on the readable boards (all of them, and all-time's) over the families."""
    pipe = client.pipeline(transaction=False)
    boards = [b for v in VARIANTS for b in readable_boards(game, v, now_ms)]
    for board in boards:
        pipe.zcard(board.ranking_key)
    sizes = pipe.execute()
    alltime = sum(n for b, n in zip(boards, sizes, strict=True) if b.window == "alltime")
    return {"all": sum(sizes), "alltime": alltime, "boards": len(boards)}


# ---------------------------------------------------------------------------------------------
# The run.

#: The lag of a batch's settling behind its last submission (a worker's drain, about).
SETTLE_LAG_MS = 100


@dataclass
class Settings:
    """How a run goes."""

    spec: StreamSpec
    batch: int = 500
    prune_hours: int = 6
    expire_hours: int = 24
    stats_hours: int = 24


class Clocked:
    """Seconds spent per phase of the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started


def _batches(subs: Sequence[Submission], size: int) -> Iterator[Sequence[Submission]]:
    for start in range(0, len(subs), size):
        yield subs[start : start + size]


def run_batch(
    layout: Layout, game: Game, batch: Sequence[Submission], clocked: Clocked
) -> tuple[int, list[Entry]]:
    """Apply and settle one batch as a worker does, at the time of its last submission; return
    that time and the entries applied."""
    now = batch[-1].at + SETTLE_LAG_MS
    entries: list[Entry] = []
    prints: list[str] = []
    verdicts: list[tuple[str, SubmissionRecord]] = []
    for s in batch:
        if s.rejection is not None:
            payload = {"fingerprint": s.fingerprint, "game": game.slug, "player_id": s.pid}
            verdicts.append((s.sid, layout.rejected(payload, s.rejection)))
        else:
            entries.append(Entry(s.sid, game, s.variant, s.pid, s.name, s.score, s.at))
            prints.append(s.fingerprint)
    with clocked("apply"):
        applied = layout.apply(entries, now)
    for entry, outcome, fp in zip(entries, applied, prints, strict=True):
        verdicts.append((entry.submission_id, layout.accepted(entry, outcome, fp)))
    with clocked("settle"):
        layout.settle(verdicts, now)
    return now, entries


class Applying:
    """The batches applied lately, to tell what of the idempotency window the log lost.

    The compaction keeps the entries applied inside the window by their log ids, which Redis
    gives by its clock: in a simulated run it sees them all applied at the run's real start, and
    keeps none for the window. So each batch is remembered with the time it was applied (the
    simulated now its entries were applied at), its submission ids per family and each log's
    last id after it; :meth:`lost` says how many of the entries a compaction at ``prune_ms``
    would have kept for the window the log and the applied hash no longer hold."""

    def __init__(self, client: redis.Redis, game: Game) -> None:
        self.client, self.game = client, game
        self.batches: deque[tuple[int, dict[str, list[str]], dict[str, str]]] = deque()
        # Each log's last id before the oldest batch remembered ("-": none yet).
        self.before = {v: "-" for v in VARIANTS}

    def add(self, now_ms: int, entries: Sequence[Entry]) -> None:
        """Remember a batch just applied at ``now_ms``."""
        sids: dict[str, list[str]] = {v: [] for v in VARIANTS}
        for entry in entries:
            sids[entry.variant].append(entry.submission_id)
        pipe = self.client.pipeline(transaction=False)
        for v in VARIANTS:
            pipe.xinfo_stream(keys.log_key(self.game.slug, v))
        # A log not written yet has no id ("-"): XINFO answers an error.
        infos = pipe.execute(raise_on_error=False)
        last = {
            v: "-" if isinstance(info, Exception) else str(info["last-generated-id"])
            for v, info in zip(VARIANTS, infos, strict=True)
        }
        self.batches.append((now_ms, sids, last))

    def lost(self, since_ms: int) -> dict[str, int]:
        """Of the entries applied at or after ``since_ms``, how many the logs no longer hold
        and how many of their ids the applied hashes no longer hold (forgetting the batches
        applied before ``since_ms``)."""
        while self.batches and self.batches[0][0] < since_ms:
            self.before = self.batches.popleft()[2]
        out = {"entries": 0, "held": 0, "missing_log": 0, "missing_applied": 0}
        for v in VARIANTS:
            sids = [sid for _, by_family, _ in self.batches for sid in by_family[v]]
            log = keys.log_key(self.game.slug, v)
            start = "-" if self.before[v] == "-" else f"({self.before[v]}"
            held = 0
            while True:
                found = cast(list[Any], self.client.xrange(log, start, "+", count=10_000))
                held += len(found)
                if len(found) < 10_000:
                    break
                start = f"({found[-1][0]}"
            applied = keys.applied_key(self.game.slug, v)
            missing = sum(
                value is None
                for n in range(0, len(sids), 1000)
                for value in cast(list[Any], self.client.hmget(applied, sids[n : n + 1000]))
            )
            out["entries"] += len(sids)
            out["held"] += held
            out["missing_log"] += len(sids) - held
            out["missing_applied"] += missing
        return out


def _most(most: Counter[str], seen: Counter[str]) -> None:
    # The most keys of each kind seen with a TTL at one pass.
    for kind, n in seen.items():
        most[kind] = max(most[kind], n)


def run(client: redis.Redis, registry: Registry, settings: Settings) -> dict[str, Any]:
    """Put the stream through the service; the measurements of each simulated day."""
    spec = settings.spec
    game = registry.get(GAME)
    assert game is not None and all(v in game.variants for v in VARIANTS)
    layout = Layout(client, registry)
    kinds = Kinds(layout)
    named = layout.named_expiry()
    applying = Applying(client, game)
    last_prune: list[int] = []
    clocked = Clocked()
    with clocked("generate"):
        stream = Stream(spec)
    tally = Tally()
    base = int(_info(client)["used_memory"])
    days: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    ttl_kinds: Counter[str] = Counter()
    log_ids: dict[str, Any] = {}
    due = {
        "prune": settings.prune_hours * HOUR_MS,
        "stats": settings.stats_hours * HOUR_MS,
        "expire": settings.expire_hours * HOUR_MS,
    }
    next_at = {name: spec.start_ms + every for name, every in due.items()}
    started = time.perf_counter()

    def catch_up(until_ms: int) -> None:
        # The jobs due by ``until_ms``, in time order; expiry first at the same instant.
        while True:
            name = min(next_at, key=lambda n: (next_at[n], n != "expire"))
            at = next_at[name]
            if at > until_ms:
                return
            if name == "expire":
                with clocked(name):
                    _most(ttl_kinds, expire_pass(client, kinds, named, at).with_ttl)
            else:
                took = time.perf_counter()
                with clocked(name):
                    layout.beat(name, at)
                if name == "prune":
                    last_prune[:] = [at]
                log = sum(cast(int, client.xlen(keys.log_key(GAME, v))) for v in VARIANTS)
                runs.append(
                    {
                        "job": name,
                        "at_day": (at - spec.start_ms) / DAY_MS,
                        "seconds": round(time.perf_counter() - took, 3),
                        "log_length": log,
                    }
                )
            next_at[name] = at + due[name]

    for d in range(spec.days):
        day_ms = spec.start_ms + d * DAY_MS
        with clocked("generate"):
            subs = stream.day(d)
        tally.add(game, day_ms, subs)
        for batch in _batches(subs, settings.batch):
            catch_up(batch[0].at)
            applied_at, entries = run_batch(layout, game, batch, clocked)
            with clocked("window"):
                applying.add(applied_at, entries)
        if d == 0:
            log_ids = _log_ids(client, game, day_ms)
        end = day_ms + DAY_MS
        catch_up(end - 1)
        # The day's end: what expires by then goes, then the day's figures.
        with clocked("expire"):
            expired = expire_pass(client, kinds, named, end)
        _most(ttl_kinds, expired.with_ttl)
        next_at["expire"] = end + due["expire"]
        with clocked("measure"):
            day = measure(client, layout, kinds, expired, tally, game, d, end, base)
        with clocked("window"):
            day["window"] = window_lost(applying, day, last_prune, layout.window_s)
        day["corrected_used_memory"] = day["used_memory"] + day["window"]["bytes"]
        days.append(day)
        print(
            f"· day {d + 1:>3}/{spec.days}: used_memory {day['used_memory'] / 2**20:8.1f} MiB "
            f"(corrected {day['corrected_used_memory'] / 2**20:6.1f}), "
            f"log {day['log_length']:>9,}, rows {day['board_rows']['all']:>7,}, "
            f"previous layout {day['previous_layout']['total'] / 2**20:7.1f} MiB "
            f"({time.perf_counter() - started:5.0f} s)",
            flush=True,
        )
    per_player = sorted(tally.per_player.values(), reverse=True)
    top = per_player[: max(1, len(per_player) // 100)]
    return {
        "layout": {
            "name": layout.name,
            "described": layout.described,
            "bound": layout.bound,
            "relative_ttl": layout.relative_ttl,
            "window_s": layout.window_s,
        },
        "base_used_memory": base,
        "days": days,
        "job_runs": runs,
        "seconds": {k: round(v, 1) for k, v in sorted(clocked.seconds.items())},
        "kinds_with_ttl": dict(sorted(ttl_kinds.items())),
        "log_ids": log_ids,
        "stream": {
            "submissions": sum(stream.counts),
            "accepted": sum(n for v in VARIANTS for _, n in tally.accepted[v]),
            "rejected": tally.rejected,
            "per_family": {v: sum(n for _, n in tally.accepted[v]) for v in VARIANTS},
            "players_seen": len(per_player),
            "renames": stream.renames,
            "per_player_median": per_player[len(per_player) // 2] if per_player else 0,
            "per_player_max": per_player[0] if per_player else 0,
            "top_1pct_share": sum(top) / sum(per_player) if per_player else 0,
            "per_day": stream.counts,
        },
    }


def _info(client: redis.Redis) -> dict[str, Any]:
    return cast(dict[str, Any], client.info("memory"))


def _log_ids(client: redis.Redis, game: Game, day_ms: int) -> dict[str, Any]:
    """Whether the logs' entry ids follow the simulated clock (they are Redis's to give)."""
    newest = cast(list[Any], client.xrevrange(keys.log_key(game.slug, VARIANTS[0]), count=1))
    if not newest:
        return {"simulated": None}
    id_ms = int(newest[0][0].split("-")[0])
    return {"simulated": day_ms <= id_ms < day_ms + DAY_MS, "newest_id_ms": id_ms, "day_ms": day_ms}


def measure(
    client: redis.Redis,
    layout: Layout,
    kinds: Kinds,
    expired: Expired,
    tally: Tally,
    game: Game,
    d: int,
    now_ms: int,
    base: int,
) -> dict[str, Any]:
    """The figures of one simulated day's end."""
    memory = _info(client)
    rng = random.Random(f"longrun:sample:{d}")
    by_kind = kind_memory(client, kinds, layout.elements, expired.alive, rng)
    previous = previous_layout_bytes(tally, game, now_ms)
    return {
        "day": d + 1,
        "at": now_ms,
        "used_memory": int(memory["used_memory"]),
        "used_memory_dataset": int(memory["used_memory_dataset"]),
        "kinds": by_kind,
        "keys": len(expired.alive),
        "expired": dict(sorted(expired.deleted.items())),
        "with_ttl": dict(sorted(expired.with_ttl.items())),
        "log_length": sum(cast(int, client.xlen(keys.log_key(game.slug, v))) for v in VARIANTS),
        "board_rows": board_rows(client, game, now_ms),
        "previous_layout": previous,
        "players_periods_bound": players_periods_bytes(tally, game, now_ms, base, layout.window_s),
        "submissions_so_far": sum(n for _, n in tally.settled_per_day),
    }


def window_lost(
    applying: Applying, day: dict[str, Any], last_prune: Sequence[int], window_s: int
) -> dict[str, Any]:
    """What the log and the applied hashes lack of what the last prune would have kept for the
    idempotency window had the log ids followed the simulated clock (see :class:`Applying`),
    and its cost at the day's own bytes per log entry and per applied id."""
    kinds = day["kinds"]
    log, applied = kinds["log"], kinds["applied"]
    entry_bytes = log["bytes"] / log["elements"] if log.get("elements") else 0.0
    applied_bytes = applied["bytes"] / applied["elements"] if applied.get("elements") else 0.0
    if not last_prune:  # no compaction yet: the log holds everything
        lost = {"entries": 0, "held": 0, "missing_log": 0, "missing_applied": 0}
        since = None
    else:
        since = last_prune[0] - window_s * 1000
        lost = applying.lost(since)
    added = lost["missing_log"] * entry_bytes + lost["missing_applied"] * applied_bytes
    return {
        "since": since,
        **lost,
        "log_entry_bytes": round(entry_bytes, 1),
        "applied_id_bytes": round(applied_bytes, 1),
        "bytes": round(added),
    }


#: How the corrected curve is worked out (see :class:`Applying`).
CORRECTED_FORMULA = (
    "corrected used_memory = used_memory + log entries lost × the day's bytes per log entry "
    "(MEMORY USAGE of the logs / their entries) + applied ids lost × the day's bytes per applied "
    "id (MEMORY USAGE of the applied hashes / their fields), where lost means: applied at or "
    "after the last prune's now less the idempotency window (what that compaction would have "
    "kept by a log id of the simulated clock) and no longer in the log, or in the applied hash"
)


# ---------------------------------------------------------------------------------------------
# The report.

MIB = 2**20
#: The last days judged for flatness (a third of a shorter run), and the spread allowed.
FLAT_DAYS, FLAT_SPREAD = 20, 0.10


def flatness(values: Sequence[int], days: int) -> dict[str, Any]:
    """Whether the last days' values stay within :data:`FLAT_SPREAD` of their mean, and their
    trend (least-squares bytes per day)."""
    n = min(FLAT_DAYS, max(2, days // 3), len(values))
    tail = values[-n:]
    mean = sum(tail) / n
    xs = range(n)
    x_mean = (n - 1) / 2
    slope = sum((x - x_mean) * (y - mean) for x, y in zip(xs, tail, strict=True)) / sum(
        (x - x_mean) ** 2 for x in xs
    )
    spread = (max(tail) - min(tail)) / mean if mean else 0.0
    return {
        "days": n,
        "mean": mean,
        "spread": spread,
        "flat": spread <= FLAT_SPREAD,
        "growth_per_day": slope,
        "growth_per_day_share": slope / mean if mean else 0.0,
    }


def bounds(out: dict[str, Any]) -> dict[str, Any]:
    """The bound the layout's memory (the corrected curve) is held to, day by day, and whether
    the last days kept it."""
    days = out["days"]
    values = [d["players_periods_bound"] for d in days]
    n = min(FLAT_DAYS, max(2, len(days) // 3), len(days))
    last = [(d["corrected_used_memory"], b) for d, b in zip(days[-n:], values[-n:], strict=True)]
    return {
        "name": out["layout"]["bound"],
        "formula": bound_formula(out["layout"]["window_s"]),
        "bytes": values,
        "days_judged": n,
        "held": all(used <= bound for used, bound in last),
        "base": out["base_used_memory"],
    }


#: The run of the layout before the memory work, measured by this module's first version.
PREVIOUS_RUN = RESULTS / "longrun-previous-layout.json"


def previous_run(spec: StreamSpec, path: Path = PREVIOUS_RUN) -> dict[str, Any] | None:
    """The previous layout's measured run of the same stream (None if there is none): its
    ``used_memory`` per day."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    settings = document.get("settings", {})
    same = all(
        settings.get(name) == getattr(spec, name)
        for name in ("submissions", "players", "days", "seed")
    )
    if not same:
        return None
    details = document["details"]
    return {
        "path": str(path.relative_to(RESULTS.parent.parent)),
        "date": document.get("date"),
        "settings": settings,
        "base_used_memory": details["base_used_memory"],
        "used_memory": [d["used_memory"] for d in details["days"]],
    }


def _mib(value: float) -> float:
    return value / MIB


def _per(kinds: dict[str, Any], kind: str, count: int | None = None) -> float | None:
    """Bytes per element of a kind (per ``count`` if given)."""
    of = kinds[kind].get("elements") if count is None else count
    return kinds[kind]["bytes"] / of if of else None


def costs(day: dict[str, Any]) -> dict[str, float | None]:
    """Bytes per thing seen on one day: per player per board (a ranking member), per player per
    family (a players hash field), per status record, per log entry, per applied id, per
    board's meta hash."""
    kinds = day["kinds"]
    return {
        "per_row": _per(kinds, "zsets", day["board_rows"]["all"]),
        "per_player_family": _per(kinds, "players"),
        "per_status_record": _per(kinds, "status records"),
        "per_log_entry": _per(kinds, "log"),
        "per_applied_id": _per(kinds, "applied"),
        "per_meta": _per(kinds, "meta", kinds["meta"]["keys"]),
    }


def figures(out: dict[str, Any]) -> list[Figure]:
    """The table's lines."""
    days, base = out["days"], out["base_used_memory"]
    last = days[-1]
    prev = last["previous_layout"]
    flat, bound = out["flat"], out["bound"]
    kinds = last["kinds"]
    n = last["day"]
    before = out.get("previous_run")
    lines = []
    if before is not None and len(before["used_memory"]) >= n:
        prev_used = before["used_memory"][n - 1]
        lines += [
            compare(
                f"used_memory on day {n}, measured (MiB)",
                _mib(last["used_memory"]),
                _mib(prev_used),
                "previous layout, run",
            ),
            compare(
                f"used_memory on day {n}, corrected (MiB)",
                _mib(last["corrected_used_memory"]),
                _mib(prev_used),
                "previous layout, run",
                "≤ 0.1",
                at_most=0.1,
            ),
        ]
    lines += [
        compare(
            f"used_memory on day {n}, corrected, less the empty server's (MiB)",
            _mib(last["corrected_used_memory"] - base),
            _mib(prev["total"]),
            "previous layout, formula",
            "≤ 0.1",
            at_most=0.1,
        ),
        Figure(
            f"corrected used_memory over the last {flat['days']} days",
            f"spread {flat['spread']:.1%} of the mean, {flat['growth_per_day_share']:+.2%} a day",
            target=f"spread ≤ {FLAT_SPREAD:.0%}",
            met=flat["flat"],
        ),
        Figure(
            f"  measured used_memory over the last {out['flat_measured']['days']} days",
            f"spread {out['flat_measured']['spread']:.1%} of the mean, "
            f"{out['flat_measured']['growth_per_day_share']:+.2%} a day",
        ),
        Figure(
            f"corrected used_memory against the {bound['name']} bound, last "
            f"{bound['days_judged']} days",
            f"{_mib(last['corrected_used_memory']):.1f} MiB of {_mib(bound['bytes'][-1]):.1f} MiB",
            target="≤ bound",
            met=bound["held"],
        ),
        compare(
            "  log + applied ids, with the window's lost (MiB)",
            _mib(kinds["log"]["bytes"] + kinds["applied"]["bytes"] + last["window"]["bytes"]),
            _mib(prev["log_and_applied"]),
            "previous, formula",
        ),
        compare(
            "  boards: zsets, players, meta (MiB)",
            _mib(sum(kinds[k]["bytes"] for k in ("zsets", "players", "meta"))),
            _mib(prev["boards"]),
            "previous, formula",
        ),
        compare(
            "  status records (MiB)",
            _mib(kinds["status records"]["bytes"]),
            _mib(prev["records"]),
            "previous, formula",
        ),
    ]
    lines += [
        Figure(f"  {kind} (MiB, {v['keys']:,} keys)", _mib(v["bytes"]))
        for kind, v in kinds.items()
        if kind not in ("log", "applied", "status records") and v["keys"]
    ]
    named = {
        "per_row": "a player on a board (ranking member)",
        "per_player_family": "a player in a family (players hash field)",
        "per_status_record": "a status record",
        "per_log_entry": "a log entry",
        "per_applied_id": "an applied id",
        "per_meta": "a board's meta hash",
    }
    lines += [
        Figure(f"bytes per {named[name]}, day {n}", round(value, 1) if value else None)
        for name, value in costs(last).items()
    ]
    seconds = out["seconds"]
    lines.append(
        Figure(
            "run time (s): " + " / ".join(seconds),
            " / ".join(f"{s:.0f}" for s in seconds.values()),
        )
    )
    return lines


def curve(out: dict[str, Any]) -> str:
    """The per-day figures as a table, with the corrected used_memory drawn as a bar."""
    days = out["days"]
    kinds = list(days[-1]["kinds"])
    top = max(d["corrected_used_memory"] for d in days)
    width = 30
    before = out.get("previous_run")
    head = ["day", "used MiB", "corr. MiB", "", *kinds, "log", "rows", "records", "lost"]
    head += ["prev MiB", "ratio", "formula MiB"]
    rows = [head]
    for d in days:
        prev = d["previous_layout"]["total"]
        prev_used = (
            before["used_memory"][d["day"] - 1]
            if before and len(before["used_memory"]) >= d["day"]
            else None
        )
        bar = "█" * max(1, round(width * d["corrected_used_memory"] / top))
        rows.append(
            [
                str(d["day"]),
                f"{_mib(d['used_memory']):.1f}",
                f"{_mib(d['corrected_used_memory']):.1f}",
                bar.ljust(width),
                *(f"{_mib(d['kinds'][k]['bytes']):.1f}" for k in kinds),
                f"{d['log_length']:,}",
                f"{d['board_rows']['all']:,}",
                f"{d['kinds']['status records'].get('elements', 0):,}",
                f"{d['window']['missing_log']:,}",
                "—" if prev_used is None else f"{_mib(prev_used):.1f}",
                "—" if prev_used is None else f"{d['corrected_used_memory'] / prev_used:.3f}",
                f"{_mib(prev):.1f}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if i != 3 else c for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _commit() -> dict[str, Any]:
    """The commit measured, and whether the service's code (the layout) differs from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=all", "--", "app", "config.py")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None}
    return {"commit": head, "service_modified": [line[3:] for line in changed.splitlines()]}


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def first_monday_after(ms: int) -> int:
    """The first Monday's UTC midnight after ``ms``: the simulated clock starts ahead of the
    real one, and every run's weeks fall on the same days of its stream."""
    day = ms // DAY_MS + 1
    # 1970-01-01 was a Thursday: day 4 since the epoch was a Monday.
    return (day + (4 - day) % 7) * DAY_MS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` makes a smoke run of 50,000 submissions over 10 days."""
    p = argparse.ArgumentParser(
        prog="python -m bench.longrun",
        description="Redis memory over simulated days, through the service's own code.",
    )
    p.add_argument(
        "--quick", action="store_true", help="50,000 submissions, 2,000 players, 10 days"
    )
    p.add_argument("--submissions", type=int, help="default 2,000,000")
    p.add_argument("--players", type=int, help="default 20,000")
    p.add_argument("--days", type=int, help="default 60")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=500, help="entries per apply and settle")
    p.add_argument("--prune-hours", type=int, default=6, help="simulated hours between prunes")
    p.add_argument("--stats-hours", type=int, default=24, help="simulated hours between stats")
    p.add_argument(
        "--expire-hours", type=int, default=24, help="simulated hours between expiry passes"
    )
    p.add_argument(
        "--output", type=Path, help="JSON file (default bench/results/longrun-<time>.json)"
    )
    args = p.parse_args(argv)
    sizes = (50_000, 2_000, 10) if args.quick else (2_000_000, 20_000, 60)
    for name, value in zip(("submissions", "players", "days"), sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the long run; print the per-day figures and the table; write the JSON. Exit status
    1 if the layout's memory broke its bound."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    date = datetime.now(UTC)
    spec = StreamSpec(
        args.submissions, args.players, args.days, args.seed, first_monday_after(real_now_ms())
    )
    settings = Settings(spec, args.batch, args.prune_hours, args.expire_hours, args.stats_hours)
    run_dir = Path(tempfile.mkdtemp(prefix="hiscore-longrun-"))
    server = EmbeddedRedis(run_dir / "redis")
    try:
        print(
            f"· {spec.submissions:,} submissions from {spec.players:,} players over "
            f"{spec.days} simulated days from {_date(spec.start_ms)}",
            flush=True,
        )
        server.start()
        client = redis.Redis.from_url(server.url(), decode_responses=True)
        client.config_set("appendonly", "no")
        about = redis_server(client)
        out = run(client, load_registry(), settings)
        client.close()
    finally:
        server.stop(timeout=60)
        server.kill()
        shutil.rmtree(run_dir, ignore_errors=True)
    out["flat"] = flatness([d["corrected_used_memory"] for d in out["days"]], spec.days)
    out["flat_measured"] = flatness([d["used_memory"] for d in out["days"]], spec.days)
    out["previous_run"] = previous_run(spec)
    out["bound"] = bounds(out)
    out["formulas"] = {
        "previous_layout": PREVIOUS_FORMULA,
        "players_periods": out["bound"]["formula"],
        "corrected": CORRECTED_FORMULA,
    }
    lines = figures(out)
    header: dict[str, Any] = {
        "date": date.isoformat(timespec="seconds"),
        "machine": machine(),
        "redis": about,
        "code": _commit(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": round(time.monotonic() - started, 1),
    }
    warnings = (
        []
        if out["bound"]["held"]
        else [f"the corrected used_memory broke the {out['bound']['name']} bound"]
    )
    notes = []
    if out["log_ids"].get("simulated") is False:
        notes.append(
            "the logs' entry ids follow Redis's clock, not the simulated one: the compaction, "
            "which keeps the entries applied inside the idempotency window by their ids, sees "
            "them applied at the run's real start; the corrected curve adds what it dropped"
        )
    print()
    print(curve(out))
    print()
    print(CORRECTED_FORMULA)
    print(PREVIOUS_FORMULA)
    print(f"bound ({out['bound']['name']}): {out['bound']['formula']}")
    print()
    m = header["machine"]
    print(
        f"hiscore long run, {header['date']} — layout: {out['layout']['name']} — {m['cpu']}, "
        f"{m['cores']} cores, Redis {about['version']} ({about['allocator']})"
        + (" — QUICK run" if args.quick else "")
    )
    print(table(lines))
    for warning in warnings:
        print(f"WARNING: {warning}")
    for note in notes:
        print(f"NOTE: {note}")
    path = (
        args.output
        or RESULTS
        / f"longrun-{date.strftime('%Y-%m-%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
    )
    write_json(path, header, lines, {**out, "warnings": warnings, "notes": notes})
    print(f"\n{header['seconds']:.0f} s in all; written to {path}")
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
