import re

import pytest

from app import create_app
from app.storage import keys
from config import celery_settings, config_for


def test_the_config_is_chosen_by_an_environment_variable(monkeypatch):
    monkeypatch.setenv("HISCORE_CONFIG", "testing")
    assert config_for().TESTING
    monkeypatch.setenv("HISCORE_CONFIG", "staging")
    with pytest.raises(RuntimeError, match="staging"):
        config_for()


def test_the_idempotency_window_is_a_day_unless_set(monkeypatch):
    monkeypatch.delenv("HISCORE_IDEMPOTENCY_WINDOW", raising=False)
    assert create_app("testing").config["IDEMPOTENCY_WINDOW_SECONDS"] == 24 * 3600
    monkeypatch.setenv("HISCORE_IDEMPOTENCY_WINDOW", "3600")
    assert create_app("testing").config["IDEMPOTENCY_WINDOW_SECONDS"] == 3600


@pytest.mark.parametrize("value", ["0", "1025", "-3"])
def test_ingest_partitions_are_8_unless_set_and_refused_outside_1_to_1024(monkeypatch, value):
    monkeypatch.delenv("HISCORE_INGEST_PARTITIONS", raising=False)
    assert create_app("testing").config["INGEST_PARTITIONS"] == 8
    for good in ("1", "1024"):
        monkeypatch.setenv("HISCORE_INGEST_PARTITIONS", good)
        assert create_app("testing").config["INGEST_PARTITIONS"] == int(good)
    monkeypatch.setenv("HISCORE_INGEST_PARTITIONS", value)
    with pytest.raises(RuntimeError, match="HISCORE_INGEST_PARTITIONS"):
        create_app("testing")


