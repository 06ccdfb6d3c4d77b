"""The scripts that honour or end player keys, on a real redis-server: the one that enqueues a
score refuses a revoked key in the same round trip, storing nothing; rotation is atomic."""

from __future__ import annotations

import pytest
import redis

from app.leaderboard.players import PlayerProof, honoured_generation, revoke_keys, rotate_key
from app.storage import intake
from tests.conftest import enqueue, record_of, stream_length

pytestmark = pytest.mark.integration

#: A database of the shared server that no other test uses.
DB = 8

PLAYER = "k" * 22


def _enqueue(client: redis.Redis, sid: str, generation: int) -> intake.Enqueued:
    return enqueue(client, {"submission_id": sid}, window_s=60, key=(PLAYER, generation))


def test_the_enqueue_script_refuses_a_revoked_key_and_stores_nothing(data):
    assert not _enqueue(data, "before-revocation", 0).revoked
    assert revoke_keys(data, PLAYER) == 1
    refused = _enqueue(data, "after-revocation", 0)
    assert refused.revoked and refused.existing is None and not refused.schedule_drain
    assert record_of(data, "after-revocation", window_s=60) is None
    assert stream_length(data) == 1
    # The next generation's key is honoured, and a score without a proven player always is.
    assert not _enqueue(data, "new-generation", 1).revoked
    assert not enqueue(data, {"submission_id": "anonymous"}, window_s=60).revoked
    assert stream_length(data) == 3


def test_rotation_ends_the_key_shown_and_a_revoked_key_cannot_rotate(data):
    assert rotate_key(data, PlayerProof(PLAYER, 0)) == 1
    assert honoured_generation(data, PLAYER) == 1
    assert rotate_key(data, PlayerProof(PLAYER, 0)) is None  # the old key again: refused
    assert honoured_generation(data, PLAYER) == 1
    assert rotate_key(data, PlayerProof(PLAYER, 1)) == 2
    assert _enqueue(data, "old-key", 1).revoked
