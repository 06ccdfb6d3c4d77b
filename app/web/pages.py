"""Server-rendered pages: the guessing game, a leaderboard, the operator page.

The pages are plain templates; their scripts read and write through the JSON API, so the
pages themselves never touch Redis and load even when it is down.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from app.extensions import get_registry
from app.leaderboard.windows import WINDOWS

bp = Blueprint("pages", __name__)


@bp.get("/")
def game() -> str:
    """The guessing game."""
    guess = get_registry().get("guess")
    if guess is None:
        abort(404)
    return render_template("game.html", game=guess)


@bp.get("/boards/<game_slug>/<variant>")
def board(game_slug: str, variant: str) -> str:
    """A leaderboard with window tabs, paging, "find me", live refresh and charts."""
    game = get_registry().get(game_slug)
    if game is None or variant not in game.variants:
        abort(404)
    return render_template("board.html", game=game, variant=variant, windows=WINDOWS)


@bp.get("/admin")
def admin() -> str:
    """The operator page (the token is asked for in the page, once per tab)."""
    return render_template("admin.html", games=list(get_registry()))
