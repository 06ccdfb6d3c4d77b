"""Ingest and latency: submissions accepted end to end at saturation, against a bare ``LPUSH``
per request; and submit→202 and submit→visible at a fixed open-loop rate. The scores are as
the configuration wants them (:mod:`bench.sessions`), with a run token each in production's.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from app.leaderboard.windows import ALLTIME_PERIOD
from app.storage import keys
from bench import profile
from bench.load import Sent, WrkRun, open_loop, percentile, post_json, run_wrk
from bench.processes import Stack, http_get, wait_until
from bench.seed import INGEST_GAME
from bench.sessions import Scores

GAME = INGEST_GAME
VARIANT = "100"
WARMUP_VARIANT = "25"  # warm-ups land on another board, so the measured one starts empty
SCORES_PATH = f"/api/v1/games/{GAME}/scores"
#: hiscore's rate at saturation may exceed its warm-up's by this much before a tokened run
#: runs out of bodies (bare LPUSH's rate bounds it too).
WARMUP_RATE_MARGIN = 1.5
#: Bodies beyond the estimate: what the last requests in flight take, and a little more.
SPARE_BODIES_PER_CONNECTION = 4


def board_rows(client: redis.Redis, game: str, variant: str) -> int:
    """Rows of a variant's all-time board (one per player)."""
    return client.zcard(keys.ranking_key(game, variant, "alltime", ALLTIME_PERIOD))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def cpu_ms_per(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """CPU milliseconds each process used per item, between two :meth:`Stack.cpu_seconds`."""
    if not count:
        return {}
    return {name: round((after[name] - before.get(name, 0)) * 1000 / count, 3) for name in after}


def verdicts(client: redis.Redis) -> dict[str, int]:
    """The worker's verdicts so far, by name (``accepted``, ``rejected:<code>``)."""
    return {name: int(count) for name, count in client.hgetall(keys.VERDICT_COUNTS).items()}


def rejected_since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The rejections among the verdicts between two :func:`verdicts`, by name."""
    return {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if name.startswith("rejected") and count != before.get(name, 0)
    }


def bodies_needed(rate: float, seconds: float, connections: int) -> int:
    """Bodies for a wrk run of ``seconds`` at up to ``rate`` requests a second."""
    return math.ceil(rate * seconds) + SPARE_BODIES_PER_CONNECTION * connections


def ingest_baseline(
    stack: Stack, seconds: float, warmup: float, connections: int, scores: Scores
) -> dict:
    """202s per second of the bare-LPUSH app at saturation."""
    url = stack.baseline_url + SCORES_PATH
    warm = scores.for_baseline(WARMUP_VARIANT, "baseline-warmup")
    run_wrk(url, warmup, connections, warm.script, warm.args, work_dir=stack.run_dir)
    bodies = scores.for_baseline(VARIANT, "baseline")
    cpu = stack.cpu_seconds()
    run = run_wrk(url, seconds, connections, bodies.script, bodies.args, work_dir=stack.run_dir)
    return {
        "cpu_ms_per_submission": cpu_ms_per(cpu, stack.cpu_seconds(), run.ok),
        **_saturation(run, connections),
    }


def _saturation(run: WrkRun, connections: int) -> dict:
    """What a saturating wrk run measured, in the same fields for hiscore and the baseline."""
    return {
        "rate_202": run.ok / run.seconds,
        "accepted": run.ok,
        "seconds": run.seconds,
        "errors": run.errors + run.bad_status,
        "connections": connections,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
    }


def _wait_visible(client: redis.Redis, expected: int, stall_s: float = 30) -> tuple[float, int]:
    """Poll the board until it has ``expected`` rows; give up when it stops growing."""
    last, last_change = -1, time.monotonic()
    while True:
        rows = board_rows(client, GAME, VARIANT)
        now = time.monotonic()
        if rows >= expected:
            return now, rows
        if rows != last:
            last, last_change = rows, now
        elif now - last_change > stall_s:
            return now, rows
        time.sleep(0.01)


def _settled(client: redis.Redis) -> int:
    return sum(verdicts(client).values())


def ingest_hiscore(
    stack: Stack,
    client: redis.Redis,
    seconds: float,
    warmup: float,
    connections: int,
    scores: Scores,
    baseline_rate: float,
    before_run: Callable[[], None] = lambda: None,
) -> dict:
    """202s per second at saturation, and submissions accepted and applied per second from the
    first request to the last one visible on the board; meanwhile a profile of a web worker.

    A tokened run needs a body per request, made beforehand: as many as hiscore's warm-up rate
    says it may take (with :data:`WARMUP_RATE_MARGIN`), and never more than bare LPUSH took.
    """
    url = stack.web_url + SCORES_PATH
    at_start = verdicts(client)
    bodies = scores.for_wrk(
        WARMUP_VARIANT, bodies_needed(baseline_rate, warmup, connections), "warmup"
    )
    warm = run_wrk(url, warmup, connections, bodies.script, bodies.args, work_dir=stack.run_dir)
    scores.after_wrk(bodies, warm)
    # Every 202 settled, accepted or not (a rejection is reported, not waited for).
    settled = sum(at_start.values()) + warm.ok
    wait_until(lambda: _settled(client) >= settled, 120, "the warm-up to be settled")
    verdicts_before = verdicts(client)
    warm_rate = warm.ok / warm.seconds if warm.seconds else baseline_rate
    estimate = min(baseline_rate, WARMUP_RATE_MARGIN * warm_rate)
    bodies = scores.for_wrk(VARIANT, bodies_needed(estimate, seconds, connections), "ingest")
    before_run()
    workers = stack.web_workers()
    cpu = stack.cpu_seconds()
    started = time.monotonic()
    # The middle third of the run: py-spy's own CPU (a tenth of a core at 200 Hz) is taken from
    # the cores the run shares, so it costs the run's figures a third of what it would.
    with profile.Profiler(
        workers[0] if workers else None,
        seconds / 3,
        stack.run_dir / "web-profile.txt",
        delay=seconds / 3,
    ) as profiler:
        run = run_wrk(url, seconds, connections, bodies.script, bodies.args, work_dir=stack.run_dir)
        stopped = time.monotonic()
        rows_at_stop = board_rows(client, GAME, VARIANT)
        visible_at, rows = _wait_visible(client, run.ok)
        # Read before py-spy is reaped: its CPU is the profile's figure, not the load's.
        cpu_used = cpu_ms_per(cpu, stack.cpu_seconds(), rows)
        sampled = profiler.finish()
    scores.after_wrk(bodies, run)
    status, page = http_get(f"{stack.web_url}/api/v1/games/{GAME}/boards/{VARIANT}?limit=1")
    return {
        "cpu_ms_per_submission": cpu_used,
        **_saturation(run, connections),
        "bodies": run.extra,
        "warmup": {
            "rate_202": warm_rate,
            "errors": warm.errors + warm.bad_status,
            "bodies": warm.extra,
            "rejected_by_worker": rejected_since(at_start, verdicts_before),
        },
        "profile": sampled,
        "rate_end_to_end": min(rows, run.ok) / (visible_at - started),
        "window_s": visible_at - started,
        "drain_after_stop_s": visible_at - stopped,
        "backlog_at_stop": max(0, run.ok - rows_at_stop),
        "rows": rows,
        "missing": max(0, run.ok - rows),
        "board_total_api": page.get("total") if status == 200 and page else None,
        "rejected_by_worker": rejected_since(verdicts_before, verdicts(client)),
    }


def load_problems(out: dict[str, Any]) -> list[str]:
    """What makes the ingest figures suspect besides the runs' own failures: a warm-up that
    failed, a rejection anywhere, a run token sent twice, a session that failed to start."""
    found = []
    if out["rejected_by_worker"]:
        found.append(f"the worker rejected some submissions: {out['rejected_by_worker']}")
    warm = out["ingest"]["warmup"]
    if warm["errors"]:
        found.append(f"ingest warm-up: {warm['errors']} requests failed")
    for name, bodies in (("ingest", out["ingest"]["bodies"]), ("ingest warm-up", warm["bodies"])):
        if bodies.get("bodies_reused"):
            found.append(
                f"{name}: wrk ran out of bodies ({bodies['bodies']:,} made) and sent "
                f"{bodies['bodies_reused']:,} again, whose run tokens were used already"
            )
    if out.get("sessions", {}).get("errors"):
        found.append(f"sessions: {out['sessions']['errors']} requests failed")
    return found


async def _open_loop_with_verdicts(
    stack: Stack,
    rate: float,
    seconds: float,
    connections: int,
    tag: str,
    fields: Callable[[int], dict[str, Any]],
) -> tuple[list[Sent], dict[str, float]]:
    """Run the open loop while listening on the verdict channel; return the requests and the
    moment each submission's verdict was announced (after its boards were updated)."""
    listener_client = redis.asyncio.Redis.from_url(stack.redis_url, decode_responses=True)
    pubsub = listener_client.pubsub()
    await pubsub.subscribe(keys.VERDICT_CHANNEL)
    seen: dict[str, float] = {}

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message:
                now = time.monotonic()
                for sid in str(message["data"]).split():
                    seen.setdefault(sid, now)

    listener = asyncio.create_task(listen())
    host, port = "127.0.0.1", stack.web_port

    def make(i: int) -> tuple[str, bytes]:
        sid = f"lat-{tag}-{i:08d}"
        body = {"name": f"Latency {i}", "variant": VARIANT, **fields(i), "submission_id": sid}
        return sid, post_json(host, port, SCORES_PATH, body)

    try:
        sent = await open_loop(host, port, make, rate, seconds, connections)
        expected = {job.key for job in sent if job.status == 202}
        deadline = time.monotonic() + 60
        while not expected <= seen.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        listener.cancel()
        await pubsub.aclose()
        await listener_client.aclose()
    return sent, seen


def _records(client: redis.Redis, sids: list[str]) -> list[dict[str, Any] | None]:
    pipe = client.pipeline(transaction=False)
    for sid in sids:
        pipe.get(keys.submission_key(sid))
    return [json.loads(raw) if raw else None for raw in pipe.execute()]


def record_bytes(client: redis.Redis, sids: list[str], sample: int = 1000) -> float | None:
    """Mean ``MEMORY USAGE`` of the status records of (up to ``sample`` of) ``sids``."""
    pipe = client.pipeline(transaction=False)
    for sid in sids[:sample]:
        pipe.memory_usage(keys.submission_key(sid), samples=0)
    sizes = [size for size in pipe.execute() if size]
    return sum(sizes) / len(sizes) if sizes else None


def latency(
    stack: Stack,
    client: redis.Redis,
    rate: float,
    seconds: float,
    connections: int,
    scores: Scores,
) -> dict[str, Any]:
    """Submit→202 and submit→visible at a fixed rate; also the service's own settle time.

    Visible: the worker announces a verdict on the verdict channel after the entry is on its
    boards; the bench listens there. The records' ``settled_at - achieved_at`` (the service's
    own view, from receipt to the start of the batch that settled it) is reported beside it
    when the records carry ``settled_at``.
    """
    tag = str(int(time.time()))
    fields = scores.for_open_loop(VARIANT, int(rate * seconds))
    sent, seen = asyncio.run(
        _open_loop_with_verdicts(stack, rate, seconds, connections, tag, fields)
    )
    accepted = [job for job in sent if job.status == 202]
    to_202 = [job.answered - job.due for job in accepted if job.answered is not None]
    to_visible = [seen[job.key] - job.due for job in accepted if job.key in seen]
    records = _records(client, [job.key for job in accepted])
    settled = [
        (r["settled_at"] - r["achieved_at"]) / 1000
        for r in records
        if r and "settled_at" in r and "achieved_at" in r
    ]
    statuses: dict[str, int] = {}
    for r in records:
        status = r["status"] if r else "missing"
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "rate": rate,
        "seconds": seconds,
        "connections": connections,
        "sent": len(sent),
        "answered_202": len(accepted),
        "other_answers": len(sent) - len(accepted),
        "not_seen_visible": len(accepted) - len(to_visible),
        "statuses": statuses,
        "submit_202_p50_ms": _ms(percentile(to_202, 50)),
        "submit_202_p99_ms": _ms(percentile(to_202, 99)),
        "submit_visible_p50_ms": _ms(percentile(to_visible, 50)),
        "submit_visible_p99_ms": _ms(percentile(to_visible, 99)),
        "settled_p50_ms": _ms(percentile(settled, 50)),
        "settled_p99_ms": _ms(percentile(settled, 99)),
        "settled_at_in_records": bool(settled),
        "record_bytes": record_bytes(client, [job.key for job in accepted]),
    }
