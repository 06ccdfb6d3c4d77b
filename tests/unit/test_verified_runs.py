"""Verified runs: the service draws the number, answers each guess and computes the score."""

import json

import pytest

from app.extensions import get_redis, get_token_policy
from app.leaderboard import verified_runs
from app.leaderboard.games import load_registry
from app.leaderboard.ingest import ingest_submissions
from app.leaderboard.run_tokens import TokenPolicy
from app.leaderboard.verifiers import Proven, Run, Unproven, guess
from app.storage import keys
from tests.conftest import PARTITIONS, keyed, stream_entries

SESSIONS = "/api/v1/games/guess/sessions"
SCORES = "/api/v1/games/guess/scores"


def start(client, variant="100", player="p" * 22):
    resp = client.post(SESSIONS, json={"variant": variant, **keyed(player)})
    assert resp.status_code == 201
    return resp.get_json()


def answer(app, session, number, run_id=None, game="guess"):
    """Send one guess as the guesses endpoint does (the domain function it calls)."""
    with app.app_context():
        return verified_runs.answer_guess(
            get_redis(),
            load_registry().get(game),
            run_id or session["run_id"],
            session["token"],
            number,
            get_token_policy(),
            app.config["CLOCK"](),
        )


def play_to_a_win(app, clock, session, highest=100, ms_per_guess=1000):
    """Binary-search the number from the service's answers; return how many guesses it took."""
    low, high = 1, highest
    while True:
        clock.advance(ms_per_guess)
        number = (low + high) // 2
        got = answer(app, session, number)
        if got.result == "correct":
            return got.guesses
        low, high = (number + 1, high) if got.result == "higher" else (low, number - 1)


def only_the_run(session, **claims):
    return {"name": "Ann", "variant": session["variant"], "token": session["token"],
            **keyed(session["player_id"]), **claims}  # fmt: skip


def test_a_claimed_score_sent_5ms_after_the_token_is_refused_for_guess(client, clock):
    session = start(client, "1000")
    clock.advance(5)
    resp = client.post(SCORES, json=only_the_run(session, score=1, duration_ms=200))
    assert resp.status_code == 422
    assert set(resp.get_json()["errors"]) == {"score", "duration_ms"}


def test_a_claimed_score_sent_5ms_after_the_token_is_refused_for_a_claimed_game(client, clock):
    session = client.post(
        "/api/v1/games/guess-claimed/sessions", json={"variant": "1000", **keyed("p" * 22)}
    ).get_json()
    clock.advance(5)
    body = {**only_the_run(session), "score": 1, "duration_ms": 200}
    resp = client.post("/api/v1/games/guess-claimed/scores", json=body)
    assert resp.status_code == 422
    assert "only 5 ms old" in resp.get_json()["errors"]["token"][0]


def test_a_run_is_ranked_at_the_guesses_the_service_answered(
    app, client, clock, redis_client, work
):
    session = start(client)
    guesses = play_to_a_win(app, clock, session)
    claimed = client.post(SCORES, json=only_the_run(session, score=guesses))
    assert claimed.status_code == 422  # even a true claim: the run is the only word
    assert "computed by the service" in claimed.get_json()["errors"]["score"][0]
    sent = client.post(SCORES, json=only_the_run(session))
    assert sent.status_code == 202
    ((_, waiting),) = stream_entries(redis_client)
    sent_on = json.loads(waiting["p"])
    # The score is the guesses answered, the time measured from the start to the win.
    assert (sent_on["score"], sent_on["duration_ms"]) == (guesses, guesses * 1000)
    ((_, verdict),) = work()
    assert verdict["status"] == "accepted" and verdict["score"] == guesses
    board = client.get("/api/v1/games/guess/boards/100").get_json()
    assert [(e["player_id"], e["score"]) for e in board["entries"]] == [("p" * 22, guesses)]


def test_a_run_won_ahead_of_the_clock_of_the_host_that_takes_its_score_is_ranked(
    app, client, clock, work
):
    session = start(client)
    guesses = play_to_a_win(app, clock, session)
    # The score reaches a web host whose clock is 200 ms behind the one that answered the win:
    # the play time the service measured is longer than the token's age on this host.
    clock.move_to(clock.now - 200)
    assert client.post(SCORES, json=only_the_run(session)).status_code == 202
    ((_, verdict),) = work()
    assert verdict["status"] == "accepted" and verdict["score"] == guesses


def test_a_guess_after_the_correct_one_is_refused_and_not_counted(app, client, clock):
    session = start(client, "10")
    guesses = play_to_a_win(app, clock, session, highest=10)
    refused = answer(app, session, 5)
    assert (refused.status, refused.code) == (409, "run_finished")
    with app.app_context():
        fields = get_redis().hgetall(keys.run_state_key("guess", "10", session["run_id"]))
    assert int(fields["n"]) == guesses


def test_nobody_can_guess_on_someone_elses_run(app, client, clock):
    mine, theirs = start(client, player="m" * 22), start(client, player="t" * 22)
    # Their token on my run's id, and a token that is no token at all.
    for token in (theirs["token"], mine["token"][:-2] + "xx"):
        refused = answer(app, {**mine, "token": token}, 50)
        assert (refused.status, refused.code) == (403, "token_mismatch")
    with app.app_context():
        fields = get_redis().hgetall(keys.run_state_key("guess", "100", mine["run_id"]))
    assert fields["n"] == "0" and fields["moves"] == ""


