"""The rate limits count in a real redis-server, reached by its URL as in production."""

import redis

from app import create_app
from app.storage import keys
from config import celery_settings
from tests.processes import TEST_GAMES

GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}


def _app_on(redis_server, db: int, **limits):
    """An emptied database of the real server, and an app counting its limits there."""
    data = redis.Redis.from_url(redis_server.url(db), decode_responses=True)
    data.flushdb()
    app = create_app(
        "testing",
        {
            "REDIS_URL": redis_server.url(db),
            "CELERY": celery_settings("memory://"),
            "GAMES_FILE": str(TEST_GAMES),
            **limits,
        },
    )
    return data, app


def test_limits_count_in_the_data_redis(redis_server):
    data, app = _app_on(redis_server, 5, RATE_LIMIT_SCORES_PER_ADDRESS="2/minute")
    client = app.test_client()
    codes = [
        client.post("/api/v1/games/guess-claimed/scores", json=GOOD).status_code for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    counters = list(data.scan_iter(keys.RATE_LIMIT_PREFIX + "*"))
    assert any("127.0.0.1" in key for key in counters)
    with app.extensions["celery"].connection_for_write() as conn:
        conn.SimpleQueue("ingest").clear()
    data.flushdb()


def test_a_read_counted_along_with_its_read_in_a_real_redis(redis_server):
    data, app = _app_on(redis_server, 6, RATE_LIMIT_PER_ADDRESS="3/minute")
    client = app.test_client()
    data.script_flush()  # the count's script is loaded again on the first read
    codes = [client.get("/api/v1/games/guess/boards/10").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    (counter,) = data.scan_iter(keys.RATE_LIMIT_PREFIX + "*")
    assert data.get(counter) == "4"
    assert 0 < data.pttl(counter) <= 60_000
    data.flushdb()
