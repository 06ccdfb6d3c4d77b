"""``manage.py migrate-storage`` on the legacy storage fixture on a real redis-server (as
``tests/unit/test_legacy_storage.py`` runs it on fakeredis), one whose clock libfaketime holds
at the fixture's instant: the boards' expiries are absolute instants of the fixture's days,
which a server on today's clock would take as past. Also: the dump loads into redis-server key
for key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import create_app
from app.leaderboard.games import load_registry
from config import celery_settings
from tests.fixtures.make_legacy_storage import faked_server
from tests.legacy_storage import (
    WHOLE_WINDOW_S,
    check_migrated,
    check_stats_counts,
    differences,
    dump_keys,
    load_dump,
    read_dump,
    read_expected,
    sample_dump,
)
from tests.processes import TEST_GAMES

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
