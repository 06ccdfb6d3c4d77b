"""The use cases run without Flask or Celery: a Redis client, the time, and callables in."""

import pytest

from app.leaderboard import operator_tasks, scoring
from app.leaderboard.schemas import ScoreIn
from app.storage import operations
from tests.cases import GOOD, NOW
from tests.conftest import PARTITIONS, record_of, stream_length


def _submit(redis_client, registry, drains, **changes):
    return scoring.submit_score(
        redis_client,
        registry.get("guess-claimed"),
        ScoreIn.model_validate(GOOD),
        submission_id=changes.pop("submission_id", "sub-plain-0001"),
        claimed=changes.pop("claimed", None),
        tokens=None,
        now_ms=NOW,
        idempotency_s=60,
        partitions=PARTITIONS,
        request_id=None,
        request_drain=lambda partition: drains.append(1),
    )


def test_a_score_is_queued_and_one_drain_requested(redis_client, registry):
    drains = []
    taken = _submit(redis_client, registry, drains)
    again = _submit(redis_client, registry, drains)
    stored = record_of(redis_client, "sub-plain-0001", NOW, 60)
    assert stored == taken.record.model_dump(exclude_none=True, exclude={"game"})
    assert taken.record.status == "queued"
    assert taken.hand_key and not again.hand_key  # a mere repeat does not get the key
    assert again.player_id == taken.player_id
    assert drains == [1]  # the first took the drain flag; the repeat enqueued nothing
    assert stream_length(redis_client) == 1


def test_a_reused_id_for_another_player_is_refused(redis_client, registry):
    _submit(redis_client, registry, [])
    with pytest.raises(scoring.SubmissionIdReused):
        _submit(redis_client, registry, [], claimed="someone-else-000000000")


def test_a_rebuild_of_busy_boards_is_refused_and_queues_nothing(redis_client):
    queued = []
    families = [("guess-claimed", "10")]
    first = operator_tasks.start_rebuild(
        redis_client, families, NOW, lambda t, f: queued.append((t, f))
    )
    with pytest.raises(operator_tasks.Busy) as busy:
        operator_tasks.start_rebuild(redis_client, families, NOW, lambda t, f: queued.append(t))
    assert busy.value.holders == [first]
    assert queued == [(first, [["guess-claimed", "10"]])]
    assert operations.read_task(redis_client, first)["state"] == "queued"
