"""``manage.py migrate-storage`` on the legacy storage fixture on a real redis-server (as
``tests/unit/test_legacy_storage.py`` runs it on fakeredis), one whose clock libfaketime holds
at the fixture's instant: the boards' expiries are absolute instants of the fixture's days,
which a server on today's clock would take as past. Also: the dump loads into redis-server key
for key; and the single ingest slot's stream and records, moved into the partitions (by a run
cut short, then another), are settled by a real worker once each and read back over HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import create_app
from app.clock import now_ms
from app.leaderboard import migration, statuses
from app.leaderboard.games import load_registry
from app.leaderboard.records import SubmissionRecord
from app.storage import keys, submissions
from config import celery_settings
from tests.cases import queued_payload
from tests.conftest import PARTITIONS, WINDOW_S, generation_at, stream_length, verdict_count
from tests.fixtures.make_legacy_storage import faked_server
from tests.legacy_storage import (
    WHOLE_WINDOW_S,
    check_migrated,
    check_stats_counts,
    differences,
    dump_keys,
    legacy_keys,
    load_dump,
    read_dump,
    read_expected,
    sample_dump,
    single_slot_enqueue,
    single_slot_read,
)
from tests.processes import TEST_GAMES, wait_for

pytestmark = pytest.mark.integration

#: A database of the shared server that no other test uses (the stack's are 0 and 1).
DB = 9

FAKETIME_LIBS = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"),
    Path("/usr/lib/faketime/libfaketimeMT.so.1"),
]


@pytest.fixture
def at_fixture_time(tmp_path: Path) -> Iterator[redis.Redis]:
    """A client of a redis-server standing at the fixture's instant."""
    if not any(lib.exists() for lib in FAKETIME_LIBS):
        pytest.skip("needs libfaketime (apt-get install libfaketime)")
    with faked_server(tmp_path, read_dump()["now_ms"]) as (server, _):
        client = redis.Redis(port=server.port, decode_responses=True)
        yield client
        client.close()


def test_migrate_storage_on_redis_server_answers_as_the_dump_did_and_runs_again_idly(
    at_fixture_time,
):
    data, dump, expected = at_fixture_time, read_dump(), read_expected()
    now = dump["now_ms"]
    load_dump(data, dump, now)
    assert differences(dump_keys(data, now), dump["keys"], 0) == []
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": data,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(TEST_GAMES),
            "CLOCK": lambda: now,
            "IDEMPOTENCY_WINDOW_SECONDS": WHOLE_WINDOW_S,
        },
    )
    registry = load_registry(str(TEST_GAMES))
    runner = app.test_cli_runner()

    done = runner.invoke(args=["migrate-storage"])

    assert done.exit_code == 0, done.output
    assert "status records: 191 converted" in done.output
    check_migrated(data, registry, dump, expected)
    migrated = dump_keys(data, now)

    again = runner.invoke(args=["migrate-storage"])

    assert again.exit_code == 0, again.output
    assert "guess/10: nothing to convert" in again.output
    assert differences(dump_keys(data, now), migrated, 0) == []
    assert runner.invoke(args=["stats"]).exit_code == 0
    check_stats_counts(data, registry, dump)


def test_a_load_keeps_a_streams_last_id_and_groups_and_leaves_expired_keys_out(data):
    now = 1_800_000_000_000
    dump = sample_dump(now)

    assert load_dump(data, dump, now) == 4

    assert (
        differences(dump_keys(data, now), {k: v for k, v in dump["keys"].items() if k != "gone"})
        == []
    )
    # An id below the last one is refused, though no entry is left past it.
    with pytest.raises(redis.ResponseError):
        data.xadd("s:trimmed", {"c": "3"}, id="1700000000200-0")


#: Submissions the single slot's stream holds (a third read by a worker that died), and
#: those it had settled (only a record left).
QUEUED, PENDING, SETTLED = 60, 20, 15


def test_the_single_slots_stream_and_records_moved_into_partitions_settle_once_on_a_worker(
    live, monkeypatch
):
    data = live.data
    now = generation_at(now_ms(), WINDOW_S)
    queued = [f"slot-queued-{i:04d}" for i in range(QUEUED)]
    for i, sid in enumerate(queued):
        single_slot_enqueue(data, queued_payload(sid, player_id=f"slot-player-{i:09d}"), now)
    assert len(single_slot_read(data, "old-host:4242", PENDING)) == PENDING
    settled = [f"slot-settled-{i:04d}" for i in range(SETTLED)]
    for sid in settled:
        record = SubmissionRecord(status="rejected", code="banned", reason="banned")
        hashed = keys.legacy_submissions_key(now.number, submissions.bucket(sid))
        data.hset(hashed, sid, record.packed(now.start_ms))
    data.hset(keys.LEGACY_VERDICT_COUNTS, "rejected:banned", SETTLED)
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": data,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(TEST_GAMES),
        },
    )
    runner = app.test_cli_runner()

    # A run cut short between appending the entries and deleting them, then a whole one.
    def crash(*args: object) -> None:
        raise redis.ConnectionError("the host went down")

    with monkeypatch.context() as patched:
        patched.setattr(migration, "_delete_moved", crash)
        cut = runner.invoke(args=["migrate-storage"])
    assert isinstance(cut.exception, redis.ConnectionError)
    done = runner.invoke(args=["migrate-storage"])

    assert done.exit_code == 0, done.output
    assert (
        f"single ingest slot: moved {QUEUED} stream entries ({PENDING} pending) and 0 status "
        "records"
    ) in done.output  # the records went with the run cut short
    assert legacy_keys(data) == []
    assert stream_length(data) == 2 * QUEUED  # every entry twice
    for p in range(PARTITIONS):
        live.celery.send_task("hiscore.drain", kwargs={"partition": p}, queue="ingest")

    def final() -> bool:
        records = statuses.read_many(data, queued, now)
        return all(r is not None and r.status in submissions.FINAL for r in records)

    wait_for(final, 60, "verdicts of every moved entry")
    wait_for(lambda: stream_length(data) == 0, 20, "every copy taken off the streams")
    # Each submission once: on its family's log, in the counts.
    logged = Counter(f["sid"] for _, f in data.xrange(keys.log_key("guess-claimed", "10")))
    assert logged == Counter(queued)
    assert verdict_count(data, "accepted") == QUEUED
    assert verdict_count(data, "rejected:banned") == SETTLED
    # And every record reads back through the status endpoint.
    for sid in queued:
        status = live.status(sid)
        assert status is not None and status["status"] == "accepted", (sid, status)
    for sid in settled:
        status = live.status(sid)
        assert status is not None and status["code"] == "banned", (sid, status)

    again = runner.invoke(args=["migrate-storage"])

    assert again.exit_code == 0, again.output
    assert "single ingest slot: nothing to move" in again.output
    assert "(now 8): nothing to move" in again.output
