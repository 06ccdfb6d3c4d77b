"""The JSON API under ``/api/v1``."""

from __future__ import annotations

from flask import Blueprint

from app.web.api import admin, boards, openapi, runs, scores


def create_api_blueprint() -> Blueprint:
    """A fresh ``api`` blueprint holding every endpoint of the API."""
    api = Blueprint("api", __name__, url_prefix="/api/v1")
    api.register_blueprint(scores.bp)
    api.register_blueprint(runs.bp)
    api.register_blueprint(boards.bp)
    api.register_blueprint(admin.bp)
    api.register_blueprint(openapi.bp)
    return api
