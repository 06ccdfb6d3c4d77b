"""The OpenAPI 3.1 document of the API, served at ``/api/v1/openapi.json``, built from the
routes themselves.

Each view says what it takes and answers with :func:`documented` (the pydantic models it
validates with and answers with); :func:`build_document` walks the app's URL map, so a route is
in the document exactly when it is declared, with its own path, methods and parameters. Which
reads answer JSONP and which operations need the operator's token follows from the blueprints'
own hooks (:func:`app.web.api.jsonp.check_callback`, :func:`app.web.auth.check_operator`).
``tests/unit/test_schemathesis.py`` checks the app's answers against the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.leaderboard.games import SLUG, VARIANT
from app.leaderboard.schemas import PLAYER_ID_PATTERN, SUBMISSION_ID_PATTERN
from app.web.api.jsonp import check_callback
from app.web.auth import check_operator

bp = Blueprint("openapi", __name__)

JSON = "application/json"
PROBLEM = "application/problem+json"
JAVASCRIPT = "application/javascript"

_SCHEMAS = "#/components/schemas/"

V = TypeVar("V", bound=Callable[..., Any])


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + name}


class Problem(BaseModel):
    """An error (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI reference naming the problem.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: dict[str, list[str]] | None = Field(
        None, description="Messages per field or parameter."
    )


#: An answer: a model of its JSON body, or the media types of one that is not a model.
Body = type[BaseModel] | dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """What a view declares about itself for the document."""

    tag: str
    summary: str
    answers: Mapping[int, tuple[str, Body]]
    description: str = ""
    body: type[BaseModel] | None = None
    body_required: bool = False
    example: dict[str, Any] | None = None
    query: type[BaseModel] | None = None
    headers: tuple[dict[str, Any], ...] = ()
    problems: Mapping[int, str | None] = field(default_factory=dict)
    limited: bool = True  # rate limited: may answer 429, and 503 when Redis is down
    location: bool = False  # a 2xx with a Location header
    operator: bool = False  # the view itself asks for the operator token
    operation_id: str | None = None


def documented(
    tag: str,
    summary: str,
    answers: Mapping[int, tuple[str, Body]],
    *,
    problems: Iterable[int] | Mapping[int, str | None] = (),
    **details: Any,
) -> Callable[[V], V]:
    """Declare a view's operation (see :class:`Operation`); its route comes from the URL map."""
    if not isinstance(problems, Mapping):
        problems = dict.fromkeys(problems)
    operation = Operation(tag, summary, answers, problems=problems, **details)

    def declare(view: V) -> V:
        view.openapi = operation  # type: ignore[attr-defined]
        return view

    return declare


#: What the query parameters mean (the models say what they may be).
_PARAMETER_TEXT = {
    "window": "alltime, daily, weekly, monthly or season: one of the game's windows.",
    "period": "A past period of the window: a day (2036-11-19), an ISO week (2036-W47), a "
    "month (2036-11) or a season (S3); the current one by default.",
    "limit": "Rows per page.",
    "offset": "Rows to skip.",
    "around": "Neighbours on each side of the player.",
    "wait": "Seconds to hold the answer until the verdict exists (long-poll).",
}

_ERROR_TEXT = {
    400: "Malformed JSON, or a query parameter or callback that is not valid.",
    401: "No operator token.",
    403: "Forbidden: a wrong operator token, a player_id without its player_key, or a "
    "revoked player_key.",
    404: "Unknown game, variant, player, submission or task.",
    409: "A rebuild or prune of one of these boards is running.",
    413: "The body is larger than 16 KiB.",
    415: "The body is not application/json.",
    422: "A field is missing or breaks the game's rules, or a submission_id is reused.",
    429: "Too many requests from this address or player; retry after Retry-After seconds.",
    503: "Redis (the store, where the rate limits count too) or the broker is unreachable; "
    "nothing was stored.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}

# The same regular expression as app.web.api.jsonp.CALLBACK, spelled for JSON Schema.
_IDENT = "[A-Za-z_$][A-Za-z0-9_$]*"
CALLBACK_PARAMETER = {
    "name": "callback",
    "in": "query",
    "required": False,
    "description": "JSONP: answer as a call of this JavaScript function (application/javascript), "
    "errors included.",
    "schema": {"type": "string", "maxLength": 64, "pattern": f"^{_IDENT}(\\.{_IDENT})*$"},
}


_JSONP_MEDIA = {
    "schema": {
        "type": "string",
        "description": "With callback: the same answer as a JavaScript call, /**/cb({...}); an "
        "error is answered so too, with 200 (a browser runs no script answered with an error "
        "status) and the Problem, its status inside, as the argument.",
    }
}


#: The path parameters of the routes, by name.
_PATH_PARAMETERS: dict[str, tuple[str, str]] = {
    "game_slug": (SLUG.pattern, "A game's slug (see /api/v1/games)."),
    "variant": (VARIANT.pattern, "A variant of the game."),
    "player_id": (PLAYER_ID_PATTERN, "A player's id."),
    "submission_id": (SUBMISSION_ID_PATTERN, "A submission's id."),
    "task_id": (SUBMISSION_ID_PATTERN, "An operator task's id."),
    "run_id": (SUBMISSION_ID_PATTERN, "A run's id, from the session that started it."),
}

#: Request headers an operation may declare.
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same as submission_id: the same key twice is one entry.",
    "schema": {"type": "string", "pattern": SUBMISSION_ID_PATTERN},
}


def _path_parameter(name: str, examples: Mapping[str, list[str]]) -> dict[str, Any]:
    pattern, description = _PATH_PARAMETERS[name]
    parameter: dict[str, Any] = {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }
    if examples.get(name):
        parameter["examples"] = {value: {"value": value} for value in examples[name]}
    return parameter


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema from a model field's: a parameter is never null."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    branches = schema.pop("anyOf", None)
    if branches is not None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def query_parameters(model: type[Any]) -> list[dict[str, Any]]:
    """The query parameters a query model validates, one per field."""
    schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: a query parameter cannot be a nested model")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required}
        description = model.model_fields[name].description or _PARAMETER_TEXT.get(name)
        if description:
            parameter["description"] = description
        parameter["schema"] = _strip_null(prop)
        parameters.append(parameter)
    return parameters


def _problems(statuses: Iterable[int], *, limited: bool = True) -> dict[str, Any]:
    """Problem answers of an operation; a rate-limited one (all but the probes) adds 429, and
    503 for when Redis, where the limits count, is down."""
    responses = {}
    for status in sorted({*statuses, *((429, 503) if limited else ())}):
        response: dict[str, Any] = {
            "description": _ERROR_TEXT[status],
            "content": {PROBLEM: {"schema": _ref("Problem")}},
        }
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        responses[str(status)] = response
    return responses


_LOCATION = {
    "Location": {
        "description": "Where to follow it (the same as status_url).",
        "schema": {"type": "string"},
        "required": True,
    }
}


def _answer(status: int, description: str, body: Body, op: Operation, jsonp: bool) -> Any:
    if isinstance(body, dict):
        return {"description": description, "content": body}
    content: dict[str, Any] = {JSON: {"schema": _ref(body.__name__)}}
    if jsonp:
        content[JAVASCRIPT] = _JSONP_MEDIA
    response: dict[str, Any] = {"description": description, "content": content}
    if op.location and 200 <= status < 300:
        response["headers"] = _LOCATION
    return response


def _responses(op: Operation, jsonp: bool) -> dict[str, Any]:
    responses = {
        str(status): _answer(status, description, body, op, jsonp)
        for status, (description, body) in op.answers.items()
    }
    for status, problem in _problems(op.problems, limited=op.limited).items():
        if op.problems.get(int(status)):
            problem = {**problem, "description": op.problems[int(status)]}
        responses[status] = problem
    return responses


def _operation(
    app: Flask, endpoint: str, method: str, arguments: Iterable[str], op: Operation, examples: Any
) -> dict[str, Any]:
    blueprint = endpoint.rpartition(".")[0]
    hooks = app.before_request_funcs.get(blueprint, ()) if blueprint else ()
    jsonp = method == "GET" and check_callback in hooks
    parameters = [_path_parameter(name, examples) for name in arguments]
    parameters += list(op.headers)
    if op.query is not None:
        parameters += query_parameters(op.query)
    if jsonp:
        parameters.append(CALLBACK_PARAMETER)
    operation: dict[str, Any] = {
        "tags": [op.tag],
        "operationId": op.operation_id or endpoint.rpartition(".")[2],
        "summary": op.summary,
    }
    if op.description:
        operation["description"] = op.description
    if op.operator or check_operator in hooks:
        operation["security"] = [{"operatorToken": []}]
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": _ref(op.body.__name__)}
        if op.example is not None:
            media["example"] = op.example
        operation["requestBody"] = {"required": op.body_required, "content": {JSON: media}}
    operation["responses"] = _responses(op, jsonp)
    return operation


def _models(op: Operation) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (b, "serialization") for _, b in op.answers.values() if not isinstance(b, dict)
    ]
    if op.body is not None:
        models.append((op.body, "validation"))
    if any(op.problems) or op.limited:
        models.append((Problem, "serialization"))
    return models


