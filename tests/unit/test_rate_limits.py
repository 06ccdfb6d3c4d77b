"""Rate limits: per client address (as the trusted proxies saw it) and per proven player."""

import pytest

from app.storage import keys
from tests.conftest import keyed, record_of, stream_length

GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}


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
    assert stream_length(redis_client) == 3
    # Besides the three accepted submissions, the only keys are the counters, all under the
    # prefix: the address's budget across the app and its count on this endpoint (the refused
    # request counted in both), and the player the cookie proved from the second score on.
    assert all(record_of(redis_client, a.get_json()["submission_id"]) for a in accepted)
    stored = set(redis_client.keys(keys.PARTITION_SUBMISSIONS_PATTERN))
    ingest = set(redis_client.keys(keys.INGEST_STREAMS_PATTERN))
    ingest |= set(redis_client.keys(keys.drain_flag(0).replace(":0}", ":*}")))
    counters = set(redis_client.keys()) - stored - ingest
    assert len(counters) == 3
    assert all(k.startswith(f"{keys.RATE_LIMIT_PREFIX}:") for k in counters)
    player = accepted[0].get_json()["player_id"]
    (whole_app,) = [k for k in counters if "/127.0.0.1/global/" in k]
    (by_address,) = [k for k in counters if "/127.0.0.1/api.scores.submit_score/" in k]
    (by_player,) = [k for k in counters if f"/player:{player}/api.scores.submit_score/" in k]
    assert [redis_client.get(k) for k in (whole_app, by_address, by_player)] == ["4", "4", "2"]


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


def test_paths_no_route_matches_are_limited_per_address(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="5/minute").test_client()
    codes = [client.get(f"/no/such/path/{i}").status_code for i in range(6)]
    assert codes == [404] * 5 + [429]
    refused = client.open("/api/v1/games", method="FROB")
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"


