"""Fixtures of the unit tests."""

import pytest

from app import create_app
from config import celery_settings
from tests.processes import TEST_GAMES


@pytest.fixture
def limited(redis_client):
    """Build apps with the limits on, counting in the test's fake Redis."""
    apps = []

    def build(**config):
        settings = {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMIT_SCORES_PER_ADDRESS": "3/minute",
            "RATE_LIMIT_SCORES_PER_PLAYER": "100/minute",
            "GAMES_FILE": str(TEST_GAMES),
            **config,
        }
        app = create_app("testing", settings)
        apps.append(app)
        return app

    yield build
    for app in apps:  # the memory broker is process-wide: leave no drain behind
        with app.extensions["celery"].connection_for_write() as conn:
            conn.SimpleQueue("ingest").clear()
