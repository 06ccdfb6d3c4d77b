"""POST /sessions takes a JSON body only: a cross-site form (which cannot send one without the
CORS preflight) must not replace the player's cookie."""

import pytest

SESSIONS = "/api/v1/games/guess/sessions"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("", None),
        ("", "application/x-www-form-urlencoded"),
        ("variant=10", "application/x-www-form-urlencoded"),
        ("x", "text/plain"),
        ("", "multipart/form-data; boundary=x"),
    ],
    ids=["no-body", "empty-form", "form", "text", "multipart"],
)
def test_a_session_without_a_json_body_is_refused_415_and_sets_no_cookie(
    client, data, content_type
):
    resp = client.post(SESSIONS, data=data, content_type=content_type)
    assert resp.status_code == 415
    assert resp.mimetype == "application/problem+json"
    assert "Set-Cookie" not in resp.headers


def test_a_session_with_a_json_body_is_started(client):
    resp = client.post(SESSIONS, json={})
    assert resp.status_code == 201
    assert "hiscore_player=" in resp.headers["Set-Cookie"]
