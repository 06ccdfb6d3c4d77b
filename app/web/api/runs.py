"""Players play verified runs here: each move goes to the service, which answers it."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.extensions import get_redis, get_token_policy, read_clock
from app.leaderboard import verified_runs
from app.leaderboard.records import GuessAnswer
from app.leaderboard.schemas import GuessIn
from app.web.api.inputs import json_body, parse_body, require_game
from app.web.api.openapi import documented
from app.web.errors import Problem, validation_problem

bp = Blueprint("runs", __name__)

_TITLES = {403: "Forbidden", 404: "Not Found", 409: "Conflict"}


@bp.post("/games/<game_slug>/runs/<run_id>/guesses")
@documented(
    "scores",
    "Answer one guess of a run",
    {200: ("The answer, and the guesses answered so far.", GuessAnswer)},
    description="For a game with a verifier: the service answers the guess higher, lower or "
    "correct and counts it; the run's token proves the caller started the run. After correct "
    "the run is finished: submit it with its token.",
    body=GuessIn,
    body_required=True,
    example={"guess": 50, "token": "<the session's token>"},
    problems={
        400: None,
        403: "The token is not this run's.",
        404: "Unknown game, a game not played by guesses, or a run that expired.",
        409: "The run is over: its number found, or its guesses used up.",
        413: None,
        415: None,
        422: None,
    },
)
def guess(game_slug: str, run_id: str) -> Response:
    """Answer one guess of a run: higher, lower or correct (the run is then finished)."""
    game = require_game(game_slug)
    body = parse_body(GuessIn, json_body())
    answer = verified_runs.answer_guess(
        get_redis(), game, run_id, body.token, body.guess, get_token_policy(), read_clock()
    )
    if isinstance(answer, verified_runs.RunProblem):
        if answer.status == 422:
            field = answer.field or "body"
            raise validation_problem(f"The guess {answer.detail}.", {field: [answer.detail]})
        errors = {answer.field: [answer.detail]} if answer.field else None
        raise Problem(
            answer.status,
            _TITLES[answer.status],
            answer.detail[0].upper() + answer.detail[1:] + ".",
            kind=answer.code.replace("_", "-"),
            errors=errors,
        )
    response = jsonify(GuessAnswer(result=answer.result, guesses=answer.guesses).model_dump())
    response.headers["Cache-Control"] = "no-store"
    return response
