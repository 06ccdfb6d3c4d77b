"""Liveness for process supervisors."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers; nothing else is checked."""
    return jsonify({"status": "ok"})
