"""Players send results here: start a run, submit a score, follow its verdict."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from app.clock import iso_time
from app.extensions import get_redis, get_registry, get_token_policy, get_waiter, read_clock
from app.leaderboard import run_tokens, verified_runs
from app.leaderboard.players import player_key, player_of
from app.leaderboard.run_tokens import RunToken
from app.leaderboard.schemas import ScoreIn, SessionIn, WaitQuery
from app.leaderboard.validation import Rejection, check_claim, check_run
from app.log_context import current_request_id
from app.storage import intake, submissions
from app.web.api.inputs import (
    json_body,
    parse_body,
    parse_query,
    require_body_variant,
    require_game,
)
from app.web.api.jsonp import enable_jsonp
from app.web.errors import Problem, validation_problem
from app.worker.tasks import request_drain

bp = Blueprint("scores", __name__)
enable_jsonp(bp)  # the GET endpoints here are the API's reads


def _proven_player(player_id: str | None, player_key: str | None) -> str | None:
    """The player a request proves it is (by a key in the body or the cookie), or None.

    Naming a player without proof is refused: player ids are public, on every board.
    """
    secret = current_app.config["SECRET_KEY"]
    if player_key is not None:
        proven = player_of(secret, player_key)
        if proven is None or player_id not in (None, proven):
            raise Problem(
                403,
                "Forbidden",
                "This player_key was not issued for this player.",
                kind="player-key",
                errors={"player_key": ["is not valid"]},
            )
        return proven
    cookie = request.cookies.get(current_app.config["PLAYER_COOKIE"])
    proven = player_of(secret, cookie) if cookie else None
    if player_id is not None and player_id != proven:
        raise Problem(
            403,
            "Forbidden",
            "A player_id needs the player_key that came with it (or the player's cookie).",
            kind="player-key",
            errors={"player_key": ["is required with player_id"]},
        )
    return proven


def _key_of(player_id: str) -> str:
    # Signed once per request: the body and the cookie carry the same key.
    cached = g.get("player_keys") or {}
    if player_id not in cached:
        cached[player_id] = player_key(current_app.config["SECRET_KEY"], player_id)
        g.player_keys = cached
    return cached[player_id]


def _player_body(player_id: str) -> dict[str, str]:
    return {"player_id": player_id, "player_key": _key_of(player_id)}


def _remember_player(response: Response, player_id: str) -> Response:
    config = current_app.config
    response.set_cookie(
        config["PLAYER_COOKIE"],
        _key_of(player_id),
        max_age=400 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=config["PLAYER_COOKIE_SECURE"],
    )
    return response


@bp.post("/games/<game_slug>/sessions")
def start_session(game_slug: str) -> tuple[Response, int]:
    """Start a run: issue (or confirm) the player's id and, for a variant, a run token."""
    game = require_game(game_slug)
    body = parse_body(SessionIn, json_body(optional=True))
    if body.variant is not None:
        require_body_variant(game, body.variant)
    player_id = _proven_player(body.player_id, body.player_key) or submissions.new_id()
    answer: dict[str, Any] = {"game": game.slug, **_player_body(player_id)}
    if body.variant is not None:
        policy = get_token_policy()
        run = RunToken(game.slug, body.variant, player_id, submissions.new_id(), read_clock())
        verified_runs.start_run(get_redis(), game, body.variant, run, policy)
        answer["variant"] = body.variant
        answer["token"] = run_tokens.issue(
            policy.secret, game.slug, body.variant, player_id, run.run_id, run.issued_at
        )
        answer["token_expires_at"] = iso_time(run.issued_at + policy.max_age_s * 1000)
        if game.verified:
            answer["run_id"] = run.run_id
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return _remember_player(response, player_id), 201


def _submission_id(body: ScoreIn) -> str:
    header = request.headers.get("Idempotency-Key")
    if header is not None and not submissions.SUBMISSION_ID.match(header):
        raise validation_problem(
            "The Idempotency-Key header is not a valid id.",
            {"Idempotency-Key": ["must be 8 to 64 characters of A-Z, a-z, 0-9, _ or -"]},
        )
    if header and body.submission_id and header != body.submission_id:
        raise validation_problem(
            "The Idempotency-Key header and submission_id disagree.",
            {"submission_id": ["differs from the Idempotency-Key header"]},
        )
    return body.submission_id or header or submissions.new_id()


