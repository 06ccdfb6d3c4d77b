"""``manage.py check``: one line per check, exactly what is wrong, exit status 1 on a FAIL."""

from __future__ import annotations

import os

import fakeredis
import pytest
from click.testing import CliRunner

from app.checks import FAIL, OK, WARN, redact, run_checks
from app.cli import cli
from app.storage import keys
from app.storage.embedded_redis import free_port

LONG_SECRET = "k" * 43
VARIABLES = (
    "HISCORE_CONFIG",
    "SECRET_KEY",
    "OPERATOR_TOKEN",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "HISCORE_GAMES_FILE",
    "LOG_FORMAT",
)


@pytest.fixture
def env(monkeypatch):
    """A production environment with every secret set; tests take away what they test."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HISCORE_CONFIG", "production")
    monkeypatch.setenv("SECRET_KEY", LONG_SECRET)
    monkeypatch.setenv("OPERATOR_TOKEN", LONG_SECRET)
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret-pw@data.example:6379/0")
    return monkeypatch


class Servers:
    """Fake Redis servers by URL, with the CONFIG values a real server would report."""

    def __init__(self) -> None:
        self.servers: dict[str, fakeredis.FakeServer] = {}
        self.settings: dict[str, str] | None = {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "maxmemory-policy": "noeviction",
        }
        self.asked: list[str] = []

    def server(self, url: str) -> fakeredis.FakeServer:
        return self.servers.setdefault(url, fakeredis.FakeServer())

    def connect(self, url: str) -> fakeredis.FakeRedis:
        self.asked.append(url)
        client = fakeredis.FakeRedis(server=self.server(url), decode_responses=True)
        if self.settings is not None:  # fakeredis has no CONFIG, like a locked-down host
            settings = self.settings
            client.config_get = lambda name: {name: settings[name]}
        return client


@pytest.fixture
def servers() -> Servers:
    return Servers()


def by_name(results) -> dict[str, list]:
    named: dict[str, list] = {}
    for result in results:
        named.setdefault(result.name, []).append(result)
    return named


def test_a_sound_production_deployment_passes_every_check(env, servers):
    results = run_checks(connect=servers.connect)
    assert [r.status for r in results] == [OK] * len(results), [str(r) for r in results]
    assert [r.name for r in results] == [
        "config",
        "secrets",
        "logs",
        "redis",
        "redis-auth",
        "persistence",
        "eviction",
        "layout",
        "broker",
        "games",
    ]
    assert str(results[0]) == "ok   config: ProductionConfig (HISCORE_CONFIG=production)"


def test_missing_production_secrets_are_named_as_the_config_names_them(env, servers):
    env.delenv("SECRET_KEY")
    env.delenv("OPERATOR_TOKEN")
    (secrets,) = by_name(run_checks(connect=servers.connect))["secrets"]
    assert str(secrets) == (
        "FAIL secrets: production configuration needs these environment variables: "
        "SECRET_KEY, OPERATOR_TOKEN"
    )


def test_short_production_secrets_fail(env, servers):
    env.setenv("SECRET_KEY", "short")
    (secrets,) = by_name(run_checks(connect=servers.connect))["secrets"]
    assert secrets.failed
    assert "SECRET_KEY is 5 characters" in secrets.message
    assert "OPERATOR_TOKEN" not in secrets.message


def test_an_unknown_config_name_stops_the_checks(env, servers):
    env.setenv("HISCORE_CONFIG", "staging")
    (result,) = run_checks(connect=servers.connect)
    assert result.failed and "staging" in result.message
    assert servers.asked == []


def test_a_setting_the_config_cannot_read_stops_the_checks(env, servers):
    env.setenv("HISCORE_PRUNE_EVERY", "hourly")
    (result,) = run_checks(connect=servers.connect)
    assert result.failed and result.name == "config" and "'hourly'" in result.message


def test_development_is_a_warning_not_a_failure(env, servers):
    env.setenv("HISCORE_CONFIG", "development")
    named = by_name(run_checks(connect=servers.connect))
    assert named["config"][0].status == WARN
    assert "debug on" in named["config"][0].message
    assert named["secrets"][0].status == OK


def test_an_unreachable_redis_fails_and_names_the_url_without_its_password(env, servers):
    servers.server("redis://:s3cret-pw@data.example:6379/0").connected = False
    results = run_checks(connect=servers.connect)
    named = by_name(results)
    assert named["redis"][0].failed
    assert "redis://:***@data.example:6379/0" in named["redis"][0].message
    assert "persistence" not in named  # nothing to ask
    assert named["broker"][0].failed  # the same Redis
    assert all("s3cret-pw" not in str(r) for r in results)


def test_persistence_off_is_a_warning(env, servers):
    servers.settings["appendonly"] = "no"
    servers.settings["save"] = "3600 1"
    (persistence,) = by_name(run_checks(connect=servers.connect))["persistence"]
    assert persistence.status == WARN
    assert "appendonly is off" in persistence.message and "'3600 1'" in persistence.message


def test_an_evicting_redis_fails(env, servers):
    servers.settings["maxmemory-policy"] = "allkeys-lru"
    (eviction,) = by_name(run_checks(connect=servers.connect))["eviction"]
    assert eviction.failed
    assert "allkeys-lru" in eviction.message and "noeviction" in eviction.message


def test_a_redis_that_forbids_config_is_a_warning(env, servers):
    servers.settings = None
    named = by_name(run_checks(connect=servers.connect))
    (persistence,) = named["persistence"]
    assert persistence.status == WARN
    assert "noeviction" in persistence.message
    assert "eviction" not in named


def test_keys_of_the_single_ingest_slot_are_a_warning_that_names_migrate_storage(env, servers):
    data = fakeredis.FakeRedis(server=servers.server(os.environ["REDIS_URL"]))
    data.xadd(keys.LEGACY_INGEST_STREAM, {"p": "{}"})
    data.hset(keys.LEGACY_VERDICT_COUNTS, "accepted", 3)

    (layout,) = by_name(run_checks(connect=servers.connect))["layout"]

    assert layout.status == WARN
    assert layout.message.startswith(
        f"{keys.LEGACY_INGEST_STREAM}, {keys.LEGACY_VERDICT_COUNTS} of the single ingest slot "
        "wait for `python manage.py migrate-storage`"
    )


def test_a_separate_redis_broker_is_pinged_on_its_own(env, servers):
    broker = "redis://broker.example:6379/0"
    env.setenv("CELERY_BROKER_URL", broker)
    servers.server(broker).connected = False
    named = by_name(run_checks(connect=servers.connect))
    assert named["redis"][0].status == OK
    assert named["broker"][0].failed and broker in named["broker"][0].message
    assert broker in servers.asked


def test_a_broker_of_another_kind_is_tried_through_kombu(env, servers):
    env.setenv("CELERY_BROKER_URL", f"amqp://hiscore:pw@127.0.0.1:{free_port()}//")
    (broker,) = by_name(run_checks(connect=servers.connect))["broker"]
    assert broker.failed
    assert "amqp://hiscore:***@127.0.0.1" in broker.message


def test_a_games_file_that_does_not_load_fails(env, servers, tmp_path):
    games = tmp_path / "games.toml"
    games.write_text('[games.reaction]\norder = "sideways"\n')
    env.setenv("HISCORE_GAMES_FILE", str(games))
    (result,) = by_name(run_checks(connect=servers.connect))["games"]
    assert result.failed
    assert str(games) in result.message and "order must be" in result.message


def test_a_games_file_that_loads_is_listed(env, servers, tmp_path):
    games = tmp_path / "games.toml"
    games.write_text('[games.reaction]\norder = "lower"\nvariants = ["visual"]\n')
    env.setenv("HISCORE_GAMES_FILE", str(games))
    (result,) = by_name(run_checks(connect=servers.connect))["games"]
    assert result.status == OK and "guess, throw, reaction" in result.message


def test_redact_hides_every_password_of_a_sentinel_list():
    assert redact("sentinel://:a@h1:26379;sentinel://u:b@h2:26379") == (
        "sentinel://:***@h1:26379;sentinel://u:***@h2:26379"
    )
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_command_reports_a_refused_production_config_in_lines_and_exits_1(env):
    """What a release phase runs: no traceback, even though the app itself would not start."""
    env.delenv("SECRET_KEY")
    env.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert all(line.split()[0] in (OK, WARN, FAIL) for line in lines), result.output
    assert (
        "FAIL secrets: production configuration needs these environment variables: SECRET_KEY"
        in lines
    )
    assert any(line.startswith("FAIL redis: REDIS_URL redis://127.0.0.1:") for line in lines)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("redis://data.example:6379/0", WARN),
        ("redis://10.0.0.5:6379/0", WARN),
        ("redis://[2001:db8::1]:6379/0", WARN),
        ("redis://:s3cret-pw@data.example:6379/0", OK),
        ("redis://127.0.0.1:6379/0", OK),
        ("redis://localhost:6379/0", OK),
        ("redis://[::1]:6379/0", OK),
        ("unix:///run/redis.sock", OK),
    ],
)
def test_a_redis_beyond_the_loopback_without_a_password_is_a_warning(env, servers, url, status):
    env.setenv("REDIS_URL", url)
    (auth,) = by_name(run_checks(connect=servers.connect))["redis-auth"]
    assert auth.status == status, str(auth)
    if status == WARN:
        assert "requirepass" in auth.message
