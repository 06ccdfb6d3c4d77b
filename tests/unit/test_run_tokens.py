"""Run tokens: issued by /sessions, checked by the web and again by the worker, used once."""

import pytest

from app.leaderboard import run_tokens
from app.leaderboard.ingest import ingest_submissions
from app.leaderboard.run_tokens import TokenPolicy
from app.storage import keys
from tests.cases import NOW, queued_payload
from tests.conftest import PARTITIONS, generation_at, ids_in_partitions, stream_length

SECRET = "testing-secret"


def start_run(client, variant="100"):
    resp = client.post("/api/v1/games/guess-claimed/sessions", json={"variant": variant})
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
    return client.post("/api/v1/games/guess-claimed/scores", json=body)


def test_a_session_for_a_variant_starts_a_run(client):
    session = start_run(client)
    assert session["token"] and session["token_expires_at"].endswith("Z")
    assert session["variant"] == "100"
    # Without a variant there is no run to vouch for: only the player.
    assert "token" not in client.post("/api/v1/games/guess-claimed/sessions", json={}).get_json()


def test_a_score_with_its_token_is_ranked_and_the_token_is_used_up(app, client, work, clock):
    session = start_run(client)
    clock.advance(1000)  # the run lasts as long as it claims
    # In one partition, so that they are applied in the order they came (between partitions
    # the order is the one a batch reads them in, or the drains' of each).
    first_id, again_id = ids_in_partitions([0, 0])
    first = post(client, score(session, submission_id=first_id))
    assert first.status_code == 202
    # The same run, with a better claim.
    again = post(client, score(session, score=4, submission_id=again_id))
    assert again.status_code == 202  # only the worker knows what was used
    verdicts = dict(work())
    assert verdicts[first.get_json()["submission_id"]]["status"] == "accepted"
    replay = verdicts[again.get_json()["submission_id"]]
    assert replay["status"] == "rejected" and replay["code"] == "token_reused"
    assert "already used" in replay["reason"]
    board = client.get("/api/v1/games/guess-claimed/boards/100").get_json()
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
    assert stream_length(redis_client) == 0


def test_a_token_of_another_player_is_refused(app, client):
    theirs = start_run(app.test_client())
    mine = start_run(client)
    resp = post(client, score(mine, token=theirs["token"]))
    assert resp.status_code == 422
    assert "another game, variant or player" in resp.get_json()["errors"]["token"][0]


def test_an_expired_token_is_refused(client, clock):
    session = start_run(client)
    three_hours_ago = clock.now - 3 * 3600 * 1000
    old = run_tokens.issue(
        SECRET, "guess-claimed", "100", session["player_id"], "r" * 22, three_hours_ago
    )
    resp = post(client, score(session, token=old))
    assert resp.status_code == 422
    assert "expired" in resp.get_json()["errors"]["token"][0]


def test_when_required_a_score_without_a_token_is_refused(app, client, clock):
    app.config["RUN_TOKENS_REQUIRED"] = True
    session = start_run(client)
    clock.advance(1000)
    resp = post(client, score(session, token=None))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == {"token": ["is required"]}
    assert post(client, score(session)).status_code == 202


POLICY = TokenPolicy(SECRET, required=True, max_age_s=7200)


def _token(player="p" * 22, variant="10", issued_at=NOW - 60_000, game="guess-claimed"):
    return run_tokens.issue(SECRET, game, variant, player, "run-0000000001", issued_at)


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
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], NOW, 60, PARTITIONS, POLICY
    )
    assert verdict["status"] == "rejected" and verdict["code"] == code
    assert verdict["errors"]["token"]
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 0


def test_a_token_is_judged_as_of_the_score_not_of_a_late_worker(redis_client, registry):
    message = queued_payload("sub-late-run", received_at=NOW, token=_token())
    three_hours_later = NOW + 3 * 3600 * 1000
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], three_hours_later, 60, PARTITIONS, POLICY
    )
    assert verdict["status"] == "accepted"


def test_a_redelivered_submission_may_reuse_its_own_token(redis_client, registry):
    message = queued_payload("sub-redelivered", received_at=NOW, token=_token())
    ingest_submissions(redis_client, registry, [message], NOW, 60, PARTITIONS, POLICY)
    # As if cut short before its verdict was stored.
    redis_client.delete(generation_at(NOW, 60).key("sub-redelivered"))
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], NOW, 60, PARTITIONS, POLICY
    )
    assert verdict["status"] == "accepted"
    other = queued_payload("sub-thief-0001", received_at=NOW, token=_token())
    ((_, stolen),) = ingest_submissions(
        redis_client, registry, [other], NOW, 60, PARTITIONS, POLICY
    )
    assert stolen["code"] == "token_reused"


def test_a_score_that_waited_past_its_runs_memory_is_refused(redis_client, registry):
    message = queued_payload("sub-waited-long", received_at=NOW, token=_token())
    much_later = NOW + 2 * 7200 * 1000
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], much_later, 60, PARTITIONS, POLICY
    )
    assert verdict["code"] == "token_expired" and "waited too long" in verdict["reason"]
    # Within that time the run's use is remembered: the key outlives the token's own life.
    ingest_submissions(
        redis_client,
        registry,
        [queued_payload("sub-in-time", received_at=NOW, token=_token())],
        NOW,
        60,
        PARTITIONS,
        POLICY,
    )
    (key,) = redis_client.keys("*:run:*")
    assert redis_client.pttl(key) > 7200 * 1000


