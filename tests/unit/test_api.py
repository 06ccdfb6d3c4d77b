"""The HTTP API on fakeredis, with the worker's function run by hand on what was enqueued."""

import pytest

from tests.conftest import any_lease, ids_in_partitions, keyed, stream_length

GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}


def submit(client, body=None, **kwargs):
    return client.post("/api/v1/games/guess-claimed/scores", json=body or GOOD, **kwargs)


def test_a_score_is_accepted_for_checking_and_then_ranked(client, work):
    resp = submit(client)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["status"] == "queued"
    assert resp.headers["Location"] == body["status_url"]
    assert body["status_url"] == f"/api/v1/submissions/{body['submission_id']}"
    assert client.get(body["status_url"]).get_json()["status"] == "queued"

    work()

    status = client.get(body["status_url"]).get_json()
    assert status["status"] == "accepted"
    assert status["rank"] == 1
    assert status["board"] == {"game": "guess-claimed", "variant": "10", "window": "alltime"}
    top = client.get("/api/v1/games/guess-claimed/boards/10").get_json()
    assert top["total"] == 1
    assert top["entries"][0]["name"] == "Ann"
    assert top["entries"][0]["player_id"] == body["player_id"]
    # The verdict and the board tell the same time, in the same ISO 8601 form.
    assert status["achieved_at"] == top["entries"][0]["achieved_at"]
    assert status["achieved_at"].endswith("Z")


def test_the_same_submission_id_twice_is_one_entry(client, queued):
    body = {**GOOD, "submission_id": "client-chosen-1"}
    first, second = submit(client, body), submit(client, body)
    assert first.status_code == second.status_code == 202
    assert first.get_json()["submission_id"] == second.get_json()["submission_id"]
    assert len(queued()) == 1


def test_the_idempotency_key_header_works_like_submission_id(client, queued):
    headers = {"Idempotency-Key": "header-key-123"}
    body = {**GOOD, **keyed("p" * 22)}
    ids = {submit(client, body, headers=headers).get_json()["submission_id"] for _ in range(3)}
    assert ids == {"header-key-123"}
    assert len(queued()) == 1


def test_a_reused_id_with_another_body_is_refused(client, queued):
    submit(client, {**GOOD, **keyed("p" * 22), "submission_id": "reused-id"})
    resp = submit(client, {**GOOD, **keyed("p" * 22), "score": 5, "submission_id": "reused-id"})
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {
        "submission_id": ["was already used for a different submission"]
    }
    assert len(queued()) == 1


def test_with_redis_down_a_score_gets_503_and_nothing_is_stored(client, redis_client, fake_server):
    fake_server.connected = False
    resp = submit(client, {**GOOD, "submission_id": "retry-me-later"})
    assert resp.status_code == 503
    assert resp.mimetype == "application/problem+json"
    assert resp.headers["Retry-After"]
    assert "same submission_id" in resp.get_json()["detail"]
    fake_server.connected = True
    assert redis_client.keys("*") == []
    # The retry, once Redis is back, is the one entry.
    assert submit(client, {**GOOD, "submission_id": "retry-me-later"}).status_code == 202
    assert stream_length(redis_client) == 1


def test_with_the_broker_down_a_stored_score_is_still_accepted(client, redis_client, monkeypatch):
    from kombu.exceptions import OperationalError

    from app.worker import tasks

    sent = []

    def broken(*args, **kwargs):
        raise OperationalError("broker down")

    monkeypatch.setattr(tasks.drain, "apply_async", broken)
    resp = submit(client, {**GOOD, "submission_id": "stored-anyway"})
    # On the stream, which outlives the broker: the sweep or the next submission drains it.
    assert resp.status_code == 202
    assert stream_length(redis_client) == 1
    assert not any_lease(redis_client)  # so the next submission tries again
    monkeypatch.setattr(tasks.drain, "apply_async", lambda *a, **k: sent.append(1))
    submit(client, {**GOOD, "submission_id": "next-one-1"})
    assert sent == [1] and any_lease(redis_client)