@bp.post("/games/<game_slug>/scores")
def submit_score(game_slug: str) -> tuple[Response, int]:
    """Accept a finished game for checking and ranking; answer 202 with where to follow it."""
    game = require_game(game_slug)
    body = parse_body(ScoreIn, json_body())
    require_body_variant(game, body.variant)
    errors = check_claim(game, body.variant, body.score, body.duration_ms, body.token)
    if errors:
        raise validation_problem("The score breaks the rules of the game.", errors)
    submission_id = _submission_id(body)
    sent = body.model_dump()
    fingerprint = submissions.fingerprint({**sent, "game": game.slug})
    claimed = _proven_player(body.player_id, body.player_key)
    player_id = claimed or submissions.new_id()
    received_at = read_clock()
    # Everything about the token but its single use is checked here, to answer a bad one now;
    # the worker checks it all again.
    run = check_run(
        get_token_policy(),
        body.token,
        game=game.slug,
        variant=body.variant,
        player_id=player_id,
        received_at=received_at,
        duration_ms=body.duration_ms,
    )
    if isinstance(run, Rejection):
        raise validation_problem(
            f"The run token does not vouch for this score: {run.detail}.", run.errors
        )
    scored = verified_runs.resolve_score(
        get_redis(), get_registry(), game, body.score, body.duration_ms, run
    )
    if isinstance(scored, Rejection):
        raise validation_problem(f"The run proves no score: {scored.detail}.", scored.errors)
    # The fields of a QueuedSubmission (the worker validates it again from scratch).
    queued = {
        **{k: v for k, v in sent.items() if k not in ("player_id", "player_key", "submission_id")},
        "game": game.slug,
        "score": scored[0],
        "duration_ms": scored[1],
        "player_id": player_id,
        "submission_id": submission_id,
        "received_at": received_at,
        "fingerprint": fingerprint,
        "request_id": current_request_id(),
    }
    record: dict[str, Any] = {
        "status": submissions.QUEUED,
        "fingerprint": fingerprint,
        "game": game.slug,
        "player_id": player_id,
        "queued_at": queued["received_at"],
    }
    enqueued = intake.enqueue(
        get_redis(), submission_id, record, queued, current_app.config["SUBMISSION_TTL_SECONDS"]
    )
    if enqueued.schedule_drain:
        request_drain()
    # The player's key goes to whoever proved the player, or made it just now; never to a
    # mere repeat of someone's request, which anyone who guessed the id could send.
    hand_key = True
    if enqueued.existing is not None:
        existing = enqueued.existing
        # A retry says the same, as nobody in particular or as the player the first got.
        same_player = claimed in (None, existing.get("player_id"))
        if existing.get("fingerprint") != fingerprint or not same_player:
            raise Problem(
                422,
                "Submission id reused",
                "This submission_id was already used for a different submission.",
                kind="submission-id-reused",
                errors={"submission_id": ["was already used for a different submission"]},
            )
        record = existing
        player_id = existing.get("player_id") or player_id
        hand_key = claimed is not None
    status_url = url_for("api.scores.submission_status", submission_id=submission_id)
    response = jsonify(
        {
            "submission_id": submission_id,
            "status": record["status"],
            "status_url": status_url,
            **(_player_body(player_id) if hand_key else {"player_id": player_id}),
        }
    )
    response.headers["Location"] = status_url
    if hand_key:
        _remember_player(response, player_id)
    return response, 202


@bp.get("/submissions/<submission_id>")
def submission_status(submission_id: str) -> Response:
    """A submission's verdict; with ``?wait=S``, held until the verdict exists or S seconds."""
    query = parse_query(WaitQuery)
    wait = query.wait  # at most 30 s (WaitQuery)
    if not submissions.SUBMISSION_ID.match(submission_id):
        raise Problem(404, "Not Found", "There is no such submission.", kind="unknown-submission")
    client = get_redis()

    def read() -> dict[str, Any] | None:
        return submissions.read(client, submission_id)

    record = read()
    if record is not None and record["status"] not in submissions.FINAL and wait > 0:
        record = get_waiter().wait(
            submission_id,
            wait,
            read,
            lambda r: r is None or r["status"] in submissions.FINAL,
        )
    if record is None:
        raise Problem(404, "Not Found", "There is no such submission.", kind="unknown-submission")
    response = jsonify(submissions.public_view(submission_id, record))
    response.headers["Cache-Control"] = "no-store"
    return response
