"""Read-only endpoints: the games, a board's top, a player's standing."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, url_for
from pydantic import BaseModel

from app.extensions import get_redis, get_registry, read_clock
from app.leaderboard.boards import Board, Row, current_period, read_page, read_standing
from app.leaderboard.games import Game
from app.leaderboard.records import (
    BoardPage,
    BoardRow,
    GameInfo,
    GameList,
    Standing,
    Stats,
    VariantInfo,
)
from app.leaderboard.schemas import BoardQuery, StandingQuery, StatsQuery
from app.leaderboard.stats import read_stats
from app.leaderboard.windows import Window
from app.storage.submissions import PLAYER_ID
from app.web.api.inputs import (
    parse_query,
    require_game,
    require_period,
    require_variant,
    require_window,
)
from app.web.api.jsonp import enable_jsonp
from app.web.api.openapi import documented
from app.web.errors import Problem

bp = Blueprint("boards", __name__)
enable_jsonp(bp)  # the GET endpoints here are the API's reads


def _row(row: Row) -> BoardRow:
    return BoardRow(
        rank=row.rank,
        player_id=row.player_id,
        name=row.name,
        score=row.score,
        achieved_at=row.achieved_at,
    )


def _board(game_slug: str, variant: str, window: Window, period: str | None) -> Board:
    game = require_game(game_slug)
    variant = require_variant(game, variant)
    require_window(game, window)
    period = require_period(game, window, period, current_period(game, window, read_clock()))
    return Board(game, variant, window, period)


def _describe(game: Game) -> GameInfo:
    return GameInfo(
        slug=game.slug,
        title=game.title,
        description=game.description,
        order=game.order,
        integer_scores=game.integer,
        windows=list(game.windows),
        variants=[
            VariantInfo(
                name=v.name,
                score_min=v.score_min,
                score_max=v.score_max,
                board_url=url_for("api.boards.board_top", game_slug=game.slug, variant=v.name),
            )
            for v in game.variants.values()
        ],
    )


def _answer(model: BaseModel) -> Response:
    return jsonify(model.model_dump(mode="json"))


@bp.get("/games")
@documented("boards", "The games and their boards", {200: ("The games.", GameList)}, problems=[400])
def list_games() -> Response:
    """The games and their boards."""
    return _answer(GameList(games=[_describe(game) for game in get_registry()]))


@bp.get("/games/<game_slug>")
@documented(
    "boards", "One game and its boards", {200: ("The game.", GameInfo)}, problems=[400, 404]
)
def show_game(game_slug: str) -> Response:
    """One game and its boards."""
    return _answer(_describe(require_game(game_slug)))


@bp.get("/games/<game_slug>/boards/<variant>")
@documented(
    "boards",
    "A page of a board, best first",
    {200: ("A page of the board.", BoardPage)},
    query=BoardQuery,
    problems=[400, 404],
)
def board_top(game_slug: str, variant: str) -> Response:
    """A page of a board, best first."""
    query = parse_query(BoardQuery)
    board = _board(game_slug, variant, query.window, query.period)
    page = read_page(get_redis(), board, query.offset, query.limit)
    return _answer(
        BoardPage(
            game=board.game.slug,
            variant=board.variant,
            window=board.window,
            period=board.period,
            order=board.game.order,
            total=page.total,
            offset=query.offset,
            limit=query.limit,
            updated_at=page.updated_at,
            entries=[_row(row) for row in page.rows],
        )
    )


@bp.get("/games/<game_slug>/boards/<variant>/players/<player_id>")
@documented(
    "boards",
    "A player's rank and score, with neighbours",
    {200: ("The player's standing.", Standing)},
    query=StandingQuery,
    problems=[400, 404],
)
def player_standing(game_slug: str, variant: str, player_id: str) -> Response:
    """A player's rank and score, with neighbours on each side."""
    query = parse_query(StandingQuery)
    board = _board(game_slug, variant, query.window, query.period)
    standing = None
    if PLAYER_ID.match(player_id):
        standing = read_standing(get_redis(), board, player_id, query.around)
    if standing is None:
        raise Problem(404, "Not Found", "This player has no rank on this board.", kind="unranked")
    return _answer(
        Standing(
            game=board.game.slug,
            variant=board.variant,
            window=board.window,
            period=board.period,
            total=standing.total,
            updated_at=standing.updated_at,
            **_row(standing.row).model_dump(),
            neighbours=[_row(row) for row in standing.neighbours],
        )
    )


@bp.get("/games/<game_slug>/boards/<variant>/stats")
@documented(
    "boards",
    "Stats of a board",
    {200: ("The board's stats.", Stats)},
    query=StatsQuery,
    problems=[400, 404],
)
def board_stats(game_slug: str, variant: str) -> Response:
    """Count, players, best, mean, median, p90, histogram and submissions over time."""
    query = parse_query(StatsQuery)
    board = _board(game_slug, variant, query.window, query.period)
    stored = read_stats(get_redis(), board)
    if stored is None:
        # Not computed yet (a new board, or the stats job has not run since it appeared).
        stats = Stats.not_computed(board.game.slug, board.variant, board.window, board.period)
    else:
        stats = Stats.model_validate(stored)
    return _answer(stats)
