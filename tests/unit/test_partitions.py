"""Ingest partitions: where a submission goes, who drains a partition, and how drains share them
(a lease taken, left alone, adopted, handed back; the sweep; both shapes of the enqueue)."""

from __future__ import annotations

import pytest

from app.leaderboard import ingest
from app.leaderboard.records import SubmissionRecord
from app.storage import intake, keys, rate_limits, submissions
from app.worker import tasks
from tests.cases import NOW, queued_payload
from tests.conftest import (
    PARTITIONS,
    dead_letters,
    generation_at,
    ids_in_partitions,
    record_of,
    stream_length,
)


def _enqueue(client, sid, player="p" * 22, split=False, **enqueue_options):
    now = generation_at(NOW, 60)
    payload = queued_payload(sid, player_id=player)
    record = SubmissionRecord(status="queued", player_id=player).packed(now.start_ms)
    return intake.enqueue(client, sid, record, payload, now, split=split, **enqueue_options)


def _spread(client, partitions):
    """One submission in each of ``partitions`` (a list, repeats allowed); their ids."""
    sids = ids_in_partitions(partitions)
    for i, sid in enumerate(sids):
        _enqueue(client, sid, player=f"{i:022d}")
    return sids


def _drain(client, registry, held, consumer="w1:1", **options):
    options = {"wait_ms": 0, "linger_ms": 0, **options}
    return ingest.drain(client, registry, consumer, lambda: NOW, 60, PARTITIONS, held, **options)


def _status(client, sid):
    return record_of(client, sid, NOW, 60)["status"]


def _lease(client, partition):
    return client.get(keys.drain_flag(partition))


# Where a submission goes.


def test_a_submission_goes_to_its_partitions_stream_with_its_record(redis_client):
    (sid,) = ids_in_partitions([5])
    enqueued = _enqueue(redis_client, sid)
    assert (enqueued.partition, enqueued.schedule_drain) == (5, True)
    assert redis_client.xlen(keys.ingest_stream(5)) == 1 and stream_length(redis_client) == 1
    assert redis_client.hget(generation_at(NOW, 60).key(sid), sid) is not None
    assert generation_at(NOW, 60).key(sid).startswith("hs:{ingest:5}:subs:")
    assert _lease(redis_client, 5) == "q"  # asked for: the caller sends hiscore.drain(5)


@pytest.mark.parametrize("split", [False, True], ids=["one-script", "admit-then-enqueue"])
def test_both_shapes_of_the_enqueue_store_the_same_and_ask_for_one_drain(redis_client, split):
    first, again, other = ids_in_partitions([2, 2, 6])
    assert _enqueue(redis_client, first, split=split).schedule_drain
    assert not _enqueue(redis_client, again, split=split).schedule_drain  # asked for already
    assert _enqueue(redis_client, other, split=split).schedule_drain
    repeated = _enqueue(redis_client, first, split=split)
    assert repeated.existing is not None and not repeated.schedule_drain
    assert redis_client.xlen(keys.ingest_stream(2)) == 2
    assert redis_client.xlen(keys.ingest_stream(6)) == 1
    assert {_lease(redis_client, 2), _lease(redis_client, 6)} == {"q"}


@pytest.mark.parametrize("split", [False, True], ids=["one-script", "admit-then-enqueue"])
def test_a_revoked_key_or_a_broken_limit_stores_nothing_in_either_shape(redis_client, split):
    revoked, limited = ids_in_partitions([1, 3])
    redis_client.hset(keys.KEY_GENERATIONS, "p" * 22, 2)
    assert _enqueue(redis_client, revoked, split=split, key=("p" * 22, 1)).revoked
    key = keys.rate_limit_key("1.2.3.4", "scores", "0/1/minute")
    counters = [rate_limits.Counter(key, 0, 60_000, "0 per 1 minute")]
    breached = _enqueue(redis_client, limited, split=split, counters=counters)
    assert breached.limits.breached is not None
    assert stream_length(redis_client) == 0
    assert not redis_client.keys(keys.PARTITION_SUBMISSIONS_PATTERN)
    assert not redis_client.keys(keys.drain_flag(0).replace(":0}", ":*}"))
    # The limit was counted all the same, in the request slot.
    assert redis_client.exists(keys.rate_limit_key("1.2.3.4", "scores", "0/1/minute"))


# Leases: taken, left alone, adopted.


def test_a_lease_held_by_another_drain_is_left_alone(redis_client, registry):
    (sid,) = _spread(redis_client, [4])
    redis_client.set(keys.drain_flag(4), "d:other:7", px=intake.DRAIN_FLAG_MS)
    assert intake.take(redis_client, [4], "w1:1") == []
    assert ingest.take_partitions(redis_client, "w1:1", PARTITIONS, None) == []
    assert ingest.take_partitions(redis_client, "w1:1", PARTITIONS, 4) == []
    assert _lease(redis_client, 4) == "d:other:7"
    assert _status(redis_client, sid) == "queued"


