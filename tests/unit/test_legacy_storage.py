"""The legacy storage fixture (``tests/fixtures/legacy-storage-v1.*``), checked against the
code that made it: loaded into fakeredis, it reads back key for key as dumped, and today's read
functions answer on it exactly what they answered when it was made. So the dump and its
expected answers agree with each other and with that code; once the storage layout changes,
these tests are to read the fixture through the migration instead.

The same checks run on a real redis-server in ``tests/integration/test_legacy_storage.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis

from app.leaderboard.games import load_registry
from tests.legacy_storage import (
    answers,
    differences,
    dump_keys,
    families_played,
    load_dump,
    read_dump,
    read_expected,
    sample_dump,
    submissions_kept,
)
from tests.processes import TEST_GAMES


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


def test_todays_reads_answer_on_the_dump_what_they_answered_when_it_was_made(
    redis_client, dump, expected
):
    load_dump(redis_client, dump, dump["now_ms"])
    registry = load_registry(str(TEST_GAMES))

    got = answers(
        redis_client,
        registry,
        expected["now_ms"],
        [tuple(f.split("/")) for f in expected["boards"]],
        list(expected["submissions"]),
    )

    assert got["boards"] == expected["boards"]
    assert got["submissions"] == expected["submissions"]


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
