"""``python -m bench``: hiscore's benchmarks, on real processes of this machine.

Starts the project's redis-server (AOF on), hiscore's gunicorn (gunicorn.conf.py: 2 gevent
workers) and Celery ingest worker in production's configuration (``--light``: the lighter one
the benchmarks used to run), and the tutorial-design baseline app under the same gunicorn
settings, all on loopback; drives them from outside with wrk and an open-loop client; prints
every figure beside its baseline from the same run, and where a web worker's CPU went, and
writes the same as JSON to ``bench/results/``. Every process is stopped at the end, whatever
happens. ``--long-run`` runs the long-run memory benchmark (:mod:`bench.longrun`) instead, and
``--scaling`` the drain processes' scaling benchmark (:mod:`bench.scaling`).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from app.clock import now_ms
from app.leaderboard.games import Registry, load_registry
from app.storage import keys
from app.storage.connection import connect
from bench import configurations, games, ingest, longrun, profile, reads, scaling, seed, storage
from bench.baseline_app import list_key
from bench.load import WrkRun, ensure_wrk
from bench.processes import Stack, http_get_headers, machine_busy_seconds, wait_until
from bench.report import Figure, compare, machine, redis_server, table, write_json
from bench.sessions import Scores

RESULTS = Path(__file__).resolve().parent / "results"

# Other processes taking this much CPU (in cores, on average) during a phase make it noisy.
NOISY_CORES = 0.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks every size and duration for a smoke run."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="hiscore's benchmarks on real processes, each figure beside its baseline.",
    )
    p.add_argument("--quick", action="store_true", help="small boards, short runs (a smoke run)")
    p.add_argument(
        "--light",
        action="store_true",
        help="the light configuration (testing, rate limits off, no run tokens), to compare",
    )
    p.add_argument("--ingest-seconds", type=float, help="saturation run length (default 10)")
    p.add_argument("--warmup-seconds", type=float, help="warm-up before each run (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections for ingest")
    p.add_argument("--latency-seconds", type=float, help="each open-loop run's length (default 12)")
    p.add_argument(
        "--latency-rate",
        type=float,
        help="the capacity (submissions/s) the open-loop loads are ½ and 0.8 of (default: the "
        "end-to-end rate hiscore took in this run's saturation run)",
    )
    p.add_argument("--latency-connections", type=int, default=64)
    p.add_argument("--big", type=int, help="entries of the large board (default 1,000,000)")
    p.add_argument("--small", type=int, default=1000, help="entries of the small board")
    p.add_argument(
        "--read-seconds",
        type=float,
        help="each kind of read's length on each board, in two rounds (default 6)",
    )
    p.add_argument("--read-connections", type=int, default=16)
    p.add_argument("--players", type=int, default=32, help="closed-loop players of whole games")
    p.add_argument("--game-seconds", type=float, help="each whole-games run's length (default 5)")
    p.add_argument("--games-big", type=int, help="entries of the large board games are played on")
    p.add_argument("--worker-concurrency", type=int, default=2, help="as the Procfile's default")
    p.add_argument("--output", type=Path, help="JSON file (default bench/results/<date>.json)")
    p.add_argument("--keep", action="store_true", help="keep the run folder (logs, Redis data)")
    p.add_argument(
        "--long-run",
        action="store_true",
        help="run the long-run memory benchmark instead (bench/longrun.py: its own flags, "
        "--quick among them, follow)",
    )
    p.add_argument(
        "--scaling",
        action="store_true",
        help="run the scaling benchmark instead: entries settled per second by 1, 2 and 4 drain "
        "processes (bench/scaling.py: its own flags, --quick among them, follow)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "ingest_seconds": 2 if quick else 10,
        "warmup_seconds": 1 if quick else 2,
        "latency_seconds": 2 if quick else 12,
        "big": 20_000 if quick else 1_000_000,
        "read_seconds": 1 if quick else 6,
        "game_seconds": 1 if quick else 5,
        "games_big": 5_000 if quick else 100_000,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


class Phases:
    """Runs the benchmarks' phases, printing each with its duration, the time it waited for
    Redis to rewrite its AOF, and the CPU that processes other than the run's took meanwhile:
    a sign that the phase's figures are noisy."""

    def __init__(self, stack: Stack, client: redis.Redis) -> None:
        self.stack = stack
        self.client = client
        self.done: dict[str, dict[str, float]] = {}
        self._waited = 0.0

    def _ours(self) -> float:
        return sum(self.stack.cpu_seconds().values())

    def quiet(self) -> None:
        """Wait for an AOF rewrite (a fork writing the whole dataset) to end before a timed
        run."""

        def idle() -> bool:
            info = self.client.info("persistence")
            return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

        started = time.monotonic()
        wait_until(idle, 300, "Redis to finish rewriting its AOF", every=0.2)
        self._waited += time.monotonic() - started

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time one phase."""
        print(f"· {name} …", end="", flush=True)
        started, busy, ours = time.monotonic(), machine_busy_seconds(), self._ours()
        self._waited = 0.0
        yield
        seconds = time.monotonic() - started
        others = (machine_busy_seconds() - busy) - (self._ours() - ours)
        cores = max(0.0, others / seconds) if seconds > 0 else 0.0
        self.done[name] = {
            "seconds": round(seconds, 1),
            "aof_wait_s": round(self._waited, 1),
            "other_cores": round(cores, 2),
        }
        waited = (
            f", {self._waited:.1f} s of it waiting for an AOF rewrite" if self._waited >= 1 else ""
        )
        noisy = f" (other processes took {cores:.1f} cores)" if cores >= NOISY_CORES else ""
        print(f" {seconds:.1f} s{waited}{noisy}", flush=True)


def noisy(phases: dict[str, dict[str, float]]) -> list[str]:
    """The phases during which other processes took a noticeable share of the machine."""
    return [
        f"other processes took {p['other_cores']:.1f} cores during '{name}': noisy figures"
        for name, p in phases.items()
        if p["other_cores"] >= NOISY_CORES
    ]


def _rates(runs: dict[str, WrkRun]) -> dict[str, Any]:
    return {
        name: {
            "rate": run.rate,
            "requests": run.requests,
            "errors": run.errors + run.bad_status,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "connections": run.connections,
            **run.extra,
        }
        for name, run in runs.items()
    }


#: The open-loop loads, as shares of hiscore's capacity (its end-to-end rate at saturation):
#: submit→202 is judged at half of it, submit→visible at 0.8.
LATENCY_LOADS = {"half": 0.5, "four_fifths": 0.8}


def measure_ingest(
    stack: Stack, client: redis.Redis, args: argparse.Namespace, phase: Phases, scores: Scores
) -> dict[str, Any]:
    """Saturation of bare LPUSH and of hiscore; then latency at two loads below hiscore's
    capacity, as measured by the saturation run (or as given)."""
    out: dict[str, Any] = {}
    at_start = ingest.verdicts(client)
    with phase("ingest: bare LPUSH baseline"):
        out["ingest_baseline"] = ingest.ingest_baseline(
            stack, args.ingest_seconds, args.warmup_seconds, args.connections, scores
        )
    with phase("ingest: hiscore, until every 202 is on the board"):
        phase.quiet()
        out["ingest"] = ingest.ingest_hiscore(
            stack,
            client,
            args.ingest_seconds,
            args.warmup_seconds,
            args.connections,
            scores,
            out["ingest_baseline"]["rate_202"],
            before_run=phase.quiet,
        )
    stack.check_alive()
    capacity = args.latency_rate or out["ingest"]["rate_end_to_end"]
    latency: dict[str, Any] = {
        "capacity": capacity,
        "capacity_given": bool(args.latency_rate),
    }
    rates = {name: max(1.0, share * capacity) for name, share in LATENCY_LOADS.items()}
    if scores.sessions is not None:
        with phase("sessions: the runs of both fixed loads, at saturation"):
            # In one round before the first load: the second's tokens are then old enough when
            # its scores go, and no load waits for its runs to come of age.
            count = sum(int(rate * args.latency_seconds) for rate in rates.values())
            scores.reserve(ingest.VARIANT, count)
    for name, share in LATENCY_LOADS.items():
        rate = rates[name]
        with phase(f"latency: open loop at {rate:,.0f} submissions/s ({share:g} of capacity)"):
            phase.quiet()
            latency[name] = {
                "share": share,
                **ingest.latency(
                    stack, client, rate, args.latency_seconds, args.latency_connections, scores
                ),
            }
        stack.check_alive()
    out["latency"] = latency
    out["rejected_by_worker"] = ingest.rejected_since(at_start, ingest.verdicts(client))
    if scores.sessions is not None:
        out["sessions"] = scores.sessions.summary()
    return out


def measure_storage(
    client: redis.Redis, registry: Registry, args: argparse.Namespace, phase: Phases, first_at: int
) -> dict[str, Any]:
    """Seed the large board; time its rebuild against bare ZADD + RENAME; bytes per entry."""
    game, guess = registry.get(seed.GAME), registry.get(ingest.GAME)
    assert game is not None and guess is not None
    big = args.big
    with phase(f"seed a {big:,}-entry log"):
        phase.quiet()
        before = storage.used_memory(client)
        seed.seed_log(client, seed.GAME, seed.LARGE, big, first_at)
    with phase(f"rebuild: {big:,} entries, first build"):
        phase.quiet()
        first_s, _ = storage.time_rebuild(client, game, seed.LARGE)
    used_delta = storage.used_memory(client) - before
    with phase(f"rebuild: {big:,} entries over the live boards"):
        phase.quiet()
        rebuild_s, read = storage.time_rebuild(client, game, seed.LARGE)
    pairs = [(game.sign * e.score, f"{e.at:013d}:{e.pid}") for e in seed.entries(big, first_at)]
    bare_key = "bench:bare:zset"
    with phase(f"bare ZADD + RENAME of {big:,} pairs, twice"):
        phase.quiet()
        bare_first_s = storage.time_bare_zadd(client, pairs, bare_key)
        phase.quiet()
        bare_s = storage.time_bare_zadd(client, pairs, bare_key)
    del pairs
    written = storage.board_pairs(client, game, seed.LARGE)
    with phase(f"bare ZADD + RENAME of each of the {len(written)} boards a rebuild writes"):
        phase.quiet()
        bare_boards_s = storage.time_bare_boards(client, written, bare_key)
    boards_written, rows_written = len(written), sum(len(rows) for rows in written)
    del written
    with phase("memory"):
        family = storage.family_memory(client, game, seed.LARGE, big)
        family["used_memory_delta_per_entry"] = used_delta / big
        ingested = client.xlen(keys.log_key(ingest.GAME, ingest.VARIANT))
        memory = {
            "large_family": family,
            "ingest_family": storage.family_memory(client, guess, ingest.VARIANT, ingested),
            "bare_zset_per_entry": storage.key_bytes(client, bare_key) / big,
        }
        client.unlink(bare_key)
    rebuild = {
        "entries": big,
        "read": read,
        "first_build_s": first_s,
        "rebuild_s": rebuild_s,
        "bare_first_s": bare_first_s,
        "bare_s": bare_s,
        "bare_batch": 10_000,
        "boards_written": boards_written,
        "rows_written": rows_written,
        "bare_boards_s": bare_boards_s,
    }
    return {"rebuild": rebuild, "memory": memory}


#: The second web of the reads' comparison: hiscore's, with rate limits off.
LIMITS_OFF_WEB = "web-limits-off"
#: The read rates' floor with rate limits on, as a share of the same read with them off.
LIMITS_ON_AT_LEAST = 0.9


def _limits_header(base_url: str, game: str, variant: str) -> str | None:
    """The ``X-RateLimit-Limit`` of a top-10 read: present when the web counts the read."""
    _, headers, _ = http_get_headers(f"{base_url}/api/v1/games/{game}/boards/{variant}?limit=10")
    return next((v for k, v in headers.items() if k.lower() == "x-ratelimit-limit"), None)


def measure_reads(
    stack: Stack,
    client: redis.Redis,
    registry: Registry,
    args: argparse.Namespace,
    phase: Phases,
    first_at: int,
    limits_on: bool,
) -> dict[str, Any]:
    """Top-10 and around-me on both boards, hiscore's and the tutorial's; with rate limits on,
    the large board's also on a second hiscore web with them off, in the same rounds."""
    game = registry.get(seed.GAME)
    assert game is not None
    big, small = args.big, args.small
    off_url = None
    with phase(
        "seed the small board and the tutorial's lists"
        + ("; start a web with rate limits off" if limits_on else "")
    ):
        if limits_on:
            # Started first: its start-up overlaps the seeding, which nothing times.
            off_url = stack.start_web(LIMITS_OFF_WEB, HISCORE_RATE_LIMITS_ENABLED="0")
        seed.seed_log(client, seed.GAME, seed.SMALL, small, first_at)
        storage.time_rebuild(client, game, seed.SMALL)
        seed.seed_tutorial_list(client, seed.GAME, seed.LARGE, big, first_at)
        seed.seed_tutorial_list(client, seed.GAME, seed.SMALL, small, first_at)
        list_bytes = storage.key_bytes(client, list_key(seed.GAME, seed.LARGE)) / big
    secs, conns = args.read_seconds, args.read_connections
    boards = {seed.LARGE: big, seed.SMALL: small}
    targets = {name: reads.Target(stack.web_url, name, n) for name, n in boards.items()}
    limits: dict[str, Any] = {"compared": off_url is not None}
    if off_url is not None:
        targets[f"{seed.LARGE}_limits_off"] = reads.Target(off_url, seed.LARGE, big)
        limits["header_on"] = _limits_header(stack.web_url, seed.GAME, seed.LARGE)
        limits["header_off"] = _limits_header(off_url, seed.GAME, seed.LARGE)
    rounds = " and rate limits on and off" if off_url else ""
    try:
        with phase(f"reads: hiscore, both boards{rounds} in alternating rounds"):
            mine = reads.alternating(
                seed.GAME,
                targets,
                secs,
                conns,
                stack.run_dir,
                before_each=phase.quiet,
            )
    finally:
        if off_url is not None:
            stack.stop_service(LIMITS_OFF_WEB)
    theirs: dict[str, dict[str, WrkRun]] = {}
    for variant, players in boards.items():
        with phase(f"reads: the tutorial's design, {players:,} entries"):
            phase.quiet()
            if variant == seed.LARGE:
                # Each read fetches and decodes the whole list: seconds and much memory apiece
                # on a large board, so one request at a time per gunicorn worker, for as long
                # as each of hiscore's rounds (and each thread's read in flight to its end).
                theirs[variant] = {
                    kind: reads.slow_read(
                        stack.baseline_url, seed.GAME, variant, players, kind, secs / 2, threads=2
                    )
                    for kind in reads.KINDS
                }
            else:
                # One window as long as each of hiscore's rounds.
                theirs[variant] = reads.compare_boards(
                    stack.baseline_url,
                    seed.GAME,
                    {variant: players},
                    secs / 2,
                    conns,
                    stack.run_dir,
                    rounds=1,
                )[variant]
    return {
        "tutorial_list_per_entry": list_bytes,
        "reads": {
            **{f"hiscore_{name}": _rates(runs) for name, runs in mine.items()},
            **{f"tutorial_{variant}": _rates(runs) for variant, runs in theirs.items()},
        },
        "reads_rate_limits": limits,
    }


