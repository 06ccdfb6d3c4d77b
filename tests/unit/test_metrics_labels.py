"""The request metrics' labels come from a fixed set, so no client can grow /metrics."""

import random
import string

AUTH = {"Authorization": "Bearer testing-operator-token"}


def _series(client) -> set[str]:
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    return {
        line.partition(" ")[0]
        for line in text.splitlines()
        if line.startswith("hiscore_http_request_duration_seconds_count")
    }


def test_made_up_methods_and_paths_add_no_series(client):
    client.open("/api/v1/games", method="FROB")
    client.open("/no/such/page", method="FROB")
    _series(client)  # the scrape itself is counted once it has answered
    before = _series(client)
    rng = random.Random(7)
    for i in range(100):
        method = "".join(rng.choices(string.ascii_uppercase, k=8))
        client.open(f"/made-up-{i}", method=method)
        client.open("/api/v1/games", method=method)
    assert _series(client) == before
    assert any('method="other"' in s and 'endpoint="unmatched"' in s for s in before)


def test_known_methods_keep_their_names(client):
    client.open("/api/v1/games", method="DELETE")
    client.get("/api/v1/games")
    series = _series(client)
    assert any('method="DELETE"' in s for s in series)
    assert any('method="GET"' in s and 'endpoint="api.boards.list_games"' in s for s in series)
