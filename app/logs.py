"""Log lines: one JSON object a line (for a log collector) or text (for a person), chosen by
``LOG_FORMAT``, each carrying the request and submission it belongs to.

- :func:`init_logging` installs one root handler per process (calling it again only updates
  its format), gives every request an id (``X-Request-ID``, echoed in the response) and makes
  Celery's worker and beat log through the same handler.
- :func:`log_context` binds fields (``request_id``, ``submission_id`` …) to every line logged
  inside it; :func:`current_request_id` is the id of the request being served.
- :func:`gunicorn_logger_class` is gunicorn's ``logger_class``: its error and access logs are
  JSON lines too (with the response's request id), or gunicorn's own text.
"""

from __future__ import annotations

import logging
import sys
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from celery._state import get_current_task
from flask import Flask, Response, g, request
from flask.logging import default_handler
from pythonjsonlogger.json import JsonFormatter

from app.log_context import (  # noqa: F401  (log_context and current_request_id re-exported)
    REQUEST_ID,
    REQUEST_ID_HEADER,
    bind,
    bound_fields,
    current_request_id,
    log_context,
    unbind,
)
from config import config_for


def context_fields() -> dict[str, Any]:
    """The fields a log line written here carries: the bound ones, and the Celery task's."""
    fields = bound_fields()
    task = get_current_task()
    if task is not None and task.request is not None and task.request.id:
        fields.setdefault("task_id", task.request.id)
        fields.setdefault("task_name", task.name)
    return fields


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: time, level, logger, message, then the context and extras."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for key, value in context_fields().items():
            log_data.setdefault(key, value)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {"time": log_data.pop("time"), **log_data}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=… submission_id=…]``, for a person."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = context_fields()
        if fields:
            line += " [" + " ".join(f"{key}={value}" for key, value in fields.items()) + "]"
        return line


class AccessLineFormatter(logging.Formatter):
    """An access line as one JSON object, in the shape of :class:`JsonLineFormatter`'s lines.

    Written once per request, so built directly with orjson: the generic path (python-json-logger
    walking the record's attributes) cost several times as much CPU as the line is worth.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "access", {}),
        }
        return orjson.dumps(line, default=str).decode()


def _header(headers: Any, name: str) -> str | None:
    """A header's value from gunicorn's list of (name, value) pairs (None if absent)."""
    name = name.lower()
    for key, value in headers or ():
        if key.lower() == name:
            return value
    return None


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT``: ``text``, else JSON lines."""
    return TextFormatter() if log_format.strip().lower() == "text" else JsonLineFormatter()


class RootHandler(logging.StreamHandler):
    """hiscore's one root handler: writes to whatever ``sys.stderr`` is at the time."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr (test runners and servers swap it)


def configure_root(log_format: str | None = None, level: int | str | None = None) -> RootHandler:
    """Install the root handler once; set its format (if given) and the root level.

    Other handlers (a test runner's, say) are left alone. Without a level, the root logger
    passes INFO and above unless it was already set lower.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, RootHandler)), None)
    if handler is None:
        handler = RootHandler()
        handler.setFormatter(formatter_for(log_format or "json"))
        root.addHandler(handler)
    elif log_format is not None:
        handler.setFormatter(formatter_for(log_format))
    if level is not None:
        root.setLevel(level)
    elif root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def init_logging(app: Flask) -> None:
    """Log in ``app.config["LOG_FORMAT"]`` and give every request of ``app`` an id."""
    configure_root(app.config.get("LOG_FORMAT") or "json")
    # The root handler writes the app's lines; Flask's own would write them a second time.
    app.logger.removeHandler(default_handler)
    _connect_celery()
    app.before_request(_bind_request_id)
    app.after_request(_echo_request_id)
    app.teardown_request(_unbind_request_id)


def _bind_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.request_id = request_id
    g.log_context_token = bind(request_id=request_id)


def _echo_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _unbind_request_id(exc: BaseException | None) -> None:
    token = g.pop("log_context_token", None)
    if token is not None:
        try:
            unbind(token)
        except ValueError:
            pass  # torn down in another context: the next request binds its own id anyway


def _connect_celery() -> None:
    """Have Celery's worker and beat log through the root handler instead of their own."""
    from celery.signals import setup_logging

    # With a receiver connected, Celery leaves logging to it.
    setup_logging.connect(_celery_setup_logging, weak=False, dispatch_uid="hiscore.logs")


def _celery_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """``setup_logging`` receiver: the format chosen by init_logging, the level of --loglevel."""
    configure_root(level=loglevel or logging.INFO)


def environment_log_format() -> str:
    """``LOG_FORMAT`` of the configuration the environment chooses (JSON if that is unknown)."""
    try:
        return config_for().LOG_FORMAT
    except (RuntimeError, ValueError):
        return "json"


def gunicorn_logger_class() -> type:
    """gunicorn's ``logger_class``: JSON error and access lines under ``LOG_FORMAT=json``.

    Each access line is an object built from the request (not a text template), so a user
    agent full of quotes and backslashes still makes valid JSON.
    """
    from gunicorn.glogging import Logger

    class GunicornLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            self.json_lines = environment_log_format().strip().lower() != "text"
            if self.json_lines:
                for handler in self.error_log.handlers:
                    handler.setFormatter(JsonLineFormatter())
                for handler in self.access_log.handlers:
                    handler.setFormatter(AccessLineFormatter())

        def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
            if not self.json_lines:
                super().access(resp, req, environ, request_time)
                return
            if not self.access_log_enabled:
                return
            try:
                # Read straight from the request, not from gunicorn's atoms (which format the
                # time and copy every header and environ variable for each line).
                status = resp.status_code if hasattr(resp, "status_code") else resp.status
                if isinstance(status, str):
                    status = status.split(None, 1)[0]
                    status = int(status) if status.isdigit() else status
                path = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
                method = environ.get("REQUEST_METHOD", "-")
                fields = {
                    "remote_addr": environ.get("REMOTE_ADDR", "-"),
                    "forwarded_for": _header(req.headers, "X-FORWARDED-FOR"),
                    "method": method,
                    "path": path,
                    "status": status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000, 3),
                    "referer": environ.get("HTTP_REFERER", "-"),
                    "user_agent": environ.get("HTTP_USER_AGENT", "-"),
                    "request_id": _header(resp.headers, REQUEST_ID_HEADER),
                }
                self.access_log.info("%s %s %s", method, path, status, extra={"access": fields})
            except Exception:
                self.error(traceback.format_exc())

    return GunicornLogger
