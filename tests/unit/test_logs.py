"""Log lines: JSON or text, one handler per process, and the request id on every line."""

from __future__ import annotations

import json
import logging
import re
import runpy
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.signals import setup_logging

from app import create_app, logs
from app.logs import (
    REQUEST_ID_HEADER,
    RootHandler,
    current_request_id,
    log_context,
)
from config import celery_settings

log = logging.getLogger("app.test_logs")


def _app(redis_client, **overrides):
    app = create_app(
        "testing",
        {"REDIS_CLIENT": redis_client, "CELERY": celery_settings("memory://"), **overrides},
    )

    @app.get("/logged")
    def logged():
        log.warning("a line from the view")
        return {"request_id": current_request_id()}

    return app


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_request_logs_json_lines_carrying_the_request_id_it_was_sent(redis_client, capsys):
    client = _app(redis_client).test_client()
    resp = client.get("/logged", headers={REQUEST_ID_HEADER: "lb-7f3a.01_x"})
    assert resp.headers[REQUEST_ID_HEADER] == "lb-7f3a.01_x"
    assert resp.get_json() == {"request_id": "lb-7f3a.01_x"}
    (line,) = [
        entry for entry in _json_lines(capsys.readouterr().err) if entry["logger"] == log.name
    ]
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "WARNING"
    assert line["message"] == "a line from the view"
    assert line["request_id"] == "lb-7f3a.01_x"
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "sent", ["", "has space", "x" * 65, 'quote"', "new\\line", "é", "<script>"]
)
def test_a_request_id_that_is_not_a_plain_token_is_replaced(redis_client, capsys, sent):
    client = _app(redis_client).test_client()
    resp = client.get("/logged", headers={REQUEST_ID_HEADER: sent})
    given = resp.headers[REQUEST_ID_HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", given)
    (line,) = [
        entry for entry in _json_lines(capsys.readouterr().err) if entry["logger"] == log.name
    ]
    assert line["request_id"] == given


def test_each_request_gets_its_own_id_and_none_is_left_bound_after_it(redis_client):
    client = _app(redis_client).test_client()
    first = client.get("/logged").headers[REQUEST_ID_HEADER]
    second = client.get("/logged").headers[REQUEST_ID_HEADER]
    assert first != second
    assert current_request_id() is None


def test_errors_answered_by_the_app_carry_the_request_id_too(redis_client):
    client = _app(redis_client).test_client()
    resp = client.get("/no-such-page", headers={REQUEST_ID_HEADER: "abc"})
    assert resp.status_code == 404
    assert resp.headers[REQUEST_ID_HEADER] == "abc"


def test_text_mode_writes_text_with_the_request_id(redis_client, capsys):
    client = _app(redis_client, LOG_FORMAT="text").test_client()
    client.get("/logged", headers={REQUEST_ID_HEADER: "req-1"})
    lines = [line for line in capsys.readouterr().err.splitlines() if log.name in line]
    assert len(lines) == 1
    assert not lines[0].startswith("{")
    assert re.search(
        r" WARNING app\.test_logs: a line from the view \[request_id=req-1\]$", lines[0]
    )


def test_building_many_apps_installs_one_root_handler(redis_client):
    for _ in range(3):
        _app(redis_client)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, RootHandler)]
    assert len(handlers) == 1


def test_log_context_binds_fields_to_the_lines_inside_it(redis_client, capsys):
    _app(redis_client)
    with log_context(request_id="r-1", submission_id="s-1"):
        assert current_request_id() == "r-1"
        with log_context(submission_id="s-2", player_id=None):
            log.warning("inner")
        log.warning("outer")
    log.warning("after")
    lines = {e["message"]: e for e in _json_lines(capsys.readouterr().err)}
    assert lines["inner"]["submission_id"] == "s-2"
    assert "player_id" not in lines["inner"]
    assert lines["outer"]["submission_id"] == "s-1"
    assert lines["outer"]["request_id"] == "r-1"
    assert "request_id" not in lines["after"] and "submission_id" not in lines["after"]
    assert current_request_id() is None


def test_celery_leaves_logging_to_the_root_handler(redis_client):
    _app(redis_client)
    root = logging.getLogger()
    before = list(root.handlers)
    receivers = setup_logging.send(sender=None, loglevel=logging.DEBUG, logfile=None)
    try:
        # A connected receiver is what stops Celery from adding handlers of its own.
        assert [
            response for receiver, response in receivers if receiver is logs._celery_setup_logging
        ]
        assert root.handlers == before
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(logging.INFO)


def _gunicorn_logger(monkeypatch, tmp_path, log_format):
    """gunicorn's logger as gunicorn.conf.py sets it up, under ``LOG_FORMAT=log_format``."""
    from gunicorn.config import Config

    monkeypatch.setenv("HISCORE_CONFIG", "testing")
    monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else the file makes one
    settings = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))
    cfg = Config()
    for name in ("accesslog", "access_log_format", "logger_class"):
        cfg.set(name, settings[name])
    return cfg.logger_class(cfg)


def _access(logger, user_agent):
    resp = SimpleNamespace(
        status="200 OK", headers=[("X-Request-ID", "rid-9")], sent=42, response_length=42
    )
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/v1/games?x=1",
        "PATH_INFO": "/api/v1/games",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": user_agent,
    }
    req = SimpleNamespace(headers=[("USER-AGENT", user_agent), ("X-FORWARDED-FOR", "203.0.113.9")])
    logger.access(resp, req, environ, timedelta(milliseconds=12))


def test_gunicorn_access_lines_are_json_even_for_a_hostile_user_agent(
    monkeypatch, tmp_path, capsys
):
    hostile = 'say "hi" \\ and end with a backslash\\'
    _access(_gunicorn_logger(monkeypatch, tmp_path, "json"), hostile)
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["logger"] == "gunicorn.access"
    assert line["message"] == "GET /api/v1/games?x=1 200"
    assert line["user_agent"] == hostile
    assert line["status"] == 200
    assert line["request_id"] == "rid-9"
    assert line["forwarded_for"] == "203.0.113.9"
    assert line["duration_ms"] == 12


def test_gunicorn_access_lines_in_text_mode_end_with_the_request_id(monkeypatch, tmp_path, capsys):
    _access(_gunicorn_logger(monkeypatch, tmp_path, "text"), "curl/8")
    out = capsys.readouterr().out.strip()
    assert out.startswith("127.0.0.1 - - [")
    assert out.endswith('"curl/8" 12ms rid-9')
