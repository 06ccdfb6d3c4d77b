"""Every bad submission gets its 4xx problem+json, and nothing is stored or enqueued."""

import pytest

from app.storage import keys
from tests.cases import BAD_SUBMISSIONS, GOOD, HOSTILE_BUT_VALID_NAMES, TALLY


@pytest.mark.parametrize("case", BAD_SUBMISSIONS, ids=lambda c: c.id)
def test_bad_submissions_are_refused(client, redis_client, queued, case):
    resp = client.post(
        f"/api/v1/games/{case.game}/scores",
        data=case.body,
        content_type=case.content_type,
        headers=case.headers,
    )
    assert resp.status_code == case.status
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert problem["status"] == case.status
    assert problem["title"] and problem["detail"] and problem["type"]
    assert set(problem.get("errors", {})) == case.fields
    assert redis_client.dbsize() == 0
    assert queued() == []


@pytest.mark.parametrize("name", HOSTILE_BUT_VALID_NAMES)
def test_odd_names_are_kept_verbatim_and_never_become_keys(client, redis_client, work, name):
    resp = client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, "name": name})
    assert resp.status_code == 202
    work()
    top = client.get("/api/v1/games/guess-claimed/boards/10").get_json()
    assert [e["name"] for e in top["entries"]] == [name]
    assert all(name not in key for key in redis_client.keys("*"))


def test_a_subscore_and_metadata_reach_the_board_and_the_log(client, redis_client, work):
    for i, (score, subscore) in enumerate([(12, 1), (30, 2)]):
        body = {**TALLY, "score": score, "subscore": subscore, "submission_id": f"tally-{i:04d}"}
        resp = client.post("/api/v1/games/tally/scores", json=body)
        assert resp.status_code == 202, resp.get_json()
    work()
    top = client.get("/api/v1/games/tally/boards/default").get_json()
    assert [(e["name"], e["score"]) for e in top["entries"]] == [("Ann", 42)]
    logged = redis_client.xrange(keys.log_key("tally", "default"))
    assert [(f["score"], f["sub"], f["meta"]) for _, f in logged] == [
        ("12", "1", '{"p":"d"}'),
        ("30", "2", '{"p":"d"}'),
    ]
