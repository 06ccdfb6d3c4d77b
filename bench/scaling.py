"""``python -m bench --scaling`` (``./dev bench --scaling``): the worker side's capacity, in
entries settled per second from a pre-filled ingest stream, with 1, 2 and 4 drain processes.

A drain process is a real Celery worker on the ``ingest`` queue as the Procfile starts it, with
``--concurrency=1`` (one pool process: k workers are k processes that drain), in production's
configuration (run tokens required and checked, JSON log lines at INFO, one line a verdict;
the rate limits are the web's and count nothing here). Each worker runs through
:mod:`bench.counted_worker`, Celery's own command line with redis-py's senders wrapped to count
round trips.

Each run, for k processes: the workers stopped, Redis emptied (``FLUSHALL``) and its
append-only file rewritten; k workers started, and waited for until each has said it is ready;
then N submissions enqueued through the web's own use case
(:func:`app.leaderboard.scoring.submit_score`, so the enqueue script the web runs), by two
processes forked from the harness, each submission a new player's from an address of its own,
with its rate limits counted in the script as the web counts a score's and a run token of its
own signed with the workers' secret, issued long enough before to cover its claimed play time;
the drain each enqueue asked for is held back until the stream holds all N, and the AOF is
rewritten again (so that no rewrite forks during the window unless the drains' writes double
it). The submissions spread over the ingest partitions by their ids (the configuration's
count, 8 by default; ``--partitions``). Then the clock starts, each partition's lease is asked
for and a drain task of it sent, as the web does for the first submission that finds a
partition with no lease, and the harness polls the verdict counts until N are settled (every
10 ms, a pipelined ``HGETALL`` per partition). Figures of the window from the drains' start to the
last verdict: entries per second; each component's CPU per entry (the workers' processes, from
/proc; Redis's from ``INFO cpu``, and its time in scripts from ``INFO commandstats``, reset at
the start); the round trips the workers made to the data Redis per batch, by kind; entries per
batch (an acknowledgement is one batch's) and the streams a batch acknowledges; the drains that
settled entries, with the partitions each held (from their log lines); the cores the
machine was busy and how much of that was no process of the run's. Every entry must be settled,
accepted and off the stream, and its record final, or the run is suspect. The fill gives the
web's side in Redis too: Redis's CPU and script time per submission enqueued. Once a run, before
the rounds, the request slot's cost: Redis's time and CPU per request to count the rate limits
of a score, a session and a read, as many of each as from new clients.

Runs go round by round (1, 2, 4 processes, then again), so that a drift of the machine spreads
over every count; each count's figure is the mean of its rounds. ``--profile`` adds a run at 2
processes with py-spy sampling one pool process from outside for the middle of it (not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any, cast

import redis
from flask import Flask

from app import create_app
from app.clock import now_ms
from app.extensions import get_registry, get_token_policy
from app.leaderboard import run_tokens, scoring, statuses
from app.leaderboard.players import player_key
from app.leaderboard.schemas import ScoreIn
from app.storage import intake, keys, rate_limits, submissions
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.submissions import Generation
from app.worker.tasks import request_drain
from bench import configurations, counted_worker, ingest, profile, seed
from bench.processes import (
    BIN,
    Service,
    children,
    group_cpu_seconds,
    machine_busy_seconds,
    wait_until,
)
from bench.report import Figure, compare, machine, redis_server, table, write_json
from bench.sessions import LONGEST_CLAIM_S, score_fields

RESULTS = Path(__file__).resolve().parent / "results"
GAME = seed.INGEST_GAME
VARIANT = "100"
#: The counts of drain processes measured, and the least speed-up wanted at 2 of them.
PROCESSES = (1, 2, 4)
TARGET_AT_TWO = 1.7
#: How often the harness reads the verdict counts while the drains run (seconds).
POLL_S = 0.01
#: A run that settles nothing new for this long has stalled (seconds).
STALL_S = 30
#: Other processes taking this much CPU (in cores, on average) during a run make it noisy.
NOISY_CORES = 0.2
#: Records read per round trip when checking that every entry is settled.
READ_CHUNK = 1000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--quick`` makes a smoke run of it."""
    p = argparse.ArgumentParser(
        prog="python -m bench --scaling",
        description="Entries settled per second from a pre-filled stream by 1, 2 and 4 drain "
        "processes (Celery workers on the ingest queue, concurrency 1 each).",
    )
    p.add_argument("--quick", action="store_true", help="few entries, one round (a smoke run)")
    p.add_argument("--entries", type=int, help="entries pre-filled per run (default 50,000)")
    p.add_argument(
        "--processes",
        default=",".join(str(k) for k in PROCESSES),
        help="counts of drain processes, comma-separated (default 1,2,4)",
    )
    p.add_argument("--rounds", type=int, help="runs of each count (default 2, quick 1)")
    p.add_argument(
        "--partitions", type=int, help="HISCORE_INGEST_PARTITIONS (default: the configuration's)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more run at 2 processes, with py-spy sampling one of them (not counted)",
    )
    p.add_argument("--output", type=Path, help="JSON file (default bench/results/scaling.json)")
    p.add_argument("--keep", action="store_true", help="keep the run folder (logs, Redis data)")
    args = p.parse_args(argv)
    if args.entries is None:
        args.entries = 2_000 if args.quick else 50_000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    args.processes = [int(k) for k in str(args.processes).split(",") if k.strip()]
    if not args.processes or min(args.processes) < 1 or args.entries < 1 or args.rounds < 1:
        p.error("--processes, --entries and --rounds must be positive")
    if args.output is None:
        args.output = RESULTS / ("scaling-quick.json" if args.quick else "scaling.json")
    return args


