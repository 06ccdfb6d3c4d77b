"""Faults on real processes: a worker or one of its pool processes killed mid-stream, Redis
killed and restarted, a worker stopped mid-batch, a pickle on the queue. Every submission that
got a 202 ends on its board exactly once.

These tests run their own redis-server, web, worker and beat, since they kill them.
"""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import DefaultCookiePolicy

import psutil
import pytest
import redis
import requests

from app.clock import now_ms
from app.leaderboard import statuses
from app.leaderboard.ingest import DRAIN_BATCH
from app.storage import keys
from app.storage.embedded_redis import EmbeddedRedis
from tests.conftest import PARTITIONS, WINDOW_S, generation_at, stream_length
from tests.processes import Process, Stack, process_env, wait_for

# Each strikes, waits for the recovery and checks every submission: longer than most.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GAME, VARIANT = "guess-claimed", "100"

#: How long after a worker is back (or, where the worker stays up, after the fault) every
#: accepted submission must be on its board, the players' remaining games included: a dead
#: consumer's entries are claimed after 10 s (app.storage.intake.CLAIM_IDLE_MS) and beat sweeps each
#: second here (every 5 s by default), so this leaves room for a slow machine.
RECOVERY_BOUND_S = 60

#: How long a worker may take to exit after SIGTERM, the batch it holds finished: a dyno is
#: killed 30 s after its SIGTERM (systemd waits longer, TimeoutStopSec in deploy/systemd).
STOP_BOUND_S = 20


