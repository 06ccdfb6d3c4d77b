"""The Lua scripts in ``app/lua/``, read once per process and bound to a Redis client."""

from __future__ import annotations

from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script


@cache
def source(name: str, library: str | None = None) -> str:
    """The text of ``app/lua/<name>.lua``, after ``app/lua/<library>.lua`` when one is named."""
    folder = resources.files("app").joinpath("lua")
    text = folder.joinpath(f"{name}.lua").read_text()
    return folder.joinpath(f"{library}.lua").read_text() + text if library else text


def script(client: redis.Redis, name: str, library: str | None = None) -> Script:
    """The script ``app/lua/<name>.lua`` bound to ``client``."""
    # register_script only hashes the text; redis-py loads it on the first NOSCRIPT.
    return client.register_script(source(name, library))
