"""Run tokens: issued by /sessions, checked by the web and again by the worker, used once."""

import pytest

from app import keys, run_tokens
from app.ingest import ingest_submissions
from app.run_tokens import TokenPolicy
from tests.cases import NOW, queued_payload

SECRET = "testing-secret"


def start_run(client, variant="100"):
    resp = client.post("/api/v1/games/guess/sessions", json={"variant": variant})
    assert resp.status_code == 201
    return resp.get_json()


def score(session, **changes):
    body = {
        "name": "Ann",
        "score": 5,
        "variant": session["variant"],
        "duration_ms": 1000,
        "player_id": session["player_id"],
        "player_key": session["player_key"],
        "token": session["token"],
    }
    return {**body, **changes}


def post(client, body):
    return client.post("/api/v1/games/guess/scores", json=body)


def test_a_session_for_a_variant_starts_a_run(client):
    session = start_run(client)
    assert session["token"] and session["token_expires_at"].endswith("Z")
    assert session["variant"] == "100"
    # Without a variant there is no run to vouch for: only the player.
    assert "token" not in client.post("/api/v1/games/guess/sessions").get_json()


def test_a_score_with_its_token_is_ranked_and_the_token_is_used_up(app, client, work):
    session = start_run(client)
    first = post(client, score(session))
    assert first.status_code == 202
    again = post(client, score(session, score=4))  # the same run, with a better claim
    assert again.status_code == 202  # only the worker knows what was used
    verdicts = dict(work())
    assert verdicts[first.get_json()["submission_id"]]["status"] == "accepted"
    replay = verdicts[again.get_json()["submission_id"]]
    assert replay["status"] == "rejected" and replay["code"] == "token_reused"
    assert "already used" in replay["reason"]
    board = client.get("/api/v1/games/guess/boards/100").get_json()
    assert [e["score"] for e in board["entries"]] == [5]


def _tampered(token: str) -> str:
    body, _, signature = token.rpartition(".")
    return f"{body}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: {"token": _tampered(s["token"])}, "not one this service issued"),
        (lambda s: {"token": "not-a-token"}, "not one this service issued"),
        (lambda s: {"variant": "1000"}, "another game, variant or player"),
        (lambda s: {"duration_ms": 60_000}, "claims 60000 ms of play"),
    ],
    ids=["tampered", "garbage", "other-variant", "faster-than-the-run"],
)
def test_a_token_that_does_not_vouch_for_the_score_is_refused_at_once(
    client, redis_client, change, message
):
    session = start_run(client)
    resp = post(client, score(session, **change(session)))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert any(message in text for text in resp.get_json()["errors"]["token"])
    assert redis_client.xlen(keys.INGEST_STREAM) == 0


def test_a_token_of_another_player_is_refused(app, client):
    theirs = start_run(app.test_client())
    mine = start_run(client)
    resp = post(client, score(mine, token=theirs["token"]))
    assert resp.status_code == 422
    assert "another game, variant or player" in resp.get_json()["errors"]["token"][0]


def test_an_expired_token_is_refused(client, clock):
    session = start_run(client)
    three_hours_ago = clock.now - 3 * 3600 * 1000
    old = run_tokens.issue(SECRET, "guess", "100", session["player_id"], "r" * 22, three_hours_ago)
    resp = post(client, score(session, token=old))
    assert resp.status_code == 422
    assert "expired" in resp.get_json()["errors"]["token"][0]


def test_when_required_a_score_without_a_token_is_refused(app, client):
    app.config["RUN_TOKENS_REQUIRED"] = True
    session = start_run(client)
    resp = post(client, score(session, token=None))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {"token": ["is required"]}
    assert post(client, score(session)).status_code == 202


POLICY = TokenPolicy(SECRET, required=True, max_age_s=7200)


def _token(player="p" * 22, variant="10", issued_at=NOW - 60_000):
    return run_tokens.issue(SECRET, "guess", variant, player, "run-0000000001", issued_at)


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"token": None}, "token_missing"),
        ({"token": _tampered(_token())}, "token_invalid"),
        ({"token": _token(variant="25")}, "token_mismatch"),
        ({"token": _token(player="q" * 22)}, "token_mismatch"),
        ({"token": _token(issued_at=NOW - 3 * 3600 * 1000)}, "token_expired"),
        ({"token": _token(issued_at=NOW - 1000), "duration_ms": 30_000}, "token_too_fast"),
    ],
    ids=["missing", "tampered", "other-variant", "other-player", "expired", "too-fast"],
)
def test_the_worker_checks_tokens_again(redis_client, registry, fields, code):
    # A message that never went through the web (a hostile producer on the stream or broker).
    message = queued_payload("sub-hostile-1", received_at=NOW, **fields)
    ((_, verdict),) = ingest_submissions(redis_client, registry, [message], NOW, 60, POLICY)
    assert verdict["status"] == "rejected" and verdict["code"] == code
    assert verdict["errors"]["token"]
    assert redis_client.xlen(keys.log_key("guess", "10")) == 0


def test_a_token_is_judged_as_of_the_score_not_of_a_late_worker(redis_client, registry):
    message = queued_payload("sub-late-run", received_at=NOW, token=_token())
    three_hours_later = NOW + 3 * 3600 * 1000
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], three_hours_later, 60, POLICY
    )
    assert verdict["status"] == "accepted"


def test_a_redelivered_submission_may_reuse_its_own_token(redis_client, registry):
    message = queued_payload("sub-redelivered", received_at=NOW, token=_token())
    ingest_submissions(redis_client, registry, [message], NOW, 60, POLICY)
    redis_client.delete(keys.submission_key("sub-redelivered"))  # as if cut short before
    ((_, verdict),) = ingest_submissions(redis_client, registry, [message], NOW, 60, POLICY)
    assert verdict["status"] == "accepted"
    other = queued_payload("sub-thief-0001", received_at=NOW, token=_token())
    ((_, stolen),) = ingest_submissions(redis_client, registry, [other], NOW, 60, POLICY)
    assert stolen["code"] == "token_reused"


def test_a_score_that_waited_past_its_runs_memory_is_refused(redis_client, registry):
    message = queued_payload("sub-waited-long", received_at=NOW, token=_token())
    much_later = NOW + 2 * 7200 * 1000
    ((_, verdict),) = ingest_submissions(redis_client, registry, [message], much_later, 60, POLICY)
    assert verdict["code"] == "token_expired" and "waited too long" in verdict["reason"]
    # Within that time the run's use is remembered: the key outlives the token's own life.
    ingest_submissions(
        redis_client,
        registry,
        [queued_payload("sub-in-time", received_at=NOW, token=_token())],
        NOW,
        60,
        POLICY,
    )
    (key,) = redis_client.keys("*:run:*")
    assert redis_client.pttl(key) > 7200 * 1000
