"""The OpenAPI document: valid OpenAPI 3.1, complete (every route, and nothing else), built from
the models the API validates with, and true of the answers schemathesis cannot provoke."""

import re
from datetime import datetime

import jsonschema_rs
import pytest
from flask import Blueprint

# The official OpenAPI 3.1 schema (spec.openapis.org/oas/3.1/schema/2022-10-07), as vendored by
# schemathesis, so that this test needs no network.
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from app import create_app
from app.extensions import get_token_policy
from app.leaderboard import run_tokens
from app.leaderboard.records import TaskQueued
from app.leaderboard.run_tokens import RunToken
from app.leaderboard.schemas import (
    BoardQuery,
    SessionIn,
)
from app.web.api.jsonp import _valid, check_callback
from app.web.api.openapi import CALLBACK_PARAMETER, build_document, document_of, documented
from config import celery_settings
from tests.conftest import keyed

OPERATOR = {"Authorization": "Bearer testing-operator-token"}
GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}
METHODS = ("get", "put", "post", "delete", "patch")
#: A value for every path parameter (ids of the right shape that nothing holds).
PATH_VALUES = {
    "game_slug": "guess-claimed",
    "variant": "10",
    "player_id": "p" * 22,
    "submission_id": "s" * 22,
    "task_id": "t" * 22,
    "run_id": "r" * 22,
}
#: Endpoints that are pages for people, not the API.
NOT_API = re.compile(r"^(static|pages\.)")


@pytest.fixture
def document(app):
    return app.test_client().get("/api/v1/openapi.json").get_json()


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def template(rule: str) -> str:
    """A Flask rule as an OpenAPI path template: /games/<game_slug> -> /games/{game_slug}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def routes(app):
    """(path template, method) of every route of the app but the pages."""
    return {
        (template(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if not NOT_API.match(rule.endpoint)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def endpoint_of(app, path, method):
    adapter = app.url_map.bind("localhost")
    url = path.format(**PATH_VALUES)
    return adapter.match(url, method=method.upper())[0]


def blueprint_runs(app, endpoint, function):
    """Whether ``function`` runs before the views of ``endpoint``'s blueprint."""
    blueprint = endpoint.rpartition(".")[0]
    return function in app.before_request_funcs.get(blueprint, [])


