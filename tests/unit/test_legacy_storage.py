"""``manage.py migrate-storage`` on the legacy storage fixture (``tests/fixtures/
legacy-storage-v1.*``, a Redis as the layout with rows hashes wrote it, and what its reads
answered): loaded into fakeredis, migrated through the CLI at the fixture's instant, it answers
what it answered then under the current rules, keeps no key of that layout, gives the stats
counts of its log, and a second run changes nothing.

The same migration runs on a real redis-server in ``tests/integration/test_legacy_storage.py``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
import redis
from flask import Flask

from app import create_app
from app.leaderboard.games import load_registry
from app.storage import keys, submissions
from config import celery_settings
from tests.conftest import PARTITIONS, stream_entries
from tests.legacy_storage import (
    SUBMISSION_PREFIX,
    WHOLE_WINDOW_S,
    answers,
    check_migrated,
    check_stats_counts,
    differences,
    dump_keys,
    families_played,
    legacy_keys,
    load_dump,
    read_dump,
    read_expected,
    sample_dump,
    submissions_kept,
)
from tests.processes import TEST_GAMES


@pytest.fixture
def instant() -> int:
    """The fixture's own instant: its keys' expiries and its boards' periods count from it."""
    return read_dump()["now_ms"]


@pytest.fixture(scope="module")
def dump() -> dict[str, Any]:
    return read_dump()


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return read_expected()


def test_the_dump_loads_back_key_for_key(redis_client, dump):
    loaded = load_dump(redis_client, dump, dump["now_ms"])

    assert loaded == len(dump["keys"])
    assert differences(dump_keys(redis_client, dump["now_ms"]), dump["keys"]) == []


def migrating_app(client: redis.Redis, now_ms: int, window_s: int = WHOLE_WINDOW_S) -> Flask:
    """An app on ``client`` whose clock stands at ``now_ms``."""
    return create_app(
        "testing",
        {
            "REDIS_CLIENT": client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "GAMES_FILE": str(TEST_GAMES),
            "CLOCK": lambda: now_ms,
            "IDEMPOTENCY_WINDOW_SECONDS": window_s,
        },
    )


def test_migrate_storage_converts_the_dump_to_boards_and_records_that_answer_the_same(
    clock, redis_client, dump, expected
):
    load_dump(redis_client, dump, dump["now_ms"])
    app = migrating_app(redis_client, dump["now_ms"])
    registry = load_registry(str(TEST_GAMES))
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["migrate-storage", "--dry-run"])

    assert dry.exit_code == 0, dry.output
    assert "guess/10: would rebuild 15 board(s) from" in dry.output
    assert "status records: 191 to convert, 0 past the idempotency window" in dry.output
    assert differences(dump_keys(redis_client, dump["now_ms"]), dump["keys"], 0) == []

    done = runner.invoke(args=["migrate-storage"])

    assert done.exit_code == 0, done.output
    assert "guess/10: rebuilt 15 board(s) from" in done.output
    assert "deleted 13 rows hash(es); log compacted:" in done.output
    assert "status records: 191 converted, 0 past the idempotency window deleted" in done.output
    assert (
        "single ingest slot: moved 1 stream entries (0 pending) and 0 status records into their "
        "partitions; added 9 count fields, appended 4 rejections and 1 dead letters to "
        "partition 0's; deleted 1 drain lease(s)"
    ) in done.output
    check_migrated(redis_client, registry, dump, expected)
    # The submission the dump had queued waits on its partition's stream, for a drain.
    (entry,) = stream_entries(redis_client)
    assert entry[1]["p"] == dump["keys"][keys.LEGACY_INGEST_STREAM]["value"][0][1]["p"]
    assert submissions.read_verdict_counts(redis_client, PARTITIONS)["accepted"] == 186
    migrated = dump_keys(redis_client, dump["now_ms"])
    # The log was compacted: entries outside the window, on no board and not a latest went.
    log = keys.log_key("guess", "10")
    assert len(migrated[log]["value"]) < len(dump["keys"][log]["value"])

    again = runner.invoke(args=["migrate-storage"])

    assert again.exit_code == 0, again.output
    assert "guess/10: nothing to convert" in again.output
    assert "status records: 0 converted" in again.output
    assert "single ingest slot: nothing to move" in again.output
    assert differences(dump_keys(redis_client, dump["now_ms"]), migrated, 0) == []

    stats = runner.invoke(args=["stats"])

    assert stats.exit_code == 0, stats.output
    check_stats_counts(redis_client, registry, dump)


