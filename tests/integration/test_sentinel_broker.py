"""The broker on a Redis Sentinel set: beat, the worker and the web go through it, and when its
master is lost mid-stream (killed, or frozen as a host that vanished) the sentinels promote the
replica and everything carries on through the new master, with no submission that got a 202
lost and no score answered 5xx or held long.

The data lives on a plain redis-server of its own; only Celery's messages are on the Sentinel
set. A submission is stored in the data Redis before its 202 and the broker carries only the
tasks that tell a worker to drain the stream, so what a failover may lose (a drain task not yet
copied to the replica, a send refused while no master is named) the sweep makes good. The
worker is the same process before and after: it rides out the break of its connection while it
holds a task (which kombu's own Redis transport does not, see app/worker/redis_transport.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import pytest
import requests

from app.storage import intake
from app.storage.embedded_redis import EmbeddedRedis
from app.worker.status import verdict_counts
from config import BROKER_SOCKET_TIMEOUT, DEFAULT_INGEST_PARTITIONS
from tests.brokers import SentinelSet
from tests.processes import Stack, process_env, unrecoverable_errors, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GAME, VARIANT = "guess-claimed", "100"
AUTH = {"Authorization": "Bearer testing-operator-token"}

#: How long after the players stop every accepted submission must have its verdict: a drain
#: task lost with the old master is made good by the sweep (every second here).
RECOVERY_BOUND_S = 60


@pytest.fixture(scope="module")
def sentinel_stack(tmp_path_factory, logs) -> Iterator[tuple[Stack, SentinelSet]]:
    """A web, a worker (both queues) and beat whose broker is a Sentinel set; the data on a
    redis-server of its own."""
    folder = logs / "sentinel"
    folder.mkdir(exist_ok=True)
    brokers = SentinelSet(tmp_path_factory.mktemp("sentinel-broker"), folder)
    data = EmbeddedRedis(tmp_path_factory.mktemp("sentinel-data"))
    stack: Stack | None = None
    try:
        brokers.start()
        data.start()
        env = process_env(
            data,
            CELERY_BROKER_URL=brokers.url,
            CELERY_BROKER_MASTER_NAME=brokers.master_name,
            HISCORE_INSTANCE_PATH=str(tmp_path_factory.mktemp("sentinel-instance")),
            HISCORE_SWEEP_EVERY="1",
            HISCORE_STATS_EVERY="1",
        )
        stack = Stack(data, env, folder)
        stack.start_worker("ingest", "ingest,maintenance", 2)
        stack.start_web()
        stack.start_beat()
        yield stack, brokers
    finally:
        if stack is not None:
            for process in stack.processes:
                process.stop()
        brokers.stop()
        data.stop()


@dataclass
class Answer:
    """One try of one submission: when it was sent and answered (monotonic s), and how."""

    sid: str
    sent: float
    answered: float
    status: int | None  # None: no answer at all


class Traffic:
    """Players posting finished games over HTTP from a few threads until stopped, each game a
    new player. A try answered 503 (or not at all) is sent again with the same submission_id,
    as the game page does; every try is kept."""

    def __init__(self, stack: Stack, prefix: str, threads: int = 6, pause_s: float = 0.005):
        self.stack = stack
        self.prefix = prefix
        self.threads = threads
        self.pause_s = pause_s  # between one player's games: a steady stream, not a flood
        self.tries: list[Answer] = []
        self.accepted: dict[str, str] = {}  # submission id -> player id
        self.problems: list[str] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._play, daemon=True) for _ in range(threads)]

    def start(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "the players did not stop"

    def _play(self) -> None:
        session = requests.Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # new players
        while not self._stop.is_set():
            with self._lock:
                i, self._next = self._next, self._next + 1
            self._submit(session, f"{self.prefix}-{i:06d}", i)
            time.sleep(self.pause_s)

    def _submit(self, session: requests.Session, sid: str, i: int) -> None:
        body = {
            "name": f"Player {i}",
            "score": 1 + i % 100,
            "variant": VARIANT,
            "duration_ms": 60_000,
            "submission_id": sid,
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                resp: requests.Response | None = session.post(
                    self.stack.url(f"/api/v1/games/{GAME}/scores"), json=body, timeout=30
                )
            except requests.RequestException:
                resp = None
            status = resp.status_code if resp is not None else None
            with self._lock:
                self.tries.append(Answer(sid, sent, time.monotonic(), status))
                if resp is not None and status == 202:
                    self.accepted[sid] = resp.json()["player_id"]
                    return
                if resp is not None and status != 503:
                    self.problems.append(f"{sid}: {status} {resp.text[:200]}")
                    return
            time.sleep(0.2)  # a client's back-off before it tries again
        with self._lock:
            self.problems.append(f"{sid}: no 202 within 60 s")


def verdicts(stack: Stack, ids: list[str]) -> dict[str, str]:
    """The status of each submission, as the API answers it."""

    def one(sid: str) -> tuple[str, str]:
        resp = requests.get(stack.url(f"/api/v1/submissions/{sid}"), timeout=10)
        return sid, resp.json()["status"] if resp.ok else str(resp.status_code)

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, ids))


def board_players(stack: Stack) -> list[str]:
    """The player ids on the variant's all-time board, in rank order."""
    found: list[str] = []
    while True:
        page = requests.get(
            stack.url(f"/api/v1/games/{GAME}/boards/{VARIANT}"),
            params={"limit": 100, "offset": len(found)},
            timeout=10,
        ).json()
        found += [entry["player_id"] for entry in page["entries"]]
        if len(found) >= page["total"] or not page["entries"]:
            return found


