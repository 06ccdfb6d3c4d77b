"""Faults on real processes: a worker or one of its pool processes killed mid-stream, Redis
killed and restarted, a worker stopped mid-batch, a pickle on the queue. Every submission that
got a 202 ends on its board exactly once.

These tests run their own redis-server, web, worker and beat, since they kill them.
"""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
import requests
from redis.cluster import RedisCluster

from app.clock import now_ms
from app.leaderboard import statuses
from app.leaderboard.ingest import DRAIN_BATCH
from app.storage import keys
from app.storage.embedded_redis import EmbeddedRedis
from tests.conftest import PARTITIONS, WINDOW_S, generation_at, stream_entries, stream_length
from tests.processes import (
    ROOT,
    Process,
    Stack,
    process_env,
    unrecoverable_errors,
    wait_for,
    without_tool,
)

# Each strikes, waits for the recovery and checks every submission: longer than most.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GAME, VARIANT = "guess-claimed", "100"

#: How long after a worker is back (or, where the worker stays up, after the fault) every
#: accepted submission must be on its board, the players' remaining games included: a dead
#: consumer's entries are claimed after 10 s (app.storage.intake.CLAIM_IDLE_MS) and beat sweeps each
#: second here (every 5 s by default), so this leaves room for a slow machine.
RECOVERY_BOUND_S = 60

#: How the fault stack's Redis syncs its AOF. The tests kill it with -9 and count on it keeping
#: every write it acknowledged (a 202 among them), which "always" does; with production's
#: "everysec" a kill while the disk is slow to sync loses the writes of up to the last 2 s (see
#: test_a_killed_redis_keeps_every_write_it_acknowledged_while_its_disk_is_slow).
APPENDFSYNC = "always"

#: How long a worker may take to exit after SIGTERM, the batch it holds finished: a dyno is
#: killed 30 s after its SIGTERM (systemd waits longer, TimeoutStopSec in deploy/systemd).
STOP_BOUND_S = 20


