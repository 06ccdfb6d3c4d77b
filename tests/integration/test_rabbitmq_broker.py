"""The broker on RabbitMQ: a score through the real web and a worker consuming from amqp://
ends on its board, an operator's rebuild and beat's jobs go the same way, and beat keeps its
lock in the data Redis.

RabbitMQ takes several seconds to start, so the module starts one node for all its tests. It
is skipped, saying why, where RabbitMQ is not installed (``./dev test`` installs Debian's as
root); in CI a missing RabbitMQ fails instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from app.storage.embedded_redis import EmbeddedRedis
from tests.brokers import RabbitMQ
from tests.processes import Stack, process_env, wait_for

pytestmark = pytest.mark.integration

GAME, VARIANT = "guess-claimed", "1000"
AUTH = {"Authorization": "Bearer testing-operator-token"}


@pytest.fixture(scope="module")
def rabbit_stack(tmp_path_factory, logs) -> Iterator[tuple[Stack, RabbitMQ]]:
    """A web, a worker (both queues) and beat whose broker is a RabbitMQ node of their own; the
    data on a redis-server of its own."""
    folder = logs / "rabbitmq"
    folder.mkdir(exist_ok=True)
    rabbit = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"), folder)
    data = EmbeddedRedis(tmp_path_factory.mktemp("rabbitmq-data"))
    stack: Stack | None = None
    try:
        rabbit.start()
        print(f"figures: rabbitmq_started_in_s={rabbit.started_in_s:.1f}")
        data.start()
        env = process_env(
            data,
            CELERY_BROKER_URL=rabbit.url,
            HISCORE_INSTANCE_PATH=str(tmp_path_factory.mktemp("rabbitmq-instance")),
            HISCORE_SWEEP_EVERY="1",
            HISCORE_STATS_EVERY="1",
        )
        stack = Stack(data, env, folder)
        stack.start_worker("ingest", "ingest,maintenance", 2)
        stack.start_web()
        stack.start_beat()
        yield stack, rabbit
    finally:
        if stack is not None:
            for process in stack.processes:
                process.stop()
        rabbit.stop()
        data.stop()


def operator_status(stack: Stack) -> dict[str, Any]:
    resp = requests.get(stack.url("/api/v1/admin/status"), headers=AUTH, timeout=10)
    resp.raise_for_status()
    return resp.json()


def post_score(stack: Stack, sid: str, score: int) -> dict[str, Any]:
    resp = requests.post(
        stack.url(f"/api/v1/games/{GAME}/scores"),
        json={
            "name": f"Rabbit {score}",
            "score": score,
            "variant": VARIANT,
            "duration_ms": 600_000,
            "submission_id": sid,
        },
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


def test_a_score_travels_through_rabbitmq_to_its_board(rabbit_stack):
    stack, rabbit = rabbit_stack
    assert stack.env["CELERY_BROKER_URL"].startswith("amqp://")
    queued = post_score(stack, "rabbit-score-1", 7)
    verdict = stack.verdict("rabbit-score-1")
    assert verdict["status"] == "accepted", verdict
    board = requests.get(
        stack.url(f"/api/v1/games/{GAME}/boards/{VARIANT}"), params={"limit": 100}, timeout=10
    ).json()
    assert queued["player_id"] in [entry["player_id"] for entry in board["entries"]]
    # The drain that settled it was a task the worker took from RabbitMQ.
    assert "Task hiscore.drain[" in stack.worker.log()
    # The operator's status reads the queue depths from RabbitMQ.
    queues = operator_status(stack)["queues"]
    assert set(queues) == {"ingest", "maintenance"}


def test_an_operator_rebuild_goes_through_rabbitmq(rabbit_stack):
    stack, rabbit = rabbit_stack
    for i in range(20):
        post_score(stack, f"rabbit-rebuild-{i}", 100 + i)
    for i in range(20):
        assert stack.verdict(f"rabbit-rebuild-{i}")["status"] == "accepted"
    resp = requests.post(
        stack.url("/api/v1/admin/rebuild"),
        json={"game": GAME, "variant": VARIANT},
        headers=AUTH,
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    status_url = resp.json()["status_url"]

    def ended() -> dict[str, Any] | None:
        task = requests.get(stack.url(status_url), headers=AUTH, timeout=10).json()
        return task if task["state"] in ("done", "failed") else None

    task = wait_for(ended, 60, "the rebuild to end", every=0.1)
    assert task["state"] == "done", task
    board = requests.get(
        stack.url(f"/api/v1/games/{GAME}/boards/{VARIANT}"), params={"limit": 100}, timeout=10
    ).json()
    assert board["total"] >= 20


def test_beat_runs_with_rabbitmq_and_keeps_its_lock_in_the_data_redis(rabbit_stack):
    stack, rabbit = rabbit_stack
    # Beat sent the stats job through RabbitMQ, the worker ran it and recorded the run.
    run = wait_for(
        lambda: operator_status(stack)["beat"].get("stats"), 60, "a stats run recorded by beat"
    )
    assert run["ok"], run
    # And the sweep, on the ingest queue.
    wait_for(lambda: "Task hiscore.sweep[" in stack.worker.log(), 30, "a sweep run by the worker")
    # redbeat needs a Redis, and RabbitMQ is none: its lock and schedule are in REDIS_URL's.
    assert stack.data.exists("hs:redbeat:lock")
    assert "beat: Acquired lock" in stack.beat.log()
