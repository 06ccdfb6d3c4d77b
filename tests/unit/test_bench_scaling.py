"""The scaling benchmark's own arithmetic: what a worker's round trip is counted as (hiscore's
keys only, scripts by name, heartbeats apart, acknowledgements by their ids), how the counts of
several processes add up and what a batch costs, and when a run is suspect."""

from __future__ import annotations

import json

import pytest
import redis
import redis.client

from app.storage import keys
from app.storage.scripts import sha
from bench import counted_worker, scaling
from bench.counted_worker import Counts, counts_between, read_counts, signature


def test_a_round_trip_is_known_by_its_commands_with_scripts_named():
    stream = keys.ingest_stream(0)
    apply = sha("apply_entry", "board_lib")
    trip = [("EVALSHA", apply, 2, "hs:{g:v}:log", "hs:{g:v}:applied", "x")] * 3
    assert signature(trip) == ("apply_entry", False, 0, 0)
    record = [
        ("MULTI",),
        ("XACK", stream, "workers", "1-0", "2-0"),
        ("XDEL", stream, "1-0", "2-0"),
        ("EXEC",),
        ("XACK", stream, "workers", "3-0"),
    ]
    assert signature(record) == ("MULTI XACK XDEL EXEC", False, 3, 2)
    # Keys as bytes, as kombu's and a pipeline's arguments may be.
    read = [(b"XREADGROUP", b"GROUP", b"workers", b"c", b"STREAMS", b"hs:x", b">")]
    assert signature(read) == ("XREADGROUP", False, 0, 0)


def test_the_brokers_round_trips_are_not_counted_and_heartbeats_apart():
    assert signature([("BRPOP", "ingest", 1)]) is None
    # A message that mentions a key is still the broker's (a key is an argument of its own).
    assert signature([("LPUSH", "ingest", '{"key": "hs:a"}')]) is None
    assert signature([("MULTI",), ("EXEC",)]) is None
    assert signature([("SET", keys.worker_key("ingest1@h"), "{}")]) == ("SET", True, 0, 0)


def test_each_process_writes_its_counts_and_they_add_up(tmp_path, monkeypatch):
    monkeypatch.setattr(counted_worker, "FLUSH_EVERY_S", 0.01)
    counts = Counts(tmp_path)
    counts.add([("XREADGROUP", "GROUP", "workers", "c", "STREAMS", "hs:s", ">")], 0.5)
    counts.add([("XACK", "hs:s", "workers", "1-0", "2-0")], 0.25)
    counts.add([("SET", keys.worker_key("w"), "{}")], 1.0)
    other = {"trips": {"XREADGROUP": 2}, "seconds": {"XREADGROUP": 2.0}}
    (tmp_path / "1.json").write_text(
        json.dumps({**other, "acked": 0, "streams": 0, "heartbeats": 1})
    )
    before = {
        "trips": {"XREADGROUP": 1},
        "seconds": {"XREADGROUP": 1.0},
        "acked": 0,
        "streams": 0,
        "heartbeats": 0,
    }

    def written() -> bool:
        return read_counts(tmp_path)["acked"] == 2

    scaling.wait_until(written, 5, "the counts to be written", every=0.01)
    assert counts_between(before, read_counts(tmp_path)) == {
        "trips": {"XREADGROUP": 2, "XACK": 1},
        "seconds": {"XREADGROUP": 1.5, "XACK": 0.25},  # a heartbeat's time is not a drain's
        "acked": 2,
        "streams": 1,
        "heartbeats": 2,
    }


def test_the_wrapped_senders_count_a_pipeline_as_one_round_trip(monkeypatch):
    class Recorder(Counts):
        def __init__(self) -> None:
            self.seen: list[list[tuple]] = []

        def add(self, commands, seconds=0.0):
            assert seconds >= 0
            self.seen.append([tuple(c) for c in commands])

    # Stand-ins for the wire; monkeypatch puts redis-py's own back, over the wrappers, after.
    monkeypatch.setattr(
        redis.client.Redis, "_send_command_parse_response", lambda self, conn, name, *a, **o: 1
    )
    monkeypatch.setattr(redis.client.Pipeline, "_execute_pipeline", lambda s, c, cmds, r: [])
    monkeypatch.setattr(redis.client.Pipeline, "_execute_transaction", lambda s, c, cmds, r: [])
    recorder = Recorder()
    counted_worker.install(recorder)
    client = redis.Redis()
    client._send_command_parse_response(None, "GET", "GET", "hs:a")
    pipe = client.pipeline()
    pipe._execute_pipeline(None, [(("GET", "hs:a"), {}), (("GET", "b"), {})], True)
    pipe._execute_transaction(None, [(("INCR", "hs:n"), {})], True)
    assert recorder.seen == [
        [("GET", "hs:a")],
        [("GET", "hs:a"), ("GET", "b")],
        [("INCR", "hs:n")],
    ]


