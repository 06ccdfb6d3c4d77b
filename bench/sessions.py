"""Scores as a configuration wants them: with a run token of their own (production), or bare.

With tokens, the load starts its runs the way the page does, one session per score
(``POST /games/<game>/sessions`` with the variant), in bulk before each timed run, through wrk
at saturation (so the sessions' own rate is measured on the way) until as many have started as
the run needs; then waits out the play time the scores will claim, since a token must be at
least as old as its score's claimed duration.
Each score's body carries its session's token, player id and player key (the token is bound
to the player, and the key proves the player without a cookie). The bodies go to wrk in one
file per wrk thread (``bench/wrk/bodies.lua``), each sent once; the runs a wrk run did not
reach are kept for the next run of the same variant, so that no session is started for nothing.
"""

from __future__ import annotations

import json
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
#: Rounds of sessions a bulk start may take before it gives up, and the longest a round runs:
#: a round ends as soon as it has started the runs it was asked for.
MAX_ROUNDS = 8
MAX_ROUND_S = 60


@dataclass(frozen=True)
class Run:
    """One started run: what its score must carry, and when it was started at the latest
    (``time.monotonic()`` at the end of the round that started it)."""

    player_id: str
    player_key: str
    token: str
    issued_by: float = 0.0


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


def _read_runs(prefix: Path, threads: int, issued_by: float) -> tuple[list[Run], int]:
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
            runs.append(Run(answer["player_id"], answer["player_key"], answer["token"], issued_by))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return runs, bad


class LineCount:
    """Lines written so far to a set of files that grow, each read on from where it was."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.offsets = [0] * len(paths)
        self.lines = 0

    def __call__(self) -> int:
        """Complete lines in all the files now."""
        for i, path in enumerate(self.paths):
            try:
                with path.open("rb") as f:
                    f.seek(self.offsets[i])
                    chunk = f.read()
            except FileNotFoundError:
                continue
            self.offsets[i] += len(chunk)
            self.lines += chunk.count(b"\n")
        return self.lines


class Sessions:
    """Starts runs in bulk, keeps what each round measured, and the runs not used yet."""

    def __init__(self, stack: Stack, connections: int) -> None:
        self.stack = stack
        self.connections = connections
        self.url = f"{stack.web_url}/api/v1/games/{INGEST_GAME}/sessions"
        self.rounds: list[dict[str, Any]] = []
        self._unused: dict[str, list[Run]] = {}

    def take(self, variant: str, count: int) -> list[Run]:
        """At least ``count`` runs of ``variant`` not used yet, oldest first: those left over
        from earlier, then new ones started at saturation."""
        runs = self._unused.pop(variant, [])
        for _ in range(MAX_ROUNDS):
            if len(runs) >= count:
                return runs
            started, run = self._round(variant, count - len(runs))
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

    def _round(self, variant: str, wanted: int) -> tuple[list[Run], WrkRun]:
        """Start runs at saturation until ``wanted`` have started (a few more: those the
        connections had in flight, kept for later)."""
        prefix = self.stack.run_dir / f"sessions-{len(self.rounds)}"
        threads = min(WRK_THREADS, self.connections)
        answered = LineCount([Path(f"{prefix}-{thread}") for thread in range(threads)])
        cpu = self.stack.cpu_seconds()
        run = run_wrk(
            self.url,
            MAX_ROUND_S,
            self.connections,
            "sessions.lua",
            [str(prefix), variant],
            work_dir=self.stack.run_dir,
            stop_when=lambda: answered() >= wanted,
        )
        used = self.stack.cpu_seconds()
        started, bad = _read_runs(prefix, threads, time.monotonic())
        self.rounds.append(
            {
                "variant": variant,
                "wanted": wanted,
                "seconds": run.seconds,
                "started": len(started),
                "errors": run.errors + run.bad_status + bad,
                "p50_ms": run.p50_ms,
                "p99_ms": run.p99_ms,
                "cpu_s": {name: used[name] - cpu.get(name, 0) for name in used},
            }
        )
        return started, run

    def reserve(self, variant: str, count: int) -> None:
        """Start now what the next runs of ``variant`` will take, up to ``count`` runs in all:
        in one round, and long enough before the later of them that their tokens are old by
        the time their scores are sent."""
        self.give_back(variant, self.take(variant, count))

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


#: wrk threads of a run of scores. One: wrk's threads do not keep pace with each other (one
#: sent 2.5 times what the other did, in a run), so with a slice of the bodies each, one would
#: run out while the other's were left; and one thread sends far more than a web here takes.
SCORE_THREADS = 1


@dataclass(frozen=True)
class WrkBodies:
    """What a wrk run of scores is given: its script and arguments, its threads, and the runs
    each thread has, in the order it sends them (none without tokens)."""

    script: str
    args: list[str]
    variant: str = ""
    slices: tuple[list[Run], ...] = ()
    threads: int = SCORE_THREADS


#: Slack between the bench's clock and the service's whole milliseconds (seconds).
AGE_MARGIN_S = 0.05


def ready_at(runs: list[Run], sent_after: Callable[[int], float]) -> float:
    """The moment (``time.monotonic()``) from which a load may start sending the scores of
    ``runs``, each token then as old as its score claims when it goes: the ``i``-th score
    claims :func:`score_fields` ``(i)`` of play and leaves ``sent_after(i)`` seconds after the
    load's start at the soonest; a token is no younger than the end of its round."""
    latest = (
        run.issued_by + score_fields(i)["duration_ms"] / 1000 - sent_after(i)
        for i, run in enumerate(runs)
    )
    return max(latest, default=0.0) + AGE_MARGIN_S


