"""Liveness and readiness for process supervisors and load balancers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.extensions import get_redis
from app.web.auth import check_operator
from app.web.errors import Problem
from app.worker.status import live_workers

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; nothing else is checked."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and at least one worker's heartbeat is fresh; how many workers,
    and why not, only to the operator (its token)."""
    operator = "Authorization" in request.headers
    if operator:
        check_operator()
    client = get_redis()
    client.ping()
    workers = live_workers(client)
    if not workers:
        raise Problem(
            503,
            "Service Unavailable",
            "No worker has reported in: scores would wait in the queue."
            if operator
            else "The service is not ready.",
            kind="no-worker" if operator else "not-ready",
            headers={"Retry-After": "10"},
        )
    return jsonify(
        {"status": "ready", "workers": len(workers)} if operator else {"status": "ready"}
    )