def test_a_record_settled_before_the_idempotency_window_is_deleted_not_converted(
    clock, redis_client, dump, expected
):
    load_dump(redis_client, dump, dump["now_ms"])
    window_s = 86_400
    app = migrating_app(redis_client, dump["now_ms"], window_s)
    records = {k: json.loads(v["value"]) for k, v in dump["keys"].items() if ":sub:" in k}
    inside = sorted(
        k[len(SUBMISSION_PREFIX) :]
        for k, r in records.items()
        if dump["now_ms"] - r.get("settled_at", r.get("queued_at")) < window_s * 1000
    )
    assert 0 < len(inside) < len(records)

    done = app.test_cli_runner().invoke(args=["migrate-storage"])

    assert done.exit_code == 0, done.output
    said = re.search(r"status records: (\d+) converted, (\d+) past", done.output)
    assert said is not None, done.output
    converted, deleted = int(said[1]), int(said[2])
    assert converted + deleted == len(records)
    assert deleted > 0
    got = answers(
        redis_client,
        load_registry(str(TEST_GAMES)),
        dump["now_ms"],
        [],
        [k[len(SUBMISSION_PREFIX) :] for k in records],
        window_s,
    )
    found = sorted(sid for sid, view in got["submissions"].items() if view is not None)
    # A record is kept at least the window, and at most a quarter more.
    assert set(inside) <= set(found)
    assert len(found) == converted
    for sid in set(found) - set(inside):
        record = records[SUBMISSION_PREFIX + sid]
        at = record.get("settled_at", record.get("queued_at"))
        assert dump["now_ms"] - at < window_s * 1250
    assert legacy_keys(redis_client) == []


def test_the_expected_answers_cover_every_family_and_status_record(dump, expected):
    assert expected["now_ms"] == dump["now_ms"]
    assert [tuple(f.split("/")) for f in expected["boards"]] == families_played(dump)
    assert sorted(expected["submissions"]) == submissions_kept(dump)


def test_the_fixture_holds_the_cases_a_migration_must_carry_over(dump, expected):
    entries = dump["keys"]["hs:{guess:10}:log"]["value"]
    boards = expected["boards"]["guess/10"]
    day_ms = 86_400_000
    # Entries of days whose daily boards have expired (only the last 8 days are readable).
    oldest = min(int(fields["at"]) for _, fields in entries)
    assert (dump["now_ms"] - oldest) // day_ms >= 19
    assert sum(window.startswith("daily:") for window in boards) == 8
    assert not [k for k in dump["keys"] if k.startswith("hs:{guess:10}:rank:daily:2026-11-10")]
    # A player renamed half way: a row shows the name of the entry it holds, so the
    # all-time row keeps the old name while the latest entry's is the new one.
    names: dict[str, set[str]] = {}
    latest: dict[str, tuple[int, str]] = {}
    for _, fields in entries:
        names.setdefault(fields["pid"], set()).add(fields["name"])
        latest[fields["pid"]] = max(
            latest.get(fields["pid"], (0, "")), (int(fields["at"]), fields["name"])
        )
    (renamed,) = [pid for pid, seen in names.items() if len(seen) > 1]
    (alltime,) = [r for r in boards["alltime:all"]["rows"] if r["player_id"] == renamed]
    assert alltime["name"] != latest[renamed][1]
    shown = {r["name"] for b in boards.values() for r in b["rows"] if r["player_id"] == renamed}
    assert shown == names[renamed]
    # A banned player: logged entries, no row anywhere.
    (banned,) = dump["keys"]["hs:{guess:10}:banned"]["value"]
    assert names[banned]
    assert not [r for b in boards.values() for r in b["rows"] if r["player_id"] == banned]
    # Ties: equal scores at different times, and once at the same ms (ranked by player id).
    same_ms = [
        (board, key)
        for family in expected["boards"].values()
        for board in family.values()
        for key, n in Counter((r["score"], r["achieved_at"]) for r in board["rows"]).items()
        if n > 1
    ]
    assert same_ms
    # Status records of each kind.
    views = expected["submissions"].values()
    kinds = Counter(v["status"] + ":" + v.get("code", "") for v in views)
    assert kinds["queued:"] == 1
    assert kinds["rejected:failed"] == 1
    assert kinds["rejected:banned"] >= 1
    assert kinds["accepted:"] >= 150


def test_a_load_keeps_a_streams_last_id_and_groups_and_leaves_expired_keys_out(redis_client):
    now = 1_800_000_000_000
    dump = sample_dump(now)

    assert load_dump(redis_client, dump, now) == 4

    assert (
        differences(
            dump_keys(redis_client, now), {k: v for k, v in dump["keys"].items() if k != "gone"}
        )
        == []
    )
    # An id below the last one is refused, though no entry is left past it.
    with pytest.raises(redis.ResponseError):
        redis_client.xadd("s:trimmed", {"c": "3"}, id="1700000000200-0")
