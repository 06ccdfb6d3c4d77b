"""JSONP, CORS and the pages' server side (the pages themselves are driven in tests/browser)."""

import json
import re

import pytest
from flask import Response

from app import create_app
from app.web.api.jsonp import wrap
from app.web.errors import validation_problem
from config import celery_settings
from tests.cases import GOOD

CALLBACK = "hiscore.onBoard"


def called_with(resp, callback=CALLBACK):
    """The one argument a JSONP answer passes to ``callback``: it must be a JSON document."""
    body = resp.get_data(as_text=True)
    opening, closing = f"/**/{callback}(", ");"
    assert body.startswith(opening) and body.endswith(closing), body
    return json.loads(body[len(opening) : -len(closing)])


def jsonp(client, url):
    """GET ``url`` with the callback."""
    return client.get(url + ("&" if "?" in url else "?") + f"callback={CALLBACK}")


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
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "callback" in resp.get_json()["errors"]
    if callback:
        assert callback not in resp.get_data(as_text=True)


UNRANKED = "/api/v1/games/guess/boards/10/players/" + "p" * 22

#: Reads that end in an error without a callback: (url, status).
FAILING_READS = [
    ("/api/v1/games/chess", 404),
    ("/api/v1/games/guess/boards/7", 404),
    ("/api/v1/games/guess/boards/7/stats", 404),
    (UNRANKED, 404),
    ("/api/v1/submissions/" + "s" * 22, 404),
    ("/api/v1/submissions/not-an-id!", 404),
    ("/api/v1/games/guess/nowhere", 404),
    ("/api/v1/submissions/" + "s" * 22 + "/more", 404),
    ("/api/v1/games/guess/scores", 405),
    ("/api/v1/games/guess/boards/10?limit=abc", 400),
    ("/api/v1/games/guess/boards/10?window=daily&period=2036-W47", 400),
    ("/api/v1/submissions/" + "s" * 22 + "?wait=99", 400),
]


def assert_problem_called_back(answer, plain, status):
    """A JSONP request's error: the callback called with the very problem a plain request gets
    (status inside it), answered 200 so that the browser runs it, never stored by a cache."""
    assert plain.status_code == status and plain.mimetype == "application/problem+json"
    assert answer.status_code == 200
    assert answer.mimetype == "application/javascript"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"
    problem = called_with(answer)
    assert problem == plain.get_json()
    assert problem["status"] == status and {"type", "title", "detail"} <= set(problem)
    for name in ("Retry-After", "Allow"):
        assert answer.headers.get(name) == plain.headers.get(name)


@pytest.mark.parametrize(("url", "status"), FAILING_READS)
def test_a_jsonp_read_that_fails_calls_back_with_the_problem(client, url, status):
    assert_problem_called_back(jsonp(client, url), client.get(url), status)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (validation_problem("Not one of the games.", {"game_slug": ["is wrong"]}), 422),
        (RuntimeError("a bug"), 500),
    ],
)
def test_a_jsonp_read_whose_view_raises_calls_back_with_the_problem(
    app, client, monkeypatch, error, status
):
    def broken(game_slug):
        raise error

    monkeypatch.setitem(app.view_functions, "api.boards.show_game", broken)
    url = "/api/v1/games/guess"
    assert_problem_called_back(jsonp(client, url), client.get(url), status)


def test_a_jsonp_read_with_redis_down_calls_back_with_the_503(client, fake_server):
    fake_server.connected = False
    url = "/api/v1/games/guess/boards/10"
    answer, plain = jsonp(client, url), client.get(url)
    assert_problem_called_back(answer, plain, 503)
    assert answer.headers["Retry-After"] == "5"


def test_a_jsonp_read_past_the_rate_limit_calls_back_with_the_429(redis_client):
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMIT_PER_ADDRESS": "1/minute",
        },
    )
    client = app.test_client()
    url = "/api/v1/games/guess/boards/10"
    assert jsonp(client, url).status_code == 200
    answer, plain = jsonp(client, url), client.get(url)
    assert_problem_called_back(answer, plain, 429)
    assert int(answer.headers["Retry-After"]) > 0


def test_jsonp_answers_of_successful_reads_are_the_plain_answers_called_back(client, work):
    queued = client.post("/api/v1/games/guess-claimed/scores", json=GOOD).get_json()
    work()
    player = queued["player_id"]
    for url in [
        "/api/v1/games",
        "/api/v1/games/guess-claimed",
        "/api/v1/games/guess-claimed/boards/10",
        f"/api/v1/games/guess-claimed/boards/10/players/{player}",
        "/api/v1/games/guess-claimed/boards/10/stats",
        queued["status_url"],
    ]:
        plain, answer = client.get(url), jsonp(client, url)
        assert plain.status_code == answer.status_code == 200, url
        assert answer.mimetype == "application/javascript", url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", url
        assert answer.headers.get("Cache-Control") == plain.headers.get("Cache-Control"), url
        assert called_with(answer) == plain.get_json(), url


@pytest.mark.parametrize(
    ("url", "status"),
    [("/api/v1/nowhere", 404), ("/api/v1/admin/status", 401), ("/api/v1/openapi.json", 200)],
)
def test_a_callback_outside_the_reads_changes_nothing(client, url, status):
    answer = jsonp(client, url)
    assert answer.status_code == status
    assert answer.mimetype == client.get(url).mimetype
    assert CALLBACK not in answer.get_data(as_text=True)


def test_an_answer_that_is_not_json_is_never_called_back(app):
    """Only a JSON document ever reaches the callback: anything else keeps its status and type."""
    with app.test_request_context(f"/api/v1/games?callback={CALLBACK}"):
        answer = wrap(Response("<h1>Bad Gateway</h1>", status=502, mimetype="text/html"))
    assert answer.status_code == 502 and answer.mimetype == "text/html"
    assert answer.get_data(as_text=True) == "<h1>Bad Gateway</h1>"


def test_jsonp_is_for_reads_only(client):
    resp = client.post("/api/v1/games/guess/sessions?callback=cb", json={})
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
        ("/play/throw", 200),
        ("/boards/throw/park", 200),
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


def test_a_board_page_has_its_games_windows_format_and_subscore_column(client):
    throw = client.get("/boards/throw/park").get_data(as_text=True)
    tabs = re.findall(r'data-window="(\w+)"', throw)
    assert tabs == ["alltime", "daily", "weekly", "monthly", "season"]
    assert 'data-format="decimal:1"' in throw and 'data-unit="m"' in throw
    assert 'id="subscore-head"' in throw and 'href="/play/throw"' in throw
    guess = client.get("/boards/guess/100").get_data(as_text=True)
    assert re.findall(r'data-window="(\w+)"', guess) == ["alltime", "daily", "weekly"]
    assert 'data-format="integer"' in guess and "subscore-head" not in guess
    assert "up to 100" in guess and 'href="/"' in guess


def test_the_throw_page_links_its_board_and_home_links_the_throw_page(client):
    page = client.get("/play/throw").get_data(as_text=True)
    assert 'href="/boards/throw/park?find=me"' in page
    assert 'data-score-max="1500"' in page
    assert 'href="/play/throw"' in client.get("/").get_data(as_text=True)
