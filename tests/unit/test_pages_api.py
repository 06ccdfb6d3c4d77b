"""JSONP, CORS and the pages' server side (the pages themselves are driven in tests/browser)."""

import pytest

from app import create_app
from config import celery_settings


@pytest.mark.parametrize("callback", ["cb", "hiscore.onBoard", "$x._y1", "a.b.c"])
def test_reads_answer_jsonp_for_a_valid_callback(client, callback):
    resp = client.get(f"/api/v1/games/guess/boards/10?callback={callback}")
    assert resp.status_code == 200
    assert resp.mimetype == "application/javascript"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    body = resp.get_data(as_text=True)
    assert body.startswith(f"/**/{callback}({{") and body.endswith(");")


@pytest.mark.parametrize(
    "callback",
    [
        "alert(1)//",
        "</script><script>alert(1)</script>",
        "a b",
        "1abc",
        "a..b",
        "a.",
        "x" * 65,
        "cb;alert(1)",
        "a['b']",
        "cb\n",
        "",
    ],
)
def test_a_hostile_callback_is_refused_and_never_echoed(client, callback):
    resp = client.get("/api/v1/games", query_string={"callback": callback})
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    assert "callback" in resp.get_json()["errors"]
    if callback:
        assert callback not in resp.get_data(as_text=True)


def test_jsonp_is_for_reads_only(client):
    resp = client.post("/api/v1/games/guess/sessions?callback=cb")
    assert resp.status_code == 201 and resp.mimetype == "application/json"


def test_cors_only_for_configured_origins(redis_client):
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "CORS_ORIGINS": ["https://games.example"],
        },
    )
    client = app.test_client()
    ok = client.get("/api/v1/games", headers={"Origin": "https://games.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://games.example"
    other = client.get("/api/v1/games", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(
        "/api/v1/games/guess/scores",
        headers={
            "Origin": "https://games.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://games.example"
    assert "idempotency-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    admin = client.get("/api/v1/admin/status", headers={"Origin": "https://games.example"})
    assert "Access-Control-Allow-Origin" not in admin.headers


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/", 200),
        ("/boards/guess/100", 200),
        ("/admin", 200),
        ("/boards/chess/1", 404),
        ("/boards/guess/7", 404),
        ("/nowhere", 404),
    ],
)
def test_pages_are_html_and_so_are_their_errors(client, url, status):
    resp = client.get(url)
    assert resp.status_code == status
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<meta name="viewport"' in html
    assert "Traceback" not in html
