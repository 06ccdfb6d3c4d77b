"""The legacy storage fixture checked against the code that made it, on a real redis-server:
loaded, it reads back key for key as dumped, and today's read functions answer on it what they
answered when it was made (as ``tests/unit/test_legacy_storage.py`` checks on fakeredis). Once
the storage layout changes, these tests are to read the fixture through the migration instead.
"""

from __future__ import annotations

import pytest
import redis

from app.leaderboard.games import load_registry
from tests.legacy_storage import (
    answers,
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


def test_the_dump_loads_into_redis_server_and_reads_as_it_did_when_made(data):
    dump, expected = read_dump(), read_expected()

    load_dump(data, dump, dump["now_ms"])

    assert differences(dump_keys(data, dump["now_ms"]), dump["keys"]) == []
    got = answers(
        data,
        load_registry(str(TEST_GAMES)),
        expected["now_ms"],
        [tuple(f.split("/")) for f in expected["boards"]],
        list(expected["submissions"]),
    )
    assert got["boards"] == expected["boards"]
    assert got["submissions"] == expected["submissions"]


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