def _package_version() -> str:
    try:
        return version("hiscore")
    except PackageNotFoundError:
        return "0"


_ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>")


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes of ``app`` that declare an operation."""
    registry = app.extensions["hiscore.games"]
    examples = {
        "game_slug": [game.slug for game in registry],
        "variant": list(dict.fromkeys(v for game in registry for v in game.variants)),
    }
    paths: dict[str, dict[str, Any]] = {}
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if op is None:
            continue
        path = _ARGUMENT.sub(r"{\1}", rule.rule)
        arguments = _ARGUMENT.findall(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = _operation(app, rule.endpoint, method, arguments, op, examples)
            paths.setdefault(path, {})[method.lower()] = operation
        models.update(dict.fromkeys(_models(op)))
    _, defs = models_json_schema(list(models), ref_template=_SCHEMAS + "{model}")
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "hiscore",
            "version": _package_version(),
            "summary": "Leaderboards for web games.",
            "description": "Scores are taken at once (202) and ranked by workers; boards are "
            "exact, one row per player, ties ranked by who got there first. Errors are "
            "application/problem+json. The GET reads under /games and /submissions also "
            "answer JSONP (callback), their errors as the problem passed to the callback "
            "with 200, and send CORS headers for the configured origins.",
        },
        "tags": [
            {"name": "scores", "description": "Start a run, submit a score, follow it."},
            {"name": "boards", "description": "Games, boards, standings and stats."},
            {"name": "operator", "description": "Operator endpoints (bearer token)."},
            {"name": "meta", "description": "Health, readiness, metrics, this document."},
        ],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "operatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "OPERATOR_TOKEN of the deployment.",
                }
            },
        },
    }


_CACHE = "hiscore.openapi"


def document_of(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``, built once per app."""
    document = app.extensions.get(_CACHE)
    if document is None:
        document = app.extensions[_CACHE] = build_document(app)
    return document


@bp.get("/openapi.json")
@documented(
    "meta",
    "This document",
    {200: ("The OpenAPI document.", {JSON: {"schema": {"type": "object"}}})},
    operation_id="openapi_document",
)
def openapi_json() -> Response:
    """The OpenAPI document of this API."""
    response = jsonify(document_of(current_app))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
