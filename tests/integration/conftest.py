"""Integration tests use the process fixtures of ``tests/conftest.py``, and these."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.storage.embedded_redis import EmbeddedRedis


@pytest.fixture
def data(request: pytest.FixtureRequest, redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """An empty database of the session's redis-server, the test module's ``DB`` (one the
    stack does not use), emptied again after the test."""
    client = redis.Redis(port=redis_server.port, db=request.module.DB, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
