"""Rate limits: per client address everywhere, and per player on what a player sends.

Fixed windows counted in the data Redis, in the notation of the `limits` library (the settings
``RATE_LIMIT_*``, e.g. ``600/minute`` or ``10/second;600/minute``), answered as Flask-Limiter
answers them: 429 problem+json with ``Retry-After``, and ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` on every counted answer.

Why not Flask-Limiter itself: it makes two or three Redis round trips per limit per request,
which on the score path cost more than the score's own work. Here every limit a request is
subject to is counted in one script call, and a score's limits are counted inside the script
that stores it (see :mod:`app.storage.intake`): the score path makes one round trip in all. A
score refused before it reaches Redis (a bad body, say) is counted on its way out, and answered
429 then if it broke a limit, as it would have been had it been counted first.

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

import time
from dataclasses import dataclass

import redis
from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import get_redis
from app.leaderboard.players import player_of
from app.storage import keys
from app.storage.rate_limits import (
    NOTHING_COUNTED,
    RIDER,
    Count,
    Counted,
    Counter,
    RateLimitBreached,
    Rider,
    count,
)
from app.web.api.inputs import read_json
from app.web.errors import Problem, problem_response
from app.web.security_headers import add_headers


def proven_player() -> str | None:
    """The player the current request proves it is, by the key in its body or its cookie."""
    # Asked by the limits and by the view: verify the key once.
    if "proven_player" not in g:
        g.proven_player = _proven_player()
    return g.proven_player


def _proven_player() -> str | None:
    secret = current_app.config["SECRET_KEY"]
    try:
        body = read_json() if request.is_json else None
    except Problem:  # not JSON; the view answers it with a 400
        body = None
    key = body.get("player_key") if isinstance(body, dict) else None
    if isinstance(key, str) and (player := player_of(secret, key)):
        return player
    cookie = request.cookies.get(current_app.config["PLAYER_COOKIE"])
    return player_of(secret, cookie) if cookie else None


@dataclass(frozen=True)
class Rule:
    """A limit setting and whom it counts: ``scope`` names the budget (``global``, an endpoint
    or a blueprint); per player, or per address."""

    setting: str
    scope: str
    per_player: bool = False


#: The budget of each address across the app (a request no route matches included).
GLOBAL = Rule("RATE_LIMIT_PER_ADDRESS", "global")

#: Endpoints with limits of their own, counted after the address's budget, in this order.
VIEW_LIMITS: dict[str, tuple[Rule, ...]] = {
    "api.scores.submit_score": (
        Rule("RATE_LIMIT_SCORES_PER_ADDRESS", "api.scores.submit_score"),
        Rule("RATE_LIMIT_SCORES_PER_PLAYER", "api.scores.submit_score", per_player=True),
    ),
    "api.scores.start_session": (
        Rule("RATE_LIMIT_SESSIONS_PER_ADDRESS", "api.scores.start_session"),
    ),
}

#: Blueprints whose views share one limit (per address, counted together).
BLUEPRINT_LIMITS: dict[str, Rule] = {"api.admin": Rule("RATE_LIMIT_ADMIN_PER_ADDRESS", "api.admin")}

#: What is never limited: probes and scrapes come from the platform, often all from one address.
EXEMPT_BLUEPRINTS = ("health",)

#: Views that take the operator token besides the operator blueprint: a request that sends a
#: token counts in the operator budget, so that they add no token guesses.
OPERATOR_VIEWS = ("health.readyz", "metrics")

#: Endpoints whose own script counts their limits (:func:`take_pending`), saving the round trip.
COUNTED_BY_VIEW = frozenset({"api.scores.submit_score"})

#: Endpoints that change nothing: their count rides along with their first Redis command, in
#: the same round trip (see :class:`~app.storage.rate_limits.RidingRedis`).
COUNTED_WITH_FIRST_READ = frozenset(
    {
        "api.boards.board_top",
        "api.boards.player_standing",
        "api.boards.board_stats",
        "api.boards.lookup_players",
        "api.scores.submission_status",
    }
)


def _sends_token() -> bool:
    return "Authorization" in request.headers


class RateLimits:
    """The limits of an app, parsed once from its settings."""

    def __init__(self, config: dict) -> None:
        names = {GLOBAL.setting, *(r.setting for rules in VIEW_LIMITS.values() for r in rules)}
        names |= {rule.setting for rule in BLUEPRINT_LIMITS.values()}
        self.items: dict[str, list[RateLimitItem]] = {
            name: parse_many(config[name]) for name in names
        }
        self.operator = BLUEPRINT_LIMITS["api.admin"]

    def rules(self) -> list[Rule]:
        """The rules the current request is subject to, in the order they are counted."""
        endpoint = request.endpoint
        if endpoint in OPERATOR_VIEWS:
            operator = [self.operator] if _sends_token() else []
            return operator if request.blueprint in EXEMPT_BLUEPRINTS else [GLOBAL, *operator]
        if request.blueprint in EXEMPT_BLUEPRINTS or endpoint == "static":
            return []
        rules = [GLOBAL, *VIEW_LIMITS.get(endpoint or "", ())]
        if request.blueprint in BLUEPRINT_LIMITS:
            rules.append(BLUEPRINT_LIMITS[request.blueprint])
        return rules

    def counters(self) -> list[Counter]:
        """What the current request is counted against."""
        address = request.remote_addr or "127.0.0.1"
        counters = []
        for rule in self.rules():
            if rule.per_player:
                player = proven_player()
                if player is None:
                    continue
                identity = f"player:{player}"
            else:
                identity = address
            for item in self.items[rule.setting]:
                spec = f"{item.amount}/{item.multiples}/{item.GRANULARITY.name}"
                counters.append(
                    Counter(
                        key=keys.rate_limit_key(identity, rule.scope, spec),
                        amount=item.amount,
                        window_ms=item.get_expiry() * 1000,
                        description=str(item),
                    )
                )
        return counters


def take_pending() -> list[Counter]:
    """The counters the current view is to count in its own script (then :func:`counted`);
    taken, so that a script that fails is not followed by a second count."""
    counters = g.get("rate_pending", [])
    g.rate_pending = []
    return counters


def counted(outcome: Counted) -> None:
    """Record what the view's script counted; raise the 429 if a limit was broken."""
    g.rate_pending = []
    g.rate_counted = outcome
    if outcome.breached is not None:
        raise refusal(outcome.breached)


