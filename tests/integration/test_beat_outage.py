"""beat outlives a Redis outage longer than its lock's timeout, and ticks again after it."""

from __future__ import annotations

import pytest

from app.storage.embedded_redis import EmbeddedRedis
from tests.processes import BIN, Process, process_env, wait_for

pytestmark = pytest.mark.integration


def test_beat_takes_its_lock_again_after_a_long_outage(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    env = process_env(
        server,
        HISCORE_SWEEP_EVERY="1",
        HISCORE_BEAT_LOCK_TIMEOUT="3",
        HISCORE_BEAT_LOOP_SECONDS="1",
        LOG_FORMAT="text",
    )
    beat = Process(
        "beat",
        [str(BIN / "celery"), "-A", "celery_worker", "beat", "--loglevel=INFO"],
        env,
        tmp_path,
    ).start()
    try:
        wait_for(lambda: "Sending due task sweep" in beat.log(), 60, "beat's first sweep")
        server.kill()  # kill -9
        wait_for(lambda: "cannot reach Redis" in beat.log(), 30, "beat to notice")
        # Longer than the lock's 3 s: its key has expired by the time Redis is back.
        wait_for(lambda: beat.log().count("cannot reach Redis") >= 5, 30, "five seconds down")
        server.start()
        wait_for(lambda: "holds the lock again" in beat.log(), 30, "beat to take its lock again")
        after = len(beat.log())
        wait_for(lambda: "Sending due task sweep" in beat.log()[after:], 30, "a sweep after it")
        assert beat.alive
    finally:
        beat.stop()
        server.stop()
    assert "lost its lock" in beat.log()
