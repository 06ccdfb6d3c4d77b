"""Rate limits (Flask-Limiter, counted in Redis): per client address everywhere, and per player
on what a player sends.

The client address is the one the connection came from, or, behind ``TRUSTED_PROXIES``
proxies, the one those proxies saw (werkzeug's ``ProxyFix`` takes that many entries from the
right of X-Forwarded-For), so a client cannot pick its own address by sending the header.
A player is counted only when the request proves it (its key or cookie): counting a player a
request merely names would let anyone use up someone else's allowance.

The address limit is one budget across the whole app, paths no route matches included (they
cost the service as much, and would otherwise be free to flood); the operator endpoints share
another, so that each new endpoint does not add token guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from app.leaderboard.players import player_of
from app.storage import keys


def proven_player() -> str | None:
    """The player the current request proves it is, by the key in its body or its cookie."""
    # Asked twice a request (is the limit exempt? whose is it?): verify the key once.
    if "proven_player" not in g:
        g.proven_player = _proven_player()
    return g.proven_player


def _proven_player() -> str | None:
    secret = current_app.config["SECRET_KEY"]
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except RecursionError:  # nested too deep to be a score; the view answers it with a 400
        body = None
    key = body.get("player_key") if isinstance(body, dict) else None
    if isinstance(key, str) and (player := player_of(secret, key)):
        return player
    cookie = request.cookies.get(current_app.config["PLAYER_COOKIE"])
    return player_of(secret, cookie) if cookie else None


def _player_key() -> str:
    return f"player:{proven_player()}"


def _retry_after_only_when_refused(response: Response) -> Response:
    # Flask-Limiter's headers put Retry-After on every answer; a client would read it as
    # "wait", so it stays only where it means that.
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


#: endpoint -> (setting holding the limit, counted per player rather than per address)
VIEW_LIMITS: dict[str, list[tuple[str, bool]]] = {
    "api.scores.submit_score": [
        ("RATE_LIMIT_SCORES_PER_ADDRESS", False),
        ("RATE_LIMIT_SCORES_PER_PLAYER", True),
    ],
    "api.scores.start_session": [("RATE_LIMIT_SESSIONS_PER_ADDRESS", False)],
}

#: Blueprints whose views share one limit (per address, counted together).
BLUEPRINT_LIMITS: dict[str, str] = {"api.admin": "RATE_LIMIT_ADMIN_PER_ADDRESS"}

#: What a request no route matches (404, 405) is counted as: Flask-Limiter skips a request
#: without an endpoint, which would leave such requests unlimited.
UNMATCHED = "unmatched"


def _request_identifier() -> str:
    return request.endpoint or UNMATCHED


#: What is never limited: probes and scrapes come from the platform, often all from one address.
EXEMPT_BLUEPRINTS = ("health",)

#: Views that take the operator token besides the operator blueprint: a request that sends a
#: token counts in the operator budget, so that they add no token guesses.
OPERATOR_VIEWS = ("health.readyz", "metrics")


def init_rate_limits(app: Flask) -> Limiter:
    """Trust the configured proxies, and count requests in the data Redis (after the views are
    registered: the limits wrap them)."""
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    config = app.config
    config.setdefault("RATELIMIT_STORAGE_URI", config["REDIS_URL"])
    options = dict(config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    options.setdefault("key_prefix", keys.RATE_LIMIT_PREFIX)
    if config.get("REDIS_CLIENT") is not None:  # tests: count in the same (fake) Redis
        options.setdefault("connection_pool", config["REDIS_CLIENT"].connection_pool)
    config["RATELIMIT_STORAGE_OPTIONS"] = options
    # One INCR (and EXPIRE) per limit per request; a moving window would cost a list per key.
    config.setdefault("RATELIMIT_STRATEGY", "fixed-window")
    config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Redis down means nothing can be stored anyway: let the error answer 503.
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", False)
    config.setdefault("RATELIMIT_ENABLED", config["RATE_LIMITS_ENABLED"])
    config.setdefault("RATELIMIT_REQUEST_IDENTIFIER", _request_identifier)
    # Registered before the limiter's own, so that it runs after it (Flask runs them last
    # registered first).
    app.after_request(_retry_after_only_when_refused)
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        application_limits=[_setting("RATE_LIMIT_PER_ADDRESS")],
    )
    if not config["RATELIMIT_ENABLED"]:
        # Nothing to count: leave the views unwrapped (the wrappers cost even when disabled).
        app.extensions["hiscore.limiter"] = limiter
        return limiter
    for endpoint, limits in VIEW_LIMITS.items():
        # Flask-Limiter types what its decorators return as maybe a coroutine function.
        view: Any = app.view_functions[endpoint]
        for setting, per_player in limits:
            if per_player:
                view = limiter.limit(
                    _setting(setting),
                    key_func=_player_key,
                    exempt_when=lambda: proven_player() is None,
                )(view)
            else:
                view = limiter.limit(_setting(setting))(view)
        app.view_functions[endpoint] = view
    for name, setting in BLUEPRINT_LIMITS.items():
        # Documented to take a blueprint; the decorator's overloads leave that case out.
        limiter.shared_limit(_setting(setting), scope=name)(app.blueprints[name])  # type: ignore[call-overload]
    for endpoint in OPERATOR_VIEWS:
        app.view_functions[endpoint] = limiter.shared_limit(  # type: ignore[assignment]
            _setting(BLUEPRINT_LIMITS["api.admin"]),
            scope="api.admin",
            exempt_when=lambda: "Authorization" not in request.headers,
        )(app.view_functions[endpoint])
    for name in EXEMPT_BLUEPRINTS:
        limiter.exempt(app.blueprints[name])  # type: ignore[call-overload]
    app.extensions["hiscore.limiter"] = limiter  # the wrapped views hold it only weakly
    return limiter