def operator_status(stack: Stack) -> dict[str, Any]:
    resp = requests.get(stack.url("/api/v1/admin/status"), headers=AUTH, timeout=10)
    resp.raise_for_status()
    return resp.json()


def accepted_count(stack: Stack) -> int:
    """Submissions accepted so far (the verdict counts in the data Redis)."""
    return int(verdict_counts(stack.data, DEFAULT_INGEST_PARTITIONS)["accepted"])


def first_drain_after(log: str, wall: float) -> float | None:
    """The wall time (epoch s) of the first ``hiscore.drain`` task the worker logged receiving
    after ``wall``, from its JSON lines; None if none yet."""
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message", "")
        if "hiscore.drain[" in message and "received" in message:
            at = datetime.fromisoformat(record["time"]).timestamp()
            if at > wall:
                return at
    return None


def test_beat_runs_with_a_sentinel_broker(sentinel_stack):
    stack, brokers = sentinel_stack
    # The maintenance job went beat -> Sentinel broker -> worker and was recorded.
    run = wait_for(
        lambda: operator_status(stack)["beat"].get("stats"), 60, "a stats run recorded by beat"
    )
    assert run["ok"], run
    # redbeat's lock and schedule are in the data Redis (REDIS_URL), not on the broker.
    assert stack.data.exists("hs:redbeat:lock")
    master = brokers.master_port()
    assert master is not None
    assert not brokers.client(master).keys("hs:redbeat*")
    # A score through the web ends with a verdict.
    traffic = Traffic(stack, "sentinel-smoke", threads=1).start()
    wait_for(lambda: traffic.accepted, 30, "a 202")
    traffic.stop()
    sid = next(iter(traffic.accepted))
    assert stack.verdict(sid)["status"] == "accepted"