class Bench:
    """Redis, the harness's own app (to enqueue and to send drain tasks as the web does) and
    the workers of the current run."""

    def __init__(self, run_dir: Path, config: configurations.Configuration) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.counts_dir = run_dir / "counts"
        self.counts_dir.mkdir()
        self.redis = EmbeddedRedis(run_dir / "redis")
        self.config = config
        self.workers: list[Service] = []
        self._started = 0  # workers started so far: each gets a name and log of its own
        self.app: Flask | None = None

    @property
    def url(self) -> str:
        """Data and broker: one Redis, the production default."""
        return self.redis.url(0)

    def env(self) -> dict[str, str]:
        """The environment of every hiscore process of the run, the harness's app included."""
        return {
            **self.config.env,
            "REDIS_URL": self.url,
            "CELERY_BROKER_URL": self.url,
            "HISCORE_GAMES_FILE": str(seed.write_games_file(self.run_dir / "games.toml")),
            "HISCORE_INSTANCE_PATH": str(self.run_dir / "instance"),
        }

    def start(self) -> redis.Redis:
        """Start Redis and build the harness's app; the client the harness reads with."""
        self.redis.start()
        # The harness enqueues with the workers' settings (their secret signs the run tokens).
        os.environ.update(self.env())
        self.app = create_app()
        return redis.Redis.from_url(self.url, decode_responses=True)

    def start_workers(self, count: int, client: redis.Redis) -> None:
        """Start ``count`` ingest workers, concurrency 1 each; return once each is ready."""
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            counted_worker.COUNTS_DIR_VARIABLE: str(self.counts_dir),
        }
        for _ in range(count):
            self._started += 1
            name = f"ingest{self._started}"
            args = [
                sys.executable,
                "-m",
                "bench.counted_worker",
                # As the Procfile's `worker` line, with one pool process and a name of its own.
                "-A",
                "celery_worker",
                "worker",
                "--loglevel=INFO",
                "--queues=ingest",
                "--concurrency=1",
                f"--hostname={name}@%h",
            ]
            self.workers.append(Service(name, args, env, self.logs).start())

        def ready() -> bool:
            for worker in self.workers:
                if not worker.alive:
                    raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
            # Celery says "<name>@<host> ready." once it consumes; the pool is up by then.
            return all(" ready." in w.log_tail(1_000_000) for w in self.workers) and all(
                children(w.popen.pid) for w in self.workers if w.popen
            )

        wait_until(ready, 120, f"{count} ingest worker(s) to be ready", every=0.2)

    def pool_processes(self) -> list[int]:
        """The pids of the workers' pool processes (the ones that drain)."""
        return [pid for w in self.workers if w.popen for pid in children(w.popen.pid)]

    def workers_cpu(self) -> float:
        """CPU seconds the current workers' processes have used (their pools included)."""
        return sum(group_cpu_seconds(w.popen.pid) for w in self.workers if w.popen)

    def check_workers(self) -> None:
        """Raise if a worker died."""
        for worker in self.workers:
            if not worker.alive:
                raise RuntimeError(f"{worker.name} died:\n{worker.log_tail()}")

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL what is left of each process group)."""
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait_stopped()
        self.workers = []

    def logs_text(self) -> str:
        """What the current workers have logged so far."""
        return "".join(w.log_tail(10**9) for w in self.workers)

    def stop(self) -> None:
        """Stop the workers, then Redis."""
        self.stop_workers()
        self.redis.stop(timeout=60)
        self.redis.kill()


def rewrite_aof(client: redis.Redis) -> None:
    """Rewrite the append-only file now and wait for it: a timed run then starts with no
    rewrite in progress and an AOF the size of the data."""

    def idle() -> bool:
        persistence = info(client, "persistence")
        return (
            not persistence["aof_rewrite_in_progress"] and not persistence["aof_rewrite_scheduled"]
        )

    wait_until(idle, 300, "Redis to finish an AOF rewrite", every=0.1)
    client.bgrewriteaof()
    wait_until(idle, 300, "Redis to finish rewriting its AOF", every=0.1)


def client_address(i: int) -> str:
    """The address the ``i``-th submission comes from: every one a client of its own."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def fill(app: Flask, url: str, count: int, tag: str) -> list[str]:
    """Enqueue ``count`` submissions as the web does, in :data:`FILL_PROCESSES` processes
    forked from this one, each a range of them; return their ids. See :func:`fill_range`."""
    share = -(-count // FILL_PROCESSES)
    ranges = [range(start, min(count, start + share)) for start in range(0, count, share)]
    # Plain processes, no pool: a pool's queues hold locks that a worker stopped at the wrong
    # moment leaves held, and the pool then waits forever for its other worker.
    context = multiprocessing.get_context("fork")
    parts = [context.Process(target=_fill_part, args=(app, url, r, tag)) for r in ranges]
    for part in parts:
        part.start()
    for part in parts:
        part.join()
    failed = [part.exitcode for part in parts if part.exitcode != 0]
    if failed:
        raise RuntimeError(f"filling the stream failed: exit status {failed}")
    return [submission_id(tag, i) for i in range(count)]


#: Processes that fill the stream: as many as the machine's cores, with the workers idle.
FILL_PROCESSES = max(1, os.cpu_count() or 1)


def submission_id(tag: str, i: int) -> str:
    """The id of the ``i``-th submission of the run ``tag``."""
    return f"scale-{tag}-{i:08d}"


def _fill_part(app: Flask, url: str, indices: range, tag: str) -> None:
    # The harness's own handler (stop every process, then exit) is not this child's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        fill_range(app, client, indices, tag)
    finally:
        client.close()


def fill_range(app: Flask, client: redis.Redis, indices: range, tag: str) -> list[str]:
    """Enqueue the submissions ``indices`` as the web does, each a new player's from an
    address of its own, with its own run token, its rate limits counted in the enqueue script
    as the web counts a score's; return their ids. The drains they ask for are not sent (see
    :func:`start_drains`)."""
    limits = app.extensions.get("hiscore.rate_limits")
    with app.app_context():
        game = get_registry().get(GAME)
        assert game is not None
        tokens = get_token_policy()
        idempotency_s = app.config["IDEMPOTENCY_WINDOW_SECONDS"]
        partitions = app.config["INGEST_PARTITIONS"]
    secret = app.config["SECRET_KEY"]
    # Issued as if each run had started before the longest claimed play time, so every token
    # is old enough for its score when it arrives; the worker checks it as of that arrival.
    issued_at = now_ms() - int(LONGEST_CLAIM_S * 1000) - 1000
    path = f"/api/v1/games/{GAME}/scores"
    ids = []
    for i in indices:
        player_id, run_id = submissions.new_id(), submissions.new_id()
        token = run_tokens.issue(tokens.secret, game.slug, VARIANT, player_id, run_id, issued_at)
        key = player_key(secret, player_id)
        claim = score_fields(i)
        body = ScoreIn(
            name=f"Scale {tag} {i}",
            score=claim["score"],
            variant=VARIANT,
            player_id=player_id,
            player_key=key,
            duration_ms=claim["duration_ms"],
            token=token,
        )
        sid = submission_id(tag, i)
        # The score's request as the web sees it, for its rate limits: the address's, the
        # scores' and the proven player's counters.
        with app.test_request_context(
            path,
            method="POST",
            json={"player_id": player_id, "player_key": key},
            environ_base={"REMOTE_ADDR": client_address(i)},
        ):
            counters = limits.counters() if limits is not None else []
        scoring.submit_score(
            client,
            game,
            body,
            submission_id=sid,
            claimed=player_id,
            tokens=tokens,
            now_ms=now_ms(),
            idempotency_s=idempotency_s,
            partitions=partitions,
            request_id=secrets.token_hex(16),
            request_drain=lambda partition: None,
            counters=counters,
        )
        ids.append(sid)
    return ids


#: The requests whose rate limits the request slot counts, as (method, path, body).
LIMITED_REQUESTS: dict[str, tuple[str, str]] = {
    "score": ("POST", f"/api/v1/games/{GAME}/scores"),
    "session": ("POST", f"/api/v1/games/{GAME}/sessions"),
    "read": ("GET", f"/api/v1/games/{GAME}/boards/{VARIANT}"),
}


def request_slot(app: Flask, client: redis.Redis, calls: int) -> dict[str, dict[str, float]]:
    """What counting one request's rate limits costs Redis, in the request slot: for a score,
    a session and a read (a board, a standing, a verdict), ``calls`` of each from clients of
    their own (a new counter each, as from many players), each one script call as the web
    makes it (a score's inside the enqueue script, a read's riding with its first command);
    the script's time in Redis per call (``INFO commandstats``)."""
    limits = app.extensions.get("hiscore.rate_limits")
    if limits is None:
        return {}
    secret = app.config["SECRET_KEY"]
    out = {}
    for n, (what, (method, path)) in enumerate(LIMITED_REQUESTS.items()):
        made = []
        for i in range(calls):
            player_id = submissions.new_id()
            body = {"player_id": player_id, "player_key": player_key(secret, player_id)}
            with app.test_request_context(
                path,
                method=method,
                json=body if method == "POST" else None,
                environ_base={"REMOTE_ADDR": client_address((n + 1) * calls + i)},
            ):
                made.append(limits.counters())
        client.config_resetstat()
        cpu = redis_cpu(client)
        for counters in made:
            rate_limits.count(client, counters)
        used = redis_cpu(client) - cpu
        script = commandstats(client).get("evalsha", {"usec": 0.0, "calls": 0})
        out[what] = {
            "counters": len(made[0]),
            "script_us_per_request": script["usec"] / calls,
            "script_calls": script["calls"],
            # The round trip's own cost too (reading, parsing, answering): the whole of a
            # session's work in Redis; a score's and a read's other commands come on top.
            "cpu_us_per_request": used * 1e6 / calls,
        }
    client.flushall()
    return out


def start_drains(app: Flask, client: redis.Redis) -> int:
    """Ask for the drains the web would have asked for while the streams filled: each
    partition's lease asked for and a drain task of it sent, as the enqueue that finds a
    partition with no lease does. Returns the tasks sent."""
    partitions = range(app.config["INGEST_PARTITIONS"])
    # The fill's own requests are there or expired; none is held (no drain ran): ask anew.
    pipe = client.pipeline(transaction=False)
    for p in partitions:
        pipe.delete(keys.drain_flag(p))
    pipe.execute()
    asked = intake.ask_drains(client, partitions)
    with app.app_context():
        for p in asked:
            request_drain(p)
    return len(asked)


def settled(client: redis.Redis) -> int:
    """Verdicts stored so far (accepted or not)."""
    return sum(ingest.verdicts(client).values())


def wait_settled(client: redis.Redis, expected: int, check: Callable[[], None]) -> float:
    """Poll until ``expected`` verdicts are stored; when (``time.monotonic()``). Raises if the
    count stops moving for :data:`STALL_S`."""
    last, moved = -1, time.monotonic()
    while True:
        done = settled(client)
        now = time.monotonic()
        if done >= expected:
            return now
        if done != last:
            last, moved = done, now
        elif now - moved > STALL_S:
            raise TimeoutError(f"{done} of {expected} entries settled, none more in {STALL_S} s")
        check()
        time.sleep(POLL_S)


def script_usec(stats: dict[str, dict[str, float]]) -> float:
    """Microseconds Redis spent in scripts (``EVALSHA``, ``EVAL``): what their commands took
    included, so no command is counted twice."""
    return sum(stats.get(name, {"usec": 0.0})["usec"] for name in ("evalsha", "eval"))


def info(client: redis.Redis, section: str) -> dict[str, Any]:
    """One section of ``INFO``."""
    return cast(dict[str, Any], client.info(section))


def redis_cpu(client: redis.Redis) -> float:
    """CPU seconds the Redis server's process has used (``INFO cpu``, forks apart)."""
    info_cpu = info(client, "cpu")
    return float(info_cpu["used_cpu_sys"]) + float(info_cpu["used_cpu_user"])


def commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Calls and microseconds per command since the last ``CONFIG RESETSTAT``."""
    return {
        name.removeprefix("cmdstat_"): {"calls": int(v["calls"]), "usec": float(v["usec"])}
        for name, v in info(client, "commandstats").items()
    }


def harness_cpu() -> float:
    """CPU seconds of this process (the polling, the enqueues) and its reaped children."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def check_records(
    client: redis.Redis, ids: list[str], idempotency_s: int, partitions: int
) -> dict[str, int]:
    """The records of ``ids`` by status (``missing`` where none)."""
    now = Generation.at(now_ms(), idempotency_s, partitions)
    found: dict[str, int] = {}
    for start in range(0, len(ids), READ_CHUNK):
        for record in statuses.read_many(client, ids[start : start + READ_CHUNK], now):
            status = record.status if record is not None else "missing"
            found[status] = found.get(status, 0) + 1
    return found


