"""Configuration classes, chosen by the ``HISCORE_CONFIG`` environment variable
(``production`` unless it says otherwise).

Every secret and every address comes from the environment. ``ProductionConfig`` refuses to
start without the secrets it needs (see :func:`ProductionConfig.check`).
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"

# Queue names: ingestion and maintenance never share a queue, so a long rebuild cannot
# delay a player's verdict.
INGEST_QUEUE = "ingest"
MAINTENANCE_QUEUE = "maintenance"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_int_within(name: str, default: int, low: int, high: int) -> int:
    value = _env_int(name, default)
    if not low <= value <= high:
        raise RuntimeError(f"{name}={value} is not between {low} and {high}")
    return value


#: Ingest partitions when ``HISCORE_INGEST_PARTITIONS`` does not say, and the most it may say.
DEFAULT_INGEST_PARTITIONS = 8
MAX_INGEST_PARTITIONS = 1024


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise RuntimeError(f"{name}={value!r} is not a yes or a no")
    return value in ("1", "true", "yes", "on")


#: The beat schedule, as data: job name -> (task, environment variable, default seconds).
BEAT_JOBS: dict[str, tuple[str, str, int]] = {
    "sweep": ("hiscore.sweep", "HISCORE_SWEEP_EVERY", 5),
    "prune": ("hiscore.maintenance.prune", "HISCORE_PRUNE_EVERY", 3600),
    "stats": ("hiscore.maintenance.stats", "HISCORE_STATS_EVERY", 60),
    "reconcile": ("hiscore.maintenance.reconcile", "HISCORE_RECONCILE_EVERY", 3600),
}

INGEST_TASKS = ("hiscore.ingest", "hiscore.drain", "hiscore.sweep")

#: Seconds a Redis broker may take to answer one command (or a connection) before the command
#: fails: far above a healthy broker's milliseconds, short enough to hold a request briefly.
BROKER_SOCKET_TIMEOUT = 2

MAINTENANCE_TASKS = (
    "hiscore.maintenance.rebuild",
    "hiscore.maintenance.prune",
    "hiscore.maintenance.stats",
    "hiscore.maintenance.reconcile",
)


def maintenance_time_limit() -> int:
    """Seconds a rebuild, prune, stats or reconcile run may take."""
    return _env_int("HISCORE_MAINTENANCE_TIME_LIMIT", 1800)


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` built from :data:`BEAT_JOBS` and the environment."""
    schedule = {}
    for name, (task, variable, default) in BEAT_JOBS.items():
        every = float(_env_int(variable, default))
        schedule[name] = {
            "task": task,
            "schedule": every,
            # A run that waited a whole interval in the queue is superseded by the next one.
            # (The queue comes from task_routes.)
            "options": {"expires": every},
        }
    return schedule


