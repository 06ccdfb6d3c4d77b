"""Server-rendered pages: the two demo games, a leaderboard, the operator page.

The pages are plain templates; their scripts read and write through the JSON API, so the
pages themselves never touch Redis and load even when it is down.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for

from app.extensions import get_registry

bp = Blueprint("pages", __name__)

#: The built-in games' own pages, by game: a board links to where its game is played.
_PLAY_PAGES = {"guess": "pages.game", "throw": "pages.throw"}


@bp.get("/")
def game() -> str:
    """The guessing game."""
    guess = get_registry().get("guess")
    if guess is None:
        abort(404)
    return render_template("game.html", game=guess)


@bp.get("/play/throw")
def throw() -> str:
    """The paper plane: pick a plane, an angle and a power, and throw for distance."""
    game = get_registry().get("throw")
    if game is None:
        abort(404)
    return render_template("throw.html", game=game, variant=next(iter(game.variants)))


@bp.get("/boards/<game_slug>/<variant>")
def board(game_slug: str, variant: str) -> str:
    """A leaderboard with the game's windows as tabs, its periods, paging, "find me", friends,
    live refresh and charts."""
    game = get_registry().get(game_slug)
    if game is None or variant not in game.variants:
        abort(404)
    play = _PLAY_PAGES.get(game.slug)
    return render_template(
        "board.html",
        game=game,
        variant=variant,
        windows=game.windows,
        play_url=url_for(play) if play else None,
    )


@bp.get("/admin")
def admin() -> str:
    """The operator page (the token is asked for in the page, once per tab)."""
    return render_template("admin.html", games=list(get_registry()))