_DRAIN_RECEIVED = re.compile(r"Task hiscore\.drain\[[^\]]*\] received")
#: The line a drain that settled entries logs as it ends: its consumer, count and partitions.
_DRAIN_SETTLED = re.compile(r"([\w.@:-]+) settled (\d+) entries of ingest partitions ([\d,]+)")


def drains_logged(text: str) -> list[dict[str, Any]]:
    """The drains that settled entries, as their log lines say, in order."""
    return [
        {"consumer": m[1], "settled": int(m[2]), "partitions": [int(p) for p in m[3].split(",")]}
        for m in _DRAIN_SETTLED.finditer(text)
    ]


def run_once(
    bench: Bench,
    client: redis.Redis,
    processes: int,
    entries: int,
    tag: str,
    profile_output: Path | None = None,
    expected_s: float = 0,
) -> dict[str, Any]:
    """One run: ``processes`` workers drain ``entries`` pre-filled submissions."""
    assert bench.app is not None
    app = bench.app
    idempotency_s = app.config["IDEMPOTENCY_WINDOW_SECONDS"]
    partitions = app.config["INGEST_PARTITIONS"]
    bench.stop_workers()
    client.flushall()
    rewrite_aof(client)
    started = time.monotonic()
    bench.start_workers(processes, client)
    workers_up_s = time.monotonic() - started
    client.config_resetstat()
    fill_cpu = redis_cpu(client)
    started = time.monotonic()
    ids = fill(app, bench.url, entries, tag)
    fill_s = time.monotonic() - started
    fill_stats = commandstats(client)
    fill_redis = {
        "cpu_ms_per_entry": (redis_cpu(client) - fill_cpu) * 1000 / entries,
        "script_us_per_entry": script_usec(fill_stats) / entries,
        "command_us_per_entry": {
            name: stat["usec"] / entries
            for name, stat in sorted(fill_stats.items(), key=lambda i: -i[1]["usec"])
        },
    }
    backlog_before = intake.backlog(client, partitions)
    # The AOF rewritten now holds the fill as its base: the drains' writes must double it
    # before Redis forks to rewrite it again, which then shows as a fork in the window.
    rewrite_aof(client)
    logs_before = bench.logs_text()
    logged_before = len(_DRAIN_RECEIVED.findall(logs_before))
    settled_before = len(drains_logged(logs_before))
    client.config_resetstat()
    counts_before = counted_worker.read_counts(bench.counts_dir)
    cpu = {
        "workers": bench.workers_cpu(),
        "redis": redis_cpu(client),
        "harness": harness_cpu(),
        "machine": machine_busy_seconds(),
    }
    # CONFIG RESETSTAT leaves total_forks as it is: the window's are a difference.
    forks_before = int(info(client, "stats").get("total_forks", 0))
    pools = bench.pool_processes()
    profiler = (
        profile.Profiler(
            pools[0] if pools else None,
            expected_s / 2,
            profile_output,
            delay=expected_s / 4,
            # Wall-clock shares: where a drain waits matters as much as where it computes.
            idle=True,
            drop="_flush_forever",  # bench.counted_worker's writer thread, asleep
        )
        if profile_output is not None
        else None
    )
    t0 = time.monotonic()
    with profiler or contextlib.nullcontext():
        sent = start_drains(app, client)
        t1 = wait_settled(client, entries, bench.check_workers)
        used = {
            "workers": bench.workers_cpu(),
            "redis": redis_cpu(client),
            "harness": harness_cpu(),
            "machine": machine_busy_seconds(),
        }
        stats = commandstats(client)
        forks = int(info(client, "stats").get("total_forks", 0)) - forks_before
        sampled = profiler.finish() if profiler is not None else None
    window = t1 - t0
    # The workers' counts reach their files within counted_worker.FLUSH_EVERY_S; the drains
    # end within their wait for more (100 ms) after the last batch.
    time.sleep(3 * counted_worker.FLUSH_EVERY_S + 0.2)
    counts_after = counted_worker.read_counts(bench.counts_dir)
    trips = counted_worker.counts_between(counts_before, counts_after)
    logs_after = bench.logs_text()
    drains_received = len(_DRAIN_RECEIVED.findall(logs_after)) - logged_before
    drains = drains_logged(logs_after)[settled_before:]
    verdicts = ingest.verdicts(client)
    records = check_records(client, ids, idempotency_s, partitions)
    backlog_after = intake.backlog(client, partitions)
    delta = {name: used[name] - cpu[name] for name in cpu}
    ours = delta["workers"] + delta["redis"] + delta["harness"]
    if sampled is not None:
        ours += sampled.get("profiler_cpu_s", 0)
    out: dict[str, Any] = {
        "processes": processes,
        "entries": entries,
        "tag": tag,
        "workers_up_s": round(workers_up_s, 2),
        "fill_s": round(fill_s, 2),
        "fill_rate": entries / fill_s if fill_s else None,
        # Redis's side of the web's enqueue (and the workers' idle heartbeats meanwhile).
        "fill_redis": fill_redis,
        "partitions": partitions,
        "backlog_before": backlog_before.totals(),
        "backlog_before_by_partition": backlog_before.partitions,
        "window_s": window,
        "rate": entries / window,
        "drain_tasks_sent": sent,
        "drain_tasks_received": drains_received,
        # Each drain that settled entries: how many, and the partitions it held.
        "drains": drains,
        "cpu_s": {name: round(v, 3) for name, v in delta.items()},
        "cpu_ms_per_entry": {
            "workers": delta["workers"] * 1000 / entries,
            "redis": delta["redis"] * 1000 / entries,
            "harness": delta["harness"] * 1000 / entries,
        },
        "cores_busy": delta["machine"] / window,
        "other_cores": max(0.0, (delta["machine"] - ours) / window),
        "redis_forks": forks,
        "commandstats": stats,
        "redis_script_ms_per_entry": script_usec(stats) / 1000 / entries,
        "round_trips": trips,
        **batches(trips),
        # Each drain process's wall-clock time per entry: its CPU, its waits on Redis, and the
        # rest (waiting for a core, for a task, or sleeping).
        "process_ms_per_entry": processes * window * 1000 / entries,
        "verdicts": verdicts,
        "records": records,
        "backlog_after": backlog_after.totals(),
    }
    if sampled is not None:
        out["profile"] = sampled
    return out