def celery_settings(broker_url: str, redis_url: str | None = None) -> dict[str, Any]:
    """The Celery settings of a careful deployment, as lowercase Celery names.

    Ingestion acknowledges late, so a submission whose worker dies is delivered again; its hard
    time limit is well under the broker's visibility timeout, so a message is not delivered
    twice while its worker may still run it, and a dead worker's messages return within that
    timeout. Maintenance acknowledges early instead: a run may last far longer than the
    timeout, and a lost run is simply run again (by beat, or by the operator once its family
    lock lapses).
    """
    ingest_limit = _env_int("HISCORE_INGEST_TIME_LIMIT", 60)
    maintenance_limit = maintenance_time_limit()
    maintenance_limits = {
        "time_limit": maintenance_limit,
        "soft_time_limit": maintenance_limit - 60,
        "acks_late": False,
    }
    return {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": ingest_limit - 10,
        "task_time_limit": ingest_limit,
        "task_annotations": {name: maintenance_limits for name in MAINTENANCE_TASKS},
        "broker_transport_options": {
            "visibility_timeout": max(300, 5 * ingest_limit),
            # Sentinel URLs name the master set here; ignored for plain redis:// URLs.
            "master_name": os.environ.get("CELERY_BROKER_MASTER_NAME", "mymaster"),
            # The web sends a drain task inside the request that stored the score, and a lost
            # send costs nothing (the sweep starts the drain), so a send must fail in seconds
            # while the broker is away. kombu's Redis transport waits forever on a master that
            # stopped answering without closing its connections (a frozen or vanished host):
            "socket_timeout": BROKER_SOCKET_TIMEOUT,
            "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
            # and a producer reconnects for up to 4 s, in 2 s pauses, while Sentinel names no
            # master (this one bounds that on any broker).
            "connect_retries_timeout": 1,
            # A worker's BRPOP on such a connection is given up 1 s + this after it was sent,
            # 1 s + twice this at the latest (kombu's default of 25 s leaves a worker taking no
            # task for up to 51 s). The socket and health-check options are the Redis
            # transport's; pyamqp ignores them.
            "health_check_interval": 5,
        },
        "broker_connection_retry_on_startup": True,
        "task_default_queue": INGEST_QUEUE,
        "task_routes": {
            **{name: {"queue": INGEST_QUEUE} for name in INGEST_TASKS},
            **{name: {"queue": MAINTENANCE_QUEUE} for name in MAINTENANCE_TASKS},
        },
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(),
        # Exactly one scheduler: a second beat waits on this lock and takes over when the
        # active one stops renewing it.
        "beat_scheduler": "app.worker.beat.ResilientRedBeatScheduler",
        # The schedule and its lock live in the data Redis (a plain URL even when the broker
        # is reached through Sentinel, which redbeat cannot parse from a broker URL).
        "redbeat_redis_url": redis_url or broker_url,
        # Said outright, so that redbeat does not fall back to the broker's transport options
        # (a Sentinel master name, socket timeouts), which are not the data Redis's.
        "redbeat_redis_options": {},
        "redbeat_key_prefix": "hs:redbeat",
        "redbeat_lock_timeout": _env_int("HISCORE_BEAT_LOCK_TIMEOUT", 60),
        "beat_max_loop_interval": _env_int("HISCORE_BEAT_LOOP_SECONDS", 5),
    }


