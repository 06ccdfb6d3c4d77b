"""hiscore: leaderboards for web games."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from config import config_for


def create_app(config_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app (and its Celery app) for ``config_name`` or ``HISCORE_CONFIG``."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        # Where the embedded Redis and beat keep their files; the project's instance/ by default.
        instance_path=os.environ.get("HISCORE_INSTANCE_PATH") or None,
    )
    config = config_for(config_name)
    app.config.from_object(config)
    if overrides:
        app.config.update(overrides)
    config.check()
    register_extensions(app)
    register_blueprints(app)
    register_rate_limits(app)
    register_body_guard(app)
    register_security_headers(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    """Redis, the games registry, the verdict waiter, Celery and the metrics."""
    from flask_cors import CORS

    from app.extensions import init_extensions
    from app.logs import init_logging
    from app.web.json_provider import init_json
    from app.web.metrics import init_metrics
    from app.web.sessions import init_sessions
    from app.worker import tasks  # noqa: F401  (registers the shared tasks)
    from app.worker.celery_app import celery_init_app

    init_logging(app)
    init_json(app)
    init_sessions(app)
    init_extensions(app)
    celery_init_app(app)
    init_metrics(app)
    CORS(
        app,
        # A game on another site may read boards, submit scores and follow verdicts; the
        # operator endpoints stay same-origin.
        resources={r"/api/v1/(games|submissions)(/.*)?": {"origins": app.config["CORS_ORIGINS"]}},
        allow_headers=["Content-Type", "Idempotency-Key"],
        expose_headers=["Location"],
        max_age=3600,
    )


def register_blueprints(app: Flask) -> None:
    """The API, the pages and the health endpoints."""
    from app.web import health, pages
    from app.web.api import create_api_blueprint

    # werkzeug answers "//x" with a 308 to an absolute URL built from the Host header the
    # client sent; a path with doubled slashes is simply not found instead.
    app.url_map.merge_slashes = False
    app.register_blueprint(create_api_blueprint())
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)


def register_rate_limits(app: Flask) -> None:
    """Rate limits on every view (and the proxies whose X-Forwarded-For is trusted)."""
    from app.web.rate_limits import init_rate_limits

    init_rate_limits(app)


def register_body_guard(app: Flask) -> None:
    """Read every request body within the size limit and the body timeout."""
    from app.web.bodies import BodyGuard

    app.wsgi_app = BodyGuard(  # type: ignore[method-assign]
        app.wsgi_app, app.config["MAX_CONTENT_LENGTH"], app.config["BODY_TIMEOUT_SECONDS"]
    )


def register_security_headers(app: Flask) -> None:
    """CSP, framing, sniffing and referrer headers on every answer."""
    from app.web.security_headers import init_security_headers

    init_security_headers(app)


def register_errorhandlers(app: Flask) -> None:
    """Every error as problem+json."""
    from app.web.errors import register_errorhandlers as register

    register(app)


def register_commands(app: Flask) -> None:
    """``flask``/``manage.py`` commands beyond ``run`` and ``shell``."""
    from app.cli import register_cli

    register_cli(app)
