"""A status record is stored as short text that reads back as the same record, and a client sees
only what is public."""

import json

import pytest

from app.leaderboard import ingest, statuses
from app.leaderboard.records import (
    PLAYER_PREFIX,
    USUAL_REJECTIONS,
    BoardRef,
    Submission,
    SubmissionRecord,
)
from app.leaderboard.validation import check_run
from app.storage import keys, submissions
from tests.cases import GOOD, NOW
from tests.conftest import PARTITIONS, generation_at, keyed, record_of

PLAYER = "pppppppppppppppppppppp"
FINGERPRINT = submissions.fingerprint({**GOOD, "game": "guess-claimed"})
BASE = generation_at(NOW, 24 * 3600).start_ms

#: Redis keeps a hash compact (a listpack, a few bytes a field) while every value is at most
#: this long (``hash-max-ziplist-value``); one longer value turns its whole hash into a table.
SMALL_VALUE = 64


def accepted(
    ranks=(2, 1, None), score=4, variant="10", best=True, at=NOW - 5, game="guess-claimed"
):
    return SubmissionRecord(
        status="accepted",
        fingerprint=FINGERPRINT,
        game=game,
        player_id=PLAYER,
        board=BoardRef(game=game, variant=variant, window="alltime"),
        rank=ranks[0],
        ranks=dict(zip(("alltime", "daily", "weekly"), ranks, strict=True)),
        score=score,
        achieved_at=at,
        personal_best=best,
    )


def rejected(code, reason, errors=None):
    return SubmissionRecord(
        status="rejected",
        code=code,
        reason=reason,
        errors=errors or None,
        fingerprint=FINGERPRINT,
        player_id=PLAYER,
    )


def as_read(record: SubmissionRecord) -> SubmissionRecord:
    """What reading back a stored ``record`` gives: an accepted one keeps a prefix of its
    player and names its game by its board; the game of another is not kept."""
    if record.status == "accepted":
        return record.model_copy(
            update={"player_id": None, "player_prefix": PLAYER[:PLAYER_PREFIX]}
        )
    return record.model_copy(update={"game": None})


USUAL = [
    rejected(code, reason, errors)
    for code, said in USUAL_REJECTIONS.items()
    for reason, errors in said
]