def test_any_broker_error_leaves_a_stored_score_accepted(client, redis_client, monkeypatch):
    from kombu.exceptions import ChannelError

    from app.worker import tasks

    def refused(*args, **kwargs):
        raise ChannelError("READONLY You can't write against a read only replica.")

    monkeypatch.setattr(tasks.drain, "apply_async", refused)
    assert submit(client, {**GOOD, "submission_id": "stored-twice-no"}).status_code == 202
    assert stream_length(redis_client) == 1


def test_one_drain_per_partition_is_scheduled_for_many_waiting_submissions(
    client, redis_client, monkeypatch
):
    from app.worker import tasks

    sent = []
    monkeypatch.setattr(tasks.drain, "apply_async", lambda *a, **k: sent.append(k["kwargs"]))
    for sid in ids_in_partitions([6, 6, 6, 1, 6]):
        submit(client, {**GOOD, "submission_id": sid})
    assert sent == [{"partition": 6}, {"partition": 1}]
    assert stream_length(redis_client) == 5


def test_sessions_issue_a_player_id_and_keep_it_in_a_cookie(client):
    resp = client.post("/api/v1/games/guess-claimed/sessions", json={})
    assert resp.status_code == 201
    player_id = resp.get_json()["player_id"]
    assert f"hiscore_player={player_id}" in resp.headers["Set-Cookie"]
    # The cookie identifies the player from then on, in sessions and in scores.
    assert (
        client.post("/api/v1/games/guess-claimed/sessions", json={}).get_json()["player_id"]
        == player_id
    )
    assert submit(client).get_json()["player_id"] == player_id


def test_a_player_proven_by_its_key_wins_over_the_cookie(client):
    client.post("/api/v1/games/guess-claimed/sessions", json={})
    resp = client.post("/api/v1/games/guess-claimed/sessions", json=keyed("q" * 20))
    assert resp.get_json() == {"game": "guess-claimed", **keyed("q" * 20)}
    assert submit(client).get_json()["player_id"] == "q" * 20  # the cookie follows


@pytest.mark.parametrize(
    "identity",
    [
        {"player_id": "v" * 22},  # a public id alone
        {"player_id": "v" * 22, "player_key": keyed("a" * 22)["player_key"]},  # another's key
        {"player_key": "v" * 22 + ".forged-signature"},
        {"player_key": keyed("v" * 22)["player_key"].upper()},
    ],
)
def test_nobody_can_post_as_a_player_without_their_key(app, queued, identity):
    client = app.test_client()
    resp = client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, **identity})
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"
    assert "player_key" in resp.get_json()["errors"]
    assert queued() == []
    # Nor by planting the public id in the cookie.
    client.set_cookie("hiscore_player", "v" * 22)
    resp = client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, "player_id": "v" * 22})
    assert resp.status_code == 403


def test_the_key_never_travels_to_the_worker(client, queued):
    submit(client, {**GOOD, **keyed("k" * 22)})
    (payload,) = queued()
    assert payload["player_id"] == "k" * 22 and "player_key" not in payload
    # What the web enqueues is exactly what the worker expects.
    from app.leaderboard.schemas import QueuedSubmission

    assert QueuedSubmission.model_validate(payload).model_dump(exclude_none=True) == {
        k: v for k, v in payload.items() if v is not None
    }


def test_games_list_their_boards(client):
    games = client.get("/api/v1/games").get_json()["games"]
    guess = next(g for g in games if g["slug"] == "guess-claimed")
    assert guess["order"] == "lower"
    assert [v["name"] for v in guess["variants"]] == ["10", "25", "100", "1000"]
    assert guess["variants"][0]["board_url"] == "/api/v1/games/guess-claimed/boards/10"