def run_benchmarks(
    stack: Stack,
    client: redis.Redis,
    args: argparse.Namespace,
    config: configurations.Configuration,
) -> dict:
    """Every benchmark, in order; return the raw measurements."""
    phase = Phases(stack, client)
    out: dict[str, Any] = {"phases": phase.done}
    registry = load_registry(stack.base_env["HISCORE_GAMES_FILE"])
    out["configuration_probe"] = configurations.probe(stack)
    scores = Scores(stack, config.tokens, args.connections)
    out.update(measure_ingest(stack, client, args, phase, scores))
    # Before the large board is seeded: its gigabyte would make each AOF rewrite (a fork
    # writing the whole dataset) during the games long, and the games noisy.
    out.update(games.measure_games(stack, client, registry, args, phase, phase.quiet))
    first_at = now_ms() - 60_000 - args.big  # every seeded entry in the recent past
    out.update(measure_storage(client, registry, args, phase, first_at))
    measured = measure_reads(
        stack, client, registry, args, phase, first_at, configurations.limits_on(config)
    )
    out["reads"] = measured["reads"]
    out["reads_rate_limits"] = measured["reads_rate_limits"]
    out["memory"]["tutorial_list_per_entry"] = measured["tutorial_list_per_entry"]
    out["memory"]["record_bytes"] = out["latency"]["half"]["record_bytes"]
    stack.check_alive()
    return out