def batches(trips: dict[str, Any]) -> dict[str, Any]:
    """Batches (round trips that acknowledged entries), entries per batch, and the round trips
    of every kind per batch."""
    count = sum(n for what, n in trips["trips"].items() if "XACK" in what.split())
    total = sum(trips["trips"].values())
    waited = trips.get("seconds", {})
    acked = trips["acked"]
    return {
        "batches": count,
        # Time the drain processes waited on Redis, per entry: each round trip from its send
        # to its last reply (Redis's work for it, what Redis did first, redis-py's own).
        "redis_wait_ms_per_entry": sum(waited.values()) * 1000 / acked if acked else None,
        "redis_wait_ms_per_batch_by_kind": {what: t * 1000 / count for what, t in waited.items()}
        if count
        else {},
        "batch_size": trips["acked"] / count if count else None,
        # Streams (partitions) a batch's acknowledgement covers: its transactions.
        "streams_per_batch": trips["streams"] / count if count else None,
        "round_trips_per_batch": total / count if count else None,
        "round_trips_per_batch_by_kind": {what: n / count for what, n in trips["trips"].items()}
        if count
        else {},
    }


def problems(run: dict[str, Any]) -> list[str]:
    """What makes a run's figures suspect: an entry not settled, not accepted, left on the
    stream, or a record that is not final."""
    k, n = run["processes"], run["entries"]
    found = []
    accepted = run["verdicts"].get("accepted", 0)
    if accepted != n:
        found.append(f"{k} process(es): {accepted} of {n} entries accepted: {run['verdicts']}")
    if run["records"] != {"accepted": n}:
        found.append(f"{k} process(es): records of the entries: {run['records']}")
    if any(run["backlog_after"].values()):
        found.append(f"{k} process(es): left on the stream: {run['backlog_after']}")
    if run["round_trips"]["acked"] != n:
        found.append(f"{k} process(es): {run['round_trips']['acked']} of {n} acknowledgements")
    return found


