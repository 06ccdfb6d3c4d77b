"""Players: the keys that prove who a client is, and removing a cheater from a game."""

from __future__ import annotations

import re

import redis
from itsdangerous import BadSignature, Signer

from app.leaderboard.boards import script
from app.leaderboard.games import Game
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.schemas import PLAYER_ID_PATTERN
from app.storage import keys

PLAYER_ID = re.compile(PLAYER_ID_PATTERN)


def remove_player(client: redis.Redis, game: Game, player_id: str, now_ms: int) -> int:
    """Ban ``player_id`` from every variant of ``game`` and drop their rows from its boards.

    Their later entries are rejected and rebuilds skip their logged ones. Returns the number
    of board rows removed.
    """
    remove = script(client, "remove_player")
    removed = 0
    for variant in game.variants:
        boards = readable_boards(game, variant, now_ms)
        board_keys = [key for b in boards for key in (b.ranking_key, b.rows_key)]
        removed += remove(keys=[keys.banned_key(game.slug, variant), *board_keys], args=[player_id])
    return removed


_SALT = "hiscore.player"


def player_key(secret: str, player_id: str) -> str:
    """The secret that proves a client holds ``player_id``: the id signed by the service."""
    return Signer(secret, salt=_SALT).sign(player_id).decode()


def player_of(secret: str, key: str) -> str | None:
    """The player id a key was issued for, or None if the service did not sign it."""
    try:
        player_id = Signer(secret, salt=_SALT).unsign(key).decode()
    except (BadSignature, UnicodeError):  # a forgery, or text that is not even a key
        return None
    return player_id if PLAYER_ID.match(player_id) else None