@pytest.mark.parametrize("value", [None, "q", "1", "d:w1:1"], ids=["none", "q", "old-1", "mine"])
def test_a_lease_missing_asked_for_or_already_this_drains_is_taken(redis_client, value):
    if value is not None:
        redis_client.set(keys.drain_flag(3), value, px=5_000)
    assert intake.take(redis_client, [3], "w1:1") == [3]
    assert _lease(redis_client, 3) == "d:w1:1"
    assert redis_client.pttl(keys.drain_flag(3)) > 5_000  # refreshed to the full TTL


def test_only_a_lease_asked_for_more_than_50ms_ago_is_adopted(redis_client):
    flag_ms = intake.DRAIN_FLAG_MS
    redis_client.set(keys.drain_flag(1), "q", px=flag_ms - intake.ADOPT_AFTER_MS - 10)
    redis_client.set(keys.drain_flag(2), "q", px=flag_ms)  # just asked for: its task is coming
    redis_client.set(keys.drain_flag(3), "d:other:7", px=flag_ms - 1_000)
    redis_client.set(keys.drain_flag(4), "1", px=flag_ms - 1_000)  # of the previous version
    leases = intake.leases(redis_client, [1, 2, 3, 4, 5])
    assert [p for p, lease in leases.items() if lease.adoptable] == [1, 4]
    assert [intake.adopt(redis_client, p, "w1:1") for p in (1, 2, 3, 4, 5)] == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert _lease(redis_client, 2) == "q" and _lease(redis_client, 3) == "d:other:7"


def test_a_running_drain_adopts_a_partition_whose_drain_is_slow_to_start(
    redis_client, registry, monkeypatch
):
    mine, slow = _spread(redis_client, [0, 6])
    # Partition 6 was asked for a while ago; its task waits behind busy processes.
    redis_client.set(keys.drain_flag(6), "q", px=intake.DRAIN_FLAG_MS - 200)
    monkeypatch.setattr(ingest, "ADOPT_EVERY_MS", 0)
    held = ingest.take_partitions(redis_client, "w1:1", PARTITIONS, 0)
    assert held == [0]
    assert _drain(redis_client, registry, held).settled == 2
    assert {_status(redis_client, mine), _status(redis_client, slow)} == {"accepted"}
    assert _lease(redis_client, 6) is None  # let go with the rest
    # Its own task starts later and finds nothing to do.
    assert _drain(redis_client, registry, [6]).settled == 0


def test_a_dead_drains_lease_expires_and_its_entries_are_claimed_by_the_next(
    redis_client, registry, monkeypatch
):
    sids = _spread(redis_client, [7, 7])
    intake.ensure_groups(redis_client, [7])
    assert len(intake.read_new(redis_client, "dead:1", [7], 10)) == 2  # then the drain died
    redis_client.set(keys.drain_flag(7), "d:dead:1", px=intake.DRAIN_FLAG_MS)
    assert ingest.take_partitions(redis_client, "w2:2", PARTITIONS, 7) == []  # still alive
    redis_client.delete(keys.drain_flag(7))  # its lease ran out
    held = ingest.take_partitions(redis_client, "w2:2", PARTITIONS, 7)
    assert _drain(redis_client, registry, held, "w2:2").settled == 0  # not idle long enough
    monkeypatch.setattr(intake, "CLAIM_IDLE_MS", 0)
    held = ingest.take_partitions(redis_client, "w2:2", PARTITIONS, 7)
    assert _drain(redis_client, registry, held, "w2:2").settled == 2
    assert [_status(redis_client, sid) for sid in sids] == ["accepted"] * 2


# Letting go: released when idle, handed back at the budget.


def test_at_its_budget_a_drain_hands_back_what_still_waits_and_releases_the_rest(
    redis_client, registry, monkeypatch
):
    monkeypatch.setattr(ingest, "DRAIN_BATCH", 3)
    _spread(redis_client, [1] * 5 + [4] * 2)
    held = ingest.take_partitions(redis_client, "w1:1", PARTITIONS, None)
    assert held == [1, 4]
    outcome = _drain(redis_client, registry, held, budget_ms=0)
    # One batch of both partitions together: 3 of partition 1's and both of partition 4's.
    assert outcome.settled == 5 and outcome.handed_back == (1,)
    assert _lease(redis_client, 1) == "q" and _lease(redis_client, 4) is None


def test_the_drain_task_sends_a_drain_of_each_partition_handed_back(app, redis_client, monkeypatch):
    monkeypatch.setattr(ingest, "DRAIN_BATCH", 1)
    sent = []
    monkeypatch.setattr(tasks.drain, "apply_async", lambda *a, **k: sent.append(k["kwargs"]))
    monkeypatch.setattr(ingest, "drain", _with_no_budget(ingest.drain))
    _spread(redis_client, [2, 2, 5, 5])
    with app.app_context():
        assert tasks.drain.run() == 2
    assert sorted(k["partition"] for k in sent) == [2, 5]