def refusal(breach: Count) -> Problem:
    """The 429 of a broken limit."""
    seconds = max(1, -(-breach.ms_left // 1000))
    return Problem(
        429,
        "Too Many Requests",
        f"More than {breach.counter.description} from this client; retry in {seconds} s.",
        kind="rate-limited",
        headers={"Retry-After": str(seconds), **_headers(breach)},
    )


def _headers(shown: Count) -> dict[str, str]:
    reset = int(time.time() + shown.ms_left / 1000)
    return {
        "X-RateLimit-Limit": str(shown.counter.amount),
        "X-RateLimit-Remaining": str(shown.remaining),
        "X-RateLimit-Reset": str(reset),
    }


def _count_request() -> None:
    limits: RateLimits = current_app.extensions["hiscore.rate_limits"]
    counters = limits.counters()
    if request.endpoint in COUNTED_BY_VIEW:
        g.rate_pending = counters
        g.rate_counted = NOTHING_COUNTED
        return
    if request.endpoint in COUNTED_WITH_FIRST_READ and counters:
        g.rate_rider = Rider(counters)
        g.rate_rider_token = RIDER.set(g.rate_rider)
        return
    counted(count(get_redis(), counters))


def _rider_done() -> None:
    """Take the current request's rider off the client; what it counted (if it rode) becomes
    the request's count, and what it did not is left to count on the way out."""
    rider = g.pop("rate_rider", None)
    token = g.pop("rate_rider_token", None)
    if token is not None:
        try:
            RIDER.reset(token)
        except ValueError:
            RIDER.set(None)  # reset in another context: at least leave none behind
    if rider is None:
        return
    if rider.counted is not None:
        g.rate_counted = rider.counted
    else:
        g.rate_pending = list(rider.counters)


def _breached(exc: RateLimitBreached) -> Response:
    _rider_done()
    assert exc.counted.breached is not None
    return problem_response(refusal(exc.counted.breached))


def _finish(response: Response) -> Response:
    _rider_done()
    left = g.get("rate_pending")
    if left:  # the view answered before its script ran: count the request now
        g.rate_pending = []
        try:
            outcome = count(get_redis(), left)
        except redis.RedisError:
            return response  # the answer stands; one request goes uncounted
        g.rate_counted = outcome
        if outcome.breached is not None:
            return problem_response(refusal(outcome.breached))
    outcome = g.get("rate_counted")
    shown = outcome.tightest() if outcome is not None else None
    if shown is not None:
        add_headers(response, _headers(shown))
    return response


def init_rate_limits(app: Flask) -> RateLimits | None:
    """Trust the configured proxies, and count requests against the configured limits."""
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    if not app.config["RATE_LIMITS_ENABLED"]:
        return None
    limits = RateLimits(app.config)
    app.extensions["hiscore.rate_limits"] = limits
    app.before_request(_count_request)
    app.after_request(_finish)
    app.register_error_handler(RateLimitBreached, _breached)
    # A kept-alive connection's next request runs in the same greenlet: leave no rider there.
    app.teardown_request(lambda exc: _rider_done())
    return limits
