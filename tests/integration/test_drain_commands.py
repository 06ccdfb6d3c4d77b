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
from app.storage import intake, keys
from app.storage.embedded_redis import EmbeddedRedis
from tests.cases import queued_payload
from tests.conftest import enqueue
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


def _enqueue(client: redis.Redis, prefix: str, count: int, now: int) -> None:
    for i in range(count):
        sid, player = f"{prefix}-{i:06d}", f"{prefix}-{i:018d}"
        enqueue(client, queued_payload(sid, player_id=player, received_at=now - 5), now, 60)


def _calls(client: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in client.info("commandstats").items()
    }


def _drain(client: redis.Redis, registry: Registry, now: int, consumer: str = "w:1") -> int:
    return ingest.drain(client, registry, consumer, lambda: now, 60, wait_ms=0, linger_ms=0).settled


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
    _enqueue(server, "sub", 40, now)

    sent = _during(server, lambda: _drain(server, registry, now))

    assert server.hget(keys.VERDICT_COUNTS, "accepted") == "41"
    # One apply script an entry, and no SCRIPT EXISTS before; a new entry has no verdict yet,
    # so no script looks for its record.
    assert sent["evalsha"] == 40
    assert "script" not in sent
    # Verdicts, counts and acknowledgements: one transaction a batch, its records one script.
    assert sent["multi"] == sent["exec"] == sent["eval"] == 4
    assert sent["xack"] == sent["xdel"] == sent["publish"] == 4
    # The drain flag now and then rather than each batch.
    assert 1 <= sent["set"] <= 2
    assert server.xlen(keys.INGEST_STREAM) == 0


def test_entries_read_before_have_their_records_read_and_are_settled_once(
    server, registry, monkeypatch
):
    now = int(time.time() * 1000)
    _enqueue(server, "sub", 6, now)
    intake.ensure_group(server)
    taken = intake.read_new(server, "dead:1", 3)  # read by a worker that died then
    # One of them had its verdict stored, as code that stored it apart from the
    # acknowledgement could leave it.
    ingest.ingest_submissions(server, registry, [taken[0].payload], now, 60)
    assert server.hget(keys.VERDICT_COUNTS, "accepted") == "1"
    monkeypatch.setattr(intake, "CLAIM_IDLE_MS", 0)

    sent = _during(server, lambda: _drain(server, registry, now, "w:2"))

    # One script looks for the records of the three claimed entries, the others not; the
    # settled one is not applied again.
    assert sent["evalsha"] == 1 + 5
    assert server.hget(keys.VERDICT_COUNTS, "accepted") == "6"  # nor counted twice
    assert server.xlen(keys.INGEST_STREAM) == 0
    assert intake.backlog(server) == {"waiting": 0, "in_progress": 0}


def test_the_transaction_of_a_batch_holds_keys_of_the_ingest_slot_only(server, registry):
    # So that one node of a Redis Cluster can run it: the counts and the audit, elsewhere,
    # come after it.
    now = int(time.time() * 1000)
    _enqueue(server, "sub", 5, now)
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
        assert _drain(server, registry, now) == 5
        watcher.join(10)
    start, end = seen.index("MULTI"), seen.index("EXEC")
    inside = [command.split(" ") for command in seen[start + 1 : end]]
    names = {command[0] for command in inside}
    assert names == {"EVAL", "HSET", "PTTL", "XACK", "XDEL", "SET"}
    # The script's own commands show the keys it touched, as the others do.
    assert all(command[1].startswith("hs:{ingest}:") for command in inside if command[0] != "EVAL")
    after = [command.split(" ", 1)[0] for command in seen[end + 1 :]]
    assert after[:2] == ["HINCRBY", "HINCRBY"] and after[-1] == "PUBLISH"