@pytest.fixture(scope="module")
def faults(tmp_path_factory, logs) -> Iterator[Stack]:
    """A stack of its own: redis-server, gunicorn, an ingest worker and beat."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("fault-redis")).start()
    env = process_env(
        server,
        HISCORE_INSTANCE_PATH=str(tmp_path_factory.mktemp("fault-instance")),
        HISCORE_SWEEP_EVERY="1",
        LOG_FORMAT="text",
    )
    stack = Stack(server, env, logs / "faults")
    (logs / "faults").mkdir(exist_ok=True)
    try:
        stack.start_worker("ingest", "ingest", 2)
        stack.start_web()
        stack.start_beat()
        yield stack
    finally:
        for process in (stack.web, stack.beat, *stack.workers.values()):
            if process is not None:
                process.stop()
        server.stop()


_PLAYING: list[Players] = []


@pytest.fixture
def faulty(faults) -> Iterator[Stack]:
    """The fault stack with empty boards (beat's schedule and lock kept) and a live worker."""
    doomed = [
        k
        for k in faults.data.scan_iter(count=1000)
        if not k.startswith(("hs:worker:", "hs:redbeat"))
    ]
    for start in range(0, len(doomed), 1000):
        faults.data.unlink(*doomed[start : start + 1000])
    if not faults.worker.alive:
        faults.start_worker("ingest", "ingest", 2)
    assert faults.beat.alive, faults.beat.log()
    faults.wait_idle()
    faults.mark_logs()
    yield faults
    while _PLAYING:  # a failed test leaves no one playing into the next
        _PLAYING.pop().stop()


class Players:
    """Players posting finished games over HTTP from a few threads, each game a new player.

    A try that fails (503, or no answer while Redis is down) is sent again with the same
    submission_id, as the game page does; ``accepted`` holds the ids that got a 202.
    """

    def __init__(self, stack: Stack, prefix: str, count: int, threads: int = 8) -> None:
        self.stack = stack
        self.prefix = prefix
        self.count = count
        self.threads = threads
        self.accepted: set[str] = set()
        self.unavailable = 0  # tries answered 503 or not answered at all
        self.problems: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Players:
        _PLAYING.append(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(30)

    def join(self, timeout: float = 180) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the players did not finish"
        assert not self.problems, self.problems[:5]
        assert len(self.accepted) == self.count

    def _run(self) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(self._play, range(self.count)))

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # new players
            self._local.session = session
        return self._local.session

    def _play(self, i: int) -> None:
        sid = f"{self.prefix}-{i:06d}"
        body = {
            "name": f"Player {i}",
            "score": 1 + i % 100,
            "variant": VARIANT,
            "duration_ms": 60_000,
            "submission_id": sid,
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self._stopped.is_set():
            try:
                resp = self._session().post(
                    self.stack.url(f"/api/v1/games/{GAME}/scores"), json=body, timeout=10
                )
            except requests.RequestException:
                resp = None
            if resp is not None and resp.status_code == 202:
                with self._lock:
                    self.accepted.add(sid)
                return
            if resp is not None and resp.status_code != 503:
                with self._lock:
                    self.problems.append(f"{sid}: {resp.status_code} {resp.text[:200]}")
                return
            with self._lock:
                self.unavailable += 1
            time.sleep(0.2)  # a client's back-off before it tries again
        with self._lock:
            self.problems.append(f"{sid}: no 202 within 120 s")


def settled(stack: Stack, ids: list[str]) -> dict[str, str]:
    """The final status of each of ``ids`` that has one."""
    found = {}
    now = generation_at(now_ms(), WINDOW_S)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for sid, record in zip(chunk, statuses.read_many(stack.data, chunk, now), strict=True):
            if record is not None and record.status in ("accepted", "rejected"):
                found[sid] = record.status
    return found


def count_settled(stack: Stack, prefix: str, count: int) -> int:
    """How many of a run's submissions have a verdict (whether or not 202 has come back)."""
    try:
        return len(settled(stack, [f"{prefix}-{i:06d}" for i in range(count)]))
    except redis.RedisError:
        return 0


def each_applied_once(stack: Stack, accepted: set[str], since: float) -> float:
    """Wait until every accepted submission has its verdict, at most :data:`RECOVERY_BOUND_S`
    from ``since`` (a ``time.monotonic()``: when the worker was back), then check that each is
    on the log and the board exactly once. Returns the seconds from ``since``."""
    ids = sorted(accepted)
    # Done means every verdict stored and the stream empty: an entry whose worker died after
    # its verdict and before its acknowledgement is claimed and dropped too.
    wait_for(
        lambda: len(settled(stack, ids)) == len(ids) and not backlog(stack),
        since + RECOVERY_BOUND_S - time.monotonic(),
        f"a verdict for every accepted submission, and an empty stream, {RECOVERY_BOUND_S} s"
        " after the worker was back",
        every=0.25,
    )
    waited = time.monotonic() - since
    assert set(settled(stack, ids).values()) == {"accepted"}
    logged = Counter(fields["sid"] for _, fields in stack.data.xrange(keys.log_key(GAME, VARIANT)))
    assert set(logged) == accepted
    assert max(logged.values()) == 1
    ranking = keys.ranking_key(GAME, VARIANT, "alltime", "all")
    assert stack.data.zcard(ranking) == len(accepted)  # one new player each
    assert stream_length(stack.data) == 0
    return waited


def backlog(stack: Stack) -> int:
    """Submissions on the ingest streams, waiting or being worked on."""
    return stream_length(stack.data)


def in_flight(stack: Stack) -> dict[str, int]:
    """Entries read by a drain and not yet settled, by consumer (``<worker>:<pid>``), over
    every partition."""
    held: Counter[str] = Counter()
    for p in range(PARTITIONS):
        try:
            summary = stack.data.xpending(keys.ingest_stream(p), keys.INGEST_GROUP)
        except redis.ResponseError:  # no group yet
            continue
        for c in summary["consumers"] or []:
            held[c["name"]] += int(c["pending"])
    return dict(held)


def held_by(stack: Stack, pids: set[int]) -> dict[str, int]:
    """What the consumers of the processes ``pids`` hold (a consumer is ``<worker>:<pid>``)."""
    return {c: n for c, n in in_flight(stack).items() if int(c.rsplit(":", 1)[1]) in pids}


def held_submissions(stack: Stack, consumer: str) -> set[str]:
    """The submissions whose stream entries ``consumer`` holds."""
    sids = set()
    for p in range(PARTITIONS):
        stream = keys.ingest_stream(p)
        try:
            pending = stack.data.xpending_range(
                stream, keys.INGEST_GROUP, "-", "+", 10 * DRAIN_BATCH, consumername=consumer
            )
        except redis.ResponseError:  # no group yet
            continue
        for entry in pending:
            for _, fields in stack.data.xrange(stream, entry["message_id"], count=1):
                sids.add(json.loads(fields["p"])["submission_id"])
    return sids


def pause_mid_batch(
    stack: Stack, worker: Process, at_least: int = 1
) -> tuple[list[psutil.Process], dict[str, int]]:
    """Stop every process of ``worker`` (SIGSTOP) at a moment when one of its drains holds at
    least ``at_least`` stream entries; return the stopped processes and what each of the
    worker's consumers holds.

    Stopped, the worker holds exactly that until it is killed or let go on: a strike then
    cannot land between two batches.
    """
    deadline = time.monotonic() + 60
    while True:
        pids = worker.pids()
        wait_for(
            lambda: max(held_by(stack, pids).values(), default=0) >= at_least,  # noqa: B023
            deadline - time.monotonic(),
            f"a drain of {worker.name} holding {at_least} entries",
            every=0.002,
        )
        tree = worker.pause()
        # A command the worker wrote before it stopped is read by Redis no later than this
        # PING (in the same turn of its event loop at the latest), so XPENDING sees its effect.
        stack.data.ping()
        held = held_by(stack, {p.pid for p in tree})
        if max(held.values(), default=0) >= at_least:
            return tree, held
        worker.resume(tree)  # the batch was settled in between: try again


def report(**figures: object) -> None:
    print("figures:", ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_a_worker_killed_mid_stream_loses_and_repeats_nothing(faulty):
    players = Players(faulty, "kill9", 3000).start()
    wait_for(lambda: count_settled(faulty, "kill9", 3000) >= 300, 60, "300 verdicts")
    first = faulty.worker
    stopped, held = pause_mid_batch(faulty, first)
    first.kill()  # kill -9, the pool processes with it
    dead = held_by(faulty, {p.pid for p in stopped})
    # The dead worker's entries wait, pending for it, to be claimed.
    assert dead == held and sum(dead.values()) > 0, dead
    lost_with_it = set().union(*(held_submissions(faulty, c) for c in dead))
    players.join()  # the web takes scores with no worker at all
    waiting = backlog(faulty)
    # Enough that the next worker reads full batches from what no one has read yet.
    assert waiting - sum(dead.values()) >= DRAIN_BATCH, waiting
    # Again while the next worker works through that backlog, a full batch read (of every
    # partition its drain holds, together).
    second = faulty.start_worker("ingest", "ingest", 2)
    stopped, held_again = pause_mid_batch(faulty, second, at_least=DRAIN_BATCH)
    second.kill()
    dead_again = held_by(faulty, {p.pid for p in stopped})
    assert dead_again == held_again and max(dead_again.values()) >= DRAIN_BATCH, dead_again
    lost_with_it |= set().union(*(held_submissions(faulty, c) for c in dead_again))
    # One submission an entry, each one a 202 came back for.
    assert len(lost_with_it) == sum(dead.values()) + sum(dead_again.values())
    assert lost_with_it <= players.accepted
    restarted = time.monotonic()
    faulty.start_worker("ingest", "ingest", 2)
    waited = each_applied_once(faulty, players.accepted, since=restarted)
    report(
        accepted=len(players.accepted),
        in_the_killed_batch=sum(dead.values()),
        on_stream_after_the_first_kill=waiting,
        in_the_batch_of_the_second_kill=max(dead_again.values()),
        all_settled_s_after_restart=round(waited, 1),
    )


def test_a_pool_process_killed_mid_batch_loses_nothing(faulty):
    players = Players(faulty, "oom", 2000).start()
    wait_for(lambda: count_settled(faulty, "oom", 2000) >= 200, 60, "200 verdicts")
    main = psutil.Process(faulty.worker.popen.pid)
    pool = {p.pid for p in main.children()}
    stopped, held = pause_mid_batch(faulty, faulty.worker)
    consumer = max(held, key=held.get)
    victim = int(consumer.rsplit(":", 1)[1])  # the pool process holding the batch
    assert victim in pool
    killed = time.monotonic()
    psutil.Process(victim).kill()  # what the OOM killer does
    faulty.worker.resume(stopped)  # the worker's main process and its other pool process
    # The dead pool process's entries wait, pending for it, to be claimed.
    assert in_flight(faulty).get(consumer, 0) == held[consumer] > 0
    players.join()
    waited = each_applied_once(faulty, players.accepted, since=killed)
    assert faulty.worker.alive and main.is_running()
    report(
        accepted=len(players.accepted),
        in_the_killed_batch=held[consumer],
        all_settled_s_after_kill=round(waited, 1),
    )


def test_a_worker_stopped_mid_batch_finishes_it(faulty):
    players = Players(faulty, "term", 2000).start()
    wait_for(lambda: count_settled(faulty, "term", 2000) >= 200, 60, "200 verdicts")
    worker = faulty.worker
    stopped, held = pause_mid_batch(faulty, worker)
    batch = set().union(*(held_submissions(faulty, c) for c, n in held.items() if n))
    stopping = time.monotonic()
    worker.signal(signal.SIGTERM)  # to the group, as honcho or a dyno does; pending while stopped
    worker.resume(stopped)
    try:
        worker.popen.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still ran {STOP_BOUND_S} s after SIGTERM:\n{worker.log()[-3000:]}")
    stop_s = time.monotonic() - stopping
    log = worker.log()
    assert "Warm shutdown" in log
    assert "WorkerLostError" not in log and "Traceback" not in log, log[-3000:]
    # It finished the batch it held: its consumers hold nothing, and each entry has a verdict.
    assert sum(held_by(faulty, {p.pid for p in stopped}).values()) == 0
    assert batch and set(settled(faulty, sorted(batch))) == batch
    players.join()
    back = time.monotonic()
    faulty.start_worker("ingest", "ingest", 2)
    waited = each_applied_once(faulty, players.accepted, since=back)
    report(
        accepted=len(players.accepted),
        in_the_batch_at_sigterm=len(batch),
        stopped_in_s=round(stop_s, 1),
        waited_s=round(waited, 1),
    )


class _Trap:
    """Unpickling this would create a file: proof of whether a pickle was ever loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_message_is_refused(faulty, tmp_path):
    trap = tmp_path / "unpickled"
    body = pickle.dumps(((_Trap(str(trap)),), {}, {}))
    with faulty.celery.connection_for_write() as conn:
        conn.default_channel.basic_publish(
            conn.default_channel.prepare_message(
                body,
                content_type="application/x-python-serialize",
                content_encoding="binary",
                headers={"task": "hiscore.ingest", "id": "pickled-0001", "lang": "py"},
            ),
            exchange="",
            routing_key="ingest",
        )
    wait_for(lambda: "untrusted content" in faulty.worker.log(), 30, "the worker to refuse it")
    assert not trap.exists()
    players = Players(faulty, "after-pickle", 20).start()
    players.join()
    each_applied_once(faulty, players.accepted, since=time.monotonic())
    assert faulty.worker.alive


def test_redis_killed_and_restarted_loses_nothing_that_got_a_202(faulty):
    players = Players(faulty, "redis9", 3000).start()
    wait_for(lambda: count_settled(faulty, "redis9", 3000) >= 300, 60, "300 verdicts")
    accepted_before = len(players.accepted)
    faulty.server.kill()  # kill -9; the AOF has every write Redis acknowledged
    wait_for(lambda: players.unavailable >= 20, 30, "clients to find the store down")
    down_s_started = time.monotonic()
    faulty.server.start()
    back = time.monotonic()
    down_s = back - down_s_started
    players.join()
    # A Celery worker may exit when its Redis broker goes away under it (kombu acking on the
    # dropped connection); systemd or the dyno manager starts it again, as this does.
    supervisor_restarted_worker = not faulty.worker.alive
    if supervisor_restarted_worker:
        faulty.start_worker("ingest", "ingest", 2)
    waited = each_applied_once(faulty, players.accepted, since=back)
    assert faulty.web.alive and faulty.beat.alive  # both ride out the restart
    report(
        accepted=len(players.accepted),
        accepted_before_kill=accepted_before,
        tries_refused_while_down=players.unavailable,
        restart_s=round(down_s, 1),
        worker_restarted=supervisor_restarted_worker,
        waited_s=round(waited, 1),
    )