@pytest.fixture(scope="module")
def faults(tmp_path_factory, logs) -> Iterator[Stack]:
    """A stack of its own: redis-server, gunicorn, an ingest worker and beat."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("fault-redis"), appendfsync=APPENDFSYNC).start()
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
        self.answered_at: list[float] = []  # time.monotonic() of each 202
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
                    self.answered_at.append(time.monotonic())
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
    try:
        wait_for(
            lambda: len(settled(stack, ids)) == len(ids) and not backlog(stack),
            since + RECOVERY_BOUND_S - time.monotonic(),
            f"a verdict for every accepted submission, and an empty stream, {RECOVERY_BOUND_S} s"
            " after the worker was back",
            every=0.25,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{unsettled(stack, ids)}") from None
    waited = time.monotonic() - since
    assert set(settled(stack, ids).values()) == {"accepted"}
    logged = Counter(fields["sid"] for _, fields in stack.data.xrange(keys.log_key(GAME, VARIANT)))
    assert set(logged) == accepted
    assert max(logged.values()) == 1
    ranking = keys.ranking_key(GAME, VARIANT, "alltime", "all")
    assert stack.data.zcard(ranking) == len(accepted)  # one new player each
    assert stream_length(stack.data) == 0
    return waited


def unsettled(stack: Stack, ids: list[str]) -> str:
    """What a recovery that timed out left: each partition's stream, pending entries and lease,
    the submissions still without a verdict (with their record's status, if any), and the
    tails of the worker's and beat's logs, so that the failure explains itself."""
    lines = []
    for p in range(PARTITIONS):
        stream, lease = keys.ingest_stream(p), keys.drain_flag(p)
        try:
            pending: Any = stack.data.xpending(stream, keys.INGEST_GROUP)
            pending = {
                "pending": pending["pending"],
                "consumers": {c["name"]: c["pending"] for c in pending["consumers"] or []},
            }
        except redis.ResponseError as exc:  # no group
            pending = str(exc)
        lines.append(
            f"partition {p}: xlen={stack.data.xlen(stream)} xpending={pending}"
            f" lease={stack.data.get(lease)!r} pttl={stack.data.pttl(lease)}"
        )
    done = settled(stack, ids)
    left = [sid for sid in ids if sid not in done]
    shown = left[:20]
    records = statuses.read_many(stack.data, shown, generation_at(now_ms(), WINDOW_S))
    queued = {json.loads(f["p"]).get("submission_id"): e for e, f in stream_entries(stack.data)}
    lines.append(f"{len(left)} of {len(ids)} accepted submissions without a verdict:")
    lines += [
        f"  {sid}: record {r.status if r else None}, stream entry {queued.get(sid)}"
        for sid, r in zip(shown, records, strict=True)
    ]
    for process in (stack.worker, stack.beat):
        if process is not None:
            lines.append(f"--- the last of {process.log_path}:\n{process.log()[-4000:]}")
    return "\n".join(lines)


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


def leases_held(stack: Stack) -> list[int]:
    """The partitions whose lease a drain holds (a dead one's, until it lapses)."""
    pipe = stack.data.pipeline(transaction=False)
    for p in range(PARTITIONS):
        pipe.get(keys.drain_flag(p))
    held = pipe.execute()
    return [p for p, value in enumerate(held) if value and value.startswith("d:")]


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
        stack.data.ping(**({"target_nodes": RedisCluster.PRIMARIES} if cluster(stack) else {}))
        held = held_by(stack, {p.pid for p in tree})
        if max(held.values(), default=0) >= at_least:
            return tree, held
        worker.resume(tree)  # the batch was settled in between: try again


def cluster(stack: Stack) -> bool:
    """Whether the stack's data lives on a Redis Cluster."""
    return isinstance(stack.data, RedisCluster)


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
    # partition its drain holds, together). Its first drain must not come before the watch
    # for that batch has begun: it could take the whole backlog in one read and settle it
    # unseen. So beat (its sweep) is stopped and the drains the web asked for dropped, and one
    # drain is sent as the watch begins.
    faulty.beat.stop()
    wait_for(lambda: not leases_held(faulty), 30, "the dead drains' leases to lapse", every=0.2)
    faulty.clear_broker()
    second = faulty.start_worker("ingest", "ingest", 2)
    faulty.celery.send_task("hiscore.drain", args=[None], queue="ingest")
    stopped, held_again = pause_mid_batch(faulty, second, at_least=DRAIN_BATCH)
    second.kill()
    faulty.start_beat()
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


@pytest.fixture
def slow_disk(tmp_path, monkeypatch) -> Path:
    """Make the redis-servers started in the test sync to a slow disk: each fsync takes 1 s
    longer (tests/fixtures/slow_fsync.c, preloaded); the path returned exists while one runs."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise without_tool("no C compiler to build tests/fixtures/slow_fsync.c")
    library = tmp_path / "slow_fsync.so"
    source = ROOT / "tests" / "fixtures" / "slow_fsync.c"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source, "-ldl"], check=True)
    mark = tmp_path / "syncing"
    monkeypatch.setenv("LD_PRELOAD", str(library))
    monkeypatch.setenv("SLOW_FSYNC_MS", "1000")
    monkeypatch.setenv("SLOW_FSYNC_MARK", str(mark))
    return mark


def syncing_for(mark: Path) -> float:
    """Seconds the sync under way has run (0 when none runs)."""
    try:
        return time.time() - mark.stat().st_mtime
    except FileNotFoundError:
        return 0


def test_a_killed_redis_keeps_every_write_it_acknowledged_while_its_disk_is_slow(
    tmp_path, slow_disk
):
    server = EmbeddedRedis(tmp_path / "redis", appendfsync=APPENDFSYNC).start()
    acknowledged = 0
    stop = threading.Event()

    def write() -> None:
        nonlocal acknowledged
        writer = redis.Redis(port=server.port)
        try:
            while not stop.is_set():
                writer.rpush("acknowledged", acknowledged)
                acknowledged += 1
        except redis.ConnectionError:
            pass  # killed

    writing = threading.Thread(target=write, daemon=True)
    try:
        writing.start()
        # Struck 0.3 s into a sync: what was acknowledged since it began is what is at stake.
        wait_for(
            lambda: acknowledged and syncing_for(slow_disk) > 0.3,
            30,
            "a write acknowledged and a sync 0.3 s under way",
            every=0.01,
        )
        server.kill()
        stop.set()
        writing.join(10)
        server.start()
        kept = redis.Redis(port=server.port).lrange("acknowledged", 0, -1)
        # The write in flight at the kill may be kept too.
        lost = acknowledged - len(kept)
        assert lost <= 0, f"{lost} of {acknowledged} acknowledged writes lost"
        assert kept[:acknowledged] == [str(i).encode() for i in range(acknowledged)]
    finally:
        stop.set()
        server.stop()


def test_redis_killed_and_restarted_loses_nothing_that_got_a_202(faulty):
    worker = faulty.worker
    pid = wait_for(lambda: faulty.reported_pid(worker), 30, "the worker to give its pid")
    players = Players(faulty, "redis9", 3000).start()
    wait_for(lambda: count_settled(faulty, "redis9", 3000) >= 300, 60, "300 verdicts")
    accepted_before = len(players.accepted)
    faulty.server.kill()  # kill -9; the AOF has every write Redis acknowledged (APPENDFSYNC)
    wait_for(lambda: players.unavailable >= 20, 30, "clients to find the store down")
    down_s_started = time.monotonic()
    faulty.server.start()
    back = time.monotonic()
    down_s = back - down_s_started
    players.join()
    assert worker.alive, worker.log()[-3000:]
    waited = each_applied_once(faulty, players.accepted, since=back)
    # The web, beat and the worker ride out the restart: the same worker process answers
    # through the restarted broker, and never gave up on it.
    assert faulty.web.alive and faulty.beat.alive and worker.alive
    assert wait_for(lambda: faulty.reported_pid(worker), 30, "the worker to answer") == pid
    assert not unrecoverable_errors(worker.log()), unrecoverable_errors(worker.log())
    report(
        accepted=len(players.accepted),
        accepted_before_kill=accepted_before,
        tries_refused_while_down=players.unavailable,
        restart_s=round(down_s, 1),
        acks_not_sent=worker.log().count("Couldn't ack"),
        waited_s=round(waited, 1),
    )
