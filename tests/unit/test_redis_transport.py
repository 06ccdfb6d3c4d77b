"""Which transport a broker URL gets once the app is built."""

from __future__ import annotations

from kombu import Connection

from app import create_app
from app.worker import redis_transport

SENTINELS = "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380"


def transport_of(conn: Connection) -> type:
    """The class of the transport the connection would use (made, not connected)."""
    return type(conn.transport)


def test_building_the_app_gives_the_redis_urls_the_projects_transports():
    create_app("testing")
    assert transport_of(Connection("redis://127.0.0.1:6379/0")) is redis_transport.Transport
    assert transport_of(Connection("rediss://127.0.0.1:6380/0")) is redis_transport.Transport
    sentinels = Connection(SENTINELS, transport_options={"master_name": "mymaster"})
    assert transport_of(sentinels) is redis_transport.SentinelTransport
    assert sentinels.transport.Channel is redis_transport.SentinelChannel


def test_the_next_sentinel_of_the_list_keeps_it():
    redis_transport.register()
    conn = Connection(SENTINELS, transport_options={"master_name": "mymaster"})
    conn.maybe_switch_next()  # what kombu does when a Sentinel does not answer
    assert conn.host == "127.0.0.1:26380"
    assert transport_of(conn) is redis_transport.SentinelTransport


def test_other_brokers_keep_kombus_transports():
    redis_transport.register()
    assert transport_of(Connection("memory://")).__module__ == "kombu.transport.memory"
    assert transport_of(Connection("amqp://guest@127.0.0.1//")).__module__ in (
        "kombu.transport.pyamqp",
        "kombu.transport.librabbitmq",
    )
