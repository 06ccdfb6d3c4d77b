"""Liveness and readiness for process supervisors and load balancers."""

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field

from app.extensions import get_redis
from app.web.api.openapi import documented
from app.web.auth import check_operator
from app.web.errors import Problem
from app.worker.status import live_workers

bp = Blueprint("health", __name__)


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Redis answers and workers report in (how many, only to the operator)."""

    status: Literal["ready"] = "ready"
    workers: int | None = Field(default=None, ge=0)


@bp.get("/healthz")
@documented("meta", "Liveness: the process answers", {200: ("Alive.", Health)}, limited=False)
def healthz() -> Response:
    """The process answers; nothing else is checked."""
    return jsonify(Health().model_dump(mode="json"))


@bp.get("/readyz")
@documented(
    "meta",
    "Readiness: Redis answers and a worker's heartbeat is fresh",
    {200: ("Ready.", Ready)},
    problems={503: "Redis is unreachable, or no worker is alive."},
    limited=False,
)
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
    ready = Ready(workers=len(workers) if operator else None)
    return jsonify(ready.model_dump(mode="json", exclude_none=True))