class Config:
    """Settings shared by every environment, read from the environment when instantiated."""

    DEBUG = False
    TESTING = False
    # A score body is a few hundred bytes; anything near this is not a score.
    MAX_CONTENT_LENGTH = 16 * 1024
    PLAYER_COOKIE = "hiscore_player"
    PLAYER_COOKIE_SECURE = False
    DEFAULT_SECRET_KEY = ""
    DEFAULT_OPERATOR_TOKEN = ""
    DEFAULT_LOG_FORMAT = "json"
    DEFAULT_RUN_TOKENS_REQUIRED = False

    def __init__(self) -> None:
        env = os.environ
        self.SECRET_KEY = env.get("SECRET_KEY", self.DEFAULT_SECRET_KEY)
        # Bearer token of /api/v1/admin/*; only development and testing have a default.
        self.OPERATOR_TOKEN = env.get("OPERATOR_TOKEN", self.DEFAULT_OPERATOR_TOKEN)
        self.REDIS_URL = env.get("REDIS_URL", DEFAULT_REDIS_URL)
        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or self.REDIS_URL
        self.CELERY = celery_settings(self.CELERY_BROKER_URL, self.REDIS_URL)
        # Sites whose pages may call the read and score endpoints (comma-separated origins).
        self.CORS_ORIGINS = [o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()]
        # Extra or replacement games, as a TOML file (see app/leaderboard/games.py for the fields).
        self.GAMES_FILE = env.get("HISCORE_GAMES_FILE")
        # How long (s) a submission's status stays readable and a retry of it is known as one:
        # at least this long, at most a quarter longer. The prune job keeps every log entry
        # applied this recently, and forgets the applied ids of older ones.
        self.IDEMPOTENCY_WINDOW_SECONDS = _env_int("HISCORE_IDEMPOTENCY_WINDOW", 24 * 3600)
        # Ingestion is split by a hash of the submission id into this many partitions, each with
        # its own stream, drain and status records under a hash tag of its own, drained in
        # parallel. At most the 1,024 buckets of a generation's records, so that every partition
        # has some (see app/storage/submissions.py).
        self.INGEST_PARTITIONS = _env_int_within(
            "HISCORE_INGEST_PARTITIONS", DEFAULT_INGEST_PARTITIONS, 1, MAX_INGEST_PARTITIONS
        )
        # A long-poll re-reads its record this often (s) besides being woken by the verdict's
        # announcement: the bound on the delay a lost announcement causes.
        self.LONGPOLL_RECHECK_SECONDS = _env_int("HISCORE_LONGPOLL_RECHECK", 1)
        # Seconds a client may take to send a request body (the web answers 408 after that),
        # so that a client trickling its body cannot hold a connection for good.
        self.BODY_TIMEOUT_SECONDS = _env_int("HISCORE_BODY_TIMEOUT", 10)
        # Where `manage.py up` starts its own Redis when REDIS_URL is unset.
        self.EMBEDDED_REDIS_PORT = _env_int("HISCORE_REDIS_PORT", 6390)
        # Whether every score must carry a run token from POST /sessions (the page always
        # sends one), and how long a token stays good (seconds from its issue to the score).
        self.RUN_TOKENS_REQUIRED = _env_bool(
            "HISCORE_RUN_TOKENS_REQUIRED", self.DEFAULT_RUN_TOKENS_REQUIRED
        )
        self.RUN_TOKEN_MAX_AGE = _env_int("HISCORE_RUN_TOKEN_MAX_AGE", 2 * 3600)
        # Whether /metrics answers anyone; otherwise it needs the operator token (Bearer).
        self.METRICS_PUBLIC = _env_bool("HISCORE_METRICS_PUBLIC", False)
        # Rate limits (Flask-Limiter notation), per client address unless said otherwise.
        self.RATE_LIMITS_ENABLED = _env_bool("HISCORE_RATE_LIMITS_ENABLED", True)
        self.RATE_LIMIT_PER_ADDRESS = env.get("HISCORE_RATE_LIMIT", "600/minute")
        self.RATE_LIMIT_SCORES_PER_ADDRESS = env.get("HISCORE_RATE_LIMIT_SCORES", "60/minute")
        self.RATE_LIMIT_SCORES_PER_PLAYER = env.get(
            "HISCORE_RATE_LIMIT_SCORES_PER_PLAYER", "20/minute"
        )
        self.RATE_LIMIT_SESSIONS_PER_ADDRESS = env.get("HISCORE_RATE_LIMIT_SESSIONS", "60/minute")
        self.RATE_LIMIT_ADMIN_PER_ADDRESS = env.get("HISCORE_RATE_LIMIT_ADMIN", "60/minute")
        # `json` (one object a line, for a log collector) or `text` (for a person).
        self.LOG_FORMAT = env.get("LOG_FORMAT", self.DEFAULT_LOG_FORMAT)
        # How many proxies (nginx, a dyno's router) stand in front of the web and append to
        # X-Forwarded-For; the client address is taken that many hops from the right, so a
        # client cannot forge it. 0 means clients connect directly.
        self.TRUSTED_PROXIES = _env_int("HISCORE_TRUSTED_PROXIES", 0)
        # Where the prune job appends the log entries it drops (gzip files); unset: nowhere.
        self.ARCHIVE_DIR = env.get("HISCORE_ARCHIVE_DIR") or None

    def check(self) -> None:
        """Raise if this configuration cannot run safely."""


class DevelopmentConfig(Config):
    """A laptop: debug on, a fixed secret so cookies survive restarts."""

    DEBUG = True
    DEFAULT_SECRET_KEY = "dev-only-secret"
    DEFAULT_OPERATOR_TOKEN = "dev-operator-token"
    DEFAULT_LOG_FORMAT = "text"


class TestingConfig(Config):
    """The test suite; unit tests swap Redis and the broker for in-process fakes."""

    TESTING = True
    DEFAULT_SECRET_KEY = "testing-secret"
    DEFAULT_OPERATOR_TOKEN = "testing-operator-token"


class ProductionConfig(Config):
    """A dyno or a VPS: secrets must come from the environment."""

    PLAYER_COOKIE_SECURE = True
    DEFAULT_RUN_TOKENS_REQUIRED = True

    def check(self) -> None:
        required = ("SECRET_KEY", "REDIS_URL", "OPERATOR_TOKEN")
        missing = [name for name in required if not os.environ.get(name)]
        if missing:
            raise RuntimeError(
                "production configuration needs these environment variables: " + ", ".join(missing)
            )


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(name: str | None = None) -> Config:
    """The configuration named by ``name`` or by ``HISCORE_CONFIG``.

    The default is production, which refuses to start without its secrets: a deployment that
    forgets the variable fails loudly instead of running with development's known token.
    """
    name = name or os.environ.get("HISCORE_CONFIG", "production")
    try:
        return CONFIGS[name]()
    except KeyError:
        raise RuntimeError(
            f"HISCORE_CONFIG={name!r} is not one of {', '.join(sorted(CONFIGS))}"
        ) from None
