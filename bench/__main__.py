"""``python -m bench``: hiscore's benchmarks, on real processes of this machine.

Starts the project's redis-server (AOF on), hiscore's gunicorn (gunicorn.conf.py: 2 gevent
workers) and Celery ingest worker in production's configuration (``--light``: the lighter one
the benchmarks used to run), and the tutorial-design baseline app under the same gunicorn
settings, all on loopback; drives them from outside with wrk and an open-loop client; prints
every figure beside its baseline from the same run, and where a web worker's CPU went, and
writes the same as JSON to ``bench/results/``. Every process is stopped at the end, whatever
happens.
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
from bench import configurations, games, ingest, profile, reads, seed, storage
from bench.baseline_app import list_key
from bench.load import WrkRun, ensure_wrk
from bench.processes import Stack, machine_busy_seconds, wait_until
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
    p.add_argument("--ingest-seconds", type=float, help="saturation run length (default 15)")
    p.add_argument("--warmup-seconds", type=float, help="warm-up before each run (default 2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections for ingest")
    p.add_argument("--latency-seconds", type=float, help="open-loop run length (default 15)")
    p.add_argument("--latency-rate", type=float, help="requests/s (default: half of bare LPUSH)")
    p.add_argument("--latency-connections", type=int, default=64)
    p.add_argument("--big", type=int, help="entries of the large board (default 1,000,000)")
    p.add_argument("--small", type=int, default=1000, help="entries of the small board")
    p.add_argument("--read-seconds", type=float, help="each read run's length (default 8)")
    p.add_argument("--read-connections", type=int, default=16)
    p.add_argument("--players", type=int, default=32, help="closed-loop players of whole games")
    p.add_argument("--game-seconds", type=float, help="each whole-games run's length (default 6)")
    p.add_argument("--games-big", type=int, help="entries of the large board games are played on")
    p.add_argument("--worker-concurrency", type=int, default=2, help="as the Procfile's default")
    p.add_argument("--output", type=Path, help="JSON file (default bench/results/<date>.json)")
    p.add_argument("--keep", action="store_true", help="keep the run folder (logs, Redis data)")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "ingest_seconds": 2 if quick else 15,
        "warmup_seconds": 1 if quick else 2,
        "latency_seconds": 2 if quick else 15,
        "big": 20_000 if quick else 1_000_000,
        "read_seconds": 1 if quick else 8,
        "game_seconds": 1 if quick else 6,
        "games_big": 5_000 if quick else 100_000,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


class Phases:
    """Runs the benchmarks' phases, printing each with its duration and the CPU that processes
    other than the run's took meanwhile: a sign that the phase's figures are noisy."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.done: dict[str, dict[str, float]] = {}

    def _ours(self) -> float:
        return sum(self.stack.cpu_seconds().values())

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time one phase."""
        print(f"· {name} …", end="", flush=True)
        started, busy, ours = time.monotonic(), machine_busy_seconds(), self._ours()
        yield
        seconds = time.monotonic() - started
        others = (machine_busy_seconds() - busy) - (self._ours() - ours)
        cores = max(0.0, others / seconds) if seconds > 0 else 0.0
        self.done[name] = {"seconds": round(seconds, 1), "other_cores": round(cores, 2)}
        noisy = f" (other processes took {cores:.1f} cores)" if cores >= NOISY_CORES else ""
        print(f" {seconds:.1f} s{noisy}", flush=True)


def noisy(phases: dict[str, dict[str, float]]) -> list[str]:
    """The phases during which other processes took a noticeable share of the machine."""
    return [
        f"other processes took {p['other_cores']:.1f} cores during '{name}': noisy figures"
        for name, p in phases.items()
        if p["other_cores"] >= NOISY_CORES
    ]


def quiet(client: redis.Redis) -> None:
    """Wait for an AOF rewrite (a fork writing the whole dataset) to end before a timed run."""

    def idle() -> bool:
        info = client.info("persistence")
        return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

    wait_until(idle, 300, "Redis to finish rewriting its AOF", every=0.2)


def _rates(runs: dict[str, WrkRun]) -> dict[str, Any]:
    return {
        name: {
            "rate": run.rate,
            "requests": run.requests,
            "errors": run.errors + run.bad_status,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "connections": run.connections,
        }
        for name, run in runs.items()
    }


def measure_ingest(
    stack: Stack, client: redis.Redis, args: argparse.Namespace, phase: Phases, scores: Scores
) -> dict[str, Any]:
    """Saturation of bare LPUSH and of hiscore; then latency at two fixed loads."""
    out: dict[str, Any] = {}
    at_start = ingest.verdicts(client)
    with phase("ingest: bare LPUSH baseline"):
        out["ingest_baseline"] = ingest.ingest_baseline(
            stack, args.ingest_seconds, args.warmup_seconds, args.connections, scores
        )
    with phase("ingest: hiscore, until every 202 is on the board"):
        quiet(client)
        out["ingest"] = ingest.ingest_hiscore(
            stack,
            client,
            args.ingest_seconds,
            args.warmup_seconds,
            args.connections,
            scores,
            out["ingest_baseline"]["rate_202"],
            before_run=lambda: quiet(client),
        )
    stack.check_alive()
    # Half of what hiscore takes, a load it can sustain, to read its latency when not
    # overloaded; then the stated load, half of what bare LPUSH takes.
    loads = {
        "latency_sustainable": out["ingest"]["rate_202"] / 2,
        "latency": args.latency_rate or out["ingest_baseline"]["rate_202"] / 2,
    }
    for name, rate in loads.items():
        with phase(f"latency: open loop at {rate:,.0f} submissions/s"):
            quiet(client)
            out[name] = ingest.latency(
                stack, client, rate, args.latency_seconds, args.latency_connections, scores
            )
        stack.check_alive()
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
        quiet(client)
        before = storage.used_memory(client)
        seed.seed_log(client, seed.GAME, seed.LARGE, seed.entries(big, first_at))
    with phase(f"rebuild: {big:,} entries, first build"):
        quiet(client)
        first_s, _ = storage.time_rebuild(client, game, seed.LARGE)
    used_delta = storage.used_memory(client) - before
    with phase(f"rebuild: {big:,} entries over the live boards"):
        quiet(client)
        rebuild_s, read = storage.time_rebuild(client, game, seed.LARGE)
    pairs = [(game.sign * e.score, f"{e.at:013d}:{e.pid}") for e in seed.entries(big, first_at)]
    bare_key = "bench:bare:zset"
    with phase(f"bare ZADD + RENAME of {big:,} pairs, twice"):
        quiet(client)
        bare_first_s = storage.time_bare_zadd(client, pairs, bare_key)
        quiet(client)
        bare_s = storage.time_bare_zadd(client, pairs, bare_key)
    del pairs
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
    }
    return {"rebuild": rebuild, "memory": memory}


def measure_reads(
    stack: Stack,
    client: redis.Redis,
    registry: Registry,
    args: argparse.Namespace,
    phase: Phases,
    first_at: int,
) -> dict[str, Any]:
    """Top-10 and around-me on both boards, hiscore's and the tutorial's."""
    game = registry.get(seed.GAME)
    assert game is not None
    big, small = args.big, args.small
    with phase("seed the small board and the tutorial's lists"):
        seed.seed_log(client, seed.GAME, seed.SMALL, seed.entries(small, first_at))
        storage.time_rebuild(client, game, seed.SMALL)
        seed.seed_tutorial_list(client, seed.GAME, seed.LARGE, seed.entries(big, first_at))
        seed.seed_tutorial_list(client, seed.GAME, seed.SMALL, seed.entries(small, first_at))
        list_bytes = storage.key_bytes(client, list_key(seed.GAME, seed.LARGE)) / big
    secs, conns = args.read_seconds, args.read_connections
    boards = {seed.LARGE: big, seed.SMALL: small}
    with phase("reads: hiscore, both boards in alternating rounds"):
        mine = reads.compare_boards(
            stack.web_url,
            seed.GAME,
            boards,
            secs,
            conns,
            stack.run_dir,
            before_each=lambda: quiet(client),
        )
    theirs: dict[str, dict[str, WrkRun]] = {}
    for variant, players in boards.items():
        with phase(f"reads: the tutorial's design, {players:,} entries"):
            quiet(client)
            if variant == seed.LARGE:
                # Each read fetches and decodes the whole list: seconds and much memory apiece
                # on a large board, so one request at a time per gunicorn worker.
                theirs[variant] = {
                    kind: reads.slow_read(
                        stack.baseline_url, seed.GAME, variant, players, kind, secs, threads=2
                    )
                    for kind in reads.KINDS
                }
            else:
                theirs[variant] = reads.compare_boards(
                    stack.baseline_url,
                    seed.GAME,
                    {variant: players},
                    secs,
                    conns,
                    stack.run_dir,
                    rounds=1,
                )[variant]
    return {
        "tutorial_list_per_entry": list_bytes,
        "reads": {
            **{f"hiscore_{variant}": _rates(runs) for variant, runs in mine.items()},
            **{f"tutorial_{variant}": _rates(runs) for variant, runs in theirs.items()},
        },
    }


def run_benchmarks(
    stack: Stack, client: redis.Redis, args: argparse.Namespace, tokens: bool
) -> dict:
    """Every benchmark, in order; return the raw measurements."""
    phase = Phases(stack)
    out: dict[str, Any] = {"phases": phase.done}
    registry = load_registry(stack.base_env["HISCORE_GAMES_FILE"])
    out["configuration_probe"] = configurations.probe(stack)
    scores = Scores(stack, tokens, args.connections)
    out.update(measure_ingest(stack, client, args, phase, scores))
    first_at = now_ms() - 60_000 - args.big  # every seeded entry in the recent past
    out.update(measure_storage(client, registry, args, phase, first_at))
    measured = measure_reads(stack, client, registry, args, phase, first_at)
    out["reads"] = measured["reads"]
    out["memory"]["tutorial_list_per_entry"] = measured["tutorial_list_per_entry"]
    out["memory"]["record_bytes"] = out["latency"]["record_bytes"]
    out.update(games.measure_games(stack, client, registry, args, phase, lambda: quiet(client)))
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
    lines += _latency_lines(lat, "½ bare LPUSH")
    lines += _latency_lines(out["latency_sustainable"], "½ hiscore's 202 rate")
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
    family = memory["large_family"]
    lines += [
        compare(
            f"rebuild {big} entries, over live boards (s)",
            rebuild["rebuild_s"],
            rebuild["bare_s"],
            "ZADD+RENAME",
            "≤ 1.5",
            at_most=1.5,
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


CPU_COLUMNS = ("web", "worker", "redis", "load")


def _cpu(used: dict[str, float], names: tuple[str | None, ...]) -> str:
    cells = [used.get(name) if name else None for name in names]
    return " / ".join("—" if value is None else f"{value:.2f}" for value in cells)


def _latency_lines(lat: dict[str, Any], load: str) -> list[Figure]:
    at = f"at {lat['rate']:,.0f}/s ({load})"
    to_202 = lat["submit_202_p50_ms"], lat["submit_202_p99_ms"]
    visible = lat["submit_visible_p50_ms"], lat["submit_visible_p99_ms"]
    settled = lat["settled_p50_ms"], lat["settled_p99_ms"]
    return [
        Figure(
            f"submit→202 p50 / p99 {at} (ms)",
            _pair(*to_202),
            target="p99 ≤ 10",
            met=_at_most(to_202[1], 10),
        ),
        Figure(
            f"submit→visible p50 / p99 {at} (ms)",
            _pair(*visible),
            target="p99 ≤ 250",
            met=_at_most(visible[1], 250),
        ),
        Figure(
            "  received→settled p50 / p99, from the records (ms)",
            _pair(*settled) if lat["settled_at_in_records"] else "no settled_at in the records",
        ),
    ]


def _pair(p50: float | None, p99: float | None) -> str:
    return " / ".join("—" if v is None else f"{v:,.1f}" for v in (p50, p99))


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


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
    for name in ("latency", "latency_sustainable"):
        lat = out[name]
        if lat["other_answers"]:
            found.append(f"{name}: {lat['other_answers']} requests were not answered 202")
        if lat["not_seen_visible"]:
            found.append(f"{name}: {lat['not_seen_visible']} accepted submissions never announced")
        if set(lat["statuses"]) - {"accepted"}:
            found.append(f"{name}: verdicts {lat['statuses']}")
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
    suspect (see :func:`problems`)."""
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
        client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        server = redis_server(client)
        out = run_benchmarks(stack, client, args, config.tokens)
        client.close()
        failed = False
    finally:
        stack.stop()
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
    notes = noisy(out["phases"])
    for note in notes:
        print(f"NOTE: {note}")
    suffix = "-quick" if args.quick else ""
    path = args.output or RESULTS / f"{date.strftime('%Y-%m-%dT%H%M%SZ')}{suffix}.json"
    write_json(path, header, lines, {**out, "warnings": warnings, "noise": notes})
    print(f"\n{header['seconds']:.0f} s in all; written to {path}")
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
