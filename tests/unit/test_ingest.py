"""The worker's function: every message gets a verdict, none crashes it, reruns change nothing."""

import json

from app import keys
from app.ingest import ingest_submissions
from tests.cases import queued_payload

NOW = 1_800_000_000_000


payload = queued_payload


def test_accepted_verdicts_carry_rank_and_time(redis_client, registry):
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.VERDICT_CHANNEL)
    pubsub.get_message(timeout=1)
    verdicts = ingest_submissions(redis_client, registry, [payload()], NOW, 60)
    assert [status["status"] for _, status in verdicts] == ["accepted"]
    record = json.loads(redis_client.get(keys.submission_key("sub-00000001")))
    assert record["rank"] == 1
    assert record["ranks"] == {"alltime": 1, "daily": 1, "weekly": 1}
    assert record["achieved_at"] == NOW - 5  # kept as epoch ms; shown as ISO 8601
    assert 0 < redis_client.ttl(keys.submission_key("sub-00000001")) <= 60
    assert pubsub.get_message(timeout=1)["data"] == "sub-00000001"


def test_garbage_is_rejected_with_a_reason_and_audited(redis_client, registry):
    messages = [
        payload("sub-bad-score", score=11),
        payload("sub-bad-game", game="chess"),
        payload("sub-bad-shape", score="three"),
        "a string",
        {"submission_id": "../../etc"},
        None,
        payload("sub-good-one"),
    ]
    verdicts = dict(ingest_submissions(redis_client, registry, messages, NOW, 60))
    assert verdicts["sub-bad-score"]["code"] == "implausible"
    assert verdicts["sub-bad-game"]["code"] == "unknown_game"
    assert verdicts["sub-bad-shape"]["code"] == "invalid"
    assert verdicts["sub-bad-shape"]["errors"] == {
        "score": ["Input should be a valid integer", "Input should be a valid number"]
    }
    assert verdicts["sub-good-one"]["status"] == "accepted"
    assert len(verdicts) == 4  # messages without a usable id cannot be answered
    audited = [fields["sid"] for _, fields in redis_client.xrange(keys.REJECTED_STREAM)]
    assert audited == ["sub-bad-score", "sub-bad-game", "sub-bad-shape"]
    assert not any("etc" in key for key in redis_client.keys("*"))


def test_running_a_batch_twice_changes_no_board(redis_client, registry):
    batch = [payload(f"sub-{i:08d}", player_id=f"{i:022d}", score=1 + i % 10) for i in range(30)]
    batch.append(payload("sub-rejected", score=99))
    first = ingest_submissions(redis_client, registry, batch, NOW, 60)
    assert len(first) == 31
    state = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    again = ingest_submissions(redis_client, registry, batch, NOW + 1000, 60)
    assert again == []  # all settled: nothing is judged, applied, counted or audited again
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == state


def test_a_replay_after_its_record_expired_reports_the_logged_entry(redis_client, registry):
    ingest_submissions(redis_client, registry, [payload("sub-once", score=4)], NOW, 60)
    redis_client.delete(keys.submission_key("sub-once"))  # the record's TTL ran out
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [payload("sub-once", score=2, received_at=NOW)], NOW, 60
    )
    assert verdict["status"] == "accepted"
    assert (verdict["score"], verdict["achieved_at"]) == (4, NOW - 5)
    assert "personal_best" not in verdict
    assert redis_client.xlen(keys.log_key("guess", "10")) == 1


def test_a_run_cut_short_before_its_verdict_is_settled_on_the_rerun(redis_client, registry):
    from app.boards import Entry, apply_entries

    game = registry.get("guess")
    apply_entries(
        redis_client, [Entry("sub-cut-short", game, "10", "p" * 22, "Ann", 3, NOW - 5)], NOW
    )
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [payload("sub-cut-short")], NOW, 60
    )
    assert verdict["status"] == "accepted" and verdict["rank"] == 1
    assert redis_client.xlen(keys.log_key("guess", "10")) == 1


def test_a_banned_player_is_rejected_and_nothing_is_logged(redis_client, registry):
    redis_client.sadd(keys.banned_key("guess", "10"), "p" * 22)
    ((sid, verdict),) = ingest_submissions(redis_client, registry, [payload()], NOW, 60)
    assert verdict["status"] == "rejected" and verdict["code"] == "banned"
    assert redis_client.xlen(keys.log_key("guess", "10")) == 0
