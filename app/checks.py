"""``manage.py check``: can this deployment run? Each check says ``ok``, ``warn`` or ``FAIL``
and exactly what is wrong; a release phase or an operator runs it before starting the processes.

It reads the configuration the environment chooses (as the processes will) without building
the app, so a configuration the app would refuse is reported as a line, not a traceback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from app.leaderboard.games import load_registry
from app.storage import keys
from app.storage.connection import DataClient, connect
from app.storage.topology import connected_replicas
from config import Config, ProductionConfig, config_for

OK, WARN, FAIL = "ok", "warn", "FAIL"

#: The shortest SECRET_KEY and OPERATOR_TOKEN production accepts (32 random bytes make 43).
MIN_SECRET_LENGTH = 32
_MAKE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    status: str
    name: str
    message: str

    @property
    def failed(self) -> bool:
        """True for a FAIL."""
        return self.status == FAIL

    def __str__(self) -> str:
        return f"{self.status:<4} {self.name}: {self.message}"


def connect_redis(url: str) -> redis.Redis:
    """A client of ``url`` that gives up within a few seconds."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=3, socket_timeout=3, decode_responses=True
    )


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (each part of a ``;``-separated list)."""
    parts = []
    for part in url.split(";"):
        split = urlsplit(part)
        if split.password:
            user = split.username or ""
            host = split.hostname or ""
            if split.port:
                host = f"{host}:{split.port}"
            split = split._replace(netloc=f"{user}:***@{host}")
        parts.append(urlunsplit(split))
    return ";".join(parts)


def _reason(exc: BaseException, limit: int = 160) -> str:
    """An exception in one short line (some clients put whole reprs in their messages)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_checks(
    config_name: str | None = None, connect: Callable[[str], redis.Redis] = connect_redis
) -> list[Check]:
    """Every check, in order; ``connect`` makes a Redis client from a URL."""
    try:
        config = config_for(config_name)
    except (RuntimeError, ValueError) as exc:  # an unknown name, a setting that is not a number
        return [Check(FAIL, "config", str(exc))]
    results = [_config_check(config, config_name), *check_secrets(config)]
    results.append(check_log_format(config.LOG_FORMAT))
    client: DataClient | None
    if config.REDIS_CLUSTER:
        redis_checks, client = check_cluster(config.REDIS_URL, config.WAIT_REPLICAS)
    else:
        redis_checks, client = check_redis(config.REDIS_URL, connect)
    results += redis_checks
    if client is not None:
        results.append(check_redis_auth(config.REDIS_URL))
        if isinstance(client, RedisCluster):
            results += _on_every_master(client, check_persistence)
        else:
            results += check_persistence(client)
        results.append(check_layout(client))
    results.append(
        check_broker(
            config.CELERY_BROKER_URL,
            config.REDIS_URL,
            config.CELERY.get("broker_transport_options", {}),
            connect,
            redis_ok=client is not None,
        )
    )
    results.append(check_games(config.GAMES_FILE))
    return results


def _config_check(config: Config, config_name: str | None) -> Check:
    chosen = (
        f"{config_name!r}"
        if config_name
        else (
            f"HISCORE_CONFIG={os.environ['HISCORE_CONFIG']}"
            if os.environ.get("HISCORE_CONFIG")
            else "HISCORE_CONFIG unset, so production"
        )
    )
    name = type(config).__name__
    if isinstance(config, ProductionConfig):
        return Check(OK, "config", f"{name} ({chosen})")
    return Check(
        WARN,
        "config",
        f"{name} ({chosen}) is for a laptop or the tests (built-in secrets"
        f"{', debug on' if config.DEBUG else ''}); a deployment sets HISCORE_CONFIG=production",
    )


def check_secrets(config: Config) -> list[Check]:
    """The configuration's own check (production names the secrets it lacks), then their length."""
    try:
        config.check()
    except RuntimeError as exc:
        return [Check(FAIL, "secrets", str(exc))]
    if not isinstance(config, ProductionConfig):
        return [Check(OK, "secrets", f"{type(config).__name__} has built-in ones")]
    short = [
        f"{name} is {len(value)} characters"
        for name, value in (
            ("SECRET_KEY", config.SECRET_KEY),
            ("OPERATOR_TOKEN", config.OPERATOR_TOKEN),
        )
        if len(value) < MIN_SECRET_LENGTH
    ]
    if short:
        return [
            Check(
                FAIL,
                "secrets",
                f"{', '.join(short)}; production needs at least {MIN_SECRET_LENGTH} "
                f"(make one with: {_MAKE_SECRET})",
            )
        ]
    return [Check(OK, "secrets", "SECRET_KEY and OPERATOR_TOKEN are set and long enough")]


