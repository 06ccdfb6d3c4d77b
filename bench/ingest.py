"""Ingest and latency: submissions accepted end to end at saturation, against a bare ``LPUSH``
per request; and submit→202 and submit→visible at fixed open-loop rates, with the backlog
(submissions sent but not yet visible) at the end of each. The scores are as the configuration
wants them (:mod:`bench.sessions`), with a run token each in production's.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from app.clock import now_ms
from app.leaderboard import statuses
from app.leaderboard.records import SubmissionRecord
from app.leaderboard.windows import ALLTIME_PERIOD
from app.storage import intake, keys, submissions
from app.storage.submissions import LATENCY_BUCKETS, Generation, latency_bucket
from bench import profile
from bench.load import Sent, WrkRun, open_loop, percentile, post_json, run_wrk
from bench.processes import Stack, http_get, wait_until
from bench.seed import INGEST_GAME
from bench.sessions import Scores, WrkBodies
from config import DEFAULT_INGEST_PARTITIONS

GAME = INGEST_GAME
#: hiscore's variant, warm-up included: the runs a warm-up did not use serve the timed runs
#: after it, and the board's rows are counted from where the warm-up left them.
VARIANT = "100"
#: The baseline's warm-up bodies' (the baseline app keeps a list per variant, and reads none).
WARMUP_VARIANT = "25"
SCORES_PATH = f"/api/v1/games/{GAME}/scores"
#: hiscore's rate at saturation may exceed its warm-up's by this much before a tokened run
#: runs out of bodies (bare LPUSH's rate bounds it too). Measured, the run's rate was 0.74 to
#: 1.14 times the warm-up's with one ingest stream, and 1.67 times in a run with partitions
#: (600 against 1,002 a second), which then ran out. What the run leaves unsent, the
#: fixed loads after it send: they need 1.3 times what the run took, so no session is wasted
#: unless the warm-up was more than twice as fast as the run.
WARMUP_RATE_MARGIN = 2.0
#: Bodies beyond the estimate: what the last requests in flight take, and a little more.
SPARE_BODIES_PER_CONNECTION = 4
#: A fixed load's backlog (submissions sent and not yet visible) may end at this much of the
#: load's arrivals (the submit→visible target): more, and a queue was growing, in front of the
#: web or in the ingest stream: the load was above what hiscore takes.
BACKLOG_ALLOWANCE_S = 0.25
#: How often an open-loop run samples the ingest stream's length, and its backlog (seconds).
BACKLOG_EVERY_S = 0.5


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
    return submissions.read_verdict_counts(client, PARTITIONS)


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


def _run(url: str, seconds: float, connections: int, bodies: WrkBodies, stack: Stack) -> WrkRun:
    """A wrk run of scores at saturation."""
    return run_wrk(
        url,
        seconds,
        connections,
        bodies.script,
        bodies.args,
        threads=bodies.threads,
        work_dir=stack.run_dir,
    )


def ingest_baseline(
    stack: Stack, seconds: float, warmup: float, connections: int, scores: Scores
) -> dict:
    """202s per second of the bare-LPUSH app at saturation."""
    url = stack.baseline_url + SCORES_PATH
    warm = scores.for_baseline(WARMUP_VARIANT, "baseline-warmup")
    _run(url, warmup, connections, warm, stack)
    bodies = scores.for_baseline(VARIANT, "baseline")
    cpu = stack.cpu_seconds()
    run = _run(url, seconds, connections, bodies, stack)
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


def _wait_visible(
    client: redis.Redis, before: int, expected: int, stall_s: float = 30
) -> tuple[float, int]:
    """Poll the board until it has ``expected`` rows more than ``before``; give up when it
    stops growing. Returns when, and the rows added."""
    last, last_change = -1, time.monotonic()
    while True:
        rows = board_rows(client, GAME, VARIANT) - before
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

    A tokened run needs a body per request, made beforehand: the warm-up as many as bare LPUSH
    took (what it leaves unsent the run after it sends first); the run as many as hiscore's
    warm-up rate says it may take (with :data:`WARMUP_RATE_MARGIN`), and never more than bare
    LPUSH took. Each score is a new player's: a row more on the board.
    """
    url = stack.web_url + SCORES_PATH
    at_start, rows_at_start = verdicts(client), board_rows(client, GAME, VARIANT)
    count = bodies_needed(baseline_rate, warmup, connections)
    bodies = scores.for_wrk(VARIANT, count, "warmup", connections, baseline_rate)
    warm = _run(url, warmup, connections, bodies, stack)
    scores.after_wrk(bodies, warm)
    # Every 202 settled, accepted or not (a rejection is reported, not waited for), and every
    # accepted one on the board, before the run's rows are counted.
    settled = sum(at_start.values()) + warm.ok
    wait_until(lambda: _settled(client) >= settled, 120, "the warm-up to be settled")
    verdicts_before = verdicts(client)
    warm_rows = rows_at_start + verdicts_before.get("accepted", 0) - at_start.get("accepted", 0)
    wait_until(
        lambda: board_rows(client, GAME, VARIANT) >= warm_rows,
        30,
        "the warm-up's scores to be on the board",
    )
    rows_before = board_rows(client, GAME, VARIANT)
    warm_rate = warm.ok / warm.seconds if warm.seconds else baseline_rate
    estimate = min(baseline_rate, WARMUP_RATE_MARGIN * warm_rate)
    count = bodies_needed(estimate, seconds, connections)
    bodies = scores.for_wrk(VARIANT, count, "ingest", connections, baseline_rate)
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
        run = _run(url, seconds, connections, bodies, stack)
        stopped = time.monotonic()
        rows_at_stop = board_rows(client, GAME, VARIANT) - rows_before
        visible_at, rows = _wait_visible(client, rows_before, run.ok)
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