def test_the_address_limit_is_one_budget_across_every_endpoint(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="4/minute").test_client()
    paths = ["/api/v1/games", "/api/v1/games/guess", "/api/v1/openapi.json", "/no/such/path"]
    assert [client.get(p).status_code for p in paths] == [200, 200, 200, 404]
    assert client.get("/api/v1/games/guess/boards/10").status_code == 429
    other = limited(RATE_LIMIT_PER_ADDRESS="4/minute").test_client()
    assert other.get("/api/v1/games", environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 200


def test_the_operator_endpoints_share_one_budget_per_address(limited):
    client = limited(RATE_LIMIT_ADMIN_PER_ADDRESS="3/minute").test_client()
    wrong = {"Authorization": "Bearer guess"}
    codes = [
        client.get("/api/v1/admin/status", headers=wrong).status_code,
        client.get("/api/v1/admin/tasks/x", headers=wrong).status_code,
        client.post("/api/v1/admin/prune", headers=wrong, json={}).status_code,
        client.post("/api/v1/admin/rebuild", headers=wrong, json={}).status_code,
        client.delete("/api/v1/admin/games/guess/players/" + "p" * 22, headers=wrong).status_code,
    ]
    assert codes == [403, 403, 403, 429, 429]


def test_retry_after_rides_only_on_429(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="2/minute").test_client()
    answered = client.get("/api/v1/games")
    assert answered.status_code == 200
    assert "Retry-After" not in answered.headers
    assert "X-RateLimit-Remaining" in answered.headers  # the counts are still told
    client.get("/api/v1/games")
    refused = client.get("/api/v1/games")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0


def _count_calls(monkeypatch, redis_client):
    calls: list[tuple] = []
    original = type(redis_client).execute_command

    def counting(self, *args, **options):
        calls.append(args)
        return original(self, *args, **options)

    monkeypatch.setattr(type(redis_client), "execute_command", counting)
    return calls


def test_a_score_and_all_its_limits_cost_one_round_trip(limited, redis_client, monkeypatch):
    client = limited(RATE_LIMIT_SCORES_PER_PLAYER="5/minute").test_client()
    first = post(client)  # a new player; it also schedules the drain
    assert first.status_code == 202
    calls = _count_calls(monkeypatch, redis_client)
    again = post(client)  # proven by the cookie: counted per address and per player too
    assert again.status_code == 202
    assert len(calls) == 1 and calls[0][0] == "EVALSHA"
    counters = [k for k in calls[0][3 : 3 + int(calls[0][2])] if "limits" in k]
    assert len(counters) == 3  # the address's budget, the endpoint's, the player's
    # The headers tell the tightest of them: the endpoint's 3 a minute, two used.
    assert again.headers["X-RateLimit-Limit"] == "3"
    assert again.headers["X-RateLimit-Remaining"] == "1"
    assert int(again.headers["X-RateLimit-Reset"]) > 0


def test_a_refused_score_is_still_counted_and_then_limited(limited, redis_client):
    client = limited().test_client()  # 3 scores a minute per address
    bad = {**GOOD, "score": "many"}
    codes = [post(client, bad).status_code for _ in range(3)]
    assert codes == [422, 422, 422]
    refused = post(client, bad)
    assert refused.status_code == 429
    assert refused.get_json()["type"].endswith("/rate-limited")
    assert int(refused.headers["Retry-After"]) > 0
    assert post(client).status_code == 429  # a good one too: the budget is spent
    assert stream_length(redis_client) == 0


def test_a_refused_score_with_redis_gone_keeps_its_own_answer(limited, fake_server):
    client = limited().test_client()
    fake_server.connected = False
    resp = post(client, {**GOOD, "score": "many"})
    assert resp.status_code == 422


def _count_round_trips(monkeypatch, redis_client):
    sent: list[int] = []
    connection = redis_client.connection_pool.connection_class
    original = connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return original(self, command, check_health)

    monkeypatch.setattr(connection, "send_packed_command", counting)
    return sent


def test_a_read_and_its_limits_cost_one_round_trip(limited, redis_client, monkeypatch):
    client = limited(RATE_LIMIT_PER_ADDRESS="10/minute").test_client()
    client.get("/api/v1/games/guess/boards/10")
    sent = _count_round_trips(monkeypatch, redis_client)
    answered = client.get("/api/v1/games/guess/boards/10")
    assert answered.status_code == 200
    assert len(sent) == 1  # the count rode along with the board's read
    assert answered.headers["X-RateLimit-Limit"] == "10"
    assert answered.headers["X-RateLimit-Remaining"] == "8"


def test_a_read_past_its_limit_is_refused_though_it_rode_with_the_read(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="2/minute").test_client()
    codes = [client.get("/api/v1/games/guess/boards/10").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.get("/api/v1/games/guess/boards/10/players/" + "p" * 22)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_a_read_that_never_reaches_redis_is_counted_on_its_way_out(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="2/minute").test_client()
    bad = "/api/v1/games/guess/boards/10?limit=0"  # refused before any read
    assert [client.get(bad).status_code for _ in range(2)] == [400, 400]
    assert client.get(bad).status_code == 429


def test_no_rider_is_left_for_the_next_request(limited, redis_client):
    from app.storage.rate_limits import RIDER

    client = limited().test_client()
    client.get("/api/v1/games/guess/boards/10")
    assert RIDER.get() is None


def test_several_limits_in_one_setting_are_each_counted(limited):
    client = limited(RATE_LIMIT_PER_ADDRESS="100/minute;2/second").test_client()
    codes = [client.get("/api/v1/games").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_reads_and_scores_work_after_redis_forgets_its_scripts(limited, redis_client):
    client = limited().test_client()
    assert post(client).status_code == 202
    redis_client.script_flush()
    assert client.get("/api/v1/games/guess/boards/10").status_code == 200
    assert post(client).status_code == 202
    assert stream_length(redis_client) == 2
