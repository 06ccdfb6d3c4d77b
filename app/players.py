"""Operator actions on players: removing a cheater from every board of a game."""

from __future__ import annotations

import redis

from app import keys
from app.boards import script
from app.games import Game
from app.rebuild import readable_boards


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
