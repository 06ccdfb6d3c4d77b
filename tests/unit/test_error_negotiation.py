"""An error is problem+json wherever the client asked for JSON, and a page for a browser."""

import pytest

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/no/such/page", 404), ("get", "/boards/nope/10", 404), ("post", "/", 405)],
)
@pytest.mark.parametrize("accept", ["application/json", "application/problem+json"])
def test_a_client_asking_for_json_gets_problem_json_off_the_api(
    client, method, path, status, accept
):
    resp = getattr(client, method)(path, headers={"Accept": accept})
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["status"] == status


@pytest.mark.parametrize("accept", [BROWSER, "*/*", None])
def test_a_browser_or_an_indifferent_client_gets_a_page(client, accept):
    headers = {"Accept": accept} if accept else {}
    resp = client.get("/no/such/page", headers=headers)
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"
