"""What a drain asks of a real redis-server, counted by the server itself (INFO commandstats):
a few commands a batch besides the apply script of each entry, and a look at the records only
of entries that were read before.

A server of its own, since the counts are the whole server's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from app.leaderboard import ingest
from app.leaderboard.games import Registry, load_registry
from app.storage import intake
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.submissions import partition_of
from tests.cases import queued_payload
from tests.conftest import (
    PARTITIONS,
    drain_waiting,
    enqueue,
    ids_in_partitions,
    stream_length,
    verdict_count,
)
from tests.processes import TEST_GAMES

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path) -> Iterator[redis.Redis]:
    with EmbeddedRedis(tmp_path) as embedded:
        client = redis.Redis(port=embedded.port, decode_responses=True)
        yield client
        client.close()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(str(TEST_GAMES))


def _enqueue(
    client: redis.Redis, prefix: str, count: int, now: int, partition: int | None = None
) -> None:
    """``count`` submissions, spread over the partitions or all in ``partition``."""
    if partition is None:
        sids = [f"{prefix}-{i:06d}" for i in range(count)]
    else:
        sids = [f"{prefix}-{sid}" for sid in ids_in_partitions([partition] * count)]
        sids = [sid for sid in sids if partition_of(sid, PARTITIONS) == partition]
        n = 0
        while len(sids) < count:  # the prefix moved some elsewhere: find others
            n += 1
            sid = f"{prefix}-more-{n}"
            if partition_of(sid, PARTITIONS) == partition:
                sids.append(sid)
    for i, sid in enumerate(sids):
        player = f"{prefix}-{i:018d}"
        enqueue(client, queued_payload(sid, player_id=player, received_at=now - 5), now, 60)


def _calls(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in client.info("commandstats").items()
    }


def _drain(client: redis.Redis, registry: Registry, now: int, consumer: str = "w:1") -> int:
    return drain_waiting(
        client, registry, consumer, lambda: now, 60, wait_ms=0, linger_ms=0
    ).settled


def _during(client: redis.Redis, work) -> dict[str, int]:
    before = _calls(client)
    work()
    after = _calls(client)
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}


def test_a_batch_of_new_entries_is_its_scripts_and_one_transaction(server, registry, monkeypatch):
    now = int(time.time() * 1000)
    _enqueue(server, "warm", 1, now)
    assert _drain(server, registry, now) == 1  # loads the apply script
    monkeypatch.setattr(ingest, "DRAIN_BATCH", 10)
    _enqueue(server, "sub", 40, now, partition=3)

    sent = _during(server, lambda: _drain(server, registry, now))

    assert verdict_count(server, "accepted") == 41
    # One apply script an entry, and no SCRIPT EXISTS before; a new entry has no verdict yet,
    # so no script looks for its record. Two more: the lease taken, then let go.
    assert sent["evalsha"] == 40 + 2
    assert "script" not in sent
    # Verdicts, counts and acknowledgements: one transaction a batch, its records one script.
    assert sent["multi"] == sent["exec"] == sent["eval"] == 4
    assert sent["xack"] == sent["xdel"] == sent["publish"] == 4
    # The lease refreshed now and then rather than each batch.
    assert sent.get("set", 0) <= 2
    assert stream_length(server) == 0


def test_a_batch_of_several_partitions_is_one_transaction_each_and_one_announcement(
    server, registry
):
    now = int(time.time() * 1000)
    _enqueue(server, "warm", 1, now)
    assert _drain(server, registry, now) == 1  # loads the apply script
    for p in range(PARTITIONS):
        _enqueue(server, f"p{p}", 3, now, partition=p)

    sent = _during(server, lambda: _drain(server, registry, now))

    # One batch of every partition's entries: each applied, then a transaction per partition;
    # the leases taken and let go in a pipelined script call each.
    assert sent["evalsha"] == 3 * PARTITIONS + 2 * PARTITIONS
    assert sent["multi"] == sent["exec"] == sent["eval"] == PARTITIONS
    assert sent["xack"] == sent["xdel"] == PARTITIONS
    assert sent["publish"] == 1
    # Its entries read with one XREADGROUP over every stream (and one the last look).
    assert sent["xreadgroup"] <= 4
    assert stream_length(server) == 0


def test_entries_read_before_have_their_records_read_and_are_settled_once(
    server, registry, monkeypatch
):
    now = int(time.time() * 1000)
    _enqueue(server, "sub", 6, now, partition=5)
    intake.ensure_groups(server, [5])
    taken = intake.read_new(server, "dead:1", [5], 3)  # read by a worker that died then
    # One of them had its verdict stored, as code that stored it apart from the
    # acknowledgement could leave it.
    ingest.ingest_submissions(server, registry, [taken[0].payload], now, 60, PARTITIONS)
    assert verdict_count(server, "accepted") == 1
    monkeypatch.setattr(intake, "CLAIM_IDLE_MS", 0)

    sent = _during(server, lambda: _drain(server, registry, now, "w:2"))

    # One script looks for the records of the three claimed entries, the others not; the
    # settled one is not applied again. Four more: the lease taken, then let go, each sent
    # twice since this server meets those scripts for the first time (NOSCRIPT, then loaded).
    assert sent["evalsha"] == 1 + 5 + 2 * 2
    assert verdict_count(server, "accepted") == 6  # nor counted twice
    assert stream_length(server) == 0
    assert intake.backlog(server, PARTITIONS).totals() == {"waiting": 0, "in_progress": 0}


def test_the_transaction_of_each_partition_holds_keys_of_its_slot_only(server, registry):
    # So that one node of a Redis Cluster can run it: the announcement, cluster-wide, comes
    # after them.
    now = int(time.time() * 1000)
    for p in (1, 6):
        _enqueue(server, f"p{p}", 3, now, partition=p)
    (bad,) = ids_in_partitions([6])  # a rejection: audited in its partition's transaction
    enqueue(server, queued_payload(bad, score=99, received_at=now - 5), now, 60)
    seen: list[str] = []
    with server.monitor() as monitor:
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                command = monitor.next_command()["command"]
                seen.append(command)
                if command.startswith("PUBLISH"):
                    done.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert _drain(server, registry, now) == 7
        watcher.join(10)
    transactions = []
    while "MULTI" in seen:
        start = seen.index("MULTI")
        end = seen.index("EXEC", start)
        transactions.append([command.split(" ") for command in seen[start + 1 : end]])
        seen = seen[end + 1 :]
    assert len(transactions) == 2
    audits = 0
    for inside in transactions:
        names = {command[0] for command in inside}
        assert {"EVAL", "HSET", "PTTL", "XACK", "XDEL", "HINCRBY"} <= names
        audits += "XADD" in names
        # The script's own commands show the keys it touched, as the others do.
        slots = {command[1].split("}", 1)[0] for command in inside if command[0] != "EVAL"}
        assert len(slots) == 1 and slots <= {"hs:{ingest:1", "hs:{ingest:6"}, slots
    assert audits == 1
    assert seen[-1].startswith("PUBLISH")