def figures(out: dict[str, Any], args: argparse.Namespace) -> list[Figure]:
    """The table's lines from the raw measurements."""
    base, mine, lat = out["ingest_baseline"], out["ingest"], out["latency"]
    rates, rebuild, memory = out["reads"], out["rebuild"], out["memory"]
    big, small = f"{args.big:,}", f"{args.small:,}"
    c = mine["connections"]
    lines = [
        compare(
            "ingest: accepted and on the board (sub/s)",
            mine["rate_end_to_end"],
            base["rate_202"],
            "bare LPUSH",
            "≥ 0.85",
            at_least=0.85,
        ),
        compare("ingest: 202s at saturation (req/s)", mine["rate_202"], base["rate_202"], "LPUSH"),
        Figure(
            "  CPU ms per submission: " + " / ".join(CPU_COLUMNS),
            _cpu(mine["cpu_ms_per_submission"], ("web", "worker", "redis", "load")),
            _cpu(base["cpu_ms_per_submission"], ("baseline", None, "redis", "load")),
        ),
        Figure(
            "ingest: backlog when the load stopped (subs)",
            f"{mine['backlog_at_stop']:,} (drained {mine['drain_after_stop_s']:.1f} s later)",
        ),
        Figure(
            f"submit→202 p50 / p99 at saturation, c={c} (ms)",
            _pair(mine["p50_ms"], mine["p99_ms"]),
            _pair(base["p50_ms"], base["p99_ms"]),
            "LPUSH",
            mine["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
        ),
    ]
    if "sessions" in out:
        runs = out["sessions"]
        lines += [
            compare(
                f"sessions: runs started at saturation, c={runs['connections']} (req/s)",
                runs["rate"],
                base["rate_202"],
                "LPUSH",
            ),
            Figure(
                "  CPU ms per session: " + " / ".join(CPU_COLUMNS),
                _cpu(runs["cpu_ms_per_session"], ("web", "worker", "redis", "load")),
            ),
        ]
    capacity = f"{lat['capacity']:,.0f}/s given" if lat["capacity_given"] else "capacity"
    lines += _latency_lines(lat["half"], f"½ {capacity}", to_202_target=10)
    lines += _latency_lines(lat["four_fifths"], f"0.8 {capacity}", visible_target=250)
    for kind, label in (("top10", "top-10"), ("around", "around-me K=5")):
        large = rates[f"hiscore_{seed.LARGE}"][kind]["rate"]
        lines += [
            compare(
                f"reads {label}, {big} board (req/s)",
                large,
                rates[f"hiscore_{seed.SMALL}"][kind]["rate"],
                f"{small} board",
                "≥ 0.95",
                at_least=0.95,
            ),
            compare(
                f"reads {label}, {big} board (req/s)",
                large,
                rates[f"tutorial_{seed.LARGE}"][kind]["rate"],
                "tutorial",
            ),
            compare(
                f"reads {label}, {small} board (req/s)",
                rates[f"hiscore_{seed.SMALL}"][kind]["rate"],
                rates[f"tutorial_{seed.SMALL}"][kind]["rate"],
                "tutorial",
            ),
        ]
    lines += _limits_lines(rates, out["reads_rate_limits"], big)
    family = memory["large_family"]
    lines += [
        compare(
            f"rebuild {big} entries, over live boards, per board written (s)",
            rebuild["rebuild_s"],
            rebuild["bare_boards_s"],
            f"ZADD+RENAME of the {rebuild['boards_written']} boards",
            "≤ 1.5",
            at_most=1.5,
        ),
        compare(
            f"rebuild {big} entries, over live boards (s)",
            rebuild["rebuild_s"],
            rebuild["bare_s"],
            "ZADD+RENAME of the all-time board",
        ),
        compare(
            f"rebuild {big} entries, first build (s)",
            rebuild["first_build_s"],
            rebuild["bare_first_s"],
            "ZADD+RENAME",
        ),
        compare(
            "memory per entry, log + 3 windows (bytes)",
            family["bytes_per_entry"],
            memory["bare_zset_per_entry"],
            "one zset",
            "stated",
        ),
    ]
    lines += [
        Figure(f"  {kind}", value)
        for kind, value in family["per_entry_by_kind"].items()
        if value >= 0.5
    ]
    if family["players_per_player"] is not None:
        lines.append(Figure("  players' records per player (bytes)", family["players_per_player"]))
    lines += [
        Figure(
            f"  {board}: ranking per player on it / meta (bytes)",
            f"{figures['ranking_per_player']:.1f} / {figures['meta_bytes']}",
        )
        for board, figures in family["boards"].items()
    ]
    lines += [
        compare(
            "memory per entry, INFO used_memory delta",
            family["used_memory_delta_per_entry"],
            memory["tutorial_list_per_entry"],
            "tutorial list",
            "stated",
        ),
        Figure("memory per status record (bytes)", memory["record_bytes"], target="stated"),
    ]
    lines += games.figures(out["games"])
    return lines


def _limits_lines(rates: dict[str, Any], limits: dict[str, Any], big: str) -> list[Figure]:
    """The large board's reads with rate limits on against the same with them off."""
    if not limits["compared"]:
        return [
            Figure(
                "reads with rate limits on / off",
                "not measured: this configuration runs with rate limits off",
            )
        ]
    on, off = rates[f"hiscore_{seed.LARGE}"], rates[f"hiscore_{seed.LARGE}_limits_off"]
    return [
        compare(
            f"reads {label}, {big} board, rate limits on (req/s)",
            on[kind]["rate"],
            off[kind]["rate"],
            "limits off",
            f"≥ {LIMITS_ON_AT_LEAST:g}",
            at_least=LIMITS_ON_AT_LEAST,
        )
        for kind, label in (("top10", "top-10"), ("around", "around-me K=5"))
    ]


CPU_COLUMNS = ("web", "worker", "redis", "load")


def _cpu(used: dict[str, float], names: tuple[str | None, ...]) -> str:
    cells = [used.get(name) if name else None for name in names]
    return " / ".join("—" if value is None else f"{value:.2f}" for value in cells)


def _latency_lines(
    lat: dict[str, Any],
    load: str,
    to_202_target: float | None = None,
    visible_target: float | None = None,
) -> list[Figure]:
    """One fixed load's lines, each p99 judged only where a target is given for that load."""
    at = f"at {lat['rate']:,.0f}/s ({load})"
    to_202 = lat["submit_202_p50_ms"], lat["submit_202_p99_ms"]
    visible = lat["submit_visible_p50_ms"], lat["submit_visible_p99_ms"]
    settled = lat["settled_p50_ms"], lat["settled_p99_ms"]
    after = lat["all_visible_after_load_s"]
    drained = "—" if after is None else f"{after:.2f} s"
    return [
        Figure(
            f"submit→202 p50 / p99 {at} (ms)",
            _pair(*to_202),
            target="" if to_202_target is None else f"p99 ≤ {to_202_target:g}",
            met=None if to_202_target is None else _at_most(to_202[1], to_202_target),
        ),
        Figure(
            f"submit→visible p50 / p99 {at} (ms)",
            _pair(*visible),
            target="" if visible_target is None else f"p99 ≤ {visible_target:g}",
            met=None if visible_target is None else _at_most(visible[1], visible_target),
        ),
        Figure(
            "  received→settled p50 / p99, the service's histogram bucket (ms, at most)",
            _pair(*settled),
        ),
        Figure(
            "  backlog at the end of the phase: sent, not yet visible (subs)",
            f"{_count(lat['backlog_end'])} (peak {_count(lat['backlog_max'])}; all visible "
            f"{drained} later)",
            target=f"≤ {lat['backlog_allowed']:,}",
            met=None
            if lat["backlog_end"] is None
            else lat["backlog_end"] <= lat["backlog_allowed"],
        ),
    ]


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _pair(p50: float | None, p99: float | None) -> str:
    return " / ".join("—" if v is None else f"{v:,.1f}" for v in (p50, p99))


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def backlog_notes(out: dict[str, Any]) -> list[str]:
    """The fixed loads whose backlog grew, as notes."""
    found = []
    for name in LATENCY_LOADS:
        lat = out["latency"][name]
        found += ingest.backlog_grew(f"latency at {lat['share']:g} of capacity", lat)
    return found


def problems(
    out: dict[str, Any], args: argparse.Namespace, config: configurations.Configuration
) -> list[str]:
    """What makes the figures suspect: failed requests, lost or rejected submissions."""
    found = []
    for name, run in (("bare LPUSH", out["ingest_baseline"]), ("hiscore", out["ingest"])):
        if run["errors"]:
            found.append(
                f"ingest, {name}: {run['errors']} requests failed (status ≥ 400 or socket)"
            )
    mine = out["ingest"]
    if mine["missing"]:
        found.append(f"ingest: {mine['missing']} submissions answered 202 never reached the board")
    if mine["rejected_by_worker"]:
        found.append(f"ingest: the worker rejected some: {mine['rejected_by_worker']}")
    found += ingest.load_problems(out)
    found += configurations.mismatches(config, out["configuration_probe"])
    if mine["board_total_api"] is None:
        found.append("ingest: the board API did not answer")
    for name in LATENCY_LOADS:
        lat = out["latency"][name]
        name = f"latency at {lat['share']:g} of capacity"
        found += ingest.latency_problems(name, lat)
        # A quick run's capacity comes from 2 s of load, too short to size a load by: there a
        # grown backlog is a note (see :func:`backlog_notes`), not a suspect figure.
        if not args.quick:
            found += ingest.backlog_grew(name, lat)
    limits = out["reads_rate_limits"]
    if limits["compared"] and (limits["header_on"] is None or limits["header_off"] is not None):
        found.append(
            "reads: the webs compared did not count reads as configured (X-RateLimit-Limit "
            f"{limits['header_on']!r} with limits on, {limits['header_off']!r} with them off)"
        )
    for name, runs in out["reads"].items():
        for kind, run in runs.items():
            if run["errors"]:
                found.append(f"reads {name} {kind}: {run['errors']} requests failed")
            if not run["requests"]:
                found.append(f"reads {name} {kind}: no request completed")
    if out["rebuild"]["read"] != args.big:
        found.append(f"rebuild read {out['rebuild']['read']} entries of {args.big}")
    found += games.problems(out["games"])
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table; write the JSON. Exit status 1 if a figure is
    suspect (see :func:`problems`). With ``--long-run``, the long-run memory benchmark
    (:mod:`bench.longrun`) runs instead, given the other arguments; with ``--scaling``, the
    scaling benchmark (:mod:`bench.scaling`)."""
    given = sys.argv[1:] if argv is None else argv
    if "--long-run" in given:
        return longrun.main([arg for arg in given if arg != "--long-run"])
    if "--scaling" in given:
        return scaling.main([arg for arg in given if arg != "--scaling"])
    args = parse_args(argv)
    # A plain kill (a supervisor, a test's timeout) still stops every process of the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    started = time.monotonic()
    date = datetime.now(UTC)
    run_dir = Path(tempfile.mkdtemp(prefix="hiscore-bench-"))
    games_file = seed.write_games_file(run_dir / "games.toml")
    config = configurations.light() if args.light else configurations.production()
    env = {**config.env, "HISCORE_GAMES_FILE": str(games_file)}
    stack = Stack(run_dir, env, args.worker_concurrency)
    failed = True
    try:
        print(f"· starting redis-server, gunicorn ×2, celery worker (logs in {stack.logs})")
        stack.start()
        # The data client every process builds, without a reply deadline: a seed script runs long.
        client = connect(stack.redis_url, socket_timeout=None)
        server = redis_server(client)
        out = run_benchmarks(stack, client, args, config)
        client.close()
        failed = False
    finally:
        stopping = time.monotonic()
        stack.stop()
        print(f"· stopped every process in {time.monotonic() - stopping:.1f} s", flush=True)
        if args.keep:
            print(f"run folder kept: {run_dir}", file=sys.stderr)
        elif failed:
            shutil.rmtree(run_dir / "redis", ignore_errors=True)  # the AOF is large
            print(f"logs kept in {stack.logs}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    lines = figures(out, args)
    header = {
        "date": date.isoformat(timespec="seconds"),
        "machine": machine(),
        "redis": server,
        "configuration": config.described(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": round(time.monotonic() - started, 1),
    }
    m = header["machine"]
    print()
    print(
        f"hiscore benchmarks, {header['date']} — {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}, Redis {server['version']} ({server['allocator']}) — {config.title}"
        + (" — QUICK run, small sizes" if args.quick else "")
    )
    print(f"{config.title}: {config.summary}")
    print(table(lines))
    print()
    what = f"Where one of hiscore's web workers spent its CPU at saturation ({config.name})"
    print(profile.render(out["ingest"]["profile"], what))
    warnings = problems(out, args, config)
    for warning in warnings:
        print(f"WARNING: {warning}")
    notes = noisy(out["phases"]) + (backlog_notes(out) if args.quick else [])
    for note in notes:
        print(f"NOTE: {note}")
    suffix = "-quick" if args.quick else ""
    path = args.output or RESULTS / f"{date.strftime('%Y-%m-%dT%H%M%SZ')}{suffix}.json"
    write_json(path, header, lines, {**out, "warnings": warnings, "noise": notes})
    print(f"\n{header['seconds']:.0f} s in all; written to {path}")
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