def test_a_batch_is_an_acknowledging_round_trip_and_carries_the_others_cost():
    trips = {
        "trips": {"XREADGROUP": 30, "apply_entry": 20, "MULTI XACK XDEL EXEC": 20, "DEL": 2},
        "seconds": {"XREADGROUP": 0.1, "apply_entry": 2.0, "MULTI XACK XDEL EXEC": 0.4},
        "acked": 10_000,
        "streams": 40,
        "heartbeats": 3,
    }
    found = scaling.batches(trips)
    assert found["batches"] == 20
    assert found["batch_size"] == 500
    assert found["streams_per_batch"] == 2  # two partitions' transactions in each
    assert found["round_trips_per_batch"] == 72 / 20
    assert found["round_trips_per_batch_by_kind"]["XREADGROUP"] == 1.5
    assert found["redis_wait_ms_per_entry"] == pytest.approx(2.5 * 1000 / 10_000)
    assert found["redis_wait_ms_per_batch_by_kind"]["apply_entry"] == pytest.approx(100)
    idle = scaling.batches({"trips": {"XREADGROUP": 3}, "acked": 0, "streams": 0})
    assert idle["batch_size"] is None and idle["round_trips_per_batch"] is None


def _run(**changes):
    run = {
        "processes": 2,
        "entries": 100,
        "tag": "r1k2",
        "verdicts": {"accepted": 100},
        "records": {"accepted": 100},
        "backlog_after": {"waiting": 0, "in_progress": 0},
        "round_trips": {"trips": {}, "acked": 100, "heartbeats": 0},
        "rate": 1000.0,
    }
    return {**run, **changes}


def test_a_run_is_suspect_unless_every_entry_was_accepted_and_left_the_stream():
    assert scaling.problems(_run()) == []
    assert scaling.problems(_run(verdicts={"accepted": 99, "rejected:token_reused": 1}))
    assert scaling.problems(_run(records={"accepted": 99, "queued": 1}))
    assert scaling.problems(_run(backlog_after={"waiting": 0, "in_progress": 1}))
    assert scaling.problems(_run(round_trips={"trips": {}, "acked": 99, "heartbeats": 0}))


def test_each_count_of_processes_is_the_mean_of_its_rounds_against_one_process():
    runs = []
    for k, rates in ((1, (1000.0, 1200.0)), (2, (2000.0, 1800.0))):
        for rate in rates:
            runs.append(
                {
                    **_run(processes=k, rate=rate),
                    "cpu_ms_per_entry": {"workers": 0.1, "redis": 0.05, "harness": 0.0},
                    "redis_script_ms_per_entry": 0.04,
                    "round_trips_per_batch": 3.0,
                    "batch_size": 500.0,
                    "streams_per_batch": 1.0,
                    "redis_wait_ms_per_entry": 0.1,
                    "redis_wait_ms_per_batch_by_kind": {"XREADGROUP": 2.0},
                    "process_ms_per_entry": 0.4,
                    "round_trips_per_batch_by_kind": {"XREADGROUP": 1.0},
                    "cores_busy": 1.0,
                    "other_cores": 0.0,
                    "drain_tasks_received": 2,
                    "commandstats": {"evalsha": {"calls": 100, "usec": 5000.0}},
                    "fill_redis": {"cpu_ms_per_entry": 0.05, "script_us_per_entry": 30.0},
                }
            )
    by_k = scaling.summary(runs)
    assert by_k[1]["rate"] == 1100 and by_k[2]["rate"] == 1900
    assert by_k[2]["speedup"] == 1900 / 1100
    figures = {f.name: f for f in scaling.figures(by_k)}
    two = figures["entries settled per second, 2 drain processes"]
    assert two.ratio == 1900 / 1100 and two.met is True and two.target == "≥ 1.7"
    assert "evalsha" in scaling.components(by_k, runs)


def test_a_run_is_noted_when_other_processes_or_an_aof_rewrite_shared_the_machine():
    quiet = _run(other_cores=0.05, redis_forks=0)
    assert scaling.noisy([quiet]) == []
    busy, forked = _run(other_cores=0.5, redis_forks=0), _run(other_cores=0.0, redis_forks=1)
    assert ["0.50 cores" in note for note in scaling.noisy([busy])] == [True]
    assert ["AOF rewrite" in note for note in scaling.noisy([forked])] == [True]
