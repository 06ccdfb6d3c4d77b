"""The services an app holds, built by :func:`init_extensions` and read through accessors."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from app.clock import now_ms
from app.leaderboard.compaction import Compaction
from app.leaderboard.games import Registry, load_registry
from app.leaderboard.run_tokens import TokenPolicy
from app.storage.connection import DataClient, connect
from app.storage.longpoll import VerdictWaiter
from app.storage.topology import Replication


def init_extensions(app: Flask) -> None:
    """Attach the clock, Redis client, games registry and verdict waiter. Nothing connects yet
    (but a cluster's client, which reads the cluster's slots from a node as it is built)."""
    # The web, the worker's tasks and the commands all take the time from here (epoch ms), so
    # a test can pin the instant every one of them sees.
    app.config.setdefault("CLOCK", now_ms)
    # Tests may hand in a client (fakeredis); everyone else gets one built from REDIS_URL, of
    # one server or of a cluster. A request's rate limits may ride along with its first read
    # (see RidingRedis).
    client = app.config.get("REDIS_CLIENT") or connect(
        app.config["REDIS_URL"], cluster=app.config["REDIS_CLUSTER"]
    )
    app.extensions["hiscore.redis"] = client
    app.extensions["hiscore.games"] = load_registry(app.config.get("GAMES_FILE"))
    app.extensions["hiscore.waiter"] = VerdictWaiter(client, app.config["LONGPOLL_RECHECK_SECONDS"])


def get_clock() -> Callable[[], int]:
    """The clock of the current app: a function returning epoch ms."""
    return current_app.config["CLOCK"]


def read_clock() -> int:
    """Epoch ms now, by the current app's clock."""
    return current_app.config["CLOCK"]()


def get_redis() -> DataClient:
    """The data Redis of the current app."""
    return current_app.extensions["hiscore.redis"]


def get_registry() -> Registry:
    """The games of the current app."""
    return current_app.extensions["hiscore.games"]


def get_token_policy() -> TokenPolicy:
    """How the current app treats run tokens."""
    config = current_app.config
    return TokenPolicy(
        secret=config["SECRET_KEY"],
        required=config["RUN_TOKENS_REQUIRED"],
        max_age_s=config["RUN_TOKEN_MAX_AGE"],
    )


def get_compaction() -> Compaction:
    """How the current app's prune job compacts logs."""
    config = current_app.config
    return Compaction(config["IDEMPOTENCY_WINDOW_SECONDS"], config["ARCHIVE_DIR"])


def get_waiter() -> VerdictWaiter:
    """The verdict waiter of the current app."""
    return current_app.extensions["hiscore.waiter"]


def get_replication() -> Replication:
    """How many replicas must hold a write of the current app before it is acknowledged."""
    config = current_app.config
    return Replication(config["WAIT_REPLICAS"], config["WAIT_TIMEOUT_MS"])
