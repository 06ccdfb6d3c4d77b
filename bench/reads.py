"""Reads: a board's top 10 and a random player's standing with neighbours, in requests/s.

What is compared (boards of two sizes; a board read with rate limits on and off) is measured in
alternating rounds and the best round of each is kept, so a burst of noise from elsewhere on
the machine does not decide the ratio between them. A read of the tutorial's design on a large
board takes seconds; it is timed by a few threads sending requests one after another instead
(wrk only counts requests that end within its run).
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.load import WrkRun, percentile, run_wrk
from bench.seed import player_id

AROUND = 5
KINDS = ("top10", "around")


def _board(game: str, variant: str) -> str:
    return f"/api/v1/games/{game}/boards/{variant}"


def _wrk(
    base_url: str,
    game: str,
    variant: str,
    players: int,
    kind: str,
    seconds: float,
    connections: int,
    work_dir: Path,
) -> WrkRun:
    board = _board(game, variant)
    if kind == "top10":
        url = f"{base_url}{board}?window=alltime&limit=10"
        return run_wrk(url, seconds, connections, work_dir=work_dir)
    args = [f"{board}/players/", str(players), str(AROUND)]
    return run_wrk(f"{base_url}/", seconds, connections, "around.lua", args, work_dir=work_dir)


def _one_by_one(url: Callable[[], str], seconds: float, threads: int) -> WrkRun:
    """Each thread sends requests one after another until ``seconds`` have passed, finishing
    the one in flight (so every thread completes at least one)."""
    latencies: list[float] = []
    errors = [0]
    started = time.monotonic()

    def loop() -> None:
        while True:
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(url(), timeout=600) as resp:
                    resp.read()
            except OSError:
                errors[0] += 1
            latencies.append(time.monotonic() - sent)
            if time.monotonic() - started >= seconds:
                return

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return WrkRun(
        requests=len(latencies),
        seconds=elapsed,
        errors=errors[0],
        bad_status=0,
        p50_ms=(percentile(latencies, 50) or 0) * 1000,
        p99_ms=(percentile(latencies, 99) or 0) * 1000,
        connections=threads,
    )


def slow_read(
    base_url: str, game: str, variant: str, players: int, kind: str, seconds: float, threads: int
) -> WrkRun:
    """Requests/s of reads that take seconds each (the tutorial's design on a large board)."""
    board = _board(game, variant)
    rng = random.Random(2)

    def url() -> str:
        if kind == "top10":
            return f"{base_url}{board}?limit=10"
        return f"{base_url}{board}/players/{player_id(rng.randrange(players))}?around={AROUND}"

    return _one_by_one(url, seconds, threads)


@dataclass(frozen=True)
class Target:
    """A board to read, on a server: its base URL, its variant and its players."""

    base_url: str
    variant: str
    players: int


def alternating(
    game: str,
    targets: dict[str, Target],
    seconds: float,
    connections: int,
    work_dir: Path,
    rounds: int = 2,
    before_each: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, WrkRun]]:
    """For each kind of read, ``rounds`` runs of ``seconds / rounds`` on each target in turn;
    keep each target's best run, with every round's rate (``extra["round_rates"]``). Returns
    ``{target: {kind: run}}``."""
    runs: dict[str, dict[str, list[WrkRun]]] = {name: {k: [] for k in KINDS} for name in targets}
    for kind in KINDS:
        for _ in range(rounds):
            for name, target in targets.items():
                before_each()
                runs[name][kind].append(
                    _wrk(
                        target.base_url,
                        game,
                        target.variant,
                        target.players,
                        kind,
                        seconds / rounds,
                        connections,
                        work_dir,
                    )
                )
    return {
        name: {
            kind: replace(
                max(done, key=lambda run: run.rate),
                extra={"round_rates": [round(run.rate, 1) for run in done]},
            )
            for kind, done in by_kind.items()
        }
        for name, by_kind in runs.items()
    }


def compare_boards(
    base_url: str,
    game: str,
    boards: dict[str, int],
    seconds: float,
    connections: int,
    work_dir: Path,
    rounds: int = 2,
    before_each: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, WrkRun]]:
    """:func:`alternating` over boards (variant -> players) of one server: ``{variant: {kind:
    run}}``."""
    targets = {variant: Target(base_url, variant, players) for variant, players in boards.items()}
    return alternating(game, targets, seconds, connections, work_dir, rounds, before_each)