# The edges of a token's life, to the millisecond.

RUN = "run-0000000001"


def _checked(issued_at, received_at=NOW, duration_ms=None):
    return run_tokens.check(
        SECRET,
        _token(issued_at=issued_at),
        game="guess-claimed",
        variant="10",
        player_id="p" * 22,
        received_at=received_at,
        duration_ms=duration_ms,
        max_age_s=POLICY.max_age_s,
    )


@pytest.mark.parametrize(
    "age_ms, expired",
    [
        (7200 * 1000, False),
        # The age is read off two hosts' clocks: their skew is allowed for here.
        (7200 * 1000 + run_tokens.CLOCK_SLACK_MS, False),
        (7200 * 1000 + run_tokens.CLOCK_SLACK_MS + 1, True),
    ],
    ids=["max-age", "max-age-plus-slack", "max-age-plus-slack-plus-1ms"],
)
def test_a_token_is_good_up_to_its_max_age_and_the_clock_slack_inclusive(age_ms, expired):
    checked = _checked(issued_at=NOW - age_ms)
    if expired:
        assert checked == run_tokens.TokenProblem(
            "token_expired", "the run token has expired; start a new run"
        )
    else:
        assert isinstance(checked, run_tokens.RunToken) and checked.issued_at == NOW - age_ms


@pytest.mark.parametrize(
    "issued_before_ms, duration_ms, too_fast",
    [
        (10_000, 10_000, False),
        (10_000, 10_001, True),
        # A score of 1 at its minimum play time, sent 5 ms after its token.
        (5, 200, True),
        # Issued by a web process whose clock runs ahead of the one that took the score.
        (-400, 0, False),
        (-400, 1, True),
        (-400, None, False),
    ],
    ids=[
        "as-old-as-the-claim",
        "a-ms-younger-than-the-claim",
        "sent-5ms-after-the-token",
        "issued-after-the-score-claiming-no-time",
        "issued-after-the-score-claiming-1ms",
        "issued-after-the-score-no-duration",
    ],
)
def test_a_runs_claimed_play_time_never_exceeds_its_tokens_age(
    issued_before_ms, duration_ms, too_fast
):
    checked = _checked(issued_at=NOW - issued_before_ms, duration_ms=duration_ms)
    if too_fast:
        assert isinstance(checked, run_tokens.TokenProblem) and checked.code == "token_too_fast"
        # A token from the future is never said to be of a negative age.
        age = max(issued_before_ms, 0)
        assert checked.detail.endswith(f"but its token is only {age} ms old")
    else:
        assert isinstance(checked, run_tokens.RunToken)


def _forgotten_at(issued_at):
    run = run_tokens.RunToken("guess-claimed", "10", "p" * 22, RUN, issued_at)
    return run_tokens.run_forgotten_at(run, POLICY)


def _spy_on_applied_entries(monkeypatch):
    from app.leaderboard import ingest

    seen = []
    real = ingest.apply_entries_each

    def spy(client, entries, now_ms):
        seen.extend(entries)
        return real(client, entries, now_ms)

    monkeypatch.setattr(ingest, "apply_entries_each", spy)
    return seen


def test_a_score_checked_1ms_before_its_run_is_forgotten_keeps_the_use_for_that_ms(
    redis_client, registry, monkeypatch
):
    issued_at = NOW - 60_000
    seen = _spy_on_applied_entries(monkeypatch)
    message = queued_payload("sub-last-ms-1", received_at=NOW, token=_token(issued_at=issued_at))
    now = _forgotten_at(issued_at) - 1
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], now, 60, PARTITIONS, POLICY
    )
    assert verdict["status"] == "accepted"
    assert [e.run_ttl_ms for e in seen] == [1]  # the key itself is gone a moment later
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 1


@pytest.mark.parametrize("after_ms", [0, 1], ids=["at-forgotten-at", "1ms-after"])
def test_a_score_checked_once_its_run_may_be_forgotten_is_refused(
    redis_client, registry, monkeypatch, after_ms
):
    # At that instant a use could be remembered for no time at all (a TTL of 0, which Redis
    # refuses): the single use can no longer be checked.
    issued_at = NOW - 60_000
    seen = _spy_on_applied_entries(monkeypatch)
    message = queued_payload("sub-forgotten-1", received_at=NOW, token=_token(issued_at=issued_at))
    now = _forgotten_at(issued_at) + after_ms
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], now, 60, PARTITIONS, POLICY
    )
    assert verdict["code"] == "token_expired" and "waited too long" in verdict["reason"]
    assert seen == []  # nothing reached the boards, with no TTL to give
    assert not redis_client.exists(keys.run_key("guess-claimed", "10", RUN))
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 0


def test_a_token_issued_after_the_score_arrived_is_remembered_until_its_own_end(
    redis_client, registry, monkeypatch
):
    issued_at = NOW + 400  # the issuing web's clock ran ahead of the receiving one's
    seen = _spy_on_applied_entries(monkeypatch)
    message = queued_payload(
        "sub-from-ahead",
        game="untimed",
        variant="default",
        received_at=NOW,
        score=1,
        duration_ms=None,
        token=_token(issued_at=issued_at, game="untimed", variant="default"),
    )
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [message], NOW, 60, PARTITIONS, POLICY
    )
    assert verdict["status"] == "accepted"
    assert [e.run_ttl_ms for e in seen] == [_forgotten_at(issued_at) - NOW]
