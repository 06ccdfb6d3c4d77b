"""Scores as a configuration wants them: with a run token of their own (production), or bare.

With tokens, the load starts its runs the way the page does, one session per score
(``POST /games/<game>/sessions`` with the variant), in bulk before each timed run, through wrk
at saturation (so the sessions' own rate is measured on the way); then waits out the play time
the scores will claim, since a token must be at least as old as its score's claimed duration.
Each score's body carries its session's token, player id and player key (the token is bound
to the player, and the key proves the player without a cookie). The bodies go to wrk in one
file per wrk thread (``bench/wrk/bodies.lua``), each sent once; the runs a wrk run did not
reach are kept for the next run of the same variant, so that no session is started for nothing.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

from bench.load import WRK_THREADS, WrkRun, run_wrk
from bench.processes import Stack, http_post_json
from bench.seed import INGEST_GAME, MIN_MS_PER_POINT

#: Claimed scores run from 1 to this: a score of s claims s × MIN_MS_PER_POINT of play, the
#: least the game allows, and its token must be that old; small scores keep the wait short.
SCORE_TOP = 10
LONGEST_CLAIM_S = SCORE_TOP * MIN_MS_PER_POINT / 1000
#: Rounds of sessions a bulk start may take before it gives up.
MAX_ROUNDS = 8
#: How much longer than the last round's rate says a round runs (a shortfall costs a round).
ROUND_MARGIN = 1.1


@dataclass(frozen=True)
class Run:
    """One started run: what its score must carry."""

    player_id: str
    player_key: str
    token: str


def score_fields(i: int) -> dict[str, int]:
    """Score and claimed play time of the ``i``-th score of a tokened load."""
    score = 1 + i % SCORE_TOP
    return {"score": score, "duration_ms": score * MIN_MS_PER_POINT}


def score_body(run: Run, i: int, variant: str) -> dict[str, Any]:
    """The ``i``-th score of a tokened load, on ``run``."""
    return {
        "name": f"Bench {i}",
        **score_fields(i),
        "variant": variant,
        "player_id": run.player_id,
        "player_key": run.player_key,
        "token": run.token,
    }


def write_slices(prefix: Path, bodies: list[str], threads: int = WRK_THREADS) -> Path:
    """One file of bodies per wrk thread, ``<prefix>-<i>``, in order; return ``prefix``."""
    for thread in range(threads):
        Path(f"{prefix}-{thread}").write_text("\n".join(bodies[thread::threads]) + "\n")
    return prefix


def _read_runs(prefix: Path, threads: int) -> tuple[list[Run], int]:
    """The runs the threads of one round wrote, interleaved (roughly the order they were
    started), and how many lines were not a session."""
    per_thread = []
    for thread in range(threads):
        path = Path(f"{prefix}-{thread}")
        per_thread.append(path.read_text().splitlines() if path.exists() else [])
    runs, bad = [], 0
    for line in chain.from_iterable(zip_longest(*per_thread)):
        if not line:
            continue
        try:
            answer = json.loads(line)
            runs.append(Run(answer["player_id"], answer["player_key"], answer["token"]))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return runs, bad


class Sessions:
    """Starts runs in bulk, keeps what each round measured, and the runs not used yet."""

    def __init__(self, stack: Stack, connections: int) -> None:
        self.stack = stack
        self.connections = connections
        self.url = f"{stack.web_url}/api/v1/games/{INGEST_GAME}/sessions"
        self.rounds: list[dict[str, Any]] = []
        self._rate: float | None = None
        self._finished = 0.0  # monotonic time the last round ended
        self._unused: dict[str, list[Run]] = {}

    def take(self, variant: str, count: int) -> list[Run]:
        """At least ``count`` runs of ``variant`` not used yet, oldest first: those left over
        from earlier, then new ones started at saturation."""
        runs = self._unused.pop(variant, [])
        for _ in range(MAX_ROUNDS):
            if len(runs) >= count:
                return runs
            missing = count - len(runs)
            # The first round measures the rate; the next one makes what is missing.
            seconds = 1 if self._rate is None else math.ceil(missing / self._rate * ROUND_MARGIN)
            started, run = self._round(variant, min(seconds, 60))
            if not started:
                raise RuntimeError(
                    f"sessions: none started in {run.seconds:.1f} s ({run.requests} answers, "
                    f"{run.bad_status} refused):\n{self.stack.service('web').log_tail()}"
                )
            runs += started
        if len(runs) < count:
            raise RuntimeError(f"sessions: {len(runs)} of {count} started in {MAX_ROUNDS} rounds")
        return runs

    def give_back(self, variant: str, runs: list[Run]) -> None:
        """Runs of ``variant`` whose tokens were not used, for the next :meth:`take`."""
        self._unused[variant] = runs + self._unused.get(variant, [])

    def _round(self, variant: str, seconds: int) -> tuple[list[Run], WrkRun]:
        prefix = self.stack.run_dir / f"sessions-{len(self.rounds)}"
        cpu = self.stack.cpu_seconds()
        run = run_wrk(
            self.url,
            seconds,
            self.connections,
            "sessions.lua",
            [str(prefix), variant],
            work_dir=self.stack.run_dir,
        )
        used = self.stack.cpu_seconds()
        self._finished = time.monotonic()
        started, bad = _read_runs(prefix, min(WRK_THREADS, self.connections))
        self._rate = len(started) / run.seconds
        self.rounds.append(
            {
                "variant": variant,
                "seconds": run.seconds,
                "started": len(started),
                "errors": run.errors + run.bad_status + bad,
                "p50_ms": run.p50_ms,
                "p99_ms": run.p99_ms,
                "cpu_s": {name: used[name] - cpu.get(name, 0) for name in used},
            }
        )
        return started, run

    def wait_out_play_time(self) -> None:
        """Sleep until the youngest token is as old as the longest play time a score claims."""
        # Measured from when the last answer came back, which is after its token was issued.
        left = self._finished + LONGEST_CLAIM_S + 0.05 - time.monotonic()
        if left > 0:
            time.sleep(left)

    def summary(self) -> dict[str, Any]:
        """Runs started, at what rate, and the CPU each process spent per run."""
        started = sum(r["started"] for r in self.rounds)
        seconds = sum(r["seconds"] for r in self.rounds)
        cpu: dict[str, float] = {}
        for r in self.rounds:
            for name, used in r["cpu_s"].items():
                cpu[name] = cpu.get(name, 0) + used
        return {
            "started": started,
            "left_unused": sum(len(runs) for runs in self._unused.values()),
            "seconds": round(seconds, 2),
            "rate": started / seconds if seconds else None,
            "errors": sum(r["errors"] for r in self.rounds),
            "connections": self.connections,
            "cpu_ms_per_session": {
                name: round(used * 1000 / started, 3) for name, used in cpu.items()
            }
            if started
            else {},
            "rounds": self.rounds,
        }


def start_one(stack: Stack, variant: str) -> tuple[int, dict[str, str], Any]:
    """One session, as a page starts it: the status, headers and answer."""
    url = f"{stack.web_url}/api/v1/games/{INGEST_GAME}/sessions"
    return http_post_json(url, {"variant": variant})


def lookalikes(run: Run, count: int) -> list[Run]:
    """Runs with random ids, keys and tokens as long as ``run``'s: bodies of the same size
    for the baseline app, which reads none of them."""

    def like(value: str) -> str:
        return secrets.token_urlsafe(len(value))[: len(value)]

    return [Run(like(run.player_id), like(run.player_key), like(run.token)) for _ in range(count)]


@dataclass(frozen=True)
class WrkBodies:
    """What a wrk run of scores is given: its script and arguments, and the runs each of its
    threads has, in the order it sends them (none without tokens)."""

    script: str
    args: list[str]
    variant: str = ""
    slices: tuple[list[Run], ...] = ()


class Scores:
    """The scores the load generators send, as the configuration wants them."""

    def __init__(self, stack: Stack, tokens: bool, connections: int) -> None:
        self.stack = stack
        self.tokens = tokens
        self.sessions = Sessions(stack, connections) if tokens else None
        self._sample: Run | None = None

    def for_wrk(self, variant: str, count: int, name: str) -> WrkBodies:
        """What a wrk run on hiscore of up to ``count`` scores is given."""
        if self.sessions is None:
            return WrkBodies("submit.lua", [variant])
        runs = self.sessions.take(variant, count)
        slices = tuple(runs[thread::WRK_THREADS] for thread in range(WRK_THREADS))
        bodies = [json.dumps(score_body(run, i, variant)) for i, run in enumerate(runs)]
        prefix = write_slices(self.stack.run_dir / f"bodies-{name}", bodies)
        self.sessions.wait_out_play_time()
        return WrkBodies("bodies.lua", [str(prefix)], variant, slices)

    def after_wrk(self, bodies: WrkBodies, run: WrkRun) -> None:
        """Keep the runs that ``run`` did not reach for a later run of the same variant."""
        sent = run.extra.get("sent_by_thread")
        if self.sessions is None or not bodies.slices or not sent:
            return
        unsent = [r for runs, n in zip(bodies.slices, sent, strict=False) for r in runs[n:]]
        self.sessions.give_back(bodies.variant, unsent)

    def for_baseline(self, variant: str, name: str) -> WrkBodies:
        """The same for the baseline app: bodies of the same size, reused at will."""
        if self.sessions is None:
            return WrkBodies("submit.lua", [variant])
        if self._sample is None:
            status, _, answer = start_one(self.stack, variant)
            if status != 201:
                raise RuntimeError(f"POST /sessions answered {status}: {answer}")
            self._sample = Run(answer["player_id"], answer["player_key"], answer["token"])
        bodies = [
            json.dumps(score_body(run, i, variant))
            for i, run in enumerate(lookalikes(self._sample, 5000))
        ]
        prefix = write_slices(self.stack.run_dir / f"bodies-{name}", bodies)
        return WrkBodies("bodies.lua", [str(prefix)])

    def for_open_loop(self, variant: str, count: int) -> Callable[[int], dict[str, Any]]:
        """What the ``i``-th score of an open-loop run of ``count`` says, but its id."""
        if self.sessions is None:
            # As the light configuration always sent: no token, any plausible play time.
            return lambda i: {"score": 1 + i % 100, "duration_ms": 60_000}
        runs = self.sessions.take(variant, count)
        self.sessions.give_back(variant, runs[count:])  # the open loop sends exactly count
        self.sessions.wait_out_play_time()

        def fields(i: int) -> dict[str, Any]:
            body = score_body(runs[i], i, variant)
            del body["name"], body["variant"]
            return body

        return fields
