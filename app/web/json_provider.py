"""The app's JSON (``jsonify``, ``request.get_json``, templates' ``tojson``) through orjson.

Flask's default provider (the standard library's json, keys sorted) costs several times
orjson's on every answer; an answer's keys come in the order its model dumped them. Request
bodies are read in app/web/api/inputs.py.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from flask import Flask, Response
from flask.json.provider import JSONProvider


def _default(value: Any) -> Any:
    # What Flask's provider also turns into text (pages pass markup-safe strings, say).
    if hasattr(value, "__html__"):
        return str(value.__html__())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class OrjsonProvider(JSONProvider):
    """``app.json``: :func:`flask.jsonify`, ``request.get_json`` and templates' ``tojson``."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_default).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, default=_default)
        response_class = cast(type[Response], self._app.response_class)  # a flask.Flask's
        return response_class(body, mimetype="application/json")


def init_json(app: Flask) -> None:
    """orjson for the app's JSON."""
    app.json = OrjsonProvider(app)
