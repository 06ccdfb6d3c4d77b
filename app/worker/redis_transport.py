"""kombu's Redis transports, plain and Sentinel, with one fix that keeps a worker alive when its
broker connection breaks while it holds a task; :func:`register` makes the ``redis://``,
``rediss://`` and ``sentinel://`` broker URLs use them."""

from __future__ import annotations

from typing import Any

import redis
from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, but one whose connection was let go fails as a lost connection."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # Works around kombu 5.7.0 as Celery 5.7.0's consumer drives it. When a worker's broker
        # connection breaks, the consumer calls Connection.collect(), which lets go of the
        # transport's connection (transport.client = None) even when closing this channel
        # failed half-way (on a read of the dead socket), and then closes the Connection again.
        # That second close restores the worker's unacknowledged messages through a new pool
        # whose parameters kombu reads off the connection let go of: AttributeError, which
        # neither kombu nor Celery catches, so the worker exits. An acknowledgement sent later
        # on this channel, by a task that ends after the break, reads them too. Raised as what
        # they are, a lost connection, both are handled as one: the close is given up and the
        # worker reconnects, the acknowledgement is logged as not sent, and the messages, still
        # unacknowledged in the broker, come back after the visibility timeout. It can go once
        # kombu builds no pool for a channel whose transport was let go: the killed-master test
        # of tests/integration/test_sentinel_broker.py then passes without register().
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        return params


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with :class:`Channel`'s fix."""


class Transport(kombu_redis.Transport):
    """kombu's Redis transport, with :class:`Channel`."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport, with :class:`SentinelChannel`."""

    Channel = SentinelChannel


#: The broker URL schemes these transports take over from kombu's own.
SCHEMES = {
    "redis": f"{__name__}:Transport",
    "rediss": f"{__name__}:Transport",
    "sentinel": f"{__name__}:SentinelTransport",
}


def register() -> None:
    """Make the broker URLs of kombu's Redis transports use these ones, in this process.

    An alias rather than Celery's ``broker_transport``: kombu takes the transport from the URL's
    scheme again when it fails over to the next URL of a list (one Sentinel after another).
    """
    kombu_transports.TRANSPORT_ALIASES.update(SCHEMES)
    # kombu caches a name's class once resolved; one resolved before this must be looked up
    # again.
    cache: dict[str | None, type | None] = getattr(kombu_transports, "_transport_cache", {})
    for scheme in SCHEMES:
        cache.pop(scheme, None)
