"""``manage.py check`` as a release phase runs it, against a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from tests.processes import ROOT


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_passes_on_a_sound_redis_and_fails_on_an_evicting_one(redis_server):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CELERY_BROKER_URL", "HISCORE_GAMES_FILE", "LOG_FORMAT")
    }
    env.update(
        HISCORE_CONFIG="production",
        SECRET_KEY="s" * 43,
        OPERATOR_TOKEN="t" * 43,
        REDIS_URL=redis_server.url(2),
    )
    sound = check(env)
    assert sound.returncode == 0, sound.stdout + sound.stderr
    lines = sound.stdout.splitlines()
    assert any(
        line.startswith(f"ok   redis: {redis_server.url(2)} answers (Redis ") for line in lines
    )
    assert "ok   persistence: appendonly yes, appendfsync everysec" in lines
    assert "ok   eviction: maxmemory-policy noeviction" in lines
    assert "ok   broker: the data Redis (CELERY_BROKER_URL unset)" in lines
    assert sound.stderr == ""

    client = redis.Redis(port=redis_server.port)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        evicting = check(env)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    assert evicting.returncode == 1, evicting.stdout
    assert any(
        line.startswith("FAIL eviction: maxmemory-policy is allkeys-lru")
        for line in evicting.stdout.splitlines()
    ), evicting.stdout