def _with_no_budget(drain):
    def run(*args, **kwargs):
        return drain(*args, **{**kwargs, "budget_ms": 0, "wait_ms": 0, "linger_ms": 0})

    return run


def test_a_drain_task_of_a_partition_another_drain_holds_returns_at_once(app, redis_client):
    (sid,) = _spread(redis_client, [3])
    redis_client.set(keys.drain_flag(3), "d:other:7", px=intake.DRAIN_FLAG_MS)
    with app.app_context():
        assert tasks.drain.run(partition=3) == 0
    assert redis_client.xlen(keys.ingest_stream(3)) == 1
    assert _lease(redis_client, 3) == "d:other:7"


def test_a_drain_task_of_the_previous_version_takes_every_free_partition(app, redis_client):
    sids = _spread(redis_client, [0, 3, 6])
    redis_client.set(keys.drain_flag(6), "d:other:7", px=intake.DRAIN_FLAG_MS)
    with app.app_context():
        assert tasks.drain.run() == 2  # sent with no argument, as the previous version sends it
    # Settled by the app's clock and window.
    assert [record_of(redis_client, sid)["status"] for sid in sids[:2]] == ["accepted"] * 2
    assert redis_client.xlen(keys.ingest_stream(6)) == 1


# The sweep.


def test_the_sweep_drains_every_partition_left_with_entries_and_no_lease(app, redis_client):
    sids = _spread(redis_client, list(range(PARTITIONS)) * 2)
    for p in range(PARTITIONS):  # every drain task lost with the broker: the leases ran out
        redis_client.delete(keys.drain_flag(p))
    redis_client.set(keys.drain_flag(5), "d:other:7", px=intake.DRAIN_FLAG_MS)
    with app.app_context():
        assert tasks.sweep.run() == 2 * (PARTITIONS - 1)
    # Settled by the app's clock and window; the partition another drain holds is its to drain.
    left = [sid for sid in sids if record_of(redis_client, sid) is None]
    assert {submissions.partition_of(sid, PARTITIONS) for sid in left} == {5}
    assert len(left) == 2 and redis_client.xlen(keys.ingest_stream(5)) == 2
    assert [p for p in range(PARTITIONS) if redis_client.exists(keys.drain_flag(p))] == [5]
    with app.app_context():
        assert tasks.sweep.run() == 0  # nothing else waits


# On a Redis Cluster: a transaction and a read per partition.


def test_per_partition_transactions_and_reads_settle_the_same(redis_client, registry):
    sids = _spread(redis_client, [0, 1, 1, 7])
    poisoned = ids_in_partitions([4])[0]
    _enqueue(redis_client, poisoned, player="x" * 22)
    redis_client.set(keys.log_key("guess-claimed", "10"), "not a stream")  # every apply fails
    held = ingest.take_partitions(redis_client, "w1:1", PARTITIONS, None)
    outcome = _drain(
        redis_client, registry, held, per_partition_transactions=True, per_partition_reads=True
    )
    assert outcome.settled == 5
    assert {record_of(redis_client, sid, NOW, 60)["code"] for sid in [*sids, poisoned]} == {
        "failed"
    }
    assert len(dead_letters(redis_client)) == 5
    assert stream_length(redis_client) == 0
    assert intake.backlog(redis_client, PARTITIONS).totals() == {"waiting": 0, "in_progress": 0}
    redis_client.delete(keys.log_key("guess-claimed", "10"))
    more = _spread(redis_client, [2, 3])
    held = ingest.take_partitions(redis_client, "w1:1", PARTITIONS, None)
    outcome = _drain(
        redis_client, registry, held, per_partition_transactions=True, per_partition_reads=True
    )
    assert outcome.settled == 2
    assert [_status(redis_client, sid) for sid in more] == ["accepted"] * 2
    counts = submissions.read_verdict_counts(redis_client, PARTITIONS)
    assert counts == {"accepted": 2, "rejected:failed": 5}


def test_a_drain_that_fails_hands_its_leases_back_at_once(redis_client, registry, monkeypatch):
    import redis

    (sid,) = _spread(redis_client, [2])
    held = ingest.take_partitions(redis_client, "w1:1", PARTITIONS, 2)

    def down(*args, **kwargs):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(ingest, "apply_entries_each", down)
    with pytest.raises(redis.ConnectionError):
        _drain(redis_client, registry, held)
    # Asked for again, not held by a drain that is gone: the retry, wherever it runs, takes it.
    assert _lease(redis_client, 2) == "q"
    monkeypatch.undo()
    monkeypatch.setattr(intake, "CLAIM_IDLE_MS", 0)  # another process's consumer claims it
    held = ingest.take_partitions(redis_client, "w9:9", PARTITIONS, 2)
    assert _drain(redis_client, registry, held, "w9:9").settled == 1
    assert _status(redis_client, sid) == "accepted"
