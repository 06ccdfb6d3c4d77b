"""The broker on a Redis Sentinel set: beat, the worker and the web go through it, and when its
master is lost mid-stream (killed, or frozen as a host that vanished) the sentinels promote the
replica and everything carries on through the new master, with no submission that got a 202
lost and no score answered 5xx or held long.

The data lives on a plain redis-server of its own; only Celery's messages are on the Sentinel
set. A submission is stored in the data Redis before its 202 and the broker carries only the
tasks that tell a worker to drain the stream, so what a failover may lose (a drain task not yet
copied to the replica, a send refused while no master is named) the sweep makes good. The
worker may exit when its broker connection breaks while it holds a task (a kombu bug, see
:func:`died_of_kombus_close`); these tests restart it as its supervisor would.
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
from config import BROKER_SOCKET_TIMEOUT
from tests.brokers import SentinelSet
from tests.processes import Stack, process_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GAME, VARIANT = "guess-claimed", "100"
AUTH = {"Authorization": "Bearer testing-operator-token"}

#: How long after the players stop every accepted submission must have its verdict: a drain
#: task lost with the old master is made good by the sweep (every second here), and the
#: entries a worker that exited was holding are claimed 10 s after it read them.
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
    return int(verdict_counts(stack.data)["accepted"])


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


def died_of_kombus_close(log: str) -> bool:
    """Whether the worker's log ends with the crash kombu (5.7, Redis transport) causes when a
    broker connection is closed while the worker holds an unacknowledged message: the channel
    re-creates its pool after the transport has let go of its connection, and Celery's consumer
    does not catch the AttributeError."""
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                record.get("level") == "CRITICAL"
                and record.get("message", "").startswith("Unrecoverable error: AttributeError")
                and "in _connparams" in record.get("exc_info", "")
            ):
                return True
    return False


class Supervisor:
    """Restarts the worker if it exited, as systemd (``Restart=``) or a dyno manager does, and
    keeps what each exit left in its log."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.exits: list[str] = []

    def check(self) -> None:
        worker = self.stack.worker
        if not worker.alive:
            self.exits.append(worker.log())
            self.stack.start_worker("ingest", "ingest,maintenance", 2)


@pytest.mark.parametrize("strike", ["kill", "freeze"])
def test_the_broker_master_lost_mid_stream_loses_nothing_that_got_a_202(sentinel_stack, strike):
    """``kill``: the master's process dies (its connections are reset at once). ``freeze``:
    it stops answering with its connections open, as a host that vanished from the network
    does (SIGSTOP, then SIGKILL once the replica has taken over)."""
    stack, brokers = sentinel_stack
    brokers.heal()  # a replica to promote, whatever the test before did
    supervisor = Supervisor(stack)
    before = accepted_count(stack)
    traffic = Traffic(stack, f"failover-{strike}").start()
    wait_for(lambda: accepted_count(stack) - before >= 300, 60, "300 verdicts before the strike")

    struck_wall, struck = time.time(), time.monotonic()
    old = brokers.master_port()
    assert old is not None
    frozen = brokers.nodes[old].pause() if strike == "freeze" else brokers.nodes[old].kill()
    on_stream = sum(intake.backlog(stack.data).values())
    new = wait_for(lambda: brokers.promoted(old), 60, "the sentinels to promote", every=0.02)
    promoted = time.monotonic()
    if frozen:
        brokers.nodes[old].kill()  # the host never comes back

    def drained_through_new_master() -> float | None:
        supervisor.check()
        return first_drain_after(stack.worker.log(), struck_wall)

    first_drain = wait_for(drained_through_new_master, 90, "a drain task via the new master")
    # Scores go on arriving for a while through the new master.
    settled_then = accepted_count(stack)

    def settling() -> bool:
        supervisor.check()
        return accepted_count(stack) - settled_then >= 300

    wait_for(settling, 60, "300 verdicts after it")
    traffic.stop()
    stopped = time.monotonic()

    assert not traffic.problems, traffic.problems[:5]
    ids = sorted(traffic.accepted)

    def all_accepted() -> bool:
        supervisor.check()
        return set(verdicts(stack, ids).values()) == {"accepted"}

    wait_for(all_accepted, RECOVERY_BOUND_S, "a verdict for every accepted submission", every=0.5)
    settled_s = time.monotonic() - stopped
    on_board = board_players(stack)
    assert len(on_board) == len(set(on_board))
    assert set(traffic.accepted.values()) <= set(on_board)
    # The web and beat carry on through the new master; the worker too, but for the one crash
    # of kombu's that its supervisor makes good.
    for log in supervisor.exits:
        assert died_of_kombus_close(log), log[-3000:]
    assert stack.web.alive and stack.beat.alive
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
    print(
        "figures:",
        f"strike={strike}",
        f"accepted={len(ids)}",
        f"on_stream_at_strike={on_stream}",
        f"requests_in_flight_at_strike={in_flight_requests}",
        "lost=0",
        f"promoted_s={promoted - struck:.2f}",
        f"first_drain_on_new_master_s={first_drain - struck_wall:.2f}",
        f"worker_restarted={len(supervisor.exits)}",
        f"scores_sent_from_strike_to_promotion_plus_1s={len(window)}",
        f"slowest_of_them_s={slowest:.3f}",
        f"server_errors={len(server_errors)}",
        f"all_settled_s_after_stop={settled_s:.1f}",
    )
