"""WAIT after a write, on a real master and its replica: acknowledged once the replica holds
it, a shortfall while the replica lags, no wait at all while the master has no replica."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import psutil
import pytest
import redis

from app.storage import keys, topology
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.topology import Replication, ReplicationShortfall
from tests.processes import wait_for

pytestmark = pytest.mark.integration

ONE = Replication(replicas=1, timeout_ms=300)


class Pair:
    """A master and a replica of it."""

    def __init__(self, tmp_path) -> None:
        self.master = EmbeddedRedis(tmp_path / "master").start()
        self.replica = EmbeddedRedis(
            tmp_path / "replica", settings=["--replicaof", "127.0.0.1", str(self.master.port)]
        )
        self.client = redis.Redis(port=self.master.port, decode_responses=True)

    def start_replica(self) -> None:
        self.replica.start()
        wait_for(lambda: topology.connected_replicas(self.client.role()) == 1, 30, "a replica")

    def stop(self) -> None:
        self.replica.stop()
        self.master.stop()


@pytest.fixture
def pair(tmp_path, monkeypatch) -> Iterator[Pair]:
    monkeypatch.setattr(topology, "RECHECK_S", 0.2)
    monkeypatch.setattr(topology, "MASTERS", topology._Masters())
    pair = Pair(tmp_path)
    pair.start_replica()
    yield pair
    pair.stop()


def rotate(pair: Pair, player: str, generation: int = 0) -> int:
    """A write: the player's key moved on from ``generation`` (app/lua/rotate_key.lua)."""
    return topology.call(
        pair.client, "rotate_key", [keys.KEY_GENERATIONS], [player, generation], replication=ONE
    )


def on_replica(pair: Pair, player: str) -> str | None:
    replica = redis.Redis(port=pair.replica.port, decode_responses=True)
    return replica.hget(keys.KEY_GENERATIONS, player)


def test_a_write_is_acknowledged_once_the_replica_holds_it(pair):
    for i in range(50):
        assert rotate(pair, f"player-{i}") == 1
        # No sleep, no poll: WAIT returned, so the replica has it.
        assert on_replica(pair, f"player-{i}") == "1"


def test_a_replica_that_lags_makes_a_shortfall(pair):
    stopped = psutil.Process(pair.replica.process.pid)
    stopped.suspend()  # connected, but it reads nothing
    try:
        started = time.monotonic()
        with pytest.raises(ReplicationShortfall, match="NOREPLICAS 0 of 1"):
            rotate(pair, "lagging")
        assert time.monotonic() - started >= ONE.timeout_ms / 1000
    finally:
        stopped.resume()
    # The write was made on the master; once the replica reads again, a retry is waited for.
    assert pair.client.hget(keys.KEY_GENERATIONS, "lagging") == "1"
    assert rotate(pair, "lagging", 1) == 2
    assert on_replica(pair, "lagging") == "2"


def test_a_master_without_replicas_acknowledges_unwaited_and_says_so(pair, caplog):
    pair.replica.kill()
    wait_for(lambda: topology.connected_replicas(pair.client.role()) == 0, 30, "no replica")
    with caplog.at_level(logging.WARNING, logger="app.storage.topology"):
        assert rotate(pair, "alone") == 1  # waits the timeout once, then reads ROLE
        started = time.monotonic()
        for i in range(20):
            rotate(pair, f"alone-{i}")
        assert time.monotonic() - started < ONE.timeout_ms / 1000  # none waited
    warnings = [r for r in caplog.records if "no replica connected" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not once a write
    # The replica comes back: within a look or two, writes are waited for again.
    pair.start_replica()
    deadline = time.monotonic() + 10
    while topology.MASTERS.alone(topology._address(pair.client)):
        rotate(pair, "probe")
        assert time.monotonic() < deadline, "the replica was not found again"
        time.sleep(0.05)
    assert rotate(pair, "back") == 1
    assert on_replica(pair, "back") == "1"
