"""Rate limits: per client address (as the trusted proxies saw it) and per proven player."""

import pytest

from app import create_app
from app.storage import keys
from config import celery_settings
from tests.conftest import keyed
from tests.processes import TEST_GAMES

GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}


@pytest.fixture
def limited(redis_client):
    """Build apps with the limits on, counting in the test's fake Redis."""
    apps = []

    def build(**config):
        settings = {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMIT_SCORES_PER_ADDRESS": "3/minute",
            "RATE_LIMIT_SCORES_PER_PLAYER": "100/minute",
            "GAMES_FILE": str(TEST_GAMES),
            **config,
        }
        app = create_app("testing", settings)
        apps.append(app)
        return app

    yield build
    for app in apps:  # the memory broker is process-wide: leave no drain behind
        with app.extensions["celery"].connection_for_write() as conn:
            conn.SimpleQueue("ingest").clear()


def post(client, body=GOOD, **kwargs):
    return client.post("/api/v1/games/guess-claimed/scores", json=body, **kwargs)


def test_an_address_past_its_limit_gets_429_and_nothing_is_stored(limited, redis_client):
    client = limited().test_client()
    accepted = [post(client) for _ in range(3)]
    assert [a.status_code for a in accepted] == [202, 202, 202]
    refused = post(client)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["status"] == 429
    assert redis_client.xlen(keys.INGEST_STREAM) == 3
    # Besides the three accepted submissions, the only keys are the counters, all under the
    # prefix: one for the address (the refused request counted too), one for the player the
    # cookie proved from the second score on.
    stored = {keys.submission_key(a.get_json()["submission_id"]) for a in accepted}
    counters = set(redis_client.keys()) - stored - {keys.INGEST_STREAM, keys.DRAIN_FLAG}
    assert len(counters) == 2
    assert all(k.startswith(f"{keys.RATE_LIMIT_PREFIX}:") for k in counters)
    player = accepted[0].get_json()["player_id"]
    by_address, by_player = sorted(counters, key=lambda k: f"/player:{player}/" in k)
    assert "/127.0.0.1/api.scores.submit_score/" in by_address
    assert f"/player:{player}/api.scores.submit_score/" in by_player
    assert [redis_client.get(by_address), redis_client.get(by_player)] == ["4", "2"]


def test_a_forged_forwarded_for_does_not_make_a_new_client(limited):
    client = limited().test_client()
    codes = [
        post(client, headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(5)
    ]
    assert codes == [202, 202, 202, 429, 429]


def test_behind_a_proxy_the_client_is_the_address_the_proxy_saw(limited):
    client = limited(TRUSTED_PROXIES=1).test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def from_client(address, forged="203.0.113.250"):
        # What the client sent is on the left; the proxy appends the address it saw.
        headers = {"X-Forwarded-For": f"{forged}, {address}"}
        return post(client, headers=headers, environ_base=proxy).status_code

    assert [from_client("192.0.2.7", forged=f"1.2.3.{i}") for i in range(4)] == [
        202,
        202,
        202,
        429,
    ]
    assert from_client("192.0.2.8") == 202  # another player behind the same proxy


def test_a_player_past_its_limit_is_refused_from_any_address(limited):
    app = limited(
        RATE_LIMIT_SCORES_PER_ADDRESS="100/minute", RATE_LIMIT_SCORES_PER_PLAYER="2/minute"
    )
    client = app.test_client()
    mine = {**GOOD, **keyed("m" * 22)}
    codes = [
        post(client, mine, environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code
        for i in range(3)
    ]
    assert codes == [202, 202, 429]
    assert post(client, {**GOOD, **keyed("o" * 22)}).status_code == 202
    # Naming a player without its key proves nothing, so it uses up nobody's allowance.
    stranger = app.test_client(use_cookies=False)
    assert post(stranger, {**GOOD, "player_id": "o" * 22}).status_code == 403
    assert post(client, {**GOOD, **keyed("o" * 22)}).status_code == 202


def test_guessing_the_operator_token_is_slowed_down(limited):
    client = limited(RATE_LIMIT_ADMIN_PER_ADDRESS="2/minute").test_client()
    wrong = {"Authorization": "Bearer guess"}
    codes = [client.get("/api/v1/admin/status", headers=wrong).status_code for _ in range(3)]
    assert codes == [403, 403, 429]


def test_probes_are_never_limited(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="2/minute").test_client()
    assert {client.get("/healthz").status_code for _ in range(5)} == {200}
    assert [client.get("/api/v1/games").status_code for _ in range(3)] == [200, 200, 429]


def test_with_redis_down_the_limits_answer_503_not_500(limited, fake_server):
    client = limited().test_client()
    fake_server.connected = False
    resp = post(client)
    assert resp.status_code == 503
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a", "score": 3, "variant": "10", "player_key": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
    ],
    ids=["lone-surrogate-key", "nested-5000-deep"],
)
def test_what_the_limits_read_of_a_body_cannot_break_them(limited, body):
    client = limited().test_client()
    resp = client.post(
        "/api/v1/games/guess-claimed/scores", data=body, content_type="application/json"
    )
    assert 400 <= resp.status_code < 500
    assert resp.mimetype == "application/problem+json"
