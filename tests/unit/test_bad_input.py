"""Every bad submission gets its 4xx problem+json, and nothing is stored or enqueued."""

import pytest

from tests.cases import BAD_SUBMISSIONS, GOOD, HOSTILE_BUT_VALID_NAMES


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
