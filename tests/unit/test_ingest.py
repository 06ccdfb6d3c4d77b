"""The worker's function: every message gets a verdict, none crashes it, reruns change nothing."""

import json

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded
from redis import exceptions as errors

from app.leaderboard import ingest, run_tokens
from app.leaderboard.ingest import ingest_submissions, is_transient
from app.leaderboard.records import SubmissionRecord
from app.leaderboard.run_tokens import TokenPolicy
from app.storage import intake, keys
from app.worker import tasks
from tests.cases import NOW, queued_payload
from tests.conftest import (
    PARTITIONS,
    dead_letters,
    generation_at,
    ids_in_partitions,
    record_of,
    rejections,
    stream_length,
)

payload = queued_payload

#: A policy of run tokens, so that each entry has a key of its own in the apply script.
TOKENS = TokenPolicy("testing-secret", required=True, max_age_s=7200)


def test_accepted_verdicts_carry_rank_and_time(redis_client, registry):
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.VERDICT_CHANNEL)
    pubsub.get_message(timeout=1)
    verdicts = ingest_submissions(redis_client, registry, [payload()], NOW, 60, PARTITIONS)
    assert [status["status"] for _, status in verdicts] == ["accepted"]
    record = _status(redis_client, "sub-00000001")
    assert record["rank"] == 1
    assert record["ranks"] == {"alltime": 1, "daily": 1, "weekly": 1}
    assert record["achieved_at"] == NOW - 5  # kept as epoch ms; shown as ISO 8601
    # Its hash lives to the end of its generation (a quarter of the window) plus the window.
    assert 60 <= redis_client.ttl(generation_at(NOW, 60).key("sub-00000001")) <= 75
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
    verdicts = dict(ingest_submissions(redis_client, registry, messages, NOW, 60, PARTITIONS))
    assert verdicts["sub-bad-score"]["code"] == "implausible"
    assert verdicts["sub-bad-game"]["code"] == "unknown_game"
    assert verdicts["sub-bad-shape"]["code"] == "invalid"
    assert verdicts["sub-bad-shape"]["errors"] == {
        "score": ["Input should be a valid integer", "Input should be a valid number"]
    }
    assert verdicts["sub-good-one"]["status"] == "accepted"
    assert len(verdicts) == 4  # messages without a usable id cannot be answered
    audited = [fields["sid"] for _, fields in rejections(redis_client)]
    # Each partition audits its own: in order within one, merged by stream id across them.
    assert sorted(audited) == ["sub-bad-game", "sub-bad-score", "sub-bad-shape"]
    assert not any("etc" in key for key in redis_client.keys("*"))


def test_running_a_batch_twice_changes_no_board(redis_client, registry):
    batch = [payload(f"sub-{i:08d}", player_id=f"{i:022d}", score=1 + i % 10) for i in range(30)]
    batch.append(payload("sub-rejected", score=99))
    first = ingest_submissions(redis_client, registry, batch, NOW, 60, PARTITIONS)
    assert len(first) == 31
    state = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    again = ingest_submissions(redis_client, registry, batch, NOW + 1000, 60, PARTITIONS)
    assert again == []  # all settled: nothing is judged, applied, counted or audited again
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == state


def test_a_replay_after_its_record_expired_reports_the_logged_entry(redis_client, registry):
    ingest_submissions(redis_client, registry, [payload("sub-once", score=4)], NOW, 60, PARTITIONS)
    redis_client.delete(generation_at(NOW, 60).key("sub-once"))  # the record's TTL ran out
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [payload("sub-once", score=2, received_at=NOW)], NOW, 60, PARTITIONS
    )
    assert verdict["status"] == "accepted"
    assert (verdict["score"], verdict["achieved_at"]) == (4, NOW - 5)
    assert "personal_best" not in verdict
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 1


