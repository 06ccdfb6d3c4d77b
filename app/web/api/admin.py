"""Operator endpoints under ``/api/v1/admin``: every one needs the operator's bearer token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, url_for

from app.extensions import get_redis, get_registry, read_clock
from app.leaderboard import operator_tasks
from app.leaderboard.maintenance import families_of, read_beat_runs
from app.leaderboard.players import player_key, remove_player, revoke_keys
from app.leaderboard.records import (
    KeysRevoked,
    OperatorStatus,
    PlayerRemoved,
    Task,
    TaskQueued,
    VerdictCounts,
)
from app.leaderboard.schemas import Scope
from app.storage import intake, operations
from app.storage.operations import Family
from app.storage.submissions import PLAYER_ID, SUBMISSION_ID
from app.web.api.inputs import json_body, parse_body, require_body_variant, require_game
from app.web.api.openapi import documented
from app.web.auth import check_operator
from app.web.errors import Problem
from app.worker.status import live_workers, queue_depths, verdict_counts
from app.worker.tasks import prune, rebuild

bp = Blueprint("admin", __name__, url_prefix="/admin")


bp.before_request(check_operator)


def _families(scope: Scope) -> list[Family]:
    if scope.variant is not None and scope.game is None:
        raise Problem(
            422,
            "Invalid scope",
            "A variant needs its game.",
            kind="validation",
            errors={"game": ["is required with variant"]},
        )
    if scope.game is not None:
        game = require_game(scope.game)
        if scope.variant is not None:
            return [(game.slug, require_body_variant(game, scope.variant))]
        return families_of(get_registry(), game.slug)
    return families_of(get_registry())


def _accepted_task(task_id: str) -> tuple[Response, int]:
    status_url = url_for("api.admin.task_status", task_id=task_id)
    response = jsonify(TaskQueued(task_id=task_id, status_url=status_url).model_dump(mode="json"))
    response.headers["Location"] = status_url
    return response, 202


def _queue(task: Any) -> operator_tasks.Queue:
    def queue(task_id: str, families: list[list[str]]) -> None:
        task.apply_async(args=[families], task_id=task_id)

    return queue


@bp.post("/rebuild")
@documented(
    "operator",
    "Rebuild boards from their logs",
    {202: ("Queued.", TaskQueued)},
    description="All boards, a game's, or one variant's (game and variant).",
    body=Scope,
    example={"game": "guess", "variant": "10"},
    location=True,
    problems=[400, 401, 403, 404, 409, 413, 415, 422],
)
def start_rebuild() -> tuple[Response, int]:
    """Rebuild boards from their logs; 409 while another rewrite of one of them runs."""
    families = _families(parse_body(Scope, json_body(optional=True)))
    try:
        task_id = operator_tasks.start_rebuild(get_redis(), families, read_clock(), _queue(rebuild))
    except operator_tasks.Busy as busy:
        raise Problem(
            409,
            "Conflict",
            "A rebuild or prune of "
            + ", ".join(f"{g}/{v}" for g, v in busy.families)
            + " is running"
            + (f" (task {', '.join(busy.holders)})" if busy.holders else "")
            + ".",
            kind="rebuild-running",
        ) from None
    return _accepted_task(task_id)


@bp.post("/prune")
@documented(
    "operator",
    "Prune the logs past retention and compact them now",
    {202: ("Queued.", TaskQueued)},
    body=Scope,
    location=True,
    problems=[400, 401, 403, 404, 413, 415, 422],
)
def start_prune() -> tuple[Response, int]:
    """Prune the logs past retention and compact them now (boards being rebuilt are skipped)."""
    families = _families(parse_body(Scope, json_body(optional=True)))
    task_id = operator_tasks.start_prune(get_redis(), families, read_clock(), _queue(prune))
    return _accepted_task(task_id)


@bp.get("/tasks/<task_id>")
@documented(
    "operator",
    "State and progress of an operator task",
    {200: ("The task.", Task)},
    problems=[401, 403, 404],
)
def task_status(task_id: str) -> Response:
    """State and progress ``{done, total}`` of an operator task."""
    # Only service-issued ids reach a key.
    task = operations.read_task(get_redis(), task_id) if SUBMISSION_ID.match(task_id) else None
    if task is None:
        raise Problem(404, "Not Found", "There is no such task.", kind="unknown-task")
    response = jsonify(Task.model_validate(task).model_dump(mode="json", exclude_none=True))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/games/<game_slug>/players/<player_id>")
@documented(
    "operator",
    "Remove a player from every board of a game and ban them",
    {200: ("Removed and banned.", PlayerRemoved)},
    problems=[401, 403, 404],
    operation_id="remove_player",
)
def remove(game_slug: str, player_id: str) -> Response:
    """Remove a player from every board of a game and reject their later entries."""
    game = require_game(game_slug)
    if not PLAYER_ID.match(player_id):
        raise Problem(404, "Not Found", "That is not a player id.", kind="unknown-player")
    removed = remove_player(get_redis(), game, player_id, read_clock())
    answer = PlayerRemoved(game=game.slug, player_id=player_id, banned=True, rows_removed=removed)
    return jsonify(answer.model_dump(mode="json"))


@bp.delete("/players/<player_id>/sessions")
@documented(
    "operator",
    "End every key issued to a player so far",
    {200: ("Revoked.", KeysRevoked)},
    description="Keys in bodies and cookies alike are refused 403 from now on. The answer "
    "holds a key of the next generation, for the operator to hand to the rightful player; "
    "without it, the player starts again as a new one.",
    problems=[401, 403, 404],
    operation_id="revoke_sessions",
)
def revoke_sessions(player_id: str) -> Response:
    """End every key issued to a player so far (their cookies too), in every game.

    The answer carries a key of the next generation, which the operator may hand to the
    rightful player; otherwise whoever held the player's key starts again as a new player.
    """
    if not PLAYER_ID.match(player_id):
        raise Problem(404, "Not Found", "That is not a player id.", kind="unknown-player")
    generation = revoke_keys(get_redis(), player_id)
    key = player_key(current_app.config["SECRET_KEY"], player_id, generation)
    response = jsonify(KeysRevoked(player_id=player_id, player_key=key).model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/status")
@documented(
    "operator",
    "Queues, workers, beat runs and verdict counts",
    {200: ("The status.", OperatorStatus)},
    problems=[401, 403],
    operation_id="operator_status",
)
def status() -> Response:
    """Queue depths (broker messages, and submissions on the ingest streams, in total and per
    partition), live workers, the
    last run of each beat job, and verdict counts."""
    client = get_redis()
    partitions = current_app.config["INGEST_PARTITIONS"]
    backlog = intake.backlog(client, partitions)
    body = OperatorStatus(
        queues=queue_depths(current_app.extensions["celery"]),
        ingest_stream=backlog.totals(),
        ingest_partitions={str(p): counts for p, counts in backlog.partitions.items()},
        workers=live_workers(client),
        beat=read_beat_runs(client),
        submissions=VerdictCounts.model_validate(verdict_counts(client, partitions)),
    )
    response = jsonify(body.model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    return response