def test_a_run_is_ranked_once(app, client, clock, work):
    session = start(client)
    play_to_a_win(app, clock, session)
    first = client.post(SCORES, json=only_the_run(session, submission_id="first-run-1"))
    second = client.post(SCORES, json=only_the_run(session, submission_id="second-run-1"))
    assert (first.status_code, second.status_code) == (202, 202)
    verdicts = dict(work())
    assert verdicts["first-run-1"]["status"] == "accepted"
    assert verdicts["second-run-1"]["code"] == "token_reused"
    assert client.get("/api/v1/games/guess/boards/100").get_json()["total"] == 1


def secret_of(app, session):
    with app.app_context():
        key = keys.run_state_key("guess", session["variant"], session["run_id"])
        return int(get_redis().hget(key, "secret"))


def test_an_unfinished_run_proves_no_score(app, client, clock):
    session = start(client)
    assert answer(app, session, 1 if secret_of(app, session) != 1 else 2).guesses == 1
    resp = client.post(SCORES, json=only_the_run(session))
    assert resp.status_code == 422
    assert "not found its number" in resp.get_json()["errors"]["token"][0]


def test_a_run_with_guesses_left_out_of_range_or_used_up_is_refused(app, client, clock):
    session = start(client, "10")
    refused = answer(app, session, 11)
    assert (refused.status, refused.field) == (422, "guess")
    secret = secret_of(app, session)
    wrong = 1 if secret != 1 else 2
    for _ in range(10):
        assert answer(app, session, wrong).result in ("higher", "lower")
    used_up = answer(app, session, secret)
    assert (used_up.status, used_up.code) == (409, "out_of_guesses")


def test_the_worker_replays_the_run_and_refuses_a_score_it_does_not_prove(
    app, client, clock, redis_client, registry, queued
):
    session = start(client)
    guesses = play_to_a_win(app, clock, session)
    client.post(SCORES, json=only_the_run(session, submission_id="honest-run-1"))
    (honest,) = queued()
    tampered = {**honest, "submission_id": "tampered-run-1", "score": 1}
    with app.app_context():
        policy = get_token_policy()
    verdicts = dict(
        ingest_submissions(redis_client, registry, [tampered], clock.now, 60, PARTITIONS, policy)
    )
    assert verdicts["tampered-run-1"]["code"] == "run_mismatch"
    verdicts = dict(
        ingest_submissions(redis_client, registry, [honest], clock.now, 60, PARTITIONS, policy)
    )
    assert verdicts["honest-run-1"]["status"] == "accepted"
    assert verdicts["honest-run-1"]["score"] == guesses


def test_the_worker_refuses_a_run_whose_moves_are_gone(app, client, clock, redis_client, queued):
    session = start(client)
    play_to_a_win(app, clock, session)
    client.post(SCORES, json=only_the_run(session))
    (message,) = queued()
    redis_client.delete(keys.run_state_key("guess", "100", session["run_id"]))
    policy = TokenPolicy("testing-secret", required=False, max_age_s=7200)
    ((_, verdict),) = ingest_submissions(
        redis_client, load_registry(), [message], clock.now, 60, PARTITIONS, policy
    )
    assert verdict["code"] == "run_missing"


def test_a_run_keeps_its_moves_as_long_as_its_score_may_be_checked(app, client, clock):
    session = start(client, "10")
    with app.app_context():
        key = keys.run_state_key("guess", "10", session["run_id"])
        max_age_ms = get_token_policy().max_age_s * 1000
        assert get_redis().pttl(key) == max_age_ms  # an unfinished run lives as its token
        play_to_a_win(app, clock, session, highest=10, ms_per_guess=0)
        assert get_redis().pttl(key) == 2 * max_age_ms  # until its token's use is forgotten


def test_the_guess_verifier_replays_a_move_log():
    run = Run("p" * 22, 1_000, {"secret": "7"}, (50, 25, 7), 4_500)
    variant = load_registry().get("guess").variants["100"]
    assert guess.replay(run, variant) == Proven(3, 3_500)
    assert isinstance(guess.replay(Run("p" * 22, 0, {"secret": "7"}, (50,)), variant), Unproven)
    assert isinstance(guess.replay(Run("p" * 22, 0, {"secret": "7"}, (7, 7), 9), variant), Unproven)
    assert 1 <= int(guess.start(variant)["secret"]) <= 100


def test_a_games_file_declares_a_verifier_by_name(tmp_path):
    games = tmp_path / "games.toml"
    games.write_text('[games.hilo]\nverifier = "app.leaderboard.verifiers:guess"\n')
    assert load_registry(str(games)).get("hilo").verified
    games.write_text('[games.hilo]\nverifier = "app.leaderboard.verifiers:nothing"\n')
    with pytest.raises(ValueError, match="no start and replay"):
        load_registry(str(games))
    games.write_text('[games.hilo]\nverifier = "no.such.module:guess"\n')
    with pytest.raises(ValueError, match="hilo"):
        load_registry(str(games))