def test_a_run_cut_short_before_its_verdict_is_settled_on_the_rerun(redis_client, registry):
    from app.leaderboard.boards import Entry, apply_entries

    game = registry.get("guess-claimed")
    apply_entries(
        redis_client, [Entry("sub-cut-short", game, "10", "p" * 22, "Ann", 3, NOW - 5)], NOW
    )
    ((_, verdict),) = ingest_submissions(
        redis_client, registry, [payload("sub-cut-short")], NOW, 60, PARTITIONS
    )
    assert verdict["status"] == "accepted" and verdict["rank"] == 1
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 1


def test_a_banned_player_is_rejected_and_nothing_is_logged(redis_client, registry):
    redis_client.sadd(keys.banned_key("guess-claimed", "10"), "p" * 22)
    ((sid, verdict),) = ingest_submissions(redis_client, registry, [payload()], NOW, 60, PARTITIONS)
    assert verdict["status"] == "rejected" and verdict["code"] == "banned"
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 0


# The ingest stream: what the web appends, a drain settles, whatever dies on the way.


def _enqueue(client, *payloads):
    from app.storage import intake

    now = generation_at(NOW, 60)
    for p in payloads:
        record = SubmissionRecord(status="queued", player_id=p["player_id"])
        intake.enqueue(client, p["submission_id"], record.packed(now.start_ms), p, now)


def _drain(client, registry, consumer="w1:1", partition=None, **kwargs):
    """Drain as a task of ``partition`` would (None: every partition where entries wait)."""
    held = ingest.take_partitions(client, consumer, PARTITIONS, partition)
    return ingest.drain(
        client,
        registry,
        consumer,
        lambda: NOW,
        60,
        PARTITIONS,
        held,
        wait_ms=0,
        linger_ms=0,
        **kwargs,
    )


def _leases(client):
    return {
        p: client.get(keys.drain_flag(p))
        for p in range(PARTITIONS)
        if client.exists(keys.drain_flag(p))
    }


def _status(client, sid):
    return record_of(client, sid, NOW, 60)


def test_a_drain_settles_everything_waiting_and_leaves_an_empty_stream(redis_client, registry):
    batch = [payload(f"sub-{i:08d}", player_id=f"{i:022d}") for i in range(1200)]
    _enqueue(redis_client, *batch)
    assert set(_leases(redis_client).values()) == {"q"}  # asked for, of every partition
    assert len(_leases(redis_client)) == PARTITIONS
    # A budget no busy machine runs out of: stopping at the budget is the next test's subject.
    outcome = _drain(redis_client, registry, budget_ms=600_000)
    assert (outcome.settled, outcome.more) == (1200, False)
    assert stream_length(redis_client) == 0
    assert redis_client.zcard(keys.ranking_key("guess-claimed", "10", "alltime", "all")) == 1200
    assert _leases(redis_client) == {}  # the next submission of each schedules a drain


def test_a_drain_out_of_time_hands_its_partition_back_and_asks_for_another(redis_client, registry):
    sids = ids_in_partitions([2] * 600)
    _enqueue(redis_client, *[payload(sid, player_id=f"{i:022d}") for i, sid in enumerate(sids)])
    outcome = _drain(redis_client, registry, partition=2, budget_ms=0)
    assert (outcome.settled, outcome.handed_back) == (500, (2,))
    assert _leases(redis_client) == {2: "q"}  # asked for again: the caller sends its drain
    assert _drain(redis_client, registry, partition=2).settled == 100
    assert _leases(redis_client) == {}


