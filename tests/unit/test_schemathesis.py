"""Every operation of the OpenAPI document, fuzzed through the WSGI app on fakeredis: no answer
is a 5xx, and every answer has a documented status, content type and body.

Each operation runs against its own app (the ``app`` fixture), which already holds ranked
players, settled submissions, computed stats, an operator task and a live worker, so that the
answers checked include full boards and verdicts, not only 404s.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.clock import now_ms
from app.leaderboard.stats import compute_family
from app.web.api.openapi import build_document
from app.worker.status import record_heartbeat
from config import celery_settings

TOKEN = "testing-operator-token"

# The document the app serves (test_openapi.py checks that it serves exactly this one), loaded
# here because schemathesis.pytest.from_fixture reads an attribute of pytest's nodes that
# pytest 9 no longer has. Every call below goes to the `app` fixture of its test.
# Generated operator requests carry the token, except those about leaving it out.
AUTH = {"auth": {"openapi": {"operatorToken": {"bearer": TOKEN}}}}
schema = schemathesis.openapi.from_dict(
    build_document(create_app("testing", {"CELERY": celery_settings("memory://")})),
    config=SchemathesisConfig.from_dict(AUTH),
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def known(app, work, redis_client, registry):
    """Ids that exist in the app: a ranked player, a settled submission, an operator task."""
    players, submissions = [], []
    for i, score in enumerate((3, 5, 5, 8)):
        body = {"name": f"P{i}", "score": score, "variant": "10", "duration_ms": 9000}
        # A client each (a client keeps the player's cookie): four players.
        answer = app.test_client().post("/api/v1/games/guess-claimed/scores", json=body).get_json()
        players.append(answer["player_id"])
        submissions.append(answer["submission_id"])
    work(now_ms())
    compute_family(redis_client, registry.get("guess-claimed"), "10", now_ms())
    record_heartbeat(redis_client, "worker@test", {"hostname": "worker@test", "pid": 1})
    task = app.test_client().post(
        "/api/v1/admin/prune", json={"game": "guess"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return {
        "player_id": players[1],
        "submission_id": submissions[0],
        "task_id": task.get_json()["task_id"],
    }


def plain(case, path_parameters=None, authorization=None):
    """The generated request again, as a plain (not negative) case, with changes."""
    headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return case.operation.Case(
        method=case.method,
        path_parameters={**case.path_parameters, **(path_parameters or {})},
        headers=headers,
        cookies=case.cookies,
        query=case.query,
        body=case.body,
        media_type=case.media_type,
    )


@schema.parametrize()
# The app and its data are set up once per operation and shared by its examples on purpose.
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_answer_is_documented(case, app, known):
    case.call_and_validate(app=app, checks=CHECKS)
    if case.method.upper() != case.operation.method.upper():
        return  # schemathesis asking with a method the path does not have (405)
    if case.operation.path.startswith("/api/v1/admin/"):
        # Anyone but the operator: without a token 401, with a wrong one 403.
        anonymous = plain(case).call_and_validate(app=app, checks=CHECKS)
        assert anonymous.status_code == 401
        stranger = plain(case, authorization="Bearer not-the-token")
        assert stranger.call_and_validate(app=app, checks=CHECKS).status_code == 403
    # The same request about a player, submission or task that exists.
    ids = {name: known[name] for name in case.path_parameters or {} if name in known}
    if ids:
        real = plain(case, ids, authorization=f"Bearer {TOKEN}")
        real.call_and_validate(app=app, checks=CHECKS)
