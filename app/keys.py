"""Every Redis key name hiscore uses is built here, and only here.

All keys of one board family (one game and variant) share the hash tag ``{game:variant}``, so a
board's log, caches and metadata land in one Redis Cluster slot and one Lua script may touch
them all. Only registry values (game slugs, variants, window names, period labels built by
:mod:`app.windows`) and service-issued ids ever become part of a key; a player's text never does.
"""

from __future__ import annotations

PREFIX = "hs"

#: Pub/sub channel on which workers announce verdicts (message: space-separated submission ids).
VERDICT_CHANNEL = f"{PREFIX}:verdicts"

#: Stream that audits every rejected submission with its reason.
REJECTED_STREAM = f"{PREFIX}:rejected"


def _family(game: str, variant: str) -> str:
    return f"{PREFIX}:{{{game}:{variant}}}"


def log_key(game: str, variant: str) -> str:
    """The durable log of accepted entries of a board family: a stream."""
    return f"{_family(game, variant)}:log"


def applied_key(game: str, variant: str) -> str:
    """Hash of submission id -> log entry id: what has already been applied (idempotency)."""
    return f"{_family(game, variant)}:applied"


def updated_key(game: str, variant: str) -> str:
    """Hash of ``window:period`` -> epoch ms of the last change of that board."""
    return f"{_family(game, variant)}:updated"


def ranking_key(game: str, variant: str, window: str, period: str) -> str:
    """Sorted set of one board: score = sort key, member = ``<achieved ms>:<player id>``."""
    return f"{_family(game, variant)}:rank:{window}:{period}"


def rows_key(game: str, variant: str, window: str, period: str) -> str:
    """Hash of one board: player id -> ``<achieved ms>|<score>|<name>`` (the player's best)."""
    return f"{_family(game, variant)}:rows:{window}:{period}"


def submission_key(submission_id: str) -> str:
    """The status record of one submission (a JSON string with a TTL)."""
    return f"{PREFIX}:sub:{submission_id}"