def test_player_standing_with_neighbours(client, work):
    ids = []
    for i, name in enumerate(["A", "B", "C", "D"]):
        resp = submit(client, {**GOOD, "name": name, "score": i + 1, "duration_ms": 9000})
        ids.append(resp.get_json()["player_id"])
        client.delete_cookie("hiscore_player")
    work()
    url = f"/api/v1/games/guess-claimed/boards/10/players/{ids[2]}?around=1"
    body = client.get(url).get_json()
    assert (body["rank"], body["name"], body["score"]) == (3, "C", 3)
    assert [row["name"] for row in body["neighbours"]] == ["B", "C", "D"]
    unknown = client.get("/api/v1/games/guess-claimed/boards/10/players/" + "z" * 22)
    assert unknown.status_code == 404
    assert unknown.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/api/v1/games/chess/boards/10", 404, None),
        ("/api/v1/games/guess-claimed/boards/11", 404, None),
        ("/api/v1/games/guess-claimed/boards/10?window=monthly", 400, "window"),
        ("/api/v1/games/guess-claimed/boards/10?limit=0", 400, "limit"),
        ("/api/v1/games/guess-claimed/boards/10?limit=101", 400, "limit"),
        ("/api/v1/games/guess-claimed/boards/10?offset=-1", 400, "offset"),
        ("/api/v1/games/guess-claimed/boards/10?limit=ten", 400, "limit"),
        ("/api/v1/games/guess-claimed/boards/10?window=daily&period=2026-13-01", 400, "period"),
        ("/api/v1/games/guess-claimed/boards/10?window=daily&period=9999-12-31", 400, "period"),
        (
            "/api/v1/games/guess-claimed/boards/10/stats?window=weekly&period=9999-W52",
            400,
            "period",
        ),
        ("/api/v1/games/guess-claimed/boards/10/players/x?around=51", 400, "around"),
        ("/api/v1/submissions/abcdefgh?wait=31", 400, "wait"),
        ("/api/v1/submissions/abcdefgh?wait=soon", 400, "wait"),
        ("/api/v1/submissions/abcdefgh", 404, None),
        ("/api/v1/submissions/a:b*c{d}e", 404, None),
    ],
)
def test_bad_reads_get_problems(client, url, status, field):
    resp = client.get(url)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field:
        assert field in problem["errors"]


def test_a_finished_day_stays_readable_by_period(client, work, clock):
    submit(client)
    work()
    today = client.get("/api/v1/games/guess-claimed/boards/10?window=daily").get_json()
    assert today["total"] == 1
    clock.advance(86_400_000)  # the next day: a new, empty daily board
    tomorrow = client.get("/api/v1/games/guess-claimed/boards/10?window=daily").get_json()
    assert tomorrow["total"] == 0 and tomorrow["period"] > today["period"]
    again = client.get(
        f"/api/v1/games/guess-claimed/boards/10?window=daily&period={today['period']}"
    )
    assert again.get_json()["entries"] == today["entries"]
    other = client.get("/api/v1/games/guess-claimed/boards/10?window=daily&period=2020-01-01")
    assert other.get_json()["total"] == 0


def test_a_retry_without_player_id_or_cookie_is_the_same_entry(app, queued):
    body = {**GOOD, "submission_id": "no-cookie-retry"}
    first = app.test_client(use_cookies=False).post("/api/v1/games/guess-claimed/scores", json=body)
    second = app.test_client(use_cookies=False).post(
        "/api/v1/games/guess-claimed/scores", json=body
    )
    assert first.status_code == second.status_code == 202
    assert first.get_json()["player_id"] == second.get_json()["player_id"]
    assert len(queued()) == 1
    # Whoever repeats a request without proof learns no key: it could be anyone.
    assert "player_key" in first.get_json() and "player_key" not in second.get_json()
    assert "Set-Cookie" not in second.headers


def test_another_player_reusing_a_submission_id_is_refused(app, queued):
    body = {**GOOD, "submission_id": "attempt-0001"}
    alice, bob = app.test_client(), app.test_client()
    alice.post("/api/v1/games/guess-claimed/sessions", json={})
    bob.post("/api/v1/games/guess-claimed/sessions", json={})
    first = alice.post("/api/v1/games/guess-claimed/scores", json=body)
    second = bob.post("/api/v1/games/guess-claimed/scores", json=body)
    assert first.status_code == 202
    assert second.status_code == 422
    assert "hiscore_player" not in second.headers.get("Set-Cookie", "")
    assert len(queued()) == 1