def check_log_format(log_format: str) -> Check:
    """``LOG_FORMAT`` is ``json`` or ``text``."""
    if log_format.strip().lower() in ("json", "text"):
        return Check(OK, "logs", f"LOG_FORMAT={log_format}")
    return Check(WARN, "logs", f"LOG_FORMAT={log_format!r} is not json or text; using json")


def check_redis(
    url: str, connect: Callable[[str], redis.Redis]
) -> tuple[list[Check], redis.Redis | None]:
    """The data Redis answers PING; returns the client when it does."""
    try:
        client = connect(url)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        return [
            Check(FAIL, "redis", f"REDIS_URL {redact(url)} does not answer: {_reason(exc)}")
        ], None
    try:
        version = cast(dict[str, Any], client.info("server")).get("redis_version", "?")
    except redis.RedisError:
        version = "?"
    return [Check(OK, "redis", f"{redact(url)} answers (Redis {version})")], client


def check_cluster(url: str, wait_replicas: int) -> tuple[list[Check], RedisCluster | None]:
    """The cluster ``url`` introduces serves every slot, and each master has the replicas a 202
    waits for (``HISCORE_WAIT_REPLICAS``); returns the cluster's client when it answers."""
    try:
        client = cast(
            RedisCluster, connect(url, cluster=True, socket_connect_timeout=3, socket_timeout=3)
        )
        state = cast(dict[str, Any], client.cluster_info()).get("cluster_state", "?")
    except (redis.RedisError, RedisClusterException, ValueError, OSError) as exc:
        return [
            Check(
                FAIL,
                "redis",
                f"REDIS_URL {redact(url)} (a cluster) does not answer: {_reason(exc)}",
            )
        ], None
    masters = client.get_primaries()
    if state != "ok":
        return [Check(FAIL, "redis", f"the cluster of {redact(url)} is {state}")], client
    results = [Check(OK, "redis", f"{redact(url)}: a cluster of {len(masters)} masters, ok")]
    short = []
    for node in masters:
        try:
            role = cast(list[Any], node.redis_connection.role())
        except redis.RedisError as exc:
            short.append(f"{node.name} ({_reason(exc, 60)})")
            continue
        if connected_replicas(role) < wait_replicas:
            short.append(f"{node.name} ({connected_replicas(role)} in sync)")
    if short:
        results.append(
            Check(
                WARN,
                "replicas",
                f"fewer than HISCORE_WAIT_REPLICAS={wait_replicas} replicas on "
                f"{', '.join(short)}: a 202 there waits for those it has",
            )
        )
    elif wait_replicas:
        results.append(
            Check(OK, "replicas", f"every master has the {wait_replicas} a 202 waits for")
        )
    else:
        results.append(
            Check(
                WARN,
                "replicas",
                "HISCORE_WAIT_REPLICAS=0: a master that dies may lose submissions it answered",
            )
        )
    return results, client


def _on_every_master(
    client: RedisCluster, check: Callable[[redis.Redis], list[Check]]
) -> list[Check]:
    """``check`` of each master of a cluster: its lines once if every master agrees, else those
    that differ, each naming its master."""
    found = [(node.name, check(node.redis_connection)) for node in client.get_primaries()]
    if all(lines == found[0][1] for _, lines in found):
        return [Check(c.status, c.name, f"{c.message} (every master)") for c in found[0][1]]
    return [Check(c.status, c.name, f"{name}: {c.message}") for name, lines in found for c in lines]


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def check_redis_auth(url: str) -> Check:
    """A data Redis beyond loopback asks for a password (called once it answered ``url``: if
    the URL has none, the server took commands without one)."""
    split = urlsplit(url)
    if split.scheme == "unix":
        return Check(OK, "redis-auth", "a Unix socket, reachable from this machine only")
    host = split.hostname or "localhost"
    if split.password:
        return Check(OK, "redis-auth", "REDIS_URL carries a password")
    if _loopback(host):
        return Check(OK, "redis-auth", f"no password, on the loopback ({host})")
    return Check(
        WARN,
        "redis-auth",
        f"{redact(url)} answers without a password from beyond the loopback: anyone who can "
        "reach it can rewrite the boards; set requirepass and put the password in REDIS_URL",
    )


