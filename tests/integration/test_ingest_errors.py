"""Redis errors in the drain, on a real redis-server: an entry the apply script fails on is set
aside while the rest of its batch settles; a full memory holds every entry back until there is
room again; a run token at the very edge of its memory never sends Redis a TTL it refuses.

The drain is called as a worker calls it, without Celery: what is tested is what it does with
the errors of a real server, in the server's own words.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.leaderboard import ingest, run_tokens
from app.leaderboard.boards import Entry, apply_entries
from app.leaderboard.games import Registry, load_registry
from app.leaderboard.run_tokens import TokenPolicy
from app.storage import intake, keys
from app.storage.embedded_redis import EmbeddedRedis
from tests.cases import queued_payload
from tests.conftest import (
    PARTITIONS,
    dead_letters,
    drain_waiting,
    enqueue,
    record_of,
    stream_length,
    verdict_count,
)
from tests.processes import TEST_GAMES

pytestmark = pytest.mark.integration

#: A database of the shared server that no other test uses (the stack's are 0 and 1).
DB = 7

TOKENS = TokenPolicy("integration-secret", required=True, max_age_s=7200)

GAME, VARIANT = "guess-claimed", "10"


@pytest.fixture
def full_server(tmp_path) -> Iterator[redis.Redis]:
    """A redis-server of its own, since a memory limit holds for all of a server's databases
    and would fail the writes of every other test while it lasts."""
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis(port=server.port, decode_responses=True)
        client.config_set("maxmemory-policy", "noeviction")
        yield client
        client.close()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(str(TEST_GAMES))


def _now() -> int:
    return int(time.time() * 1000)


def _run_id(prefix: str, i: int) -> str:
    return f"run-{prefix}-{i:04d}"


def _scores(count: int, received_at: int, prefix: str = "sub") -> list[dict[str, Any]]:
    """``count`` scores by as many players, each with a run token of its own."""
    scores = []
    for i in range(count):
        player = f"{i:022d}"
        run = _run_id(prefix, i)
        token = run_tokens.issue(TOKENS.secret, GAME, VARIANT, player, run, received_at - 60_000)
        scores.append(
            queued_payload(
                f"{prefix}-{i:08d}",
                player_id=player,
                score=1 + i % 10,
                received_at=received_at,
                token=token,
            )
        )
    return scores


def _enqueue(client: redis.Redis, scores: list[dict[str, Any]]) -> list[str]:
    for score in scores:
        enqueue(client, score, window_s=60)
    return [score["submission_id"] for score in scores]


def _drain(client: redis.Redis, registry: Registry, now: int):
    return drain_waiting(
        client, registry, "it-worker:1", lambda: now, 60, wait_ms=0, tokens=TOKENS, linger_ms=0
    )


def _statuses(
    client: redis.Redis, ids: list[str], now: int | None = None
) -> list[dict[str, Any] | None]:
    return [record_of(client, sid, now, window_s=60) for sid in ids]


def _pending(client: redis.Redis) -> int:
    return intake.backlog(client, PARTITIONS).in_progress


def test_an_entry_the_apply_script_fails_on_is_set_aside_and_the_rest_of_its_batch_settles(
    data, registry
):
    now = _now()
    scores = _scores(20, now - 5)
    # The tenth's run key holds a hash where the script reads and writes a string: WRONGTYPE.
    data.hset(keys.run_key(GAME, VARIANT, _run_id("sub", 9)), "by", "mistake")
    ids = _enqueue(data, scores)

    assert _drain(data, registry, now).settled == 20

    verdicts = _statuses(data, ids)
    assert verdicts[9]["status"] == "rejected" and verdicts[9]["code"] == "failed"
    others = [v for i, v in enumerate(verdicts) if i != 9]
    assert [v["status"] for v in others] == ["accepted"] * 19
    assert all(v["rank"] >= 1 for v in others)
    # Each is its player's first score, answered as applied by this drain, not as a replay.
    assert [v.get("personal_best") for v in others] == [True] * 19
    board = keys.ranking_key(GAME, VARIANT, "alltime", "all")
    ranked = {member.split(":", 1)[1] for member in data.zrange(board, 0, -1)}
    assert ranked == {s["player_id"] for i, s in enumerate(scores) if i != 9}
    (dead,) = dead_letters(data)
    assert json.loads(dead[1]["p"])["submission_id"] == ids[9]
    assert "WRONGTYPE" in dead[1]["error"]
    assert stream_length(data) == 0 and _pending(data) == 0


def test_out_of_memory_holds_every_entry_back_until_there_is_room(full_server, registry):
    client = full_server
    now = _now()
    ids = _enqueue(client, _scores(20, now - 5))
    intake.ensure_groups(client, range(PARTITIONS))  # as the first drains of a deployment did
    # Taken before Redis fills up (once full, taking a lease is refused as well: the task is
    # retried before it reads anything).
    held = ingest.take_partitions(client, "it-worker:1", PARTITIONS, None)
    client.config_set("maxmemory", 1)  # below what any server uses: every write is refused
    try:
        for _ in range(2):  # and again: a retry finds the same entries, and blames none
            # The apply script's first write is refused (Redis 6 says "-OOM", 7 "OOM").
            with pytest.raises(
                redis.ResponseError, match=r"OOM command not allowed when used memory > 'maxmemory'"
            ):
                ingest.drain(
                    client,
                    registry,
                    "it-worker:1",
                    lambda: now,
                    60,
                    PARTITIONS,
                    held,
                    wait_ms=0,
                    tokens=TOKENS,
                    linger_ms=0,
                )
            assert _pending(client) == 20
            assert [s["status"] for s in _statuses(client, ids)] == ["queued"] * 20
            assert not dead_letters(client)
            assert client.xlen(keys.log_key(GAME, VARIANT)) == 0
    finally:
        client.config_set("maxmemory", 0)

    assert _drain(client, registry, now).settled == 20

    assert [s["status"] for s in _statuses(client, ids)] == ["accepted"] * 20
    assert client.xlen(keys.log_key(GAME, VARIANT)) == 20  # each applied once
    assert verdict_count(client, "accepted") == 20
    assert not dead_letters(client)
    assert stream_length(client) == 0 and _pending(client) == 0


def test_verdicts_refused_after_the_batch_was_applied_leave_it_waiting_and_uncounted(
    full_server, registry, monkeypatch
):
    from app.leaderboard import ingest

    client = full_server
    now = _now()
    ids = _enqueue(client, _scores(3, now - 5))
    judge = ingest.judge_submissions

    def then_full(*args, **kwargs):
        judged = judge(*args, **kwargs)  # applied to the boards
        client.config_set("maxmemory", 1)  # and now every write is refused
        return judged

    monkeypatch.setattr(ingest, "judge_submissions", then_full)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            _drain(client, registry, now)
    finally:
        client.config_set("maxmemory", 0)
    # Not one verdict stored, counted or announced, and not one entry taken off the stream.
    assert [s["status"] for s in _statuses(client, ids)] == ["queued"] * 3
    assert _pending(client) == 3 and verdict_count(client, "accepted") == 0
    monkeypatch.setattr(ingest, "judge_submissions", judge)

    assert _drain(client, registry, now).settled == 3

    assert [s["status"] for s in _statuses(client, ids)] == ["accepted"] * 3
    assert verdict_count(client, "accepted") == 3
    assert client.xlen(keys.log_key(GAME, VARIANT)) == 3  # each applied once
    assert stream_length(client) == 0 and _pending(client) == 0


def test_a_score_at_the_edge_of_its_runs_memory_never_sends_redis_a_ttl_it_refuses(data, registry):
    received_at = _now()
    (last_ms,) = _scores(1, received_at, prefix="last")
    (too_late,) = _scores(1, received_at, prefix="late")
    forgotten_at = received_at - 60_000 + 2 * TOKENS.max_age_s * 1000

    _enqueue(data, [too_late])
    assert _drain(data, registry, forgotten_at).settled == 1
    _enqueue(data, [last_ms])
    assert _drain(data, registry, forgotten_at - 1).settled == 1

    ids = [too_late["submission_id"], last_ms["submission_id"]]
    late, last = _statuses(data, ids, now=forgotten_at)  # as of the drains' time
    assert late["code"] == "token_expired" and "waited too long" in late["reason"]
    assert last["status"] == "accepted"
    assert data.xlen(keys.log_key(GAME, VARIANT)) == 1
    assert not dead_letters(data)


def test_the_apply_script_remembers_a_run_for_at_least_a_millisecond(data, registry):
    # A caller that gives a run no time left (an Entry's default) gets the shortest TTL Redis
    # takes, not "invalid expire time".
    now = _now()
    entry = Entry("sub-no-ttl-01", registry.get(GAME), VARIANT, "p" * 22, "Ann", 3, now, "run-0")
    (applied,) = apply_entries(data, [entry], now)
    assert applied.fresh and applied.ranks["alltime"] == 1
    assert data.xlen(keys.log_key(GAME, VARIANT)) == 1
