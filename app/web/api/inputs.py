"""Reading what a request sent, turning every mistake into a problem+json answer."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from flask import g, request
from pydantic import BaseModel, ValidationError

from app.extensions import get_registry
from app.leaderboard.games import Game
from app.leaderboard.validation import field_errors, variant_errors
from app.leaderboard.windows import normalize_period
from app.web.errors import Problem, validation_problem

M = TypeVar("M", bound=BaseModel)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses some JSON the standard library reads (a number too large for a double, a
    # lone surrogate): those get the answer they always got, a 422 naming the field, say.
    try:
        return json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        return Problem(
            400, "Malformed JSON", "The body is nested too deeply.", kind="malformed-json"
        )
    except ValueError as exc:
        return Problem(
            400, "Malformed JSON", f"The body is not valid JSON: {exc}", kind="malformed-json"
        )


def read_json() -> Any:
    """The request's JSON document, parsed once per request (the rate limits read the player's
    key from it before the view does); raises the Problem of a body that is not JSON."""
    if "json_body" not in g:
        g.json_body = _parse(request.get_data(cache=True))
    if isinstance(g.json_body, Problem):
        raise g.json_body
    return g.json_body


def json_body(*, optional: bool = False, typed: bool = False) -> Any:
    """The request's JSON document (415 if not JSON, 400 if malformed); with ``optional`` an
    empty body reads as ``{}``, and with ``typed`` only when it is still sent as JSON."""
    data = request.get_data(cache=True)
    # A cross-site form can post an empty body of its own type without a CORS preflight;
    # it cannot send application/json.
    if optional and not data and not (typed and not request.is_json):
        return {}
    if not request.is_json:
        raise Problem(
            415,
            "Unsupported Media Type",
            "Send the body as application/json.",
            kind="unsupported-media-type",
        )
    return read_json()


def parse_body(model: type[M], data: Any) -> M:
    """Validate a JSON document against ``model`` (422 with per-field errors)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(
            "The body has fields that are missing or wrong.", field_errors(exc)
        ) from None


def parse_read_body(model: type[M], data: Any) -> M:
    """Validate the JSON document of a read that takes a body (a lookup) against ``model``:
    400 with per-field errors, as a query's."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(
            400,
            "Invalid query",
            "Some fields of the body are wrong.",
            kind="invalid-query",
            errors=field_errors(exc),
        ) from None


def parse_query(model: type[M]) -> M:
    """Validate the query string against ``model`` (400 with per-parameter errors)."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise Problem(
            400,
            "Invalid query",
            "Some query parameters are wrong.",
            kind="invalid-query",
            errors=field_errors(exc),
        ) from None


def require_game(slug: str) -> Game:
    """The game called ``slug`` (404 otherwise)."""
    game = get_registry().get(slug)
    if game is None:
        raise Problem(404, "Not Found", f"There is no game called {slug!r}.", kind="unknown-game")
    return game


def require_variant(game: Game, variant: str) -> str:
    """The registry's own spelling of ``variant`` (404 otherwise)."""
    if variant not in game.variants:
        raise Problem(
            404,
            "Not Found",
            f"{game.slug} has no variant {variant!r} (it has {', '.join(game.variants)}).",
            kind="unknown-variant",
        )
    return game.variants[variant].name


def require_body_variant(game: Game, variant: str) -> str:
    """The registry's spelling of a variant a body names (422 otherwise, on every endpoint)."""
    errors = variant_errors(game, variant)
    if errors:
        raise validation_problem("The variant is not one of the game's.", errors)
    return game.variants[variant].name


def require_window(game: Game, window: str) -> str:
    """A window the game has (400 otherwise)."""
    if window not in game.windows:
        why = f"{game.slug} has no {window} boards (it has {', '.join(game.windows)})"
        raise Problem(
            400, "Invalid query", why + ".", kind="invalid-query", errors={"window": [why]}
        )
    return window


def require_period(game: Game, window: str, period: str | None, default: str) -> str:
    """A period label of ``window`` (``default`` when absent; 400 if malformed)."""
    if period is None:
        return default
    try:
        return normalize_period(window, period, game.season)
    except ValueError as exc:
        raise Problem(
            400, "Invalid query", str(exc), kind="invalid-query", errors={"period": [str(exc)]}
        ) from None