def check_persistence(client: DataClient) -> list[Check]:
    """Entries survive a restart (AOF) and are never evicted (``maxmemory-policy``)."""
    try:
        settings: dict[str, str] = {}
        for name in ("appendonly", "appendfsync", "save", "maxmemory-policy"):
            settings.update(cast(dict[str, str], client.config_get(name)))
    except redis.ResponseError as exc:
        # Hosted Redis often renames or forbids CONFIG.
        return [
            Check(
                WARN,
                "persistence",
                f"cannot read the server's settings ({_reason(exc)}); make sure it keeps an "
                "append-only file and its maxmemory-policy is noeviction",
            )
        ]
    results = []
    if settings.get("appendonly") == "yes":
        results.append(
            Check(OK, "persistence", f"appendonly yes, appendfsync {settings.get('appendfsync')}")
        )
    else:
        snapshots = settings.get("save") or "never"
        results.append(
            Check(
                WARN,
                "persistence",
                "appendonly is off: a crash loses every entry since the last snapshot "
                f"(save {snapshots!r}); set appendonly yes",
            )
        )
    policy = settings.get("maxmemory-policy")
    if policy == "noeviction":
        results.append(Check(OK, "eviction", "maxmemory-policy noeviction"))
    else:
        results.append(
            Check(
                FAIL,
                "eviction",
                f"maxmemory-policy is {policy}: a full Redis would evict log entries and boards; "
                "set maxmemory-policy noeviction",
            )
        )
    return results


def check_layout(client: DataClient) -> Check:
    """No key of the single ingest slot's layout waits for ``manage.py migrate-storage`` (the
    layout always wrote its stream and counts, so the records it kept go with them)."""
    names = keys.LEGACY_INGEST_KEYS
    try:
        # One EXISTS each, pipelined: the keys are in several slots of a Redis Cluster.
        pipe = client.pipeline(transaction=False)
        for key in names:
            pipe.exists(key)
        left = [key for key, n in zip(names, pipe.execute(), strict=True) if n]
    except redis.RedisError as exc:
        return Check(WARN, "layout", f"cannot look for keys of earlier layouts: {_reason(exc)}")
    if left:
        return Check(
            WARN,
            "layout",
            f"{', '.join(left)} of the single ingest slot wait for "
            "`python manage.py migrate-storage` (run it once this version is live everywhere: "
            "until then their entries are drained by no worker and their records read as unknown)",
        )
    return Check(OK, "layout", "no key of the single ingest slot is left")


def check_broker(
    broker_url: str,
    redis_url: str,
    transport_options: dict[str, Any],
    connect: Callable[[str], redis.Redis],
    redis_ok: bool,
) -> Check:
    """The Celery broker answers: PING for a Redis URL, a kombu connection for any other."""
    shown = redact(broker_url)
    if broker_url == redis_url:
        if redis_ok:
            return Check(OK, "broker", "the data Redis (CELERY_BROKER_URL unset)")
        return Check(FAIL, "broker", "the data Redis, which does not answer")
    scheme = urlsplit(broker_url).scheme
    if scheme in ("redis", "rediss", "unix"):
        try:
            connect(broker_url).ping()
        except (redis.RedisError, ValueError, OSError) as exc:
            return Check(
                FAIL, "broker", f"CELERY_BROKER_URL {shown} does not answer: {_reason(exc)}"
            )
        return Check(OK, "broker", f"{shown} answers")
    from kombu import Connection

    try:
        with Connection(broker_url, transport_options=transport_options, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=1, timeout=10)
    except Exception as exc:  # kombu raises whatever its transport's client raises
        return Check(FAIL, "broker", f"CELERY_BROKER_URL {shown} does not answer: {_reason(exc)}")
    return Check(OK, "broker", f"{shown} answers")


def check_games(games_file: str | None) -> Check:
    """The games registry loads (the built-in games plus ``HISCORE_GAMES_FILE``)."""
    try:
        registry = load_registry(games_file)
    except Exception as exc:  # a missing file, bad TOML or a bad game all stop the app
        return Check(FAIL, "games", f"HISCORE_GAMES_FILE {games_file}: {_reason(exc)}")
    slugs = ", ".join(game.slug for game in registry)
    source = f"built in and from {games_file}" if games_file else "built in"
    return Check(OK, "games", f"{slugs} ({source})")