@dataclass
class OpenLoopRun:
    """What an open-loop run saw: its requests, when each submission's verdict was announced
    (after its boards were updated), and the ingest stream's length meanwhile."""

    sent: list[Sent]
    seen: dict[str, float]
    #: (monotonic time, entries waiting or being processed), from before the first request
    #: to after the last answer.
    stream: list[tuple[float, int]]


def _stream_length(client: redis.Redis) -> int:
    return sum(intake.backlog(client, PARTITIONS).totals().values())


def backlog_series(run: OpenLoopRun, every: float = BACKLOG_EVERY_S) -> list[tuple[float, int]]:
    """Submissions sent and not yet visible, every ``every`` seconds from the first request to
    the last (the last sample at the last): (seconds into the run, submissions)."""
    if not run.sent:
        return []
    due = sorted(job.due for job in run.sent)
    visible = sorted(run.seen[job.key] for job in run.sent if job.key in run.seen)
    start, end = due[0], due[-1]
    moments = [start + every * n for n in range(int((end - start) / every) + 1)]
    if moments[-1] < end:
        moments.append(end)
    return [
        (round(t - start, 2), bisect.bisect_right(due, t) - bisect.bisect_right(visible, t))
        for t in moments
    ]


async def _open_loop_with_verdicts(
    stack: Stack,
    client: redis.Redis,
    rate: float,
    seconds: float,
    connections: int,
    tag: str,
    fields: Callable[[int], dict[str, Any]],
) -> OpenLoopRun:
    """Run the open loop while listening on the verdict channel and sampling the ingest
    stream's length."""
    listener_client = redis.asyncio.Redis.from_url(stack.redis_url, decode_responses=True)
    pubsub = listener_client.pubsub()
    await pubsub.subscribe(keys.VERDICT_CHANNEL)
    seen: dict[str, float] = {}
    stream: list[tuple[float, int]] = []

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message:
                now = time.monotonic()
                for sid in str(message["data"]).split():
                    seen.setdefault(sid, now)

    async def sample() -> None:
        while True:
            await asyncio.sleep(BACKLOG_EVERY_S)
            stream.append((time.monotonic(), await asyncio.to_thread(_stream_length, client)))

    listener = asyncio.create_task(listen())
    host, port = "127.0.0.1", stack.web_port

    def make(i: int) -> tuple[str, bytes]:
        sid = f"lat-{tag}-{i:08d}"
        body = {"name": f"Latency {i}", "variant": VARIANT, **fields(i), "submission_id": sid}
        return sid, post_json(host, port, SCORES_PATH, body)

    try:
        stream.append((time.monotonic(), _stream_length(client)))
        sampler = asyncio.create_task(sample())
        try:
            sent = await open_loop(host, port, make, rate, seconds, connections)
        finally:
            sampler.cancel()
        stream.append((time.monotonic(), _stream_length(client)))
        expected = {job.key for job in sent if job.status == 202}
        deadline = time.monotonic() + 60
        while not expected <= seen.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        listener.cancel()
        await pubsub.aclose()
        await listener_client.aclose()
    return OpenLoopRun(sent, seen, stream)