def test_production_refuses_to_start_without_its_secrets(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("OPERATOR_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY, REDIS_URL, OPERATOR_TOKEN"):
        create_app("production")
    monkeypatch.setenv("OPERATOR_TOKEN", "op")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    assert create_app("production").config["PLAYER_COOKIE_SECURE"]


@pytest.mark.parametrize(
    "broker",
    [
        None,
        "redis://broker:6379/0",
        "sentinel://s1:26379;sentinel://s2:26379",
        "amqp://hiscore:pw@rabbit:5672/hiscore",
    ],
)
def test_beat_keeps_its_schedule_and_lock_in_the_data_redis_whatever_the_broker(
    monkeypatch, broker
):
    """redbeat needs a plain Redis URL: a Sentinel list or RabbitMQ is none, so its schedule
    and lock live in the data Redis, with none of the broker's transport options."""
    monkeypatch.setenv("REDIS_URL", "redis://data:6379/1")
    if broker is None:
        monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    else:
        monkeypatch.setenv("CELERY_BROKER_URL", broker)
    app = create_app("testing")
    assert app.config["REDIS_URL"] == "redis://data:6379/1"
    conf = app.extensions["celery"].conf
    assert conf.broker_url == (broker or "redis://data:6379/1")
    assert conf.redbeat_redis_url == "redis://data:6379/1"
    # Said outright: redbeat would otherwise fall back to broker_transport_options (with a
    # deprecation warning) and drop them.
    assert conf.redbeat_redis_options == {}


def test_a_send_to_a_broker_that_stopped_answering_fails_in_seconds():
    """The web sends a drain task inside the request that stored a score: a broker that is
    away must fail that send quickly (the sweep makes a lost one good), not hold the request."""
    options = celery_settings("sentinel://s1:26379")["broker_transport_options"]
    assert options["socket_timeout"] == options["socket_connect_timeout"] <= 2
    assert options["connect_retries_timeout"] <= 1
    # Longer than the 1 s a BRPOP of kombu's Redis transport waits for a message, so that no
    # reply to one can outlast it.
    assert options["socket_timeout"] > 1
    assert options["health_check_interval"] <= 5


def test_celery_is_configured_for_a_careful_deployment():
    conf = celery_settings("redis://x")
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    # A message must not be redelivered while the worker holding it may still run it.
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["task_time_limit"] < conf["broker_transport_options"]["visibility_timeout"]
    # Maintenance may outlast the visibility timeout, so it must not wait in "unacked".
    for name, limits in conf["task_annotations"].items():
        assert name.startswith("hiscore.maintenance.")
        assert limits["acks_late"] is False
        assert limits["soft_time_limit"] < limits["time_limit"]
    assert conf["task_routes"]["hiscore.ingest"]["queue"] == "ingest"


def test_ingestion_timings_fit_inside_the_visibility_timeout():
    import inspect

    from app.leaderboard.ingest import drain
    from app.storage import intake
    from app.worker import tasks

    conf = celery_settings("redis://x")
    visibility = conf["broker_transport_options"]["visibility_timeout"]
    for task in (tasks.ingest, tasks.drain, tasks.sweep):
        # Retried only while Redis is down, with a backoff shorter than the timeout, so a
        # waiting retry is never mistaken for a lost message.
        assert task.autoretry_for and task.max_retries is None
        assert task.retry_backoff_max < visibility
        assert conf["task_routes"][task.name]["queue"] == "ingest"
    # A drain returns long before its time limit, and the entries of a live drain are never
    # claimed by another while it works on them.
    budget_ms = inspect.signature(drain).parameters["budget_ms"].default
    assert budget_ms < conf["task_soft_time_limit"] * 1000 / 10
    assert intake.CLAIM_IDLE_MS >= 5 * budget_ms
    assert intake.DRAIN_FLAG_MS < visibility * 1000
    # The sweep is the safety net: it runs often, on the ingest queue, and never piles up.
    sweep = conf["beat_schedule"]["sweep"]
    assert sweep["task"] == "hiscore.sweep" and sweep["options"]["expires"] <= sweep["schedule"]
    for job in ("prune", "stats", "reconcile"):
        task = conf["beat_schedule"][job]["task"]
        assert conf["task_routes"][task]["queue"] == "maintenance"


def test_seed_demo_fills_the_boards(runner, client, redis_client):
    result = runner.invoke(args=["seed-demo", "--players", "20", "--games", "5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "100 games by 20 players" in result.output
    totals = [
        client.get(f"/api/v1/games/guess/boards/{v}").get_json()["total"]
        for v in ("10", "25", "100", "1000")
    ]
    assert 20 <= sum(totals) <= 80  # each player appears once per variant they played
    assert all(t <= 20 for t in totals)
    seeded = re.search(r"(\d+) paper plane throws by (\d+)", result.output)
    assert seeded is not None, result.output
    throws, throwers = int(seeded[1]), int(seeded[2])
    assert 0 < throwers <= 20 and throwers <= throws <= 5 * throwers
    board = client.get("/api/v1/games/throw/boards/park?limit=100").get_json()
    assert board["total"] == throwers  # one row per player: the total of their throws
    log = [fields for _, fields in redis_client.xrange(keys.log_key("throw", "park"))]
    assert len(log) == throws and all(f["sub"] == "1" and "plane" in f["meta"] for f in log)
    assert sum(row["score"] for row in board["entries"]) == sum(int(f["score"]) for f in log)


def test_a_cluster_for_the_data_needs_a_broker_of_its_own(monkeypatch):
    """kombu has no cluster transport: the broker stays a single Redis, Sentinel or RabbitMQ."""
    monkeypatch.setenv("HISCORE_REDIS_CLUSTER", "1")
    monkeypatch.setenv("REDIS_URL", "redis://node-1:6379")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("HISCORE_BEAT_REDIS_URL", raising=False)
    with pytest.raises(RuntimeError, match="CELERY_BROKER_URL"):
        config_for("testing").check()
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://rabbit:5672//")
    with pytest.raises(RuntimeError, match="HISCORE_BEAT_REDIS_URL"):
        config_for("testing").check()
    monkeypatch.setenv("HISCORE_BEAT_REDIS_URL", "redis://beat:6379/0")
    config = config_for("testing")
    config.check()
    assert config.CELERY["redbeat_redis_url"] == "redis://beat:6379/0"


def test_with_a_cluster_beat_keeps_its_schedule_in_the_brokers_redis(monkeypatch):
    monkeypatch.setenv("HISCORE_REDIS_CLUSTER", "1")
    monkeypatch.setenv("REDIS_URL", "redis://node-1:6379")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.delenv("HISCORE_BEAT_REDIS_URL", raising=False)
    config = config_for("testing")
    config.check()
    assert config.CELERY["broker_url"] == config.CELERY["redbeat_redis_url"]
    assert config.CELERY["redbeat_redis_url"] == "redis://broker:6379/0"


def test_a_202_waits_for_a_replica_on_a_cluster_and_for_none_on_one_redis(monkeypatch):
    monkeypatch.delenv("HISCORE_WAIT_REPLICAS", raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.delenv("HISCORE_REDIS_CLUSTER", raising=False)
    assert config_for("testing").WAIT_REPLICAS == 0
    monkeypatch.setenv("HISCORE_REDIS_CLUSTER", "1")
    assert config_for("testing").WAIT_REPLICAS == 1
    assert config_for("testing").WAIT_TIMEOUT_MS == 500
    monkeypatch.setenv("HISCORE_WAIT_REPLICAS", "2")
    assert config_for("testing").WAIT_REPLICAS == 2
