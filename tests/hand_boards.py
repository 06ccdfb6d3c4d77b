"""Boards laid out by hand, as the apply script stores them, and the shown ranks their rows
should have by the definitions of the ties policies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.leaderboard.boards import Board, PlayerRecord, ranking_member, subscore_key
from app.leaderboard.games import Game
from app.storage import keys


@dataclass(frozen=True)
class Spot:
    """A row to lay on a board by hand."""

    n: int  # the player's number
    score: float
    at: int
    sub: int | None = None
    metadata: str | None = None

    @property
    def player_id(self) -> str:
        return f"player-{self.n:010d}"


def lay(client, board: Board, spots: Sequence[Spot]) -> None:
    """Store rows as the apply script does: ranking member, record tag (with its subscore key),
    the values zset and counts of a dense board, and the entries' metadata."""
    game = board.game
    tag, start = board.tag
    for spot in spots:
        sub_key = subscore_key(game, spot.sub)
        member = ranking_member(sub_key, spot.at, spot.player_id)
        sort = game.sign * spot.score
        client.zadd(board.ranking_key, {member: sort})
        subs = {tag: sub_key} if sub_key else {}
        record = PlayerRecord(spot.at, f"P{spot.n}", {tag: spot.at - start}, subs)
        client.hset(board.players_key, spot.player_id, record.encode())
        if game.ties == "dense":
            value = f"{float(sort):.17g}|{sub_key}"
            client.zadd(board.values_key, {value: sort})
            client.hincrby(board.value_counts_key, value, 1)
        if spot.metadata is not None:
            field = f"{spot.at:013d}:{spot.player_id}"
            client.hset(keys.entry_metadata_key(game.slug, board.variant), field, spot.metadata)
    client.hset(board.meta_key, "updated", 1234)


def expected(game: Game, spots: Sequence[Spot]) -> list[tuple[str, int, float]]:
    """(player id, shown rank, percentile) of each row in board order, from the definitions:
    competition 1 + the rows of a better (score, subscore), dense 1 + the better such values,
    unique the place; percentile the rows ranked below (below the whole group when tied)."""

    def value(spot: Spot) -> tuple[int, int]:
        return (game.sign * spot.score, game.sub_sign * (spot.sub or 0))

    ordered = sorted(spots, key=lambda s: (*value(s), s.at, s.player_id))
    values = sorted({value(s) for s in spots})
    total = len(ordered)
    shown = []
    for place, spot in enumerate(ordered):
        mine = value(spot)
        if game.ties == "unique":
            rank, below = place + 1, total - place - 1
        else:
            better = sum(value(s) < mine for s in spots)
            rank = better + 1 if game.ties == "competition" else values.index(mine) + 1
            below = sum(value(s) > mine for s in spots)
        shown.append((spot.player_id, rank, round(100 * below / total, 1)))
    return shown
