"""No answer is built from the Host header: paths with doubled slashes are not redirected to an
absolute URL naming whatever host the client claimed."""

import pytest


@pytest.mark.parametrize("path", ["/api/v1//games", "/api//v1/games?x=1", "/boards//guess/100"])
def test_doubled_slashes_are_not_found_and_name_no_host(client, path):
    resp = client.get(path, headers={"Host": "evil.example"})
    assert resp.status_code == 404
    assert "Location" not in resp.headers
    assert b"evil.example" not in resp.get_data()


def test_doubled_slashes_in_the_api_answer_problem_json(client):
    resp = client.get("/api/v1//games", headers={"Host": "evil.example"})
    assert resp.mimetype == "application/problem+json"


def test_no_route_can_redirect_to_add_a_trailing_slash(app):
    # werkzeug redirects "/x" to an absolute "http://<Host>/x/" for a rule "/x/".
    rules = [r.rule for r in app.url_map.iter_rules()]
    assert [r for r in rules if r.endswith("/") and r != "/"] == []
