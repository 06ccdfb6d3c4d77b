"""Read-only endpoints: the games, a board's top and periods, a player's standing, the rows of
some players."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, jsonify, url_for
from pydantic import BaseModel

from app.extensions import get_redis, get_registry, read_clock
from app.leaderboard.boards import (
    Board,
    Row,
    current_end_ms,
    current_period,
    read_page,
    read_players,
    read_standing,
    readable_periods,
)
from app.leaderboard.games import Game
from app.leaderboard.records import (
    BoardLookup,
    BoardPage,
    BoardPeriods,
    BoardRow,
    GameInfo,
    GameList,
    Period,
    Standing,
    Stats,
    VariantInfo,
)
from app.leaderboard.schemas import (
    BoardQuery,
    LookupIn,
    PeriodsQuery,
    StandingQuery,
    StatsQuery,
)
from app.leaderboard.stats import read_stats
from app.leaderboard.windows import Window
from app.storage.submissions import PLAYER_ID
from app.web.api.inputs import (
    json_body,
    parse_query,
    parse_read_body,
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


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None  # stored by the service as an object, so never; shown as none all the same
    return value if isinstance(value, dict) else None


def _row(game: Game, row: Row, metadata: bool) -> BoardRow:
    """A row as answered: ``subscore`` only in a game that has them, ``metadata`` only when
    asked (see :func:`_answer`, which leaves out the fields not set)."""
    fields: dict[str, Any] = {}
    if game.sub_sign:
        fields["subscore"] = row.subscore
    if metadata:
        fields["metadata"] = _metadata(row.metadata)
    return BoardRow(
        rank=row.rank,
        player_id=row.player_id,
        name=row.name,
        score=row.score,
        achieved_at=row.achieved_at,
        **fields,
    )


def _board(game_slug: str, variant: str, window: Window, period: str | None) -> Board:
    game = require_game(game_slug)
    variant = require_variant(game, variant)
    require_window(game, window)
    period = require_period(game, window, period, current_period(game, window, read_clock()))
    return Board(game, variant, window, period)


def _describe(game: Game, now_ms: int) -> GameInfo:
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
        keep=game.keep,
        ties=game.ties,
        format=game.format,
        unit=game.unit,
        subscore_order=game.subscore_order,
        metadata_max_bytes=game.metadata_max_bytes,
        ends_at={window: current_end_ms(game, window, now_ms) for window in game.windows},
    )


def _answer(model: BaseModel, *, rows: bool = False) -> Response:
    # An answer with rows leaves out the fields it did not set: a row's subscore and metadata
    # are answered only where _row set them (every other field is set when it is built).
    return jsonify(model.model_dump(mode="json", exclude_unset=rows))


@bp.get("/games")
@documented("boards", "The games and their boards", {200: ("The games.", GameList)}, problems=[400])
def list_games() -> Response:
    """The games and their boards."""
    now = read_clock()
    return _answer(GameList(games=[_describe(game, now) for game in get_registry()]))


@bp.get("/games/<game_slug>")
@documented(
    "boards", "One game and its boards", {200: ("The game.", GameInfo)}, problems=[400, 404]
)
def show_game(game_slug: str) -> Response:
    """One game, its boards and settings, and when the current period of each window ends."""
    return _answer(_describe(require_game(game_slug), read_clock()))


_BOARD_400 = "Malformed query: a window the game does not have, a bad period, limit or offset."


@bp.get("/games/<game_slug>/boards/<variant>")
@documented(
    "boards",
    "A page of a board, best first",
    {200: ("A page of the board.", BoardPage)},
    description="Ranks are the shown ranks of the game's ties policy. Before a game's first "
    "season, the season window's current period is the first season, empty until it begins.",
    query=BoardQuery,
    problems={400: _BOARD_400, 404: None},
)
def board_top(game_slug: str, variant: str) -> Response:
    """A page of a board, best first."""
    query = parse_query(BoardQuery)
    board = _board(game_slug, variant, query.window, query.period)
    page = read_page(get_redis(), board, query.offset, query.limit, metadata=query.metadata)
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
            entries=[_row(board.game, row, query.metadata) for row in page.rows],
        ),
        rows=True,
    )


@bp.get("/games/<game_slug>/boards/<variant>/periods")
@documented(
    "boards",
    "The readable periods of a window",
    {200: ("The periods, newest first.", BoardPeriods)},
    description="From the current period back to the oldest still within its retention; the "
    "alltime window has one, all. The season window has none before the first season.",
    query=PeriodsQuery,
    problems={400: "A window the game does not have.", 404: None},
)
def board_periods(game_slug: str, variant: str) -> Response:
    """The readable periods of a window of a board, newest first."""
    query = parse_query(PeriodsQuery)
    game = require_game(game_slug)
    variant = require_variant(game, variant)
    require_window(game, query.window)
    periods = readable_periods(game, query.window, read_clock())
    return _answer(
        BoardPeriods(
            game=game.slug,
            variant=variant,
            window=query.window,
            periods=[
                Period(period=p.label, starts_at=p.starts_at, ends_at=p.ends_at) for p in periods
            ],
        )
    )


@bp.get("/games/<game_slug>/boards/<variant>/players/<player_id>")
@documented(
    "boards",
    "A player's rank and score, with neighbours",
    {200: ("The player's standing.", Standing)},
    query=StandingQuery,
    problems={400: _BOARD_400, 404: None},
)
def player_standing(game_slug: str, variant: str, player_id: str) -> Response:
    """A player's rank, score and percentile, with neighbours on each side."""
    query = parse_query(StandingQuery)
    board = _board(game_slug, variant, query.window, query.period)
    standing = None
    if PLAYER_ID.match(player_id):
        standing = read_standing(
            get_redis(), board, player_id, query.around, metadata=query.metadata
        )
    if standing is None:
        raise Problem(404, "Not Found", "This player has no rank on this board.", kind="unranked")
    mine = _row(board.game, standing.row, query.metadata)
    return _answer(
        Standing(
            game=board.game.slug,
            variant=board.variant,
            window=board.window,
            period=board.period,
            total=standing.total,
            updated_at=standing.updated_at,
            **{name: getattr(mine, name) for name in mine.model_fields_set},
            percentile=standing.percentile,
            neighbours=[_row(board.game, row, query.metadata) for row in standing.neighbours],
        ),
        rows=True,
    )