def test_what_arrives_as_a_drain_stops_is_not_left_behind(redis_client, registry, monkeypatch):
    from app.storage import intake

    release = intake.release
    first, second = ids_in_partitions([4, 4])
    late = payload(second, player_id="l" * 22)

    def release_while_a_submission_arrives(client, partitions, consumer):
        _enqueue(client, late)  # finds the lease still held: schedules nothing
        release(client, partitions, consumer)

    monkeypatch.setattr(intake, "release", release_while_a_submission_arrives)
    _enqueue(redis_client, payload(first))
    assert _drain(redis_client, registry, partition=4).settled == 2
    assert _status(redis_client, second)["status"] == "accepted"
    assert _leases(redis_client) == {}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(payload()),
        json.dumps(payload(score=float("nan"))),  # json.dumps writes NaN, json.loads reads it
        json.dumps(payload(duration_ms=10**30)),  # beyond 64 bits, still an integer
        json.dumps(payload(name="\ud800")),  # a lone surrogate escape
        '{"a": 1, "a": 2}',
        "[1e400]",
        "not json",
        "",
    ],
)
def test_a_stream_entry_is_read_as_json_loads_reads_it(redis_client, text):
    intake.ensure_groups(redis_client, [0])
    redis_client.xadd(keys.ingest_stream(0), {"p": text})
    (entry,) = intake.read_new(redis_client, "w1:1", [0], 10)
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    # repr: NaN is not equal to itself, and an integer must stay one.
    assert repr(entry.payload) == repr(expected)


def test_entries_of_a_dead_worker_are_claimed_by_the_next_drain(
    redis_client, registry, monkeypatch
):
    from app.storage import intake

    _enqueue(redis_client, payload("sub-orphan-1"), payload("sub-orphan-2", player_id="o" * 22))
    everywhere = range(PARTITIONS)
    intake.ensure_groups(redis_client, everywhere)
    assert len(intake.read_new(redis_client, "dead:1", everywhere, 10)) == 2  # then it died
    assert _drain(redis_client, registry, "w2:2").settled == 0  # not idle long enough yet
    monkeypatch.setattr(intake, "CLAIM_IDLE_MS", 0)
    assert _drain(redis_client, registry, "w2:2").settled == 2
    assert _status(redis_client, "sub-orphan-2")["status"] == "accepted"
    assert stream_length(redis_client) == 0


def test_with_redis_down_mid_batch_the_entries_wait_for_the_retry(
    redis_client, registry, monkeypatch
):
    import redis

    from app.leaderboard import ingest

    _enqueue(redis_client, payload("sub-retried-1"))
    real = ingest.apply_entries_each

    def down(*args, **kwargs):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(ingest, "apply_entries_each", down)
    try:
        _drain(redis_client, registry)
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("the drain should have failed")
    assert _status(redis_client, "sub-retried-1")["status"] == "queued"
    monkeypatch.setattr(ingest, "apply_entries_each", real)
    assert _drain(redis_client, registry).settled == 1  # the same worker finds its own entries
    assert _status(redis_client, "sub-retried-1")["status"] == "accepted"


def test_a_submission_that_breaks_the_worker_is_answered_and_kept_aside(
    redis_client, registry, monkeypatch
):
    from app.leaderboard import ingest

    real = ingest.apply_entries_each

    def broken_for_one(client, entries, now):
        if any(e.submission_id == "sub-poison-1" for e in entries):
            raise RuntimeError("a bug")
        return real(client, entries, now)

    monkeypatch.setattr(ingest, "apply_entries_each", broken_for_one)
    good = [payload(f"sub-good-{i:04d}", player_id=f"{i:022d}") for i in range(3)]
    _enqueue(redis_client, good[0], payload("sub-poison-1", player_id="x" * 22), *good[1:])
    assert _drain(redis_client, registry).settled == 4
    assert _status(redis_client, "sub-poison-1")["code"] == "failed"
    assert [_status(redis_client, p["submission_id"])["status"] for p in good] == ["accepted"] * 3
    (dead,) = dead_letters(redis_client)
    assert json.loads(dead[1]["p"])["submission_id"] == "sub-poison-1"
    assert stream_length(redis_client) == 0