def summary(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each count of processes: the mean of its rounds' figures."""
    out: dict[int, dict[str, Any]] = {}
    for k in sorted({r["processes"] for r in runs}):
        mine = [r for r in runs if r["processes"] == k and "profile" not in r]
        if not mine:
            continue
        kinds: dict[str, list[float]] = {}
        for r in mine:
            for what, n in r["round_trips_per_batch_by_kind"].items():
                kinds.setdefault(what, []).append(n)
        out[k] = {
            "rounds": len(mine),
            "rate": mean(r["rate"] for r in mine),
            "rates": [round(r["rate"], 1) for r in mine],
            "worker_cpu_ms_per_entry": mean(r["cpu_ms_per_entry"]["workers"] for r in mine),
            "redis_cpu_ms_per_entry": mean(r["cpu_ms_per_entry"]["redis"] for r in mine),
            "redis_script_ms_per_entry": mean(r["redis_script_ms_per_entry"] for r in mine),
            "round_trips_per_batch": _mean_of(r["round_trips_per_batch"] for r in mine),
            "batch_size": _mean_of(r["batch_size"] for r in mine),
            "redis_wait_ms_per_entry": _mean_of(r["redis_wait_ms_per_entry"] for r in mine),
            "process_ms_per_entry": mean(r["process_ms_per_entry"] for r in mine),
            "streams_per_batch": _mean_of(r["streams_per_batch"] for r in mine),
            "round_trips_per_batch_by_kind": {
                what: sum(ns) / len(mine) for what, ns in kinds.items()
            },
            "cores_busy": mean(r["cores_busy"] for r in mine),
            "other_cores": mean(r["other_cores"] for r in mine),
            "drain_tasks_received": mean(r["drain_tasks_received"] for r in mine),
            "enqueue_redis_cpu_ms_per_entry": mean(
                r["fill_redis"]["cpu_ms_per_entry"] for r in mine
            ),
            "enqueue_script_us_per_entry": mean(
                r["fill_redis"]["script_us_per_entry"] for r in mine
            ),
        }
    one = out.get(1, {}).get("rate")
    for figures in out.values():
        figures["speedup"] = figures["rate"] / one if one else None
    return out


def _mean_of(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def figures(by_k: dict[int, dict[str, Any]]) -> list[Figure]:
    """The table: each count's rate against one process's, then what an entry cost at each."""
    lines = []
    one = by_k.get(1)
    for k, s in by_k.items():
        name = f"entries settled per second, {k} drain process{'es' if k > 1 else ''}"
        if k == 1 or one is None:
            lines.append(Figure(name, s["rate"]))
            continue
        two = k == 2
        target = f"≥ {TARGET_AT_TWO}" if two else ""
        at_least = TARGET_AT_TWO if two else None
        lines.append(compare(name, s["rate"], one["rate"], "1 process", target, at_least))
    for k, s in by_k.items():
        of = f", {k} process{'es' if k > 1 else ''}"
        lines += [
            Figure(f"  worker CPU ms per entry{of}", s["worker_cpu_ms_per_entry"]),
            Figure(
                f"  a drain process's ms per entry: wall / waiting on Redis{of}",
                f"{s['process_ms_per_entry']:.3f} / {_or_dash(s['redis_wait_ms_per_entry'])}",
            ),
            Figure(f"  Redis CPU ms per entry (in scripts){of}", _pair(s)),
            Figure(f"  round trips per batch{of}", s["round_trips_per_batch"]),
            Figure(f"  entries per batch (streams per batch){of}", _batch(s)),
        ]
    return lines


def _or_dash(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _batch(s: dict[str, Any]) -> str:
    size, streams = s["batch_size"], s["streams_per_batch"]
    return "—" if size is None or streams is None else f"{size:.0f} ({streams:.2f})"


def _pair(s: dict[str, Any]) -> str:
    return f"{s['redis_cpu_ms_per_entry']:.3f} ({s['redis_script_ms_per_entry']:.3f})"


def components(by_k: dict[int, dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    """Where an entry's cost went, per count of processes: the round trips of each kind per
    batch, and Redis's busiest commands per entry."""
    lines = []
    if by_k:
        cpu = mean(s["enqueue_redis_cpu_ms_per_entry"] for s in by_k.values())
        script = mean(s["enqueue_script_us_per_entry"] for s in by_k.values())
        lines.append(
            f"The web's side, as the stream was filled: Redis CPU {cpu:.3f} ms per submission "
            f"enqueued, {script:.1f} µs in its one script (the enqueue, with the score's rate "
            "limits counted as the web counts them)"
        )
    for k, s in by_k.items():
        lines.append(
            f"{k} process{'es' if k > 1 else ''}: {s['rate']:,.0f} entries/s (rounds: "
            + ", ".join(f"{r:,.0f}" for r in s["rates"])
            + f"); {s['cores_busy']:.2f} cores busy, {s['other_cores']:.2f} of them other "
            f"processes'; {s['drain_tasks_received']:.0f} drain tasks received a run"
        )
        last = [r for r in runs if r["processes"] == k and "profile" not in r][-1]
        waits = last["redis_wait_ms_per_batch_by_kind"]
        lines.append(
            "  round trips per batch, by the commands they carried (ms waited on them per "
            "batch, last round):"
        )
        for what, n in sorted(s["round_trips_per_batch_by_kind"].items(), key=lambda i: -i[1]):
            lines.append(f"    {n:6.2f}  ({waits.get(what, 0.0):7.2f} ms)  {what}")
        busiest = sorted(last["commandstats"].items(), key=lambda i: -i[1]["usec"])[:6]
        lines.append(
            "  Redis's time per entry (µs) in its busiest commands, last round (a script's "
            "time includes the commands it calls, which are listed too):"
        )
        for name, stat in busiest:
            lines.append(
                f"    {stat['usec'] / last['entries']:6.2f}  {name} "
                f"({stat['calls'] / last['entries']:.3f} calls an entry)"
            )
    return "\n".join(lines)


def noisy(runs: list[dict[str, Any]]) -> list[str]:
    """The runs during which other processes took a noticeable share of the machine, or Redis
    forked (an AOF rewrite, whose child's CPU no process of the run's counts)."""
    notes = []
    for r in runs:
        run = f"the run of {r['processes']} process(es) ({r['tag']})"
        if r["other_cores"] >= NOISY_CORES:
            notes.append(f"other processes took {r['other_cores']:.2f} cores during {run}")
        if r["redis_forks"]:
            notes.append(f"Redis forked {r['redis_forks']} time(s) during {run} (AOF rewrite)")
    return notes


def main(argv: list[str] | None = None) -> int:
    """Run every count of processes, round by round; print the table; write the JSON. Exit
    status 1 if a run's figures are suspect (see :func:`problems`)."""
    args = parse_args(argv)
    # A plain kill (a supervisor, a test's timeout) still stops every process of the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    date = datetime.now(UTC)
    run_dir = Path(tempfile.mkdtemp(prefix="hiscore-scaling-"))
    config = configurations.production()
    if args.partitions is not None:
        config.env["HISCORE_INGEST_PARTITIONS"] = str(args.partitions)
    bench = Bench(run_dir, config)
    runs: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    failed = True
    try:
        print(f"· starting redis-server (logs in {bench.logs})", flush=True)
        client = bench.start()
        server = redis_server(client)
        assert bench.app is not None
        slot = request_slot(bench.app, client, 500 if args.quick else 5_000)
        for round_no in range(1, args.rounds + 1):
            for k in args.processes:
                print(f"· round {round_no}: {k} drain process(es), {args.entries:,} entries …")
                run = run_once(bench, client, k, args.entries, f"r{round_no}k{k}")
                runs.append(run)
                print(
                    f"    filled in {run['fill_s']:.1f} s; settled {run['rate']:,.0f}/s in "
                    f"{run['window_s']:.2f} s, {run['cores_busy']:.2f} cores busy",
                    flush=True,
                )
        if args.profile:
            two = [r for r in runs if r["processes"] == 2]
            expected = mean(r["window_s"] for r in two) if two else args.entries / 5000
            print("· profiling one of 2 drain processes (not counted) …", flush=True)
            runs.append(
                run_once(
                    bench,
                    client,
                    2,
                    args.entries,
                    "profile",
                    profile_output=run_dir / "worker-profile.txt",
                    expected_s=expected,
                )
            )
        client.close()
        failed = False
    finally:
        bench.stop()
        if args.keep:
            print(f"run folder kept: {run_dir}", file=sys.stderr)
        elif failed:
            shutil.rmtree(run_dir / "redis", ignore_errors=True)
            print(f"logs kept in {bench.logs}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    by_k = summary(runs)
    lines = figures(by_k)
    header = {
        "date": date.isoformat(timespec="seconds"),
        "machine": machine(),
        "redis": server,
        "configuration": config.described(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average_before": [round(v, 2) for v in load_before],
        "seconds": round(time.monotonic() - started, 1),
    }
    m = cast(dict[str, Any], header["machine"])
    print()
    print(
        f"hiscore scaling, {header['date']} — {m['cpu']}, {m['cores']} cores, Python "
        f"{m['python']}, Redis {server['version']} — {config.title}"
        + (" — QUICK run, small sizes" if args.quick else "")
    )
    print(
        f"{args.entries:,} entries pre-filled per run, {args.rounds} round(s); drain processes: "
        "Celery workers on the ingest queue, --concurrency=1 each"
    )
    print(table(lines))
    print()
    print(components(by_k, runs))
    print(
        "The request slot: counting a request's rate limits, per request (a new client "
        "each), Redis's time in the script / its CPU with the round trip's: "
        + "; ".join(
            f"{what} {c['script_us_per_request']:.1f} / {c['cpu_us_per_request']:.1f} µs "
            f"({c['counters']:.0f} counter" + ("s)" if c["counters"] != 1 else ")")
            for what, c in slot.items()
        )
    )
    profiled = next((r["profile"] for r in runs if "profile" in r), None)
    if profiled is not None:
        print()
        print(profile.render(profiled, "Where one of 2 drain processes spent its CPU"))
    warnings = [w for r in runs for w in problems(r)]
    notes = noisy(runs)
    for warning in warnings:
        print(f"WARNING: {warning}")
    for note in notes:
        print(f"NOTE: {note}")
    details = {
        "request_slot": slot,
        "runs": runs,
        "by_processes": {str(k): v for k, v in by_k.items()},
        "warnings": warnings,
        "noise": notes,
    }
    write_json(args.output, header, lines, details)
    print(f"\n{header['seconds']:.0f} s in all; written to {args.output}")
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