@bp.post("/games/<game_slug>/boards/<variant>/lookup")
@documented(
    "boards",
    "Some players' rows on a board",
    {200: ("The rows of the players asked for that have one, best first.", BoardLookup)},
    description="A friends board: up to 100 player ids, read together in one step. Each row "
    "has its rank on the whole board; ids without a row are listed in missing.",
    body=LookupIn,
    body_required=True,
    example={"player_ids": ["p8Yq2mZc0FQk1xTnR4vL7a", "Zc0FQk1xTnR4vL7ap8Yq2m"]},
    problems={
        400: "Malformed JSON, or a body that is not a lookup: no ids or more than 100, an id "
        "that is not one, a window the game does not have, a bad period.",
        404: None,
        413: None,
        415: None,
    },
)
def lookup_players(game_slug: str, variant: str) -> Response:
    """The rows of some players on a board, best first, with their ranks on the whole board."""
    game = require_game(game_slug)
    variant = require_variant(game, variant)
    body = parse_read_body(LookupIn, json_body())
    board = _board(game.slug, variant, body.window, body.period)
    lookup = read_players(get_redis(), board, body.player_ids, metadata=body.metadata)
    return _answer(
        BoardLookup(
            game=game.slug,
            variant=variant,
            window=board.window,
            period=board.period,
            total=lookup.total,
            updated_at=lookup.updated_at,
            rows=[_row(game, row, body.metadata) for row in lookup.rows],
            missing=lookup.missing,
        ),
        rows=True,
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
