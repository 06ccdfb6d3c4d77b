"""Records written by the previous release still read, and a client sees only what is public."""

import json

from app.leaderboard.records import Submission, SubmissionRecord
from app.storage import keys, submissions
from tests.cases import GOOD

# Exactly what the previous release wrote (json.dumps of its hand-built dicts).
OLD_QUEUED = (
    '{"status":"queued","fingerprint":"0123456789abcdef0123456789abcdef",'
    '"game":"guess","player_id":"pppppppppppppppppppppp","queued_at":2100000000000}'
)
OLD_ACCEPTED = json.dumps(
    {
        "status": "accepted",
        "fingerprint": "0123456789abcdef0123456789abcdef",
        "game": "guess",
        "player_id": "pppppppppppppppppppppp",
        "board": {"game": "guess", "variant": "10", "window": "alltime"},
        "rank": 2,
        "ranks": {"alltime": 2, "daily": 1, "weekly": None},
        "score": 4,
        "achieved_at": 2100000000000,
        "personal_best": True,
        "settled_at": 2100000000100,
    }
)
OLD_FAILED = json.dumps(
    {
        "status": "rejected",
        "code": "failed",
        "reason": "the service could not process this submission",
        "fingerprint": "0123456789abcdef0123456789abcdef",
        "game": "guess",
        "player_id": "pppppppppppppppppppppp",
        "error": "ResponseError: WRONGTYPE",
        "settled_at": 2100000000100,
        "a_field_of_a_later_release": 1,
    }
)


def test_an_old_accepted_record_answers_as_before(client, redis_client):
    redis_client.set(keys.submission_key("sub-old-accepted"), OLD_ACCEPTED)
    body = client.get("/api/v1/submissions/sub-old-accepted").get_json()
    assert body == {
        "submission_id": "sub-old-accepted",
        "status": "accepted",
        "player_id": "pppppppppppppppppppppp",
        "board": {"game": "guess", "variant": "10", "window": "alltime"},
        "rank": 2,
        "ranks": {"alltime": 2, "daily": 1, "weekly": None},
        "score": 4,
        "achieved_at": "2036-07-18T13:20:00.000Z",
        "personal_best": True,
    }


def test_a_failed_record_shows_neither_its_error_nor_its_fingerprint(client, redis_client):
    redis_client.set(keys.submission_key("sub-old-failed"), OLD_FAILED)
    body = client.get("/api/v1/submissions/sub-old-failed").get_json()
    assert body == {
        "submission_id": "sub-old-failed",
        "status": "rejected",
        "code": "failed",
        "reason": "the service could not process this submission",
        "player_id": "pppppppppppppppppppppp",
    }


def test_a_queued_record_is_stored_as_the_previous_release_wrote_it():
    record = SubmissionRecord.model_validate_json(OLD_QUEUED)
    assert json.dumps(record.stored(), separators=(",", ":")) == OLD_QUEUED
    assert Submission.of("sub-old-queued", record).model_dump(mode="json", exclude_none=True) == {
        "submission_id": "sub-old-queued",
        "status": "queued",
        "player_id": "pppppppppppppppppppppp",
    }


def test_a_retry_of_a_submission_the_old_release_queued_is_the_same_entry(client, redis_client):
    fp = submissions.fingerprint({**GOOD, "game": "guess-claimed"})
    old = json.loads(OLD_QUEUED) | {"fingerprint": fp}
    redis_client.set(keys.submission_key("sub-old-queued"), json.dumps(old))
    resp = client.post(
        "/api/v1/games/guess-claimed/scores",
        json=GOOD,
        headers={"Idempotency-Key": "sub-old-queued"},
    )
    assert resp.status_code == 202
    assert resp.get_json() == {
        "submission_id": "sub-old-queued",
        "status": "queued",
        "status_url": "/api/v1/submissions/sub-old-queued",
        "player_id": "pppppppppppppppppppppp",
    }
    assert redis_client.xlen(keys.INGEST_STREAM) == 0  # nothing enqueued twice