RECORDS = [
    SubmissionRecord(status="queued", fingerprint=FINGERPRINT, player_id=PLAYER),
    accepted(),
    accepted(ranks=(1234567, 12345, 123456), score=1000, variant="1000", best=False),
    accepted(score=12.5, best=None, at=BASE - 3_000),  # a replay, settled a generation later
    accepted(ranks=(None, None, None)),
    *USUAL,
    rejected("unknown_game", "there is no game called 'chess'"),
    rejected(
        "implausible",
        "the score breaks the rules of the game",
        {"score": ["must be between 1 and 10 for variant 10"]},
    ),
    rejected("invalid", "the submission does not have the expected shape", {"score": ["a", "b"]}),
    rejected("token_too_fast", "the run claims 9 ms", {"token": ["the run claims 9 ms"]}),
    rejected("run_invalid", "something else", {"token": ["x"], "score": ["y"]}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.code or r.status)
def test_a_record_reads_back_from_its_stored_text(record):
    text = record.packed(BASE)
    assert SubmissionRecord.unpacked(text, BASE) == as_read(record)


def test_the_stored_text_is_positional_and_readable():
    assert accepted().packed(BASE) == (
        f"a|{FINGERPRINT}|pppppp|guess-claimed|10|4|{NOW - 5 - BASE}|2,1,|1"
    )
    banned = rejected("banned", "this player may not enter this game's boards")
    assert banned.packed(BASE) == f"r|{FINGERPRINT}|{PLAYER}|banned"
    queued = SubmissionRecord(status="queued", fingerprint=FINGERPRINT, player_id=PLAYER)
    assert queued.packed(BASE) == f"q|{FINGERPRINT}|{PLAYER}"
    assert len(FINGERPRINT) == 8


@pytest.mark.parametrize(
    "record",
    [
        SubmissionRecord(status="queued", fingerprint=FINGERPRINT, player_id=PLAYER),
        # The demo game's board of a million players, a score and variant of four digits,
        # achieved at the end of a generation (of the default window).
        accepted(
            ranks=(999_999, 99_999, 999_999),
            score=1000,
            variant="1000",
            at=BASE + 6 * 3600 * 1000 - 1,
            game="guess",
        ),
        *USUAL,
    ],
    ids=lambda r: r.code or r.status,
)
def test_every_accepted_and_usual_rejected_record_fits_a_small_hash(record):
    assert len(record.packed(BASE).encode()) <= SMALL_VALUE


def test_no_submission_makes_a_long_record():
    errors = {f"field-{i}-" + "f" * 200: ["m" * 500] * 5 for i in range(50)}
    record = rejected("invalid", "x" * 5000, errors)
    text = record.packed(BASE)
    assert len(text) <= 450
    read = SubmissionRecord.unpacked(text, BASE)
    assert read.code == "invalid" and read.reason.startswith("xxx") and read.errors


def test_a_fingerprint_or_player_that_is_not_of_their_shape_is_left_out():
    record = rejected("invalid", "the submission could not be read")
    record.player_id, record.fingerprint = "a|b", "x" * 40
    assert record.packed(BASE) == "r|||invalid|1"


@pytest.mark.parametrize(
    "text",
    ["", "2a|x|y", '{"status":"accepted"}', "a|fp|pp|g|10|4|soon|1,2,3|1", "r|fp|p|x|[0"],
)
def test_text_of_another_format_reads_as_no_record(text):
    assert SubmissionRecord.unpacked(text, BASE) is None


def test_the_usual_rejections_are_what_the_service_says():
    # Drift would only cost bytes, never a wrong answer: these are stored in full then.
    assert (ingest.FAILED.detail, {}) in USUAL_REJECTIONS["failed"]
    from app.leaderboard.run_tokens import TokenPolicy

    missing = check_run(
        TokenPolicy("s", required=True, max_age_s=60),
        None,
        game="guess",
        variant="10",
        player_id=PLAYER,
        received_at=NOW,
        duration_ms=None,
    )
    assert (missing.detail, missing.errors) in USUAL_REJECTIONS[missing.code]


def test_a_banned_players_verdict_is_stored_as_its_code(redis_client, registry):
    redis_client.sadd(keys.banned_key("guess-claimed", "10"), "p" * 22)
    payload = {**_payload("sub-banned"), "fingerprint": FINGERPRINT}
    ingest.ingest_submissions(redis_client, registry, [payload], NOW, 60, PARTITIONS)
    text = redis_client.hget(generation_at(NOW, 60).key("sub-banned"), "sub-banned")
    assert text == f"r|{FINGERPRINT}|{'p' * 22}|banned"


def _payload(sid):
    from tests.cases import queued_payload

    return queued_payload(sid)


# What a client sees.


def test_an_accepted_verdict_answers_without_the_player(client, work):
    resp = client.post("/api/v1/games/guess-claimed/scores", json=GOOD)
    work()
    body = client.get(resp.get_json()["status_url"]).get_json()
    assert body == {
        "submission_id": resp.get_json()["submission_id"],
        "status": "accepted",
        "board": {"game": "guess-claimed", "variant": "10", "window": "alltime"},
        "rank": 1,
        "ranks": {"alltime": 1, "daily": 1, "weekly": 1},
        "score": 4,
        "achieved_at": body["achieved_at"],
        "personal_best": True,
    }
    top = client.get("/api/v1/games/guess-claimed/boards/10").get_json()
    assert body["achieved_at"] == top["entries"][0]["achieved_at"]


def test_a_failed_record_shows_neither_its_error_nor_its_fingerprint():
    record = rejected("failed", ingest.FAILED.detail)
    record.error = "ResponseError: WRONGTYPE"
    read = SubmissionRecord.unpacked(record.packed(BASE), BASE)
    assert Submission.of("sub-failed", read).model_dump(mode="json", exclude_none=True) == {
        "submission_id": "sub-failed",
        "status": "rejected",
        "code": "failed",
        "reason": "the service could not process this submission",
    }


def test_a_record_of_the_previous_layout_is_not_read(client, redis_client):
    # The previous release's JSON string, which migrate-storage converts.
    old = {"status": "accepted", "player_id": PLAYER, "rank": 2, "fingerprint": "0" * 32}
    redis_client.set(keys.legacy_submission_key("sub-old-accepted"), json.dumps(old))
    assert client.get("/api/v1/submissions/sub-old-accepted").status_code == 404


# A retry after the verdict answers as one before it did.


def test_a_retry_of_an_accepted_submission_answers_its_verdict_and_player(app, work, queued):
    body = {**GOOD, "submission_id": "retry-after-0001"}
    anonymous = app.test_client(use_cookies=False)
    first = anonymous.post("/api/v1/games/guess-claimed/scores", json=body).get_json()
    work()
    player = first["player_id"]
    again = app.test_client(use_cookies=False).post("/api/v1/games/guess-claimed/scores", json=body)
    assert again.status_code == 202
    # The record keeps a prefix of the player's id: the whole one comes from the log.
    assert again.get_json() == {
        "submission_id": "retry-after-0001",
        "status": "accepted",
        "status_url": "/api/v1/submissions/retry-after-0001",
        "player_id": player,
    }
    proven = app.test_client().post(
        "/api/v1/games/guess-claimed/scores", json={**body, **keyed(player)}
    )
    assert proven.status_code == 202
    assert proven.get_json()["player_id"] == player and "player_key" in proven.get_json()
    other = app.test_client().post(
        "/api/v1/games/guess-claimed/scores", json={**body, **keyed("q" * 22)}
    )
    assert other.status_code == 422
    changed = app.test_client().post(
        "/api/v1/games/guess-claimed/scores", json={**body, "score": 5, "duration_ms": 5000}
    )
    assert changed.status_code == 422
    assert queued() == []  # nothing enqueued again


def test_a_retry_of_a_rejected_submission_answers_its_verdict(app, redis_client, work):
    body = {**GOOD, "submission_id": "retry-rejected-1", **keyed("b" * 22)}
    redis_client.sadd(keys.banned_key("guess-claimed", "10"), "b" * 22)
    app.test_client().post("/api/v1/games/guess-claimed/scores", json=body)
    work()
    anonymous = {k: v for k, v in body.items() if k not in ("player_id", "player_key")}
    again = app.test_client(use_cookies=False).post(
        "/api/v1/games/guess-claimed/scores", json=anonymous
    )
    assert again.status_code == 202
    assert (again.get_json()["status"], again.get_json()["player_id"]) == ("rejected", "b" * 22)


# Converting a record of another layout.


def test_a_converted_record_lives_as_if_written_when_it_was(redis_client):
    window = 24 * 3600
    pipe = redis_client.pipeline(transaction=False)
    assert statuses.write(
        pipe, "sub-converted", accepted(), NOW - 3_600_000, NOW, window, PARTITIONS
    )
    assert not statuses.write(
        pipe, "sub-too-old", accepted(), NOW - 2 * window * 1000, NOW, window, PARTITIONS
    )
    pipe.execute()
    assert record_of(redis_client, "sub-converted", NOW) == as_read(accepted()).stored()
    assert redis_client.keys(keys.PARTITION_SUBMISSIONS_PATTERN) == [
        generation_at(NOW - 3_600_000, window).key("sub-converted")
    ]
