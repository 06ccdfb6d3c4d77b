"""``migrate-storage`` moves what the single ingest slot held, and what a different partition
count left, into the ingest partitions: stream entries (waiting and pending) onto their
partition's stream, status records into their partition's hashes, counts, the audit of
rejections and dead letters into partition 0's; a run cut short leaves copies that the drain
settles once, and a second run changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import create_app
from app.leaderboard import migration, statuses
from app.leaderboard.records import SubmissionRecord
from app.storage import intake, keys, submissions
from app.storage.submissions import Generation, partition_of
from config import celery_settings
from tests.cases import NOW, queued_payload
from tests.conftest import (
    PARTITIONS,
    WINDOW_S,
    drain_waiting,
    generation_at,
    ids_in_partitions,
    stream_entries,
    stream_length,
    verdict_count,
)
from tests.legacy_storage import legacy_keys, single_slot_enqueue, single_slot_read
from tests.processes import TEST_GAMES


def snapshot(client: Any) -> dict[str, Any]:
    """Every key with its type, PTTL and content (a stream's entries, groups and pending)."""
    found: dict[str, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        value: Any
        if kind == "hash":
            value = client.hgetall(key)
        elif kind == "stream":
            groups = [(g["name"], g["pending"]) for g in client.xinfo_groups(key)]
            value = (client.xrange(key), groups)
        else:
            value = client.get(key)
        found[key] = (kind, client.pttl(key), value)
    return found


def _players(n: int) -> list[str]:
    return [f"player-{i:015d}" for i in range(n)]


def _single_slot(client, sids: list[str], pending: int = 0, now: int = NOW) -> list[str]:
    """Submissions queued by the single-slot layout, the first ``pending`` of them read by a
    worker that died; their entry ids."""
    at = generation_at(now, WINDOW_S)
    ids = [
        single_slot_enqueue(client, queued_payload(sid, player_id=player), at)
        for sid, player in zip(sids, _players(len(sids)), strict=True)
    ]
    if pending:
        assert single_slot_read(client, "old-worker:1", pending) == ids[:pending]
    return ids


def _sids(n: int) -> list[str]:
    return [f"single-slot-{i:04d}" for i in range(n)]


def _status(client, sid: str, partitions: int = PARTITIONS) -> str | None:
    record = statuses.read(client, sid, Generation.at(NOW, WINDOW_S, partitions))
    return None if record is None else record.status


def _drain(client, registry, partitions: int = PARTITIONS) -> None:
    drain_waiting(
        client, registry, "w:1", lambda: NOW, WINDOW_S, partitions, wait_ms=0, linger_ms=0
    )


# The stream.


def test_waiting_and_pending_entries_move_to_their_partitions_stream_and_the_old_one_goes(
    redis_client,
):
    sids = _sids(12)
    ids = _single_slot(redis_client, sids, pending=5)
    entries = _legacy(redis_client)
    payloads = {sid: json.loads(f["p"]) for sid, (_, f) in zip(sids, entries, strict=True)}

    report = migration.migrate_ingest(redis_client, PARTITIONS)

    assert (report.entries, report.pending, report.records) == (12, 5, 12)
    assert not redis_client.exists(keys.LEGACY_INGEST_STREAM)  # and its group with it
    moved = stream_entries(redis_client)
    assert len(moved) == 12
    for p in range(PARTITIONS):
        for _, fields in redis_client.xrange(keys.ingest_stream(p)):
            sid = json.loads(fields["p"])["submission_id"]
            assert partition_of(sid, PARTITIONS) == p
            # The same payload, byte for byte, and the id it had, oldest first per partition.
            assert json.loads(fields["p"]) == payloads[sid]
            assert fields[intake.MOVED] == ids[sids.index(sid)]
    assert legacy_keys(redis_client) == []


def _legacy(client) -> list[tuple[str, dict[str, str]]]:
    return client.xrange(keys.LEGACY_INGEST_STREAM)


def test_moved_entries_are_settled_by_a_drain_of_their_partitions(redis_client, registry):
    sids = _sids(10)
    _single_slot(redis_client, sids, pending=4)
    migration.migrate_ingest(redis_client, PARTITIONS)

    _drain(redis_client, registry)

    assert [_status(redis_client, sid) for sid in sids] == ["accepted"] * 10
    assert verdict_count(redis_client, "accepted") == 10
    assert stream_length(redis_client) == 0


def test_a_move_cut_short_leaves_a_copy_that_the_drain_settles_once(
    redis_client, registry, monkeypatch
):
    sids = _sids(6)
    _single_slot(redis_client, sids, pending=2)

    def crash(*args: Any) -> None:
        raise ConnectionError("the host went down")

    with monkeypatch.context() as patched:
        patched.setattr(migration, "_delete_moved", crash)
        with pytest.raises(ConnectionError):
            migration.migrate_ingest(redis_client, PARTITIONS)
    # Appended, not deleted: every entry is on both streams.
    assert len(_legacy(redis_client)) == 6 and stream_length(redis_client) == 6

    again = migration.migrate_ingest(redis_client, PARTITIONS)

    assert again.entries == 6 and not redis_client.exists(keys.LEGACY_INGEST_STREAM)
    assert stream_length(redis_client) == 12  # two copies of each

    _drain(redis_client, registry)

    assert stream_length(redis_client) == 0
    assert [_status(redis_client, sid) for sid in sids] == ["accepted"] * 6
    assert verdict_count(redis_client, "accepted") == 6  # each counted once
    assert len(redis_client.xrange(keys.log_key("guess-claimed", "10"))) == 6
    latency = sum(
        int(redis_client.hget(keys.latency_histogram(p), "le:0.005") or 0) for p in range(8)
    )
    assert latency == 6


def test_a_copy_that_comes_after_its_submission_was_settled_is_found_settled(
    redis_client, registry
):
    (sid,) = _sids(1)
    _single_slot(redis_client, [sid])
    (entry,) = _legacy(redis_client)
    migration.migrate_ingest(redis_client, PARTITIONS)
    _drain(redis_client, registry)
    assert _status(redis_client, sid) == "accepted"
    # A run cut short before the delete, and run again after a drain settled the first copy.
    redis_client.xadd(keys.LEGACY_INGEST_STREAM, entry[1])

    migration.migrate_ingest(redis_client, PARTITIONS)
    _drain(redis_client, registry)

    assert stream_length(redis_client) == 0
    assert verdict_count(redis_client, "accepted") == 1
    assert len(redis_client.xrange(keys.log_key("guess-claimed", "10"))) == 1


# Records, counts, audits, the lease.


def test_records_move_to_the_same_generation_and_bucket_of_their_partition_with_their_ttl(
    clock, redis_client
):
    sids = _sids(20)
    old = generation_at(NOW - 3_600_000, WINDOW_S)
    for sid in sids[:10]:
        single_slot_enqueue(redis_client, queued_payload(sid), old)
    _single_slot(redis_client, sids[10:])
    # One submission already has a record in its partition (written after the single slot's).
    newer = SubmissionRecord(status="rejected", code="invalid", player_id="p" * 22)
    hashed = keys.partition_submissions_key(
        partition_of(sids[0], PARTITIONS), old.number, submissions.bucket(sids[0])
    )
    redis_client.hset(hashed, sids[0], newer.packed(old.start_ms))
    legacy_ttls = {
        key: redis_client.pttl(key)
        for key in redis_client.scan_iter(keys.LEGACY_SUBMISSIONS_PATTERN)
    }

    report = migration.migrate_ingest(redis_client, PARTITIONS)

    assert report.records == 20
    assert not list(redis_client.scan_iter(keys.LEGACY_SUBMISSIONS_PATTERN))
    for i, sid in enumerate(sids):
        at = old if i < 10 else generation_at(NOW, WINDOW_S)
        legacy = keys.legacy_submissions_key(at.number, submissions.bucket(sid))
        moved = keys.partition_submissions_key(
            partition_of(sid, PARTITIONS), at.number, submissions.bucket(sid)
        )
        assert redis_client.hexists(moved, sid)
        assert redis_client.pttl(moved) == legacy_ttls[legacy]
    assert _status(redis_client, sids[0]) == "rejected"  # the partition's own record kept
    assert [_status(redis_client, sid) for sid in sids[1:]] == ["queued"] * 19


def test_counts_latency_audit_and_dead_letters_go_to_partition_0_after_its_own(redis_client):
    redis_client.hset(keys.LEGACY_VERDICT_COUNTS, mapping={"accepted": 7, "rejected:banned": 2})
    redis_client.hset(
        keys.LEGACY_LATENCY_HISTOGRAM, mapping={"le:0.05": 5, "le:+Inf": 2, "sum": "3.5"}
    )
    redis_client.hset(keys.verdict_counts(0), mapping={"accepted": 3})
    redis_client.hset(keys.latency_histogram(0), mapping={"le:0.05": 1, "sum": "0.25"})
    old_audit = [
        redis_client.xadd(keys.LEGACY_REJECTED_STREAM, {"sid": f"r{i}", "code": "banned"})
        for i in range(3)
    ]
    own = redis_client.xadd(keys.rejected_stream(0), {"sid": "new", "code": "invalid"})
    old_dead = redis_client.xadd(
        keys.LEGACY_DEAD_LETTERS, {"entry": "1-0", "p": "{}", "error": "x"}
    )
    redis_client.set(keys.LEGACY_DRAIN_FLAG, "1", px=10_000)

    report = migration.migrate_ingest(redis_client, PARTITIONS)

    assert (report.counts, report.rejections, report.dead_letters, report.leases) == (5, 3, 1, 1)
    assert redis_client.hgetall(keys.verdict_counts(0)) == {
        "accepted": "10",
        "rejected:banned": "2",
    }
    latency = redis_client.hgetall(keys.latency_histogram(0))
    assert (latency["le:0.05"], latency["le:+Inf"], float(latency["sum"])) == ("6", "2", 3.75)
    audit = redis_client.xrange(keys.rejected_stream(0))
    assert [entry_id for entry_id, _ in audit][0] == own
    assert [f["sid"] for _, f in audit] == ["new", "r0", "r1", "r2"]
    assert [f.get(intake.MOVED) for _, f in audit] == [None, *old_audit]
    (letter,) = redis_client.xrange(keys.dead_letters(0))
    assert letter[1] == {"entry": "1-0", "p": "{}", "error": "x", intake.MOVED: old_dead}
    assert legacy_keys(redis_client) == []


# A dry run, a second run.


def _everything_single_slot(redis_client) -> None:
    _single_slot(redis_client, _sids(9), pending=3)
    redis_client.hset(keys.LEGACY_VERDICT_COUNTS, mapping={"accepted": 4})
    redis_client.hset(keys.LEGACY_LATENCY_HISTOGRAM, mapping={"le:0.05": 4, "sum": "0.1"})
    redis_client.xadd(keys.LEGACY_REJECTED_STREAM, {"sid": "r", "code": "banned"})
    redis_client.xadd(keys.LEGACY_DEAD_LETTERS, {"entry": "1-0", "p": "{}", "error": "x"})
    redis_client.set(keys.LEGACY_DRAIN_FLAG, "q", px=10_000)


def test_a_dry_run_says_what_it_would_move_and_writes_nothing(clock, redis_client):
    _everything_single_slot(redis_client)
    before = snapshot(redis_client)

    report = migration.migrate_ingest(redis_client, PARTITIONS, dry_run=True)

    assert (report.entries, report.pending, report.records, report.counts) == (9, 3, 9, 3)
    assert (report.rejections, report.dead_letters, report.leases) == (1, 1, 1)
    assert snapshot(redis_client) == before


def test_a_second_run_changes_nothing(clock, redis_client):
    _everything_single_slot(redis_client)
    first = migration.migrate_ingest(redis_client, PARTITIONS)
    left = migration.migrate_partitions_left(redis_client, PARTITIONS)
    assert first.anything and not left.anything
    after = snapshot(redis_client)

    again = migration.migrate_ingest(redis_client, PARTITIONS)
    left_again = migration.migrate_partitions_left(redis_client, PARTITIONS)

    assert not again.anything and not left_again.anything
    assert snapshot(redis_client) == after


# From 8 partitions to 3.


def test_going_from_8_partitions_to_3_moves_streams_records_and_counts_then_drains(
    clock, redis_client, registry
):
    at = generation_at(NOW, WINDOW_S, 8)
    sids = ids_in_partitions([0, 1, 2, 3, 4, 5, 6, 7] * 3, of=8)
    for sid, player in zip(sids, _players(len(sids)), strict=True):
        payload = queued_payload(sid, player_id=player)
        record = SubmissionRecord(status="queued", player_id=player)
        intake.enqueue(redis_client, sid, record.packed(at.start_ms), payload, at)
    redis_client.xgroup_create(keys.ingest_stream(6), keys.INGEST_GROUP, id="0")
    redis_client.xreadgroup(keys.INGEST_GROUP, "gone:1", {keys.ingest_stream(6): ">"}, count=2)
    for p in range(8):
        redis_client.hset(keys.verdict_counts(p), "accepted", 10 + p)
        redis_client.xadd(keys.rejected_stream(p), {"sid": f"r{p}", "code": "banned"})
    counted = sum(10 + p for p in range(8))

    report = migration.migrate_partitions_left(redis_client, 3)

    assert report.entries == 5 * 3 and report.pending == 2
    assert report.rejections == 5 and report.counts == 5 and report.leases == 5
    # Records of partitions 0-2 are read too: 3 does not divide the buckets.
    misplaced = [sid for sid in sids if partition_of(sid, 8) != partition_of(sid, 3)]
    assert report.records == len(misplaced) > 0
    assert not [
        key
        for key in redis_client.scan_iter(keys.PARTITION_KEYS_PATTERN)
        if (keys.partition_in(key) or 0) >= 3
    ]
    for sid in sids:
        assert _status(redis_client, sid, 3) == "queued", sid
    assert sum(int(redis_client.hget(keys.verdict_counts(p), "accepted")) for p in range(3)) == (
        counted
    )
    assert len(redis_client.xrange(keys.rejected_stream(0))) == 6
    # Entries of the streams kept (0-2) stay where they are: the drain of a stream settles
    # whatever it holds, each record in its partition under 3.
    assert stream_length(redis_client, 3) == len(sids)

    _drain(redis_client, registry, 3)

    assert [_status(redis_client, sid, 3) for sid in sids] == ["accepted"] * len(sids)
    assert stream_length(redis_client, 8) == 0
    assert sum(int(redis_client.hget(keys.verdict_counts(p), "accepted")) for p in range(3)) == (
        counted + len(sids)
    )
    assert not migration.migrate_partitions_left(redis_client, 3).anything


# The command.


def test_the_command_reports_the_single_slot_and_runs_again_idly(clock, redis_client):
    _everything_single_slot(redis_client)
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(TEST_GAMES),
            "CLOCK": lambda: NOW,
        },
    )
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["migrate-storage", "--dry-run"])
    done = runner.invoke(args=["migrate-storage"])
    again = runner.invoke(args=["migrate-storage"])

    assert dry.exit_code == done.exit_code == again.exit_code == 0, done.output
    assert (
        "single ingest slot: would move 9 stream entries (3 pending) and 9 status records"
        in dry.output
    )
    assert "single ingest slot: moved 9 stream entries (3 pending) and 9 status records" in (
        done.output
    )
    assert "appended 1 rejections and 1 dead letters to partition 0's" in done.output
    assert "single ingest slot: nothing to move" in again.output
    assert "left by another HISCORE_INGEST_PARTITIONS (now 8): nothing to move" in again.output
    assert legacy_keys(redis_client) == []