def wait_out_play_time(runs: list[Run], sent_after: Callable[[int], float]) -> None:
    """Sleep until :func:`ready_at`."""
    left = ready_at(runs, sent_after) - time.monotonic()
    if left > 0:
        time.sleep(left)


class Scores:
    """The scores the load generators send, as the configuration wants them."""

    def __init__(self, stack: Stack, tokens: bool, connections: int) -> None:
        self.stack = stack
        self.tokens = tokens
        self.sessions = Sessions(stack, connections) if tokens else None
        self._sample: Run | None = None

    def for_wrk(
        self, variant: str, count: int, name: str, connections: int, fastest: float
    ) -> WrkBodies:
        """What a wrk run on hiscore of up to ``count`` scores is given, over ``connections``
        at no more than ``fastest`` answers a second; returns once the first can be sent."""
        if self.sessions is None:
            return WrkBodies("submit.lua", [variant])
        runs = self.sessions.take(variant, count)
        slices = tuple(runs[thread::SCORE_THREADS] for thread in range(SCORE_THREADS))
        bodies = [json.dumps(score_body(run, i, variant)) for i, run in enumerate(runs)]
        prefix = write_slices(self.stack.run_dir / f"bodies-{name}", bodies, SCORE_THREADS)
        # One thread sends its first ``connections`` bodies at once, then one per answer.
        wait_out_play_time(runs, lambda i: max(0, i - connections) / fastest)
        return WrkBodies("bodies.lua", [str(prefix)], variant, slices)

    def after_wrk(self, bodies: WrkBodies, run: WrkRun) -> None:
        """Keep the runs that ``run`` did not reach for a later run of the same variant."""
        sent = run.extra.get("sent_by_thread")
        if self.sessions is None or not bodies.slices or not sent:
            return
        unsent = [r for runs, n in zip(bodies.slices, sent, strict=False) for r in runs[n:]]
        self.sessions.give_back(bodies.variant, unsent)

    def reserve(self, variant: str, count: int) -> None:
        """Start the runs that the next ``count`` scores of ``variant`` will take, at once."""
        if self.sessions is not None:
            self.sessions.reserve(variant, count)

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
        prefix = write_slices(self.stack.run_dir / f"bodies-{name}", bodies, SCORE_THREADS)
        return WrkBodies("bodies.lua", [str(prefix)])

    def for_open_loop(
        self, variant: str, rate: float, seconds: float
    ) -> Callable[[int], dict[str, Any]]:
        """What the ``i``-th score of an open-loop run at ``rate`` for ``seconds`` says, but
        its id; returns once the first can be sent."""
        count = int(rate * seconds)
        if self.sessions is None:
            # As the light configuration always sent: no token, any plausible play time.
            return lambda i: {"score": 1 + i % 100, "duration_ms": 60_000}
        runs = self.sessions.take(variant, count)
        self.sessions.give_back(variant, runs[count:])  # the open loop sends exactly count
        wait_out_play_time(runs[:count], lambda i: i / rate)

        def fields(i: int) -> dict[str, Any]:
            body = score_body(runs[i], i, variant)
            del body["name"], body["variant"]
            return body

        return fields
