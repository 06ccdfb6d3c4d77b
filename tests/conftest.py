"""Fixtures shared by every test: an app on fakeredis with an in-memory broker for unit tests,
and (started only when a test asks) real processes for integration and browser tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import time_machine

from app import create_app
from app.clock import now_ms
from app.extensions import get_clock, get_registry, get_token_policy
from app.leaderboard import statuses
from app.leaderboard.games import Registry
from app.leaderboard.ingest import Drained, drain, take_partitions
from app.leaderboard.players import player_key
from app.leaderboard.records import SubmissionRecord
from app.storage import intake, keys
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.rate_limits import RidingRedis
from app.storage.submissions import Generation, partition_of
from config import DEFAULT_INGEST_PARTITIONS, celery_settings
from tests.cases import NOW
from tests.processes import TEST_GAMES, Stack, process_env


class Clock:
    """The stopped clock of one test. ``time.time`` (by which fakeredis expires keys),
    ``app.clock.now_ms`` and so every app's default ``CLOCK`` read :attr:`now`."""

    def __init__(self, traveller: time_machine.Traveller) -> None:
        self._traveller = traveller

    @property
    def now(self) -> int:
        """Epoch ms, as everything in the test process sees it."""
        return now_ms()

    def advance(self, ms: int) -> None:
        """Move time on (or back, for a negative ``ms``) for everyone at once."""
        self._traveller.shift(timedelta(milliseconds=ms))

    def move_to(self, ms: int) -> None:
        """Move time to the instant ``ms`` (epoch ms) for everyone at once."""
        self.advance(ms - self.now)


@pytest.fixture
def instant() -> int:
    """Where ``clock`` stops time (epoch ms): :data:`tests.cases.NOW`. A module whose tests
    name dates overrides this fixture with an instant of its own."""
    return NOW


@pytest.fixture
def clock(instant) -> Iterator[Clock]:
    """Time stopped at ``instant`` for the test: the app, the domain and fakeredis agree on it."""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=instant)
    with time_machine.travel(at, tick=False) as traveller:
        yield Clock(traveller)


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    """A fresh in-process Redis server per test (``connected = False`` takes it down)."""
    return fakeredis.FakeServer()


@pytest.fixture
def redis_client(fake_server) -> fakeredis.FakeRedis:
    """A client of ``fake_server`` (with Lua), of the class the app builds (RidingRedis)."""
    return RidingFakeRedis(server=fake_server, decode_responses=True)


class RidingFakeRedis(RidingRedis, fakeredis.FakeRedis):
    """fakeredis with the app's client behaviour: a request's count rides with its read."""


@pytest.fixture
def app(redis_client):
    """The Flask app in testing mode, on fakeredis and Celery's in-memory broker."""
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            # Counters would be keys in the Redis that tests expect to stay empty; the tests of
            # the limits build apps of their own.
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(TEST_GAMES),
        },
    )
    yield app
    # The memory transport is process-wide: leave no message behind for the next test.
    with app.extensions["celery"].connection_for_write() as conn:
        for queue in ("ingest", "maintenance"):
            conn.SimpleQueue(queue).clear()


@pytest.fixture
def client(app):
    """An HTTP client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner of the app."""
    return app.test_cli_runner()


#: The idempotency window (s) of the apps the tests build: the default.
WINDOW_S = 24 * 3600

#: The ingest partitions of the apps the tests build: the default.
PARTITIONS = DEFAULT_INGEST_PARTITIONS


def generation_at(now: int, window_s: int = WINDOW_S, partitions: int = PARTITIONS) -> Generation:
    """The generation of the records at ``now`` (epoch ms), as the tests' apps see it."""
    return Generation.at(now, window_s, partitions)


def drain_waiting(
    client: Any,
    registry: Registry,
    consumer: str,
    clock: Callable[[], int],
    window_s: int,
    partitions: int = PARTITIONS,
    **options: Any,
) -> Drained:
    """Drain as a task of the previous version does (it names no partition): every partition
    where entries wait and no other drain runs."""
    held = take_partitions(client, consumer, partitions, None)
    return drain(client, registry, consumer, clock, window_s, partitions, held, **options)


def ids_in_partitions(partitions: list[int], of: int = PARTITIONS) -> list[str]:
    """Submission ids, one per item of ``partitions``, each in that partition (of ``of``)."""
    found: list[str] = []
    for wanted in partitions:
        n = 0
        while True:
            sid = f"sub-{wanted}-{len(found)}-{n}"
            if partition_of(sid, of) == wanted:
                found.append(sid)
                break
            n += 1
    return found


def stream_entries(client: Any, partitions: int = PARTITIONS) -> list[tuple[str, dict[str, str]]]:
    """Every entry on the ingest partitions' streams, merged by stream id (oldest first)."""
    pipe = client.pipeline(transaction=False)
    for p in range(partitions):
        pipe.xrange(keys.ingest_stream(p))
    merged = [entry for entries in pipe.execute() for entry in entries]
    return sorted(merged, key=lambda entry: tuple(int(n) for n in entry[0].split("-")))


def stream_length(client: Any, partitions: int = PARTITIONS) -> int:
    """The entries on the ingest partitions' streams, together."""
    return sum(client.xlen(keys.ingest_stream(p)) for p in range(partitions))