def test_a_stream_that_took_an_entry_as_it_was_moved_is_kept_and_the_command_says_so(
    redis_client, monkeypatch
):
    _single_slot(redis_client, _sids(2))
    real = migration._delete_moved

    def and_one_more(client, stream, groups, ids):
        real(client, stream, groups, ids)
        if stream == keys.LEGACY_INGEST_STREAM and not client.exists("arrived"):
            client.set("arrived", 1)
            single_slot_enqueue(client, queued_payload("late-00001"), generation_at(NOW))

    monkeypatch.setattr(migration, "_delete_moved", and_one_more)

    report = migration.migrate_ingest(redis_client, PARTITIONS)

    # The late entry was read after the first chunk, and moved too.
    assert report.entries == 3 and report.kept == []
    assert not redis_client.exists(keys.LEGACY_INGEST_STREAM)
    monkeypatch.setattr(migration.scripts, "script", _refusing_drop(migration.scripts.script))
    _single_slot(redis_client, _sids(1))
    assert migration.migrate_ingest(redis_client, PARTITIONS).kept == [keys.LEGACY_INGEST_STREAM]


def _refusing_drop(script: Any) -> Any:
    """``scripts.script`` but for the stream drop, which answers that entries are left."""

    def bound(client: Any, name: str, library: Any = None) -> Any:
        if name == "drop_moved_stream":
            return lambda keys=(), args=(): 0
        return script(client, name, library)

    return bound
