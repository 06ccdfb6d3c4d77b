"""The broker's Redis channel on a real redis-server, once its transport has let go of its
connection: what a worker's channel is left with when its broker connection broke while it held
a task (kombu's ``Connection.collect()``), and what it is then asked to do."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Exchange, Queue

from app.worker import redis_transport

DB = 11  # a database of the session's redis-server that nothing else uses

QUEUE = Queue("transport-test", Exchange("transport-test"), "transport-test")


@pytest.fixture
def held(redis_server, data):
    """A channel of a broker connection holding one unacknowledged message, and the message."""
    redis_transport.register()
    with Connection(redis_server.url(DB)) as conn:
        channel = conn.channel()
        conn.Producer(channel).publish(
            {"n": 1}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key, declare=[QUEUE]
        )
        message = QUEUE(channel).get(no_ack=False)
        assert message is not None
        yield channel, message


def test_the_channel_is_the_projects(held):
    channel, _ = held
    assert isinstance(channel, redis_transport.Channel)


def test_closing_it_after_its_connection_was_let_go_fails_as_a_lost_connection(held, data):
    channel, message = held
    channel.connection.client = None  # what Connection.collect() leaves, closed or not
    # kombu's own channel raises AttributeError here, which a Celery worker dies of; a lost
    # connection is what the consumer recovers from.
    with pytest.raises(redis.ConnectionError):
        channel.close()
    # A task that ends later is acknowledged on the channel; that fails the same way.
    with pytest.raises(redis.ConnectionError):
        message.ack()
    # The message stays unacknowledged in the broker, for its visibility timeout to bring back.
    assert data.hexists("unacked", message.delivery_tag)
    assert data.zscore("unacked_index", message.delivery_tag) is not None


def test_a_channel_with_its_connection_behaves_as_kombus(held, data):
    channel, message = held
    message.ack()
    assert not data.hexists("unacked", message.delivery_tag)
    channel.close()
