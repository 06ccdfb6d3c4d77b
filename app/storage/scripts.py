"""The Lua scripts in ``app/lua/``, read once per process and bound to a Redis client."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

#: One call of a script: its keys and its arguments.
Call = tuple[Sequence[str], Sequence[str | int | float]]


#: The libraries a script is prepended with: none, one (``app/lua/<library>.lua``) or several,
#: in order.
Library = str | tuple[str, ...] | None


@cache
def source(name: str, library: Library = None) -> str:
    """The text of ``app/lua/<name>.lua``, after that of each library named."""
    folder = resources.files("app").joinpath("lua")
    libraries = (library,) if isinstance(library, str) else library or ()
    parts = [folder.joinpath(f"{part}.lua").read_text() for part in (*libraries, name)]
    return "".join(parts)


@cache
def sha(name: str, library: Library = None) -> str:
    """The SHA1 digest by which Redis knows the script (of its text as redis-py sends it)."""
    return hashlib.sha1(source(name, library).encode()).hexdigest()


class BoundScript:
    """A script of ``app/lua/`` bound to a client: called with its keys and arguments, it sends
    ``EVALSHA`` by the digest computed once per process (redis-py's ``register_script`` hashes
    the text again each time), and loads the script only when Redis answers ``NOSCRIPT``."""

    __slots__ = ("client", "library", "name")

    def __init__(self, client: redis.Redis, name: str, library: Library) -> None:
        self.client, self.name, self.library = client, name, library

    def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        digest = sha(self.name, self.library)
        try:
            return self.client.evalsha(digest, len(keys), *keys, *args)
        except NoScriptError:
            self.client.script_load(source(self.name, self.library))
            return self.client.evalsha(digest, len(keys), *keys, *args)


def script(client: redis.Redis, name: str, library: Library = None) -> BoundScript:
    """The script ``app/lua/<name>.lua`` bound to ``client``."""
    return BoundScript(client, name, library)


def run_each(
    client: redis.Redis, name: str, calls: Sequence[Call], library: Library = None
) -> list[Any]:
    """Run the script once per call, pipelined in one round trip; the reply of each call, or
    the error it raised in its place.

    A script called through a redis-py pipeline costs a ``SCRIPT EXISTS`` round trip before
    every batch; this sends ``EVALSHA`` straight away and loads the script only when Redis
    answers ``NOSCRIPT`` (after a restart, say), then sends again the calls that met it.
    """
    if not calls:
        return []
    digest = sha(name, library)
    replies = _evalsha_each(client, digest, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        client.script_load(source(name, library))
        again = _evalsha_each(client, digest, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies


def _evalsha_each(client: redis.Redis, digest: str, calls: Sequence[Call]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(digest, len(keys), *keys, *args)
    return pipe.execute(raise_on_error=False)