def schemas_in(node):
    """Every JSON Schema the document holds outside components (parameters, bodies, answers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield value
            else:
                yield from schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from schemas_in(value)


def refs_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def assert_documented(document, path, method, response):
    """The response has a status, content type and body the document gives the operation."""
    answers = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in answers, f"{method.upper()} {path}: {status} is not documented"
    content = answers[status]["content"]
    assert response.mimetype in content, f"{method.upper()} {path} {status}: {response.mimetype}"
    if response.is_json:
        schema = {"components": document["components"], **content[response.mimetype]["schema"]}
        jsonschema_rs.Draft202012Validator(schema).validate(response.get_json())
    for name, header in answers[status].get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers


def call(client, path, method, headers=None):
    body = {"json": GOOD} if path.endswith("/scores") else {}
    if method == "post" and not body:
        body = {"json": {}}
    if path.startswith("/api/v1/admin/"):
        headers = {**OPERATOR, **(headers or {})}
    return client.open(path.format(**PATH_VALUES), method=method.upper(), headers=headers, **body)


def test_the_document_is_valid_openapi_3_1(document):
    errors = [str(error) for error in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    assert document["openapi"].startswith("3.1.")
    # Every schema is a valid JSON Schema 2020-12 (the OpenAPI schema leaves them unchecked).
    for schema in [*document["components"]["schemas"].values(), *schemas_in(document["paths"])]:
        jsonschema_rs.meta.validate(schema)
    # Every reference leads somewhere.
    for ref in set(refs_in(document)):
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


def test_the_validators_catch_a_broken_document(document):
    """The checks above can fail."""
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    assert list(OPENAPI_31_VALIDATOR.iter_errors(broken))  # a response needs a description
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.meta.validate({"type": "no-such-type"})


def test_a_route_is_in_the_document_exactly_when_it_declares_its_operation(redis_client):
    app = create_app(
        "testing", {"REDIS_CLIENT": redis_client, "CELERY": celery_settings("memory://")}
    )
    bp = Blueprint("extra", __name__, url_prefix="/api/v1/extra")

    @bp.post("/<game_slug>")
    @documented("scores", "Something new", {201: ("Made.", TaskQueued)}, body=SessionIn)
    def make(game_slug):
        return ""

    bp.add_url_rule("/secret", "secret", lambda: "")
    app.register_blueprint(bp)
    paths = build_document(app)["paths"]
    assert "/api/v1/extra/secret" not in paths
    made = paths["/api/v1/extra/{game_slug}"]["post"]
    assert made["operationId"] == "make"
    assert made["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SessionIn"
    }
    assert [p["name"] for p in made["parameters"]] == ["game_slug"]
    assert set(made["responses"]) == {"201", "429", "503"}
    assert "security" not in made


def test_operation_ids_are_unique(document):
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_the_query_schemas_accept_what_the_models_accept(document):
    """An example the document allows is one the model takes, and one it refuses is refused."""
    path = "/api/v1/games/{game_slug}/boards/{variant}"
    parameters = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
    limit = jsonschema_rs.Draft202012Validator(parameters["limit"])
    for value in (0, 1, 100, 101):
        allowed = limit.is_valid(value)
        try:
            BoardQuery.model_validate({"limit": value})
            taken = True
        except ValueError:
            taken = False
        assert allowed == taken, value


def test_every_error_is_problem_json(document):
    for path, method, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                content = answer["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }, f"{method.upper()} {path} {status}"


def test_every_rate_limited_operation_may_answer_429_and_503(document):
    for path, _method, operation in operations(document):
        answers = operation["responses"]
        if path == "/healthz":
            assert set(answers) == {"200"}
            continue
        assert "503" in answers, path
        if path != "/readyz":  # the probes are never limited
            assert "Retry-After" in answers["429"]["headers"], path


def test_jsonp_reads_and_their_errors_answer_as_documented(app, client, document, fake_server):
    jsonp = [
        path
        for path, method, _ in operations(document)
        if method == "get" and blueprint_runs(app, endpoint_of(app, path, method), check_callback)
    ]
    statuses = set()
    for values in ({}, {"game_slug": "chess"}, {"variant": "7"}, "redis down"):
        if values == "redis down":
            fake_server.connected = False
            values = {}
        for path in jsonp:
            url = path.format(**{**PATH_VALUES, **values})
            response = client.get(url, query_string={"callback": "cb"})
            assert_documented(document, path, "get", response)
            assert response.mimetype == "application/javascript", url
            plain = client.get(url)
            assert response.get_data(as_text=True) == f"/**/cb({plain.get_data(as_text=True)});"
            statuses.add(plain.status_code)
    assert statuses == {200, 404, 503}


@pytest.mark.parametrize(
    "callback",
    ["a", "hiscore.onBoard", "$x._y1", "_", "a.b.c", "1a", "a..b", "a.", "alert(1)//",
     "</script>", "a b", "é", "a" * 64, "a" * 65, "a\n", "a-b"],
)  # fmt: skip
def test_the_documented_callback_is_the_one_the_app_takes(callback):
    documented = jsonschema_rs.Draft202012Validator(CALLBACK_PARAMETER["schema"])
    assert documented.is_valid(callback) == _valid(callback)


def test_the_document_is_served_as_json_and_built_once_per_app(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == build_document(app)
    assert document_of(app) is document_of(app)
    # Examples of path parameters come from the app's own games.
    board = response.get_json()["paths"]["/api/v1/games/{game_slug}/boards/{variant}"]["get"]
    examples = {p["name"]: set(p.get("examples", {})) for p in board["parameters"]}
    assert examples["game_slug"] == {
        "guess",
        "throw",
        "guess-claimed",
        "untimed",
        "tally",
        "rich",
        "recent",
    }
    assert examples["variant"] >= {"10", "25", "100", "1000"}


def test_a_session_with_a_variant_answers_as_documented(app, client, document):
    path = "/api/v1/games/{game_slug}/sessions"
    bare = client.post("/api/v1/games/guess/sessions", json={})
    assert_documented(document, path, "post", bare)
    run = client.post("/api/v1/games/guess/sessions", json={"variant": "10", **keyed("p" * 22)})
    assert_documented(document, path, "post", run)
    # Optional in the document: only a run of a variant has a token (and of a verified game,
    # a run id).
    of_a_run = {"variant", "token", "token_expires_at", "run_id"}
    session = document["components"]["schemas"]["Session"]
    assert of_a_run <= set(session["properties"]) - set(session["required"])
    assert not of_a_run & set(bare.get_json())
    answer = run.get_json()
    assert (answer["game"], answer["variant"], answer["player_id"]) == ("guess", "10", "p" * 22)
    # The token is one the service takes with a score of this run until token_expires_at (and
    # the clock slack between hosts after it), and not a millisecond longer.
    with app.app_context():
        policy = get_token_policy()
    expires_at = round(datetime.fromisoformat(answer["token_expires_at"]).timestamp() * 1000)

    def check_at(received_at):
        return run_tokens.check(
            policy.secret,
            answer["token"],
            game="guess",
            variant="10",
            player_id="p" * 22,
            received_at=received_at,
            duration_ms=None,
            max_age_s=policy.max_age_s,
        )

    token = check_at(expires_at)
    assert isinstance(token, RunToken)
    assert token.issued_at == expires_at - policy.max_age_s * 1000
    assert isinstance(check_at(expires_at + run_tokens.CLOCK_SLACK_MS), RunToken)
    assert check_at(expires_at + run_tokens.CLOCK_SLACK_MS + 1).code == "token_expired"


def test_with_redis_down_every_operation_answers_as_documented(client, document, fake_server):
    fake_server.connected = False
    answered = {}
    for path, method, _ in operations(document):
        response = call(client, path, method)
        assert_documented(document, path, method, response)
        answered[(method, path)] = response.status_code
    assert answered[("post", "/api/v1/games/{game_slug}/scores")] == 503
    assert answered[("get", "/api/v1/games/{game_slug}/boards/{variant}")] == 503
    assert answered[("get", "/readyz")] == 503
    assert answered[("get", "/healthz")] == 200


def test_past_the_rate_limit_every_operation_answers_as_documented(redis_client, document):
    limits = ("PER_ADDRESS", "SCORES_PER_ADDRESS", "SESSIONS_PER_ADDRESS", "ADMIN_PER_ADDRESS")
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            **{f"RATE_LIMIT_{name}": "1/minute" for name in limits},
        },
    )
    client = app.test_client()
    try:
        for path, method, _ in operations(document):
            call(client, path, method)
            again = call(client, path, method)
            assert_documented(document, path, method, again)
            assert (again.status_code == 429) is (path not in ("/healthz", "/readyz")), path
    finally:
        with app.extensions["celery"].connection_for_write() as conn:
            conn.SimpleQueue("ingest").clear()


def test_verdicts_answer_as_documented(client, work, document):
    path = "/api/v1/submissions/{submission_id}"
    player = keyed("p" * 22)
    queued = client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, **player}).get_json()
    answers = [client.get(queued["status_url"])]
    # A score of a player banned before the worker reaches it is rejected.
    other = keyed("q" * 22)
    doomed = client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, **other}).get_json()
    banned = client.delete(
        f"/api/v1/admin/games/guess-claimed/players/{'q' * 22}", headers=OPERATOR
    )
    assert_documented(document, "/api/v1/admin/games/{game_slug}/players/{player_id}", "delete",
                      banned)  # fmt: skip
    work()
    answers += [client.get(queued["status_url"]), client.get(doomed["status_url"])]
    assert [a.get_json()["status"] for a in answers] == ["queued", "accepted", "rejected"]
    for answer in answers:
        assert_documented(document, path, "get", answer)
    assert {"reason", "code"} <= set(answers[2].get_json())


def test_every_body_describes_the_variant_alike(document):
    """One variant type: each request body that takes a variant documents the same schema
    (an optional one also allows null), and a score's example integer variant is accepted."""
    bodies = {
        name: schema["properties"]["variant"]
        for name, schema in document["components"]["schemas"].items()
        if name in ("ScoreIn", "SessionIn", "Scope")
    }
    assert set(bodies) == {"ScoreIn", "SessionIn", "Scope"}
    required = bodies.pop("ScoreIn")
    assert {"type": "integer", "minimum": 0} in required["anyOf"]
    assert required["description"].startswith("A variant of the game")
    of_the_type = {k: v for k, v in required.items() if k != "title"}
    for name, optional in bodies.items():
        assert optional["anyOf"] == [of_the_type, {"type": "null"}], name
