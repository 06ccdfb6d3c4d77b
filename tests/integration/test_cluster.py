"""hiscore on a Redis Cluster (three masters with a replica each) for the data, the broker and
beat's schedule on a single Redis of their own: the app's client, scores end to end, a rebuild,
the operators' paths, a worker killed, a master killed while scores stream in, and what waiting
for a replica costs a submission."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import redis
import requests
from redis.exceptions import RedisClusterException

from app.clock import now_ms
from app.leaderboard.boards import Applied, Entry, apply_entries, apply_entries_each, read_page
from app.leaderboard.games import load_registry
from app.leaderboard.rebuild import readable_boards
from app.storage import keys, rate_limits, topology
from app.storage.connection import connect, is_cluster, node_client
from app.storage.embedded_redis import EmbeddedRedis, free_port
from app.storage.longpoll import VerdictWaiter
from app.storage.rate_limits import RIDER, Counter, RateLimitBreached, Rider
from app.storage.topology import Replication
from app.worker.status import live_workers, record_heartbeat
from tests.cases import NOW
from tests.conftest import generation_at
from tests.integration import test_end_to_end, test_operations
from tests.integration import test_faults as faults
from tests.processes import ROOT, TEST_GAMES, Stack, process_env, wait_for
from tests.topologies import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

AUTH = {"Authorization": "Bearer testing-operator-token"}


@pytest.fixture(scope="module")
def cluster_stack(redis_cluster, logs, tmp_path_factory) -> Iterator[Stack]:
    """gunicorn, an ingest and a maintenance worker and beat, with the data on the session's
    cluster and the broker (and beat's schedule and lock) on a redis-server of their own."""
    broker = EmbeddedRedis(tmp_path_factory.mktemp("cluster-broker")).start()
    folder = logs / "cluster"
    folder.mkdir(exist_ok=True)
    env = process_env(
        broker,
        REDIS_URL=redis_cluster.url,
        HISCORE_REDIS_CLUSTER="1",
        HISCORE_INSTANCE_PATH=str(tmp_path_factory.mktemp("cluster-instance")),
        HISCORE_SWEEP_EVERY="1",
        LOG_FORMAT="text",
    )
    stack = Stack(broker, env, folder, data=redis_cluster.client())
    try:
        stack.start_worker("ingest", "ingest", 2)
        stack.start_worker("maintenance", "maintenance", 1)
        stack.start_web()
        stack.start_beat()
        yield stack
    finally:
        for process in stack.processes:
            process.stop()
        broker.stop()


@pytest.fixture
def on_cluster(cluster_stack, redis_cluster) -> Iterator[Stack]:
    """The cluster stack, whole (every node up, each master with its replica), with idle
    workers, empty queues and no data but the workers' heartbeats."""
    redis_cluster.wait_healthy()
    for name, queues, concurrency in (("ingest", "ingest", 2), ("maintenance", "maintenance", 1)):
        if not cluster_stack.workers[name].alive:
            cluster_stack.start_worker(name, queues, concurrency)
    assert cluster_stack.beat.alive, cluster_stack.beat.log()
    cluster_stack.wait_idle()
    cluster_stack.wipe_data()
    cluster_stack.mark_logs()
    yield cluster_stack
    for process in cluster_stack.processes:
        assert process.alive, process.log()


def test_the_data_client_works_each_slot_on_its_own_node(redis_cluster: LocalCluster):
    client = connect(redis_cluster.url, cluster=True)
    assert is_cluster(client)
    registry = load_registry(str(TEST_GAMES))
    game = registry.get("guess-claimed")
    assert game is not None
    # Entries of four families, each family's script on its own master, in one call.
    entries = [
        Entry(f"sub-{v}-{i}", game, v, f"player-{i:012d}", f"P{i}", 1 + i % 9, NOW - i)
        for v in ("10", "25", "100", "1000")
        for i in range(20)
    ]
    masters = {redis_cluster.master_of(keys.log_key(game.slug, v)).port for v in game.variants}
    assert len(masters) > 1
    applied = apply_entries(client, entries, NOW)
    assert all(a.fresh for a in applied)
    # A read with the request's rate-limit count riding along: two slots, two nodes.
    board = readable_boards(game, "100", NOW)[0]
    counters = [Counter(keys.rate_limit_key("127.0.0.1", "global", "3/1/minute"), 3, 60_000, "")]
    token = RIDER.set(Rider(counters))
    try:
        page = read_page(client, board, 0, 5)
    finally:
        RIDER.reset(token)
    assert page.total == 20 and len(page.rows) == 5
    for _ in range(2):
        rate_limits.count(client, counters)
    token = RIDER.set(Rider(counters))
    try:
        with pytest.raises(RateLimitBreached):
            read_page(client, board, 0, 5)
    finally:
        RIDER.reset(token)
    # Heartbeats lie in slots all over the cluster; SCAN visits every master.
    for name in ("ingest@a", "ingest@b", "maintenance@c"):
        record_heartbeat(client, name, {"hostname": name})
    assert [w["hostname"] for w in live_workers(client)] == [
        "ingest@a",
        "ingest@b",
        "maintenance@c",
    ]
    # A family's raw reads go to its own node.
    raw = node_client(client, keys.log_key(game.slug, "100"))
    assert raw.xlen(keys.log_key(game.slug, "100")) == 20
    redis_cluster.flush()


def test_a_verdict_published_on_any_node_wakes_the_long_poll(redis_cluster: LocalCluster):
    # The listener subscribes on one node; a worker publishes through whichever node its
    # client picks. Without a wake-up the waiter would read again only at its timeout.
    waiter = VerdictWaiter(connect(redis_cluster.url, cluster=True), recheck=30)
    reads: list[float] = []
    done: list[float] = []
    masters = redis_cluster.masters()

    def wait() -> None:
        waiter.wait("the-id", 20, lambda: reads.append(time.monotonic()), lambda _: False)

    thread = threading.Thread(target=lambda: (wait(), done.append(time.monotonic())))
    thread.daemon = True
    thread.start()
    wait_for(lambda: reads, 10, "the waiter's first read")
    for i, node in enumerate([*masters, redis_cluster.replica_of(masters[0])], start=2):
        redis_cluster.node_client(node).publish(keys.VERDICT_CHANNEL, "other-id the-id")
        wait_for(lambda: len(reads) >= i, 5, f"a wake-up by a message published on {node.port}")  # noqa: B023
    assert not done  # woken each time, never timed out


def test_a_write_waited_for_is_on_the_replica_of_its_master(redis_cluster: LocalCluster):
    client = connect(redis_cluster.url, cluster=True)
    one = Replication(1, 1000)
    key = keys.KEY_GENERATIONS
    replica = redis_cluster.node_client(redis_cluster.replica_of(redis_cluster.master_of(key)))
    replica.execute_command("READONLY")
    for i in range(30):
        generation = topology.call(client, "rotate_key", [key], [f"waited-{i}", 0], None, one)
        assert generation == 1
        assert replica.hget(key, f"waited-{i}") == "1"  # no poll: WAIT said it is there
    # A batch of entries of four families: each family's master waited for, its replica has
    # the family's log entries at once.
    game = load_registry(str(TEST_GAMES)).get("guess-claimed")
    assert game is not None
    variants = ("10", "25", "100", "1000")
    entries = [
        Entry(f"waited-{v}-{i}", game, v, f"player-{i:012d}", f"P{i}", 1 + i % 9, NOW - i)
        for v in variants
        for i in range(25)
    ]
    outcomes = apply_entries_each(client, entries, NOW, one)
    assert all(isinstance(o, Applied) and o.fresh for o in outcomes), outcomes[:3]
    for variant in variants:
        log = keys.log_key(game.slug, variant)
        replica = redis_cluster.node_client(redis_cluster.replica_of(redis_cluster.master_of(log)))
        replica.execute_command("READONLY")
        assert replica.xlen(log) == 25
    redis_cluster.flush()


def test_an_operator_rebuilds_a_board_on_a_cluster(on_cluster):
    test_operations.test_an_operator_rebuilds_a_board_and_follows_its_progress(on_cluster)


def test_the_operators_paths_on_a_cluster(on_cluster):
    on_cluster.seed_log("guess-claimed", "25", 300, 25)
    on_cluster.seed_log("guess-claimed", "10", 300, 10)
    started = test_operations.rebuild(on_cluster, {"game": "guess-claimed"})
    assert test_operations.follow(on_cluster, started["status_url"])["state"] == "done"
    prune = requests.post(
        on_cluster.url("/api/v1/admin/prune"),
        json={"game": "guess-claimed"},
        headers=AUTH,
        timeout=10,
    )
    assert prune.status_code == 202, prune.text
    task = test_operations.follow(on_cluster, prune.json()["status_url"])
    assert task["state"] == "done", task
    board = test_operations.board(on_cluster, "25", limit=3)
    assert board["total"] == 300
    player = board["entries"][0]["player_id"]
    removed = requests.delete(
        on_cluster.url(f"/api/v1/admin/games/guess-claimed/players/{player}"),
        headers=AUTH,
        timeout=10,
    )
    assert removed.status_code == 200, removed.text
    assert test_operations.board(on_cluster, "25", limit=3)["total"] == 299
    revoked = requests.delete(
        on_cluster.url(f"/api/v1/admin/players/{player}/sessions"), headers=AUTH, timeout=10
    )
    assert revoked.status_code == 200, revoked.text
    status = requests.get(on_cluster.url("/api/v1/admin/status"), headers=AUTH, timeout=10)
    assert status.status_code == 200, status.text
    assert len(status.json()["workers"]) == 2
    ready = requests.get(on_cluster.url("/readyz"), headers=AUTH, timeout=10)
    assert ready.status_code == 200 and ready.json()["workers"] == 2, ready.text
    metrics = requests.get(on_cluster.url("/metrics"), headers=AUTH, timeout=10)
    assert metrics.status_code == 200 and "hiscore_workers_alive 2.0" in metrics.text
    # manage.py's commands reach every master too.
    for command in (["stats", "--game", "guess-claimed"], ["migrate-storage", "--dry-run"]):
        ran = subprocess.run(
            [sys.executable, "manage.py", *command],
            env=on_cluster.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
    stats = requests.get(on_cluster.url("/api/v1/games/guess-claimed/boards/10/stats"), timeout=10)
    assert stats.status_code == 200, stats.text
    assert stats.json()["players"] == 299  # the player removed had played every variant


def test_check_reads_every_master_of_the_cluster(redis_cluster, redis_server):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("HISCORE_GAMES_FILE", "LOG_FORMAT", "HISCORE_WAIT_REPLICAS")
    }
    env.update(
        HISCORE_CONFIG="production",
        SECRET_KEY="s" * 43,
        OPERATOR_TOKEN="t" * 43,
        REDIS_URL=redis_cluster.url,
        HISCORE_REDIS_CLUSTER="1",
        CELERY_BROKER_URL=redis_server.url(3),
    )
    ran = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert f"ok   redis: {redis_cluster.url}: a cluster of 3 masters, ok" in lines
    assert "ok   replicas: every master has the 1 a 202 waits for" in lines
    assert "ok   persistence: appendonly yes, appendfsync everysec (every master)" in lines


class SlotProbe:
    """Writes a key of one slot every few milliseconds through a cluster client of its own,
    noting when each write was accepted: when a slot's master dies, the first write accepted
    after it is when its replica took over, as a client sees it."""

    def __init__(self, cluster: LocalCluster, key: str) -> None:
        self.client = cluster.client(socket_timeout=1, socket_connect_timeout=0.5)
        self.key = f"{key}:probe"
        self.accepted: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlotProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.set(self.key, "x", px=60_000)
                self.accepted.append(time.monotonic())
            except (redis.RedisError, RedisClusterException):
                pass
            time.sleep(0.005)

    def first_after(self, instant: float) -> float | None:
        return next((t for t in self.accepted if t > instant), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def longest_pause(instants: list[float], since: float) -> float:
    """The longest time without a 202 from ``since`` (the kill) on."""
    after = sorted(t for t in instants if t >= since)
    points = [since, *after]
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


def test_a_master_killed_while_scores_stream_in_loses_nothing_that_got_a_202(
    on_cluster, redis_cluster
):
    log = keys.log_key(faults.GAME, faults.VARIANT)
    master = redis_cluster.master_of(log)
    replica = redis_cluster.replica_of(master)
    players = faults.Players(on_cluster, "master9", 3000).start()
    wait_for(lambda: faults.count_settled(on_cluster, "master9", 3000) >= 300, 60, "300 verdicts")
    probe = SlotProbe(redis_cluster, log).start()
    try:
        wait_for(lambda: probe.accepted, 10, "the probe's first write")
        answered = set(players.accepted)
        in_flight = len(answered) - len(faults.settled(on_cluster, sorted(answered)))
        waiting = faults.backlog(on_cluster)
        killed = time.monotonic()
        master.kill()  # kill -9, with whatever it had not yet sent its replica
        # A write the master answered as it was being killed is no write of its successor's.
        dead = time.monotonic()
        promoted_s = redis_cluster.wait_promoted(replica)
        players.join()
        waited = faults.each_applied_once(on_cluster, players.accepted, since=killed)
        writable = probe.first_after(dead)
    finally:
        probe.stop()
    assert writable is not None
    pause = longest_pause(players.answered_at, killed)
    # The old master comes back from its files as a replica of the new one.
    master.start()
    redis_cluster.wait_healthy()
    assert redis_cluster.role(master) == "slave"
    on_cluster.mark_logs()  # what the processes logged while the master was away is expected
    faults.report(
        accepted=len(players.accepted),
        answered_202_before_the_kill=len(answered),
        unsettled_at_the_kill=in_flight,
        on_the_streams_at_the_kill=waiting,
        lost=0,
        replica_promoted_s=round(promoted_s, 1),
        slot_writable_again_s=round(writable - killed, 1),
        longest_pause_in_202s_s=round(pause, 1),
        tries_refused=players.unavailable,
        all_settled_s_after_the_kill=round(waited, 1),
    )


def test_a_worker_killed_mid_stream_on_a_cluster_loses_and_repeats_nothing(on_cluster):
    faults.test_a_worker_killed_mid_stream_loses_and_repeats_nothing(on_cluster)


def test_a_thousand_games_from_a_hundred_players_on_a_cluster(on_cluster):
    test_end_to_end.test_a_thousand_games_from_a_hundred_players(on_cluster)


def on_cluster_replica(stack: Stack, key: str) -> redis.Redis:
    """A client of a replica of the master that holds ``key``, that may read there."""
    node = stack.data.get_node_from_key(key)
    _, _, replicas = node.redis_connection.role()
    host, port, _ = replicas[0]
    replica = redis.Redis(host=host, port=int(port), decode_responses=True)
    replica.execute_command("READONLY")
    return replica


def _submit_times(stack: Stack, base_url: str, prefix: str, count: int) -> list[float]:
    http = requests.Session()
    times = []
    for i in range(count):
        body = {
            "name": f"Timed {i}",
            "score": 1 + i % 100,
            "variant": "100",
            "duration_ms": 60_000,
            "submission_id": f"{prefix}-{i:05d}",
        }
        started = time.perf_counter()
        resp = http.post(f"{base_url}/api/v1/games/guess-claimed/scores", json=body, timeout=10)
        times.append(time.perf_counter() - started)
        assert resp.status_code == 202, resp.text
    return times


def _ms(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def test_what_waiting_for_a_replica_costs_a_submission(on_cluster):
    """The submit round trip through the real web, with a 202 that waits for one replica (the
    cluster's default) and with one that does not, taken in turns so that both see the same
    machine."""
    # A 202 that waited means the replica holds the record: read there at once, it is found.
    http = requests.Session()
    for i in range(50):
        sid = f"held-{i:03d}"
        body = {"name": "Held", "score": 5, "variant": "100", "duration_ms": 60_000}
        resp = http.post(
            on_cluster.url("/api/v1/games/guess-claimed/scores"),
            json={**body, "submission_id": sid},
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        key = generation_at(now_ms()).key(sid)
        replica = on_cluster_replica(on_cluster, key)
        assert replica.hget(key, sid) is not None, sid
    port = free_port()
    unwaited = on_cluster.run_web("web-unwaited", port, HISCORE_WAIT_REPLICAS="0")
    try:
        waited_times: list[float] = []
        unwaited_times: list[float] = []
        for round_ in range(10):
            waited_times += _submit_times(on_cluster, on_cluster.base_url, f"w{round_}", 50)
            unwaited_times += _submit_times(
                on_cluster, f"http://127.0.0.1:{port}", f"u{round_}", 50
            )
    finally:
        unwaited.stop()
    faults.report(
        submissions_each=len(waited_times),
        waited_median_ms=_ms(waited_times, 0.5),
        waited_p90_ms=_ms(waited_times, 0.9),
        waited_p99_ms=_ms(waited_times, 0.99),
        unwaited_median_ms=_ms(unwaited_times, 0.5),
        unwaited_p90_ms=_ms(unwaited_times, 0.9),
        unwaited_p99_ms=_ms(unwaited_times, 0.99),
    )


def test_no_202_while_no_replica_holds_the_submission(on_cluster, redis_cluster):
    sid = "lagging-replica-001"
    key = generation_at(now_ms()).key(sid)
    replica = redis_cluster.replica_of(redis_cluster.master_of(key))
    body = {
        "name": "Lag",
        "score": 5,
        "variant": "100",
        "duration_ms": 60_000,
        "submission_id": sid,
    }
    url = on_cluster.url("/api/v1/games/guess-claimed/scores")
    stopped = psutil.Process(replica.process.pid)
    stopped.suspend()  # connected to its master, reading nothing
    try:
        refused = requests.post(url, json=body, timeout=10)
    finally:
        stopped.resume()
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert "no replica holds it yet" in refused.json()["detail"]
    # The retry finds the record the master kept, now on the replica too.
    again = requests.post(url, json=body, timeout=10)
    assert again.status_code == 202, again.text
    assert on_cluster_replica(on_cluster, key).hget(key, sid) is not None