#: The idempotency window of the stack's processes (the default).
WINDOW_S = 24 * 3600

#: The ingest partitions of the stack's processes (the default).
PARTITIONS = DEFAULT_INGEST_PARTITIONS


def _records(client: redis.Redis, sids: list[str]) -> list[SubmissionRecord | None]:
    now = Generation.at(now_ms(), WINDOW_S, PARTITIONS)
    found: list[SubmissionRecord | None] = []
    for start in range(0, len(sids), 1000):
        found += statuses.read_many(client, sids[start : start + 1000], now)
    return found


def record_bytes(client: redis.Redis) -> float | None:
    """``MEMORY USAGE`` a status record: of every hash of records, over the records they hold
    (their keys' own cost shared among them)."""
    names = list(client.scan_iter(match=keys.PARTITION_SUBMISSIONS_PATTERN, count=10_000))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
        pipe.hlen(name)
    replies = pipe.execute()
    size, count = sum(replies[0::2]), sum(replies[1::2])
    return size / count if count else None


def _latency_counts(client: redis.Redis) -> dict[str, int]:
    """The service's own received→settled histogram (bucket -> verdicts)."""
    raw = submissions.read_latency_histogram(client, PARTITIONS)
    return {name: int(count) for name, count in raw.items() if name.startswith("le:")}


def _bound_at(before: dict[str, int], after: dict[str, int], pct: float) -> float | None:
    """The upper bound (s) of the histogram bucket of the ``pct``-th percentile of what was
    counted between ``before`` and ``after``."""
    bounds = [(latency_bucket(b), b) for b in LATENCY_BUCKETS] + [("le:+Inf", math.inf)]
    counts = [(after.get(name, 0) - before.get(name, 0), bound) for name, bound in bounds]
    total = sum(n for n, _ in counts)
    if not total:
        return None
    rank, seen = math.ceil(total * pct / 100), 0
    for n, bound in counts:
        seen += n
        if seen >= rank:
            return bound
    return None