def any_lease(client: Any, partitions: int = PARTITIONS) -> bool:
    """Whether any ingest partition has a drain lease (asked for or held)."""
    return any(client.exists(keys.drain_flag(p)) for p in range(partitions))


def dead_letters(client: Any, partitions: int = PARTITIONS) -> list[tuple[str, dict[str, str]]]:
    """Every partition's dead letters, merged by stream id (oldest first)."""
    merged = [e for p in range(partitions) for e in client.xrange(keys.dead_letters(p))]
    return sorted(merged, key=lambda entry: tuple(int(n) for n in entry[0].split("-")))


def rejections(client: Any, partitions: int = PARTITIONS) -> list[tuple[str, dict[str, str]]]:
    """Every partition's audit of rejections, merged by stream id (oldest first)."""
    merged = [e for p in range(partitions) for e in client.xrange(keys.rejected_stream(p))]
    return sorted(merged, key=lambda entry: tuple(int(n) for n in entry[0].split("-")))


def verdict_count(client: Any, name: str, partitions: int = PARTITIONS) -> int:
    """A verdict count (``accepted``, ``rejected:<code>``) summed over the partitions."""
    return sum(int(client.hget(keys.verdict_counts(p), name) or 0) for p in range(partitions))


def record_of(
    client: Any, submission_id: str, now: int | None = None, window_s: int = WINDOW_S
) -> dict[str, Any] | None:
    """The fields of a submission's stored record as a read at ``now`` (epoch ms; by default
    the test's clock) finds it, for an idempotency window of ``window_s``; None if none."""
    at = now_ms() if now is None else now
    record = statuses.read(client, submission_id, Generation.at(at, window_s, PARTITIONS))
    return record.stored() if record is not None else None


def enqueue(
    client: Any,
    payload: dict[str, Any],
    now: int | None = None,
    window_s: int = WINDOW_S,
    key: tuple[str, int] | None = None,
) -> intake.Enqueued:
    """Put ``payload`` on the ingest stream with its queued record, as the web does at ``now``
    (by default the test's clock)."""
    at = Generation.at(now_ms() if now is None else now, window_s, PARTITIONS)
    record = SubmissionRecord(status="queued", player_id=payload.get("player_id"))
    value = record.packed(at.start_ms)
    return intake.enqueue(client, payload["submission_id"], value, payload, at, key=key)


def keyed(player_id: str) -> dict[str, str]:
    """Body fields that name ``player_id`` with the key the testing app would issue for it."""
    return {"player_id": player_id, "player_key": player_key("testing-secret", player_id)}


@pytest.fixture
def registry(app) -> Registry:
    """The app's games."""
    with app.app_context():
        return get_registry()


@pytest.fixture
def queued(redis_client) -> Callable[[], list[Any]]:
    """Take every submission the web put on the ingest stream, as a worker would read them."""

    def take() -> list[Any]:
        entries = stream_entries(redis_client)
        for p in range(PARTITIONS):
            redis_client.delete(keys.ingest_stream(p))
        return [json.loads(fields["p"]) for _, fields in entries]

    return take


@pytest.fixture
def work(app, redis_client, registry) -> Callable[..., list[Any]]:
    """Drain the ingest stream as a worker would, as of ``now`` (epoch ms; by default the app's
    clock); return each drained submission's id and stored record, in stream order."""

    def run(now: int | None = None) -> list[Any]:
        waiting = stream_entries(redis_client)
        with app.app_context():
            tokens = get_token_policy()
            clock = get_clock() if now is None else lambda: now
            window_s = app.config["IDEMPOTENCY_WINDOW_SECONDS"]
            partitions = app.config["INGEST_PARTITIONS"]
        drain_waiting(
            redis_client,
            registry,
            "test-worker",
            clock,
            window_s,
            partitions,
            wait_ms=0,
            tokens=tokens,
            linger_ms=0,
        )
        assert stream_length(redis_client) == 0  # every entry settled and removed
        ids = [json.loads(fields["p"])["submission_id"] for _, fields in waiting]
        return [(sid, record_of(redis_client, sid, clock(), window_s)) for sid in ids]

    return run


@pytest.fixture(scope="session")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session (the one the project ships)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(redis_server, logs, tmp_path_factory) -> Iterator[Stack]:
    """A real Celery worker and a real gunicorn (gevent) web in front of ``redis_server``."""
    env = process_env(redis_server, HISCORE_INSTANCE_PATH=str(tmp_path_factory.mktemp("instance")))
    stack = Stack(redis_server, env, logs)
    try:
        stack.start_worker("ingest", "ingest", 2)
        stack.start_worker("maintenance", "maintenance", 1)
        stack.start_web()
        yield stack
    finally:
        for process in (stack.web, *stack.workers.values()):
            if process is not None:
                process.stop()


@pytest.fixture
def live(stack) -> Iterator[Stack]:
    """The stack with idle workers, empty queues and boards, and no error in what its
    processes log during the test."""
    for name, queues, concurrency in (("ingest", "ingest", 2), ("maintenance", "maintenance", 1)):
        if not stack.workers[name].alive:
            stack.start_worker(name, queues, concurrency)
    stack.wait_idle()
    stack.wipe_data()
    stack.mark_logs()
    yield stack
    for process in (stack.web, *stack.workers.values()):
        assert process.alive, process.log()
        assert "Traceback" not in process.log(), process.log()