@pytest.mark.parametrize("strike", ["kill", "freeze"])
def test_the_broker_master_lost_mid_stream_loses_nothing_that_got_a_202(sentinel_stack, strike):
    """``kill``: the master's process dies (its connections are reset at once). ``freeze``:
    it stops answering with its connections open, as a host that vanished from the network
    does (SIGSTOP, then SIGKILL once the replica has taken over)."""
    stack, brokers = sentinel_stack
    brokers.heal()  # a replica to promote, whatever the test before did
    worker = stack.worker
    assert worker.alive, worker.log()[-3000:]
    pid = wait_for(lambda: stack.reported_pid(worker), 30, "the worker to give its pid")
    assert pid == worker.popen.pid
    worker.mark_log()
    before = accepted_count(stack)
    traffic = Traffic(stack, f"failover-{strike}").start()
    wait_for(lambda: accepted_count(stack) - before >= 300, 60, "300 verdicts before the strike")

    struck_wall, struck = time.time(), time.monotonic()
    old = brokers.master_port()
    assert old is not None
    frozen = brokers.nodes[old].pause() if strike == "freeze" else brokers.nodes[old].kill()
    on_stream = sum(intake.backlog(stack.data, DEFAULT_INGEST_PARTITIONS).totals().values())
    new = wait_for(lambda: brokers.promoted(old), 60, "the sentinels to promote", every=0.02)
    promoted = time.monotonic()
    if frozen:
        brokers.nodes[old].kill()  # the host never comes back

    def drained_through_new_master() -> float | None:
        assert worker.alive, worker.log()[-3000:]
        return first_drain_after(worker.log(), struck_wall)

    first_drain = wait_for(drained_through_new_master, 90, "a drain task via the new master")
    # Scores go on arriving for a while through the new master.
    settled_then = accepted_count(stack)

    def settling() -> bool:
        assert worker.alive, worker.log()[-3000:]
        return accepted_count(stack) - settled_then >= 300

    wait_for(settling, 60, "300 verdicts after it")
    traffic.stop()
    stopped = time.monotonic()

    assert not traffic.problems, traffic.problems[:5]
    ids = sorted(traffic.accepted)

    def all_accepted() -> bool:
        assert worker.alive, worker.log()[-3000:]
        return set(verdicts(stack, ids).values()) == {"accepted"}

    wait_for(all_accepted, RECOVERY_BOUND_S, "a verdict for every accepted submission", every=0.5)
    settled_s = time.monotonic() - stopped
    on_board = board_players(stack)
    assert len(on_board) == len(set(on_board))
    assert set(traffic.accepted.values()) <= set(on_board)
    # The web, beat and the worker carry on through the new master: the same worker process
    # answers through it, and never gave up on its broker.
    assert stack.web.alive and stack.beat.alive and worker.alive
    answered = wait_for(lambda: stack.reported_pid(worker), 30, "the worker via the new master")
    assert answered == pid
    log = worker.log()
    assert not unrecoverable_errors(log), unrecoverable_errors(log)
    assert brokers.client(new).info("replication")["role"] == "master"
    # The operator's status reads the queues through the new master too.
    assert wait_for(lambda: operator_status(stack)["queues"], 30, "the status to answer")

    after = [t for t in traffic.tries if t.answered >= struck]
    server_errors = [t for t in after if t.status is not None and t.status >= 500]
    unanswered = [t for t in after if t.status is None]
    assert not server_errors and not unanswered, (server_errors[:5], unanswered[:5])
    # The web's send of a drain task while the master is gone neither fails nor holds a score
    # long: a few seconds at worst (BROKER_SOCKET_TIMEOUT per try, on a frozen master).
    window = [t for t in traffic.tries if struck <= t.sent <= promoted + 1]
    slowest = max(t.answered - t.sent for t in window)
    assert slowest < 3 * BROKER_SOCKET_TIMEOUT, slowest
    in_flight_requests = sum(1 for t in traffic.tries if t.sent < struck < t.answered)
    # A task that ended after the break is acknowledged on the broken connection, which fails
    # (its message comes back after the visibility timeout, a drain of an empty stream).
    acks_not_sent = log.count("Couldn't ack")
    print(
        "figures:",
        f"strike={strike}",
        f"accepted={len(ids)}",
        f"on_stream_at_strike={on_stream}",
        f"requests_in_flight_at_strike={in_flight_requests}",
        "lost=0",
        f"promoted_s={promoted - struck:.2f}",
        f"first_drain_on_new_master_s={first_drain - struck_wall:.2f}",
        f"worker_pid_kept={pid}",
        f"acks_not_sent={acks_not_sent}",
        f"scores_sent_from_strike_to_promotion_plus_1s={len(window)}",
        f"slowest_of_them_s={slowest:.3f}",
        f"server_errors={len(server_errors)}",
        f"all_settled_s_after_stop={settled_s:.1f}",
    )


def holds_for_later(stack: Stack, task_id: str) -> bool:
    """Whether the ingestion worker holds the task for later (its countdown not yet run out)."""
    hostname = stack.worker.hostname
    scheduled = stack.celery.control.inspect(destination=[hostname], timeout=2).scheduled() or {}
    return any(entry["request"]["id"] == task_id for entry in scheduled.get(hostname, []))


def test_a_worker_holding_a_task_for_later_rides_out_the_master_killed(sentinel_stack):
    """No scores arrive, so the worker waits on the broker for its next task (beat's sweeps
    come every second) while it holds one for later, as it holds a drain that retries after a
    Redis error: the state in which kombu's own Redis transport made it exit when its
    connection broke (under a stream of scores both its processes are busy, and it is not
    waiting on the broker)."""
    stack, brokers = sentinel_stack
    brokers.heal()
    worker = stack.worker
    pid = wait_for(lambda: stack.reported_pid(worker), 30, "the worker to give its pid")
    worker.mark_log()
    held = stack.celery.send_task("hiscore.sweep", queue="ingest", countdown=20)
    wait_for(lambda: holds_for_later(stack, held.id), 30, "the worker to hold the sweep")

    old = brokers.master_port()
    assert old is not None
    brokers.nodes[old].kill()
    wait_for(lambda: brokers.promoted(old), 60, "the sentinels to promote", every=0.02)
    wait_for(
        lambda: "Connection to broker lost" in worker.log() or not worker.alive,
        30,
        "the worker to see its connection break",
    )

    def answers() -> int | None:
        assert worker.alive, worker.log()[-3000:]
        return stack.reported_pid(worker)

    assert wait_for(answers, 60, "the worker to answer via the new master") == pid
    # It takes tasks through the new master: a score gets its verdict.
    traffic = Traffic(stack, "held-for-later", threads=1).start()
    wait_for(lambda: traffic.accepted, 30, "a 202")
    traffic.stop()
    assert stack.verdict(next(iter(traffic.accepted)))["status"] == "accepted"
    assert worker.alive
    log = worker.log()
    assert not unrecoverable_errors(log), unrecoverable_errors(log)
