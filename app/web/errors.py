"""One shape for every API error: RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, json, render_template, request
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisClusterException
from werkzeug.exceptions import HTTPException

from app.storage.topology import ReplicationShortfall

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "/problems/"


class Problem(Exception):
    """An error to answer as problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = headers or {}


#: Paths answered in JSON; everything else is a page, whose errors are pages too.
MACHINE_PATHS = ("/api/", "/healthz", "/readyz", "/metrics")


def wants_json() -> bool:
    """Whether the request is for a machine: a JSON path, or an Accept that prefers JSON to a
    page (a browser asks for HTML first; ``*/*`` gets the page)."""
    if request.path.startswith(MACHINE_PATHS):
        return True
    best = request.accept_mimetypes.best_match(
        ["text/html", "application/json", "application/problem+json"]
    )
    return best in ("application/json", "application/problem+json")


def problem_response(problem: Problem) -> Response:
    """Render a :class:`Problem`: problem+json for a machine, a short page for a person."""
    if not wants_json():
        html = render_template("error.html", problem=problem)
        return Response(html, status=problem.status, mimetype="text/html", headers=problem.headers)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.kind if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["errors"] = problem.errors
    response = Response(
        json.dumps(body), status=problem.status, mimetype="application/problem+json"
    )
    response.headers.update(problem.headers)
    return response


def validation_problem(detail: str, errors: dict[str, list[str]]) -> Problem:
    """422 with per-field messages."""
    return Problem(422, "Invalid submission", detail, kind="validation", errors=errors)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    detail = exc.description or exc.name
    if status == 413:
        detail = "The request body is larger than this endpoint accepts."
    # Keep what the error says in its headers (Allow on a 405, for one).
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return problem_response(Problem(status, exc.name, detail, headers=headers))


def _unavailable(exc: Exception) -> Response:
    log.warning("answering 503 on %s %s: %s", request.method, request.path, exc)
    return problem_response(
        Problem(
            503,
            "Service Unavailable",
            "The leaderboard store is unreachable; nothing was stored. Retry shortly with the "
            "same submission_id.",
            kind="unavailable",
            headers={"Retry-After": "5"},
        )
    )


def _unreplicated(exc: Exception) -> Response:
    log.warning("answering 503 on %s %s: %s", request.method, request.path, exc)
    return problem_response(
        Problem(
            503,
            "Service Unavailable",
            "The submission was stored, but no replica holds it yet. Retry shortly with the "
            "same submission_id.",
            kind="unavailable",
            headers={"Retry-After": "1"},
        )
    )


def _internal(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(
        Problem(500, "Internal Server Error", "Something went wrong on our side.")
    )


def register_errorhandlers(app: Flask) -> None:
    """Answer every error, expected or not, as problem+json."""
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _unavailable)
    # A cluster with a slot no node serves (failing over), or no node that answers.
    app.register_error_handler(RedisClusterException, _unavailable)
    app.register_error_handler(ReplicationShortfall, _unreplicated)
    app.register_error_handler(BrokerError, _unavailable)
    app.register_error_handler(Exception, _internal)
