"""The guesses endpoint over HTTP: answers, and a problem+json for every refusal."""

from app.storage import keys
from tests.conftest import keyed


def start(client, player="p" * 22, variant="10", game="guess"):
    resp = client.post(f"/api/v1/games/{game}/sessions", json={"variant": variant, **keyed(player)})
    assert resp.status_code == 201
    return resp.get_json()


def guess(client, session, number, run_id=None, game="guess"):
    run_id = run_id or session["run_id"]
    return client.post(
        f"/api/v1/games/{game}/runs/{run_id}/guesses",
        json={"guess": number, "token": session["token"]},
    )


def secret(redis_client, session, variant="10"):
    return int(redis_client.hget(keys.run_state_key("guess", variant, session["run_id"]), "secret"))


def test_each_guess_is_answered_and_counted_until_the_correct_one(client, redis_client):
    session = start(client)
    number = secret(redis_client, session)
    answers = [guess(client, session, n) for n in range(1, number + 1)]
    assert [a.status_code for a in answers] == [200] * number
    assert [a.get_json() for a in answers] == [
        *({"result": "higher", "guesses": k} for k in range(1, number)),
        {"result": "correct", "guesses": number},
    ]
    assert answers[0].headers["Cache-Control"] == "no-store"
    after = guess(client, session, number)
    assert after.status_code == 409 and after.mimetype == "application/problem+json"
    assert after.get_json()["type"].endswith("run-finished")


def test_a_guess_above_the_number_is_answered_lower(client, redis_client):
    session = start(client)
    # Whatever was drawn, the number is 4 from here on.
    redis_client.hset(keys.run_state_key("guess", "10", session["run_id"]), "secret", 4)
    assert guess(client, session, 10).get_json() == {"result": "lower", "guesses": 1}
    assert guess(client, session, 2).get_json() == {"result": "higher", "guesses": 2}
    assert guess(client, session, 4).get_json() == {"result": "correct", "guesses": 3}


def test_another_runs_token_or_a_forged_one_is_forbidden(client, redis_client):
    mine, theirs = start(client, "m" * 22), start(client, "t" * 22)
    for token in (theirs["token"], "not-a-token"):
        resp = guess(client, {**mine, "token": token}, 5)
        assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
        assert "token" in resp.get_json()["errors"]
    assert redis_client.hget(keys.run_state_key("guess", "10", mine["run_id"]), "n") == "0"


def test_bad_guesses_are_refused_and_not_counted(client, redis_client):
    session = start(client)
    url = f"/api/v1/games/guess/runs/{session['run_id']}/guesses"
    for body, status, field in [
        ({"guess": 11, "token": session["token"]}, 422, "guess"),
        ({"guess": 0, "token": session["token"]}, 422, "guess"),
        ({"guess": "5", "token": session["token"]}, 422, "guess"),
        ({"guess": 5}, 422, "token"),
    ]:
        resp = client.post(url, json=body)
        assert (resp.status_code, set(resp.get_json()["errors"])) == (status, {field}), body
    assert client.post(url, data="guess=5", content_type="text/plain").status_code == 415
    assert redis_client.hget(keys.run_state_key("guess", "10", session["run_id"]), "n") == "0"


def test_an_expired_run_and_a_game_without_a_verifier_have_no_guesses(client, redis_client):
    session = start(client)
    redis_client.delete(keys.run_state_key("guess", "10", session["run_id"]))
    gone = guess(client, session, 5)
    assert gone.status_code == 404 and gone.get_json()["type"].endswith("no-such-run")
    claimed = start(client, game="guess-claimed")
    assert "run_id" not in claimed  # a claimed game keeps no run
    resp = guess(client, claimed, 5, run_id="r" * 22, game="guess-claimed")
    assert resp.status_code == 404
    assert guess(client, session, 5, game="chess").status_code == 404