def latency(
    stack: Stack,
    client: redis.Redis,
    rate: float,
    seconds: float,
    connections: int,
    scores: Scores,
) -> dict[str, Any]:
    """Submit→202 and submit→visible at a fixed rate; also the service's own settle time, and
    whether it was drained as it came: the backlog (sent, not yet visible) when it ended.

    Visible: the worker announces a verdict on the verdict channel after the entry is on its
    boards; the bench listens there. The service's own view, from receipt to the start of the
    batch that settled it, is reported beside it from the service's latency histogram (the
    bound of the bucket each percentile falls in).
    """
    tag = str(int(time.time()))
    fields = scores.for_open_loop(VARIANT, rate, seconds)
    histogram_before = _latency_counts(client)
    run = asyncio.run(
        _open_loop_with_verdicts(stack, client, rate, seconds, connections, tag, fields)
    )
    histogram = _latency_counts(client)
    sent, seen = run.sent, run.seen
    backlog = backlog_series(run)
    accepted = [job for job in sent if job.status == 202]
    to_202 = [job.answered - job.due for job in accepted if job.answered is not None]
    to_visible = [seen[job.key] - job.due for job in accepted if job.key in seen]
    # Each half of the window's p99 apart: how far one window's p99 is from another's.
    middle = (sent[0].due + sent[-1].due) / 2 if sent else 0.0
    halves = [[j for j in accepted if j.due < middle], [j for j in accepted if j.due >= middle]]
    last_due = max((job.due for job in sent), default=None)
    last_seen = max((seen[job.key] for job in accepted if job.key in seen), default=None)
    records = _records(client, [job.key for job in accepted])
    by_status: dict[str, int] = {}
    for r in records:
        status = r.status if r else "missing"
        by_status[status] = by_status.get(status, 0) + 1
    return {
        "rate": rate,
        "seconds": seconds,
        "connections": connections,
        "sent": len(sent),
        "answered_202": len(accepted),
        "other_answers": len(sent) - len(accepted),
        "not_seen_visible": len(accepted) - len(to_visible),
        "statuses": by_status,
        "submit_202_p50_ms": _ms(percentile(to_202, 50)),
        "submit_202_p99_ms": _ms(percentile(to_202, 99)),
        "submit_visible_p50_ms": _ms(percentile(to_visible, 50)),
        "submit_visible_p99_ms": _ms(percentile(to_visible, 99)),
        "submit_202_p99_ms_by_half": [
            _ms(percentile([j.answered - j.due for j in h if j.answered is not None], 99))
            for h in halves
        ],
        "submit_visible_p99_ms_by_half": [
            _ms(percentile([seen[j.key] - j.due for j in h if j.key in seen], 99)) for h in halves
        ],
        "settled_p50_ms": _ms(_bound_at(histogram_before, histogram, 50)),
        "settled_p99_ms": _ms(_bound_at(histogram_before, histogram, 99)),
        "record_bytes": record_bytes(client),
        "backlog_end": backlog[-1][1] if backlog else None,
        "backlog_max": max((n for _, n in backlog), default=None),
        "backlog_allowed": backlog_allowed(rate),
        "backlog_samples": backlog,
        "stream_max": max(n for _, n in run.stream),
        "stream_samples": [(round(t - run.stream[0][0], 2), n) for t, n in run.stream],
        "all_visible_after_load_s": None
        if last_due is None or last_seen is None
        else round(max(0.0, last_seen - last_due), 3),
    }


def backlog_allowed(rate: float) -> int:
    """The most a fixed load's backlog may end at without having grown: the load's arrivals
    in :data:`BACKLOG_ALLOWANCE_S`."""
    return math.ceil(rate * BACKLOG_ALLOWANCE_S)


def backlog_grew(name: str, lat: dict[str, Any]) -> list[str]:
    """A fixed load whose backlog grew: it was above what hiscore drained then."""
    if lat["backlog_end"] is None or lat["backlog_end"] <= lat["backlog_allowed"]:
        return []
    return [
        f"{name}: {lat['backlog_end']:,} submissions sent were not yet visible when the load "
        f"ended (more than {BACKLOG_ALLOWANCE_S:g} s of it): the backlog grew, the load was "
        "above what hiscore took then, and its latencies are a queue's"
    ]


def latency_problems(name: str, lat: dict[str, Any]) -> list[str]:
    """What makes a fixed load's figures suspect: answers other than 202, verdicts never
    announced or not accepted."""
    found = []
    if lat["other_answers"]:
        found.append(f"{name}: {lat['other_answers']} requests were not answered 202")
    if lat["not_seen_visible"]:
        found.append(f"{name}: {lat['not_seen_visible']} accepted submissions never announced")
    if set(lat["statuses"]) - {"accepted"}:
        found.append(f"{name}: verdicts {lat['statuses']}")
    return found
