"""The rules a score must satisfy, shared by the web (which answers 4xx) and the worker
(which never trusts the web and records a rejection instead)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.games import Game, Registry
from app.schemas import QueuedSubmission


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


def check_rules(
    game: Game, variant: str, score: float, duration_ms: int | None
) -> dict[str, list[str]]:
    """The game's rules for one score: variant, bounds, integrality and plausible speed."""
    errors: dict[str, list[str]] = {}
    rules = game.variants.get(variant)
    if rules is None:
        allowed = ", ".join(game.variants)
        errors["variant"] = [f"is not a variant of {game.slug} (allowed: {allowed})"]
        return errors
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


def validate_queued(registry: Registry, payload: Any) -> tuple[QueuedSubmission, Game] | Rejection:
    """Validate a message from the queue from scratch: shape, game and rules."""
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
    errors = check_rules(game, sub.variant, sub.score, sub.duration_ms)
    if errors:
        code = "unknown_variant" if "variant" in errors else "implausible"
        return Rejection(code, "the score breaks the rules of the game", errors)
    return sub, game
