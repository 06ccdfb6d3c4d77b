"""Players send results here: start a run, submit a score, follow its verdict."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from werkzeug.http import dump_cookie

from app.extensions import (
    get_clock,
    get_redis,
    get_replication,
    get_token_policy,
    get_waiter,
    read_clock,
)
from app.leaderboard import scoring
from app.leaderboard.players import (
    PlayerProof,
    honoured_generation,
    player_key,
    read_key,
    rotate_key,
)
from app.leaderboard.records import ScoreQueued, Session, Submission
from app.leaderboard.schemas import ScoreIn, SessionIn, WaitQuery
from app.leaderboard.validation import check_claim, check_extras
from app.log_context import current_request_id
from app.storage import submissions
from app.storage.connection import is_cluster
from app.web import rate_limits
from app.web.api.inputs import (
    json_body,
    parse_body,
    parse_query,
    require_body_variant,
    require_game,
)
from app.web.api.jsonp import enable_jsonp
from app.web.api.openapi import IDEMPOTENCY_KEY, documented
from app.web.errors import Problem, validation_problem
from app.worker.tasks import request_drain

bp = Blueprint("scores", __name__)
enable_jsonp(bp)  # the GET endpoints here are the API's reads


def _proven_player(player_id: str | None, player_key: str | None) -> str | None:
    """The player a request proves it is (by a key in the body or the cookie), or None.

    Naming a player without proof is refused: player ids are public, on every board. Whether
    the key's generation is still honoured is asked of Redis where the request goes there
    anyway (:func:`_confirm_key`, and the script that enqueues a score).
    """
    secret = current_app.config["SECRET_KEY"]
    if player_key is not None:
        proof = read_key(secret, player_key)
        if proof is None or player_id not in (None, proof.player_id):
            raise Problem(
                403,
                "Forbidden",
                "This player_key was not issued for this player.",
                kind="player-key",
                errors={"player_key": ["is not valid"]},
            )
        return _shown(proof, by_cookie=False)
    cookie = request.cookies.get(current_app.config["PLAYER_COOKIE"])
    proof = read_key(secret, cookie) if cookie else None
    if player_id is not None and (proof is None or player_id != proof.player_id):
        raise Problem(
            403,
            "Forbidden",
            "A player_id needs the player_key that came with it (or the player's cookie).",
            kind="player-key",
            errors={"player_key": ["is required with player_id"]},
        )
    return _shown(proof, by_cookie=True) if proof else None


def _shown(proof: PlayerProof, by_cookie: bool) -> str:
    # Kept for the request: the generation to check, and to sign the key handed back with.
    g.key_generation = proof.generation
    g.key_by_cookie = by_cookie
    return proof.player_id


def _revoked() -> Problem:
    headers = {}
    if g.get("key_by_cookie"):
        # Drop the cookie, so that the page's next session starts a new player.
        config = current_app.config
        headers["Set-Cookie"] = dump_cookie(
            config["PLAYER_COOKIE"],
            "",
            max_age=0,
            httponly=True,
            samesite="Lax",
            secure=config["PLAYER_COOKIE_SECURE"],
        )
    return Problem(
        403,
        "Forbidden",
        "This player_key was revoked or replaced by a newer one.",
        kind="player-key",
        errors={"player_key": ["was revoked"]},
        headers=headers,
    )


def _confirm_key(player_id: str, rotate: bool) -> None:
    """Refuse a revoked key (403); with ``rotate``, replace it by the next generation."""
    client = get_redis()
    shown = g.key_generation
    if rotate:
        generation = rotate_key(client, PlayerProof(player_id, shown))
    else:
        generation = shown if honoured_generation(client, player_id) <= shown else None
    if generation is None:
        raise _revoked()
    g.key_generation = generation


def _key_of(player_id: str) -> str:
    # Signed once per request: the body and the cookie carry the same key.
    cached = g.get("player_keys") or {}
    if player_id not in cached:
        generation = g.get("key_generation", 0)  # a new player's key is of generation 0
        cached[player_id] = player_key(current_app.config["SECRET_KEY"], player_id, generation)
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
@documented(
    "scores",
    "Start a run",
    {201: ("The run is started.", Session)},
    description="Issues a player id (or confirms the one the key or cookie proves) and, where "
    "the game uses them, a signed single-use run token. The player's key is also set as an "
    "HttpOnly cookie.",
    body=SessionIn,
    problems=[400, 403, 404, 413, 415, 422],
)
def start_session(game_slug: str) -> tuple[Response, int]:
    """Start a run: issue (or confirm) the player's id and, for a variant, a run token."""
    game = require_game(game_slug)
    body = parse_body(SessionIn, json_body(optional=True, typed=True))
    if body.variant is not None:
        require_body_variant(game, body.variant)
    player_id = _proven_player(body.player_id, body.player_key)
    if player_id is None:
        player_id = submissions.new_id()
    else:
        _confirm_key(player_id, body.rotate)
    session = scoring.start_session(
        get_redis(),
        game,
        body.variant,
        player_id,
        _key_of(player_id),
        get_token_policy(),
        read_clock(),
    )
    response = jsonify(session.model_dump(mode="json", exclude_none=True))
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
@documented(
    "scores",
    "Submit a finished game",
    {202: ("Taken for checking.", ScoreQueued)},
    description="Checks the envelope and the game's rules and answers 202 at once; a worker "
    "checks it again and ranks it. The same submission_id (or Idempotency-Key) twice is one "
    "entry.",
    body=ScoreIn,
    body_required=True,
    example={"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000},
    headers=(IDEMPOTENCY_KEY,),
    location=True,
    problems=[400, 403, 404, 413, 415, 422],
)
def submit_score(game_slug: str) -> tuple[Response, int]:
    """Accept a finished game for checking and ranking; answer 202 with where to follow it."""
    game = require_game(game_slug)
    body = parse_body(ScoreIn, json_body())
    require_body_variant(game, body.variant)
    errors = check_claim(game, body.variant, body.score, body.duration_ms, body.token)
    errors.update(check_extras(game, body.subscore, body.metadata))
    if errors:
        raise validation_problem("The score breaks the rules of the game.", errors)
    submission_id = _submission_id(body)
    claimed = _proven_player(body.player_id, body.player_key)
    try:
        client = get_redis()
        taken = scoring.submit_score(
            client,
            game,
            body,
            submission_id=submission_id,
            claimed=claimed,
            key_generation=g.get("key_generation", 0),
            tokens=get_token_policy(),
            now_ms=read_clock(),
            idempotency_s=current_app.config["IDEMPOTENCY_WINDOW_SECONDS"],
            partitions=current_app.config["INGEST_PARTITIONS"],
            request_id=current_request_id(),
            request_drain=request_drain,
            counters=rate_limits.take_pending(),
            report_limits=rate_limits.counted,
            # A cluster's scripts keep to one slot: the limits' and the partition's are two.
            split=is_cluster(client),
            replication=get_replication(),
        )
    except scoring.RateLimited as limited:
        assert limited.limits.breached is not None
        raise rate_limits.refusal(limited.limits.breached) from None
    except scoring.TokenRefused as refused:
        run = refused.rejection
        raise validation_problem(
            f"The run token does not vouch for this score: {run.detail}.", run.errors
        ) from None
    except scoring.KeyRevoked:
        raise _revoked() from None
    except scoring.SubmissionIdReused:
        raise Problem(
            422,
            "Submission id reused",
            "This submission_id was already used for a different submission.",
            kind="submission-id-reused",
            errors={"submission_id": ["was already used for a different submission"]},
        ) from None
    status_url = url_for("api.scores.submission_status", submission_id=submission_id)
    answer = ScoreQueued(
        submission_id=submission_id,
        status=taken.record.status,
        status_url=status_url,
        player_id=taken.player_id,
        player_key=_key_of(taken.player_id) if taken.hand_key else None,
    )
    response = jsonify(answer.model_dump(mode="json", exclude_none=True))
    response.headers["Location"] = status_url
    if taken.hand_key:
        _remember_player(response, taken.player_id)
    return response, 202


@bp.get("/submissions/<submission_id>")
@documented(
    "scores",
    "A submission's verdict (long-poll with wait)",
    {200: ("The submission's status.", Submission)},
    query=WaitQuery,
    problems=[400, 404],
)
def submission_status(submission_id: str) -> Response:
    """A submission's verdict; with ``?wait=S``, held until the verdict exists or S seconds."""
    query = parse_query(WaitQuery)  # wait: at most 30 s
    answer = None
    if submissions.SUBMISSION_ID.match(submission_id):
        answer = scoring.follow_submission(
            get_redis(),
            get_waiter(),
            submission_id,
            query.wait,
            get_clock(),
            current_app.config["IDEMPOTENCY_WINDOW_SECONDS"],
            current_app.config["INGEST_PARTITIONS"],
        )
    if answer is None:
        raise Problem(404, "Not Found", "There is no such submission.", kind="unknown-submission")
    response = jsonify(answer.model_dump(mode="json", exclude_none=True))
    response.headers["Cache-Control"] = "no-store"
    return response
