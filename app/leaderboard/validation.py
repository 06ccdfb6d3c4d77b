"""The rules a score must satisfy, shared by the web (which answers 4xx) and the worker
(which never trusts the web and records a rejection instead)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.leaderboard import run_tokens
from app.leaderboard.games import Game, Registry
from app.leaderboard.run_tokens import RunToken, TokenPolicy, TokenProblem
from app.leaderboard.schemas import QueuedSubmission


@dataclass(frozen=True)
class Rejection:
    """Why a submission cannot be ranked: a stable code, a sentence, and per-field messages."""

    code: str
    detail: str
    errors: dict[str, list[str]] = field(default_factory=dict)


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Pydantic's errors as ``{field: [message, ...]}`` (``body`` for the whole document)."""
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
        # A union reports once per branch; the field name is what a client needs.
        name = loc[0] if loc else "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known field"
        errors.setdefault(name, [])
        if message not in errors[name]:
            errors[name].append(message)
    return errors


def variant_errors(game: Game, variant: str) -> dict[str, list[str]]:
    """``{"variant": [why]}`` unless ``variant`` is one of the game's, else nothing."""
    if variant in game.variants:
        return {}
    allowed = ", ".join(game.variants)
    return {"variant": [f"is not a variant of {game.slug} (allowed: {allowed})"]}


def check_rules(
    game: Game, variant: str, score: float, duration_ms: int | None
) -> dict[str, list[str]]:
    """The game's rules for one score: variant, bounds, integrality and plausible speed."""
    errors = variant_errors(game, variant)
    if errors:
        return errors
    rules = game.variants[variant]
    if game.integer and score != int(score):
        errors.setdefault("score", []).append("must be a whole number")
    if not rules.score_min <= score <= rules.score_max:
        errors.setdefault("score", []).append(
            f"must be between {rules.score_min:g} and {rules.score_max:g} for variant {variant}"
        )
    if duration_ms is None:
        if game.duration_required:
            errors["duration_ms"] = [f"is required for {game.slug}"]
    elif "score" not in errors and duration_ms < score * game.min_ms_per_point:
        errors["duration_ms"] = [
            f"{duration_ms} ms is faster than a person can play a score of {score:g}"
            f" (at least {score * game.min_ms_per_point:g} ms)"
        ]
    return errors


def metadata_text(metadata: Mapping[str, Any]) -> str:
    """The text an entry's metadata is kept as: compact JSON, UTF-8 as sent (ValueError for
    what JSON cannot hold, such as NaN)."""
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


#: How deep a metadata object may nest (objects and arrays within it).
METADATA_DEPTH = 16


def _depth(value: Any) -> int:
    """How many objects and arrays nest at the deepest point of ``value`` (without recursion:
    a body parser accepts deeper documents than Python's stack)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is not None:
            deepest = max(deepest, depth)
            level.extend((child, depth + 1) for child in children)
    return deepest


def check_extras(
    game: Game, subscore: int | None, metadata: Mapping[str, Any] | None
) -> dict[str, list[str]]:
    """What is wrong with the subscore and metadata an entry carries, for this game."""
    errors: dict[str, list[str]] = {}
    if subscore is not None and not game.sub_sign:
        errors["subscore"] = [f"{game.slug} has no subscore"]
    if metadata is not None:
        if not game.metadata_max_bytes:
            errors["metadata"] = [f"{game.slug} takes no metadata"]
        elif _depth(metadata) > METADATA_DEPTH:
            errors["metadata"] = [f"must not nest more than {METADATA_DEPTH} levels deep"]
        else:
            try:
                size = len(metadata_text(metadata).encode())
            except ValueError:
                errors["metadata"] = ["must hold only what JSON can (no NaN or Infinity)"]
            else:
                if size > game.metadata_max_bytes:
                    errors["metadata"] = [
                        f"is {size} bytes as compact JSON, more than the"
                        f" {game.metadata_max_bytes} {game.slug} takes"
                    ]
    return errors


def check_claim(
    game: Game, variant: str, score: float | None, duration_ms: int | None, token: str | None
) -> dict[str, list[str]]:
    """What is wrong with what a submission claims: the rules of a game whose scores are
    claimed, or, for a game with a verifier, any claim at all (its run proves the score)."""
    if not game.verified:
        if score is None:
            return {"score": ["is required"]}
        return check_rules(game, variant, score, duration_ms)
    errors = variant_errors(game, variant)
    computed = f"is computed by the service for {game.slug}: send only the run's token"
    if score is not None:
        errors["score"] = [computed]
    if duration_ms is not None:
        errors["duration_ms"] = [computed]
    if token is None:
        errors["token"] = [f"is required: a {game.slug} run is proven by its token"]
    return errors


def check_run(
    policy: TokenPolicy | None,
    token: str | None,
    *,
    game: str,
    variant: str,
    player_id: str,
    received_at: int,
    duration_ms: int | None,
) -> RunToken | Rejection | None:
    """The run a score's token proves, why it proves nothing, or None (no token, none needed).

    Whether the token was used before is for the worker to find out, as it applies the entry.
    """
    if policy is None:
        return None
    if token is None:
        if not policy.required:
            return None
        detail = "a run token is required: start each run with POST /games/{game}/sessions"
        return Rejection("token_missing", detail, {"token": ["is required"]})
    checked = run_tokens.check(
        policy.secret,
        token,
        game=game,
        variant=variant,
        player_id=player_id,
        received_at=received_at,
        duration_ms=duration_ms,
        max_age_s=policy.max_age_s,
    )
    if isinstance(checked, TokenProblem):
        return Rejection(checked.code, checked.detail, {"token": [checked.detail]})
    return checked


def validate_queued(
    registry: Registry, payload: Any, tokens: TokenPolicy | None = None
) -> tuple[QueuedSubmission, Game, RunToken | None] | Rejection:
    """Validate a message from the queue from scratch: shape, game, rules and run token."""
    if not isinstance(payload, dict):
        return Rejection("invalid", "the message is not an object")
    try:
        sub = QueuedSubmission.model_validate(payload)
    except ValidationError as exc:
        return Rejection(
            "invalid", "the submission does not have the expected shape", field_errors(exc)
        )
    game = registry.get(sub.game)
    if game is None:
        return Rejection("unknown_game", f"there is no game called {sub.game!r}")
    if game.verified:
        # The score is the web's replay of the run, which the worker replays again.
        errors = variant_errors(game, sub.variant)
        if sub.token is None:
            errors["token"] = [f"is required: a {game.slug} run is proven by its token"]
    else:
        errors = check_rules(game, sub.variant, sub.score, sub.duration_ms)
    errors.update(check_extras(game, sub.subscore, sub.metadata))
    if errors:
        code = (
            "unknown_variant"
            if "variant" in errors
            else "token_missing"
            if "token" in errors
            else "invalid"
            if "subscore" in errors or "metadata" in errors
            else "implausible"
        )
        return Rejection(code, "the score breaks the rules of the game", errors)
    run = check_run(
        tokens,
        sub.token,
        game=game.slug,
        variant=sub.variant,
        player_id=sub.player_id,
        received_at=sub.received_at,
        # A verified run's play time was measured by the service, from the run's own record:
        # held against the token's age on another host's clock, skew alone could refuse it.
        duration_ms=None if game.verified else sub.duration_ms,
    )
    if isinstance(run, Rejection):
        return run
    return sub, game, run
