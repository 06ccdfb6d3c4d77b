"""Players play verified runs here: each move goes to the service, which answers it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.extensions import get_redis, get_token_policy, read_clock
from app.leaderboard import verified_runs
from app.leaderboard.schemas import GuessIn, GuessOut
from app.web.api.inputs import json_body, parse_body, require_game
from app.web.errors import Problem, validation_problem

bp = Blueprint("runs", __name__)

_TITLES = {403: "Forbidden", 404: "Not Found", 409: "Conflict"}


@bp.post("/games/<game_slug>/runs/<run_id>/guesses")
def guess(game_slug: str, run_id: str) -> Response:
    """Answer one guess of a run: higher, lower or correct (the run is then finished)."""
    game = require_game(game_slug)
    body = parse_body(GuessIn, json_body())
    answer = verified_runs.answer_guess(
        get_redis(), game, run_id, body.token, body.guess, get_token_policy(), read_clock()
    )
    if isinstance(answer, verified_runs.RunProblem):
        if answer.status == 422:
            raise validation_problem(f"The guess {answer.detail}.", {answer.field: [answer.detail]})
        errors = {answer.field: [answer.detail]} if answer.field else None
        raise Problem(
            answer.status,
            _TITLES[answer.status],
            answer.detail[0].upper() + answer.detail[1:] + ".",
            kind=answer.code.replace("_", "-"),
            errors=errors,
        )
    response = jsonify(GuessOut(result=answer.result, guesses=answer.guesses).model_dump())
    response.headers["Cache-Control"] = "no-store"
    return response