def test_the_worker_logs_each_verdict_with_the_request_that_brought_it(client, work):
    import logging

    from app.logs import JsonLineFormatter

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(self.format(record)))

    handler = Keep()
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("app.leaderboard.ingest")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        sent = client.post(
            "/api/v1/games/guess-claimed/scores",
            json={"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000},
            headers={"X-Request-ID": "req-from-the-edge-1"},
        )
        work()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    (line,) = [entry for entry in lines if entry["message"].startswith("submission")]
    assert line["message"] == "submission accepted: rank 1"
    assert line["submission_id"] == sent.get_json()["submission_id"]
    assert line["request_id"] == "req-from-the-edge-1"


# Redis errors: those that pass wait for the retry; those the same entry raises again are its own.

# How Redis 6 reports an error raised inside a script, and how redis-py reports an error in a
# pipeline (as replies of the redis-server the tests run read).
_IN_SCRIPT = "Error running script (call to f_4d2c0e9a): @user_script:31: "
_IN_PIPELINE = (
    "Command # 3 (EVALSHA 4d2c0e9a 10 hs:{guess-claimed:10}:log) of pipeline caused error: "
)
_OOM = "command not allowed when used memory > 'maxmemory'."
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

TRANSIENT = [
    errors.ConnectionError("Connection closed by server."),
    errors.TimeoutError("Timeout reading from socket"),
    errors.BusyLoadingError("Redis is loading the dataset in memory"),
    errors.ReadOnlyError("You can't write against a read only replica."),
    errors.OutOfMemoryError(_OOM),
    errors.TryAgainError("Multiple keys request during rehashing of slot"),
    errors.ClusterDownError("The cluster is down"),
    errors.MasterDownError("Link with MASTER is down"),
    errors.MovedError("3999 127.0.0.1:6381"),
    errors.AskError("3999 127.0.0.1:6381"),
    errors.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL"),
    errors.ResponseError("NOREPLICAS Not enough good replicas to write."),
    errors.ResponseError("MISCONF Redis is configured to save RDB snapshots, but can't persist"),
    errors.ResponseError(f"{_IN_SCRIPT}@user_script: 31: -OOM {_OOM}"),
    errors.ResponseError(f"{_IN_PIPELINE}{_IN_SCRIPT}@user_script: 31: -OOM {_OOM}"),
    errors.ResponseError(f"{_IN_SCRIPT}@user_script: 31: -READONLY You can't write to a replica"),
    # As a client that does not know the code reports it.
    *(
        errors.ResponseError(f"{code} the server cannot take this now")
        for code in ("OOM", "LOADING", "READONLY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")
    ),
    errors.ResponseError("MOVED 3999 127.0.0.1:6381"),
    errors.ResponseError("ASK 3999 127.0.0.1:6381"),
]

DETERMINISTIC = [
    errors.ResponseError(_WRONGTYPE),
    errors.ResponseError(f"{_IN_SCRIPT}{_WRONGTYPE}"),
    errors.ResponseError(f"{_IN_PIPELINE}{_IN_SCRIPT}ERR invalid expire time in set"),
    errors.ResponseError("invalid expire time in set"),
    errors.ResponseError(f"{_IN_SCRIPT}Script attempted to access nonexistent global variable"),
    errors.ResponseError("BUSYGROUP Consumer Group name already exists"),
    errors.DataError("Invalid input of type: 'NoneType'."),
]


def _named(error):
    return f"{type(error).__name__}: {error}"[:60]


@pytest.mark.parametrize("error", TRANSIENT, ids=_named)
def test_errors_that_pass_with_time_are_transient(error):
    assert is_transient(error)


@pytest.mark.parametrize("error", [*DETERMINISTIC, RuntimeError("a bug")], ids=_named)
def test_errors_the_same_input_raises_again_are_not_transient(error):
    assert not is_transient(error)


def test_a_players_text_in_a_failed_command_cannot_pass_its_error_off_as_transient(redis_client):
    redis_client.set("not-a-hash", "x")
    pipe = redis_client.pipeline(transaction=False)
    pipe.hset("not-a-hash", "Ann) of pipeline caused error: BUSY", "OOM")
    with pytest.raises(redis.ResponseError) as caught:
        pipe.execute()
    assert "caused error: BUSY" in str(caught.value)  # redis-py repeats the command
    assert not is_transient(caught.value)


def _with_token(sid, player_id, run_id):
    token = run_tokens.issue(TOKENS.secret, "guess-claimed", "10", player_id, run_id, NOW - 60_000)
    return payload(sid, player_id=player_id, token=token)


def _poisoned_batch(client, size, poisoned):
    """``size`` entries with run tokens, the ``poisoned``-th of which the apply script cannot
    apply: its run's key holds a hash (as an operator's mistake or an old version might leave)."""
    batch = [_with_token(f"sub-{i:08d}", f"{i:022d}", f"run-{i:010d}") for i in range(size)]
    client.hset(keys.run_key("guess-claimed", "10", f"run-{poisoned:010d}"), "by", "mistake")
    _enqueue(client, *batch)
    return [p["submission_id"] for p in batch]


def _pending(client):
    return intake.backlog(client, PARTITIONS).in_progress


def _dead_count(client):
    return len(dead_letters(client))


def test_an_entry_the_apply_script_fails_on_is_answered_failed_and_its_neighbours_settle(
    redis_client, registry
):
    ids = _poisoned_batch(redis_client, 7, poisoned=3)
    assert _drain(redis_client, registry, tokens=TOKENS).settled == 7
    verdicts = [_status(redis_client, sid) for sid in ids]
    assert verdicts[3]["code"] == "failed"
    assert [v["status"] for i, v in enumerate(verdicts) if i != 3] == ["accepted"] * 6
    assert redis_client.zcard(keys.ranking_key("guess-claimed", "10", "alltime", "all")) == 6
    (dead,) = dead_letters(redis_client)
    assert json.loads(dead[1]["p"])["submission_id"] == ids[3]
    assert "WRONGTYPE" in dead[1]["error"]
    assert stream_length(redis_client) == 0 and _pending(redis_client) == 0


def test_a_transient_error_while_looking_for_the_failing_entry_leaves_the_rest_waiting(
    redis_client, registry, monkeypatch
):
    real = ingest.apply_entries_each
    redis_back = False
    # In one partition, so that the batch holds them in the order they came.
    names = ids_in_partitions([1, 1, 1, 1])
    first, poison, unlucky, _ = names

    def flaky(client, entries, now):
        sids = {e.submission_id for e in entries}
        if poison in sids:
            raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
        if unlucky in sids and not redis_back:
            raise redis.ConnectionError("Connection closed by server.")
        return real(client, entries, now)

    monkeypatch.setattr(ingest, "apply_entries_each", flaky)
    _enqueue(redis_client, *[payload(sid, player_id=f"{i:022d}") for i, sid in enumerate(names)])
    with pytest.raises(redis.ConnectionError):
        _drain(redis_client, registry)
    assert _status(redis_client, first)["status"] == "accepted"
    assert _status(redis_client, poison)["code"] == "failed"
    assert [_status(redis_client, sid)["status"] for sid in names[2:]] == ["queued"] * 2
    assert _pending(redis_client) == 2 and _dead_count(redis_client) == 1
    redis_back = True
    assert _drain(redis_client, registry).settled == 2  # the same worker finds its own entries
    assert [_status(redis_client, sid)["status"] for sid in names[2:]] == ["accepted"] * 2
    assert _dead_count(redis_client) == 1 and _pending(redis_client) == 0


def test_out_of_memory_leaves_the_batch_waiting_and_blames_no_entry(
    redis_client, registry, monkeypatch
):
    real = ingest.apply_entries_each
    _enqueue(redis_client, *[payload(f"sub-oom-{i:04d}", player_id=f"{i:022d}") for i in range(3)])
    for error in [e for e in TRANSIENT if "OOM" in str(e) or _OOM in str(e)]:

        def full(client, entries, now, error=error):
            raise error

        monkeypatch.setattr(ingest, "apply_entries_each", full)
        with pytest.raises(type(error)):
            _drain(redis_client, registry)
        assert _pending(redis_client) == 3
        assert _dead_count(redis_client) == 0
        assert _status(redis_client, "sub-oom-0001")["status"] == "queued"
    monkeypatch.setattr(ingest, "apply_entries_each", real)
    assert _drain(redis_client, registry).settled == 3
    assert _status(redis_client, "sub-oom-0001")["status"] == "accepted"


def test_an_entry_whose_failure_cannot_be_recorded_still_leaves_the_stream(
    redis_client, registry, caplog
):
    # The audit of rejections and the dead letters hold strings: every write to them fails.
    for p in range(PARTITIONS):
        redis_client.set(keys.rejected_stream(p), "x")
        redis_client.set(keys.dead_letters(p), "x")
    ids = _poisoned_batch(redis_client, 3, poisoned=1)
    assert _drain(redis_client, registry, tokens=TOKENS).settled == 3
    assert [_status(redis_client, sid)["status"] for sid in (ids[0], ids[2])] == ["accepted"] * 2
    assert stream_length(redis_client) == 0 and _pending(redis_client) == 0
    # What is left of it is the log line, for an operator to replay.
    (line,) = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert ids[1] in line.getMessage()


def test_a_failed_entry_is_dead_lettered_when_its_verdict_cannot_be_audited(redis_client, registry):
    for p in range(PARTITIONS):
        redis_client.set(keys.rejected_stream(p), "x")
    ids = _poisoned_batch(redis_client, 3, poisoned=1)
    assert _drain(redis_client, registry, tokens=TOKENS).settled == 3
    (dead,) = dead_letters(redis_client)
    assert json.loads(dead[1]["p"])["submission_id"] == ids[1]
    assert stream_length(redis_client) == 0 and _pending(redis_client) == 0


def test_a_drain_out_of_time_leaves_its_batch_waiting_and_blames_no_entry(
    app, redis_client, monkeypatch
):
    def out_of_time(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    _enqueue(redis_client, payload("sub-slow-0001"), payload("sub-slow-0002", player_id="s" * 22))
    for step in ("validate_queued", "apply_entries_each"):
        with monkeypatch.context() as patch:
            patch.setattr(ingest, step, out_of_time)
            with app.app_context(), pytest.raises(SoftTimeLimitExceeded):
                tasks.drain.run()
        assert _pending(redis_client) == 2
        assert _dead_count(redis_client) == 0
        assert _status(redis_client, "sub-slow-0001")["status"] == "queued"


def test_a_drain_task_that_meets_a_full_redis_is_retried_and_settles_once_there_is_room(
    app, redis_client, monkeypatch
):
    real = ingest.apply_entries_each
    calls = []

    def full_once(client, entries, now):
        calls.append(len(entries))
        if len(calls) == 1:
            raise redis.exceptions.OutOfMemoryError(_OOM)
        return real(client, entries, now)

    monkeypatch.setattr(ingest, "apply_entries_each", full_once)
    _enqueue(redis_client, payload("sub-full-0001"), payload("sub-full-0002", player_id="f" * 22))
    with app.app_context():
        result = tasks.drain.apply()  # eager: the retry runs at once, as a worker would later
    assert result.successful() and result.get() == 2
    assert calls == [2, 2]  # the whole batch waited, then went through together
    # Settled by the app's clock and window.
    assert record_of(redis_client, "sub-full-0001")["status"] == "accepted"
    assert _pending(redis_client) == 0 and _dead_count(redis_client) == 0


def test_a_drain_task_does_not_retry_an_error_the_same_entries_would_raise_again(
    app, redis_client, monkeypatch
):
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind")

    _enqueue(redis_client, payload("sub-wrongtype"))
    monkeypatch.setattr(intake, "read_started", broken)
    with app.app_context():
        result = tasks.drain.apply()
    assert result.failed() and isinstance(result.result, redis.ResponseError)
    assert len(calls) == 1
