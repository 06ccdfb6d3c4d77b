"""Players: the keys that prove who a client is, and removing a cheater from a game."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import cast

from itsdangerous import BadSignature, Signer

from app.leaderboard.boards import board_keys, script
from app.leaderboard.games import Game
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.schemas import PLAYER_ID_PATTERN
from app.storage import keys
from app.storage.connection import DataClient

PLAYER_ID = re.compile(PLAYER_ID_PATTERN)


def remove_player(client: DataClient, game: Game, player_id: str, now_ms: int) -> int:
    """Ban ``player_id`` from every variant of ``game`` and drop their rows from its boards.

    Their later entries are rejected and rebuilds skip their logged ones. Returns the number
    of board rows removed.
    """
    remove = script(client, "remove_player")
    removed = 0
    for variant in game.variants:
        boards = readable_boards(game, variant, now_ms)
        written = [key for b in boards for key in board_keys(b)]
        tags = [part for b in boards for part in b.tag]
        removed += remove(
            keys=[keys.banned_key(game.slug, variant), keys.players_key(game.slug, variant)]
            + written,
            args=[player_id, game.sign, now_ms, "1" if game.ties == "dense" else "0", *tags],
        )
    return removed


_SALT = "hiscore.player"


@dataclass(frozen=True)
class PlayerProof:
    """What a valid key proves: the player, and the generation of key it is."""

    player_id: str
    generation: int = 0


def player_key(secret: str, player_id: str, generation: int = 0) -> str:
    """The secret that proves a client holds ``player_id``: the id signed by the service.

    A key of generation 0 signs the id alone, as every key did before keys could be replaced,
    so those keep working; a later generation signs ``<id>:<generation>``.
    """
    value = player_id if generation == 0 else f"{player_id}:{generation}"
    return _signer(secret).sign(value).decode()


@cache
def _signer(secret: str) -> Signer:
    return Signer(secret, salt=_SALT)


# A request's key is read by its rate limits and then by its view: the second read is free.
@lru_cache(maxsize=4096)
def read_key(secret: str, key: str) -> PlayerProof | None:
    """The player and generation a key was issued for, or None if the service did not sign it.

    Whether that generation is still honoured is for Redis to say (:func:`rotate_key` and the
    script that enqueues a score).
    """
    try:
        value = _signer(secret).unsign(key).decode()
    except (BadSignature, UnicodeError):  # a forgery, or text that is not even a key
        return None
    player_id, _, generation = value.partition(":")
    if not PLAYER_ID.match(player_id):
        return None
    if not generation:
        return PlayerProof(player_id)
    if not generation.isdigit() or generation != str(int(generation)) or generation == "0":
        return None  # the service never signs such a value
    return PlayerProof(player_id, int(generation))


def player_of(secret: str, key: str) -> str | None:
    """The player id a key was issued for, or None if the service did not sign it."""
    proof = read_key(secret, key)
    return proof.player_id if proof else None


def honoured_generation(client: DataClient, player_id: str) -> int:
    """The oldest generation of key still honoured for ``player_id`` (0 unless replaced)."""
    return int(cast(str | None, client.hget(keys.KEY_GENERATIONS, player_id)) or 0)


def rotate_key(client: DataClient, proof: PlayerProof) -> int | None:
    """Make a new generation of the player's key the oldest honoured; None if ``proof``'s key
    was revoked already (then nothing changes)."""
    generation = script(client, "rotate_key")(
        keys=[keys.KEY_GENERATIONS], args=[proof.player_id, proof.generation]
    )
    return None if generation < 0 else int(generation)


def revoke_keys(client: DataClient, player_id: str) -> int:
    """End every key of ``player_id`` issued so far; return the generation of the next one."""
    return cast(int, client.hincrby(keys.KEY_GENERATIONS, player_id, 1))
