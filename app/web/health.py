"""Liveness and readiness for process supervisors and load balancers."""

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from app.extensions import get_redis
from app.web.api.openapi import documented
from app.web.errors import Problem
from app.worker.status import live_workers

bp = Blueprint("health", __name__)


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """Redis answers and workers report in."""

    status: Literal["ready"] = "ready"
    workers: int = Field(ge=0)


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
    """Ready when Redis answers and at least one worker's heartbeat is fresh."""
    client = get_redis()
    client.ping()
    workers = live_workers(client)
    if not workers:
        raise Problem(
            503,
            "Service Unavailable",
            "No worker has reported in: scores would wait in the queue.",
            kind="no-worker",
            headers={"Retry-After": "10"},
        )
    return jsonify(Ready(workers=len(workers)).model_dump(mode="json"))
