"""The OpenAPI 3.1 document of the API, served at ``/api/v1/openapi.json``.

What clients send is described by the very pydantic models the endpoints validate with (request
bodies from ``model_json_schema()``, query parameters from the fields of the query models), so
that part of the document cannot drift from validation. The answers, which the views build as
plain dicts, are described by the JSON Schemas of :data:`ANSWERS`. ``tests/unit/test_openapi.py``
fails when an endpoint is missing from the document, and ``tests/unit/test_schemathesis.py``
checks the app's answers against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from app.leaderboard.games import SLUG, VARIANT, Registry
from app.leaderboard.schemas import (
    PLAYER_ID_PATTERN,
    SUBMISSION_ID_PATTERN,
    BoardQuery,
    GuessIn,
    GuessOut,
    Scope,
    ScoreIn,
    SessionIn,
    StandingQuery,
    StatsQuery,
    WaitQuery,
)
from app.leaderboard.windows import WINDOWS

bp = Blueprint("openapi", __name__)

JSON = "application/json"
PROBLEM = "application/problem+json"
JAVASCRIPT = "application/javascript"

_SCHEMAS = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + name}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, in ms."}
_EPOCH_MS = {"type": "integer", "minimum": 0, "description": "Epoch milliseconds."}
_NUMBER = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}
_WINDOW = {"type": "string", "enum": list(WINDOWS)}
_ORDER = {"type": "string", "enum": ["lower", "higher"], "description": "Which scores rank first."}


def _object(
    properties: dict[str, Any], required: Iterable[str] = (), description: str = ""
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "description": "Messages per field or parameter.",
}
_BOARD_OF = {"game": {"type": "string"}, "variant": {"type": "string"}, "window": _WINDOW}
_ROW = {
    "rank": {"type": "integer", "minimum": 1},
    "player_id": {"type": "string"},
    "name": {"type": "string"},
    "score": _NUMBER,
    "achieved_at": _TIME,
}

#: JSON Schemas of what the API answers (the views build these bodies as dicts).
ANSWERS: dict[str, dict[str, Any]] = {
    "Problem": _object(
        {
            "type": {"type": "string", "description": "A URI reference naming the problem."},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": _FIELD_ERRORS,
        },
        ["type", "title", "status", "detail"],
        "An error (RFC 9457).",
    ),
    # The one answer built from its model, as the generated document will build them all.
    "GuessOut": GuessOut.model_json_schema(),
    "Session": _object(
        {
            "game": {"type": "string"},
            "player_id": {"type": "string", "pattern": PLAYER_ID_PATTERN},
            "player_key": {
                "type": "string",
                "description": "Proves player_id in later requests; keep it secret.",
            },
            "variant": {"type": "string", "description": "The variant of the run, if sent."},
            "token": {
                "type": "string",
                "description": "A signed, single-use run token to send with the score (when a "
                "variant was sent).",
            },
            "token_expires_at": {**_TIME, "description": "When the run token expires."},
            "run_id": {
                "type": "string",
                "description": "The run the service started, for a game with a verifier: send "
                "its guesses to /runs/{run_id}/guesses with the token.",
            },
        },
        ["game", "player_id"],
        "A started run: the player (new, or the one the key or cookie proved) and, for a "
        "variant, its run token.",
    ),
    "ScoreQueued": _object(
        {
            "submission_id": {"type": "string", "pattern": SUBMISSION_ID_PATTERN},
            "status": {
                "type": "string",
                "enum": ["queued", "accepted", "rejected"],
                "description": "queued, or the verdict when this repeats a settled submission.",
            },
            "status_url": {"type": "string", "format": "uri-reference"},
            "player_id": {"type": "string", "pattern": PLAYER_ID_PATTERN},
            "player_key": {
                "type": "string",
                "description": "Only for a new player or one the request proved.",
            },
        },
        ["submission_id", "status", "status_url", "player_id"],
        "A score taken for checking; follow status_url for the verdict.",
    ),
    "Submission": _object(
        {
            "submission_id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "accepted", "rejected"]},
            "reason": {"type": "string", "description": "Why it was rejected."},
            "code": {"type": "string", "description": "The rejection's reason code."},
            "errors": _FIELD_ERRORS,
            "board": _object(_BOARD_OF, ["game", "variant", "window"]),
            "rank": {"type": "integer", "minimum": 1, "description": "All-time rank."},
            "ranks": {
                "type": "object",
                "properties": {w: _nullable({"type": "integer", "minimum": 1}) for w in WINDOWS},
                "description": "Rank per window (null: not ranked there).",
            },
            "personal_best": {"type": "boolean"},
            "score": _NUMBER,
            "achieved_at": _TIME,
            "player_id": {"type": "string"},
        },
        ["submission_id", "status"],
        "A submission's status, with the verdict once a worker has settled it.",
    ),
    "Game": _object(
        {
            "slug": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "order": _ORDER,
            "integer_scores": {"type": "boolean"},
            "windows": {"type": "array", "items": _WINDOW},
            "variants": {
                "type": "array",
                "items": _object(
                    {
                        "name": {"type": "string"},
                        "score_min": _NUMBER,
                        "score_max": _NUMBER,
                        "board_url": {"type": "string", "format": "uri-reference"},
                    },
                    ["name", "score_min", "score_max", "board_url"],
                ),
            },
        },
        ["slug", "title", "order", "integer_scores", "windows", "variants"],
    ),
    "GameList": _object({"games": {"type": "array", "items": _ref("Game")}}, ["games"]),
    "BoardRow": _object(_ROW, list(_ROW)),
    "BoardPage": _object(
        {
            **_BOARD_OF,
            "period": {"type": "string", "description": "all, 2036-11-19 or 2036-W47."},
            "order": _ORDER,
            "total": _COUNT,
            "offset": _COUNT,
            "limit": {"type": "integer", "minimum": 1},
            "updated_at": _nullable(_TIME),
            "entries": {"type": "array", "items": _ref("BoardRow")},
        },
        ["game", "variant", "window", "period", "order", "total", "offset", "limit"]
        + ["updated_at", "entries"],
        "A page of a board, best first.",
    ),
    "Standing": _object(
        {
            **_BOARD_OF,
            "period": {"type": "string"},
            "total": _COUNT,
            "updated_at": _nullable(_TIME),
            **_ROW,
            "neighbours": {
                "type": "array",
                "items": _ref("BoardRow"),
                "description": "Rows around the player's, the player's included.",
            },
        },
        ["game", "variant", "window", "period", "total", "updated_at", *_ROW, "neighbours"],
        "A player's row on a board, with neighbours on each side.",
    ),
    "Stats": _object(
        {
            **_BOARD_OF,
            "period": {"type": "string"},
            "count": _COUNT,
            "players": _COUNT,
            "best": _nullable(_NUMBER),
            "mean": _nullable(_NUMBER),
            "median": _nullable(_NUMBER),
            "p90": _nullable(_NUMBER),
            "histogram": {
                "type": "array",
                "items": _object(
                    {"from": _NUMBER, "to": _NUMBER, "count": _COUNT}, ["from", "to", "count"]
                ),
            },
            "over_time": _object(
                {
                    "bucket_ms": _nullable({"type": "integer", "minimum": 1}),
                    "counts": {
                        "type": "array",
                        "items": _object({"at": _TIME, "count": _COUNT}, ["at", "count"]),
                    },
                },
                ["bucket_ms", "counts"],
            ),
            "computed_at": _nullable(_TIME),
        },
        ["game", "variant", "window", "period", "count", "players", "best", "mean", "median"]
        + ["p90", "histogram", "over_time", "computed_at"],
        "Stats of a board, as of the stats job's last run (computed_at null: not yet).",
    ),
    "TaskQueued": _object(
        {
            "task_id": {"type": "string"},
            "status_url": {"type": "string", "format": "uri-reference"},
        },
        ["task_id", "status_url"],
    ),
    "Task": _object(
        {
            "task_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["rebuild", "prune"]},
            "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "progress": _object({"done": _COUNT, "total": _COUNT}, ["done", "total"]),
            "params": {"type": "object"},
            "created_at": _EPOCH_MS,
            "started_at": _EPOCH_MS,
            "finished_at": _EPOCH_MS,
            "result": {},
            "error": {"type": "string"},
        },
        ["task_id", "kind", "state", "progress", "params"],
        "An operator task and its progress.",
    ),
    "PlayerRemoved": _object(
        {
            "game": {"type": "string"},
            "player_id": {"type": "string"},
            "banned": {"type": "boolean"},
            "rows_removed": _COUNT,
        },
        ["game", "player_id", "banned", "rows_removed"],
    ),
    "OperatorStatus": _object(
        {
            "queues": {
                "type": "object",
                "additionalProperties": _COUNT,
                "description": "Messages waiting per broker queue.",
            },
            "ingest_stream": {
                "type": "object",
                "additionalProperties": _COUNT,
                "description": "Submissions on the ingest stream, by state.",
            },
            "workers": {"type": "array", "items": {"type": "object"}},
            "beat": {
                "type": "object",
                "additionalProperties": {"type": "object"},
                "description": "The last run of each beat job.",
            },
            "submissions": _object(
                {
                    "accepted": _COUNT,
                    "rejected": {"type": "object", "additionalProperties": _COUNT},
                },
                ["accepted", "rejected"],
            ),
        },
        ["queues", "workers", "beat", "submissions"],
    ),
    "Health": _object({"status": {"const": "ok"}}, ["status"]),
    "Ready": _object({"status": {"const": "ready"}, "workers": _COUNT}, ["status", "workers"]),
}

#: The models whose JSON Schemas are the request bodies.
BODIES = (ScoreIn, SessionIn, Scope, GuessIn)

#: What the query parameters mean (the models say what they may be).
_PARAMETER_TEXT = {
    "window": "alltime, daily or weekly.",
    "period": "A past period of the window: a day (2036-11-19) or an ISO week (2036-W47); "
    "the current one by default.",
    "limit": "Rows per page.",
    "offset": "Rows to skip.",
    "around": "Neighbours on each side of the player.",
    "wait": "Seconds to hold the answer until the verdict exists (long-poll).",
}

_ERROR_TEXT = {
    400: "Malformed JSON, or a query parameter or callback that is not valid.",
    401: "No operator token.",
    403: "Forbidden: a wrong operator token, or a player_id without its player_key.",
    404: "Unknown game, variant, player, submission or task.",
    409: "A rebuild or prune of one of these boards is running, or the run is over (its "
    "number found, or its guesses used up).",
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


def _path(name: str, pattern: str, description: str, examples: list[str]) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }
    if examples:
        parameter["examples"] = {value: {"value": value} for value in examples}
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
    for name, field in schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required}
        description = model.model_fields[name].description or _PARAMETER_TEXT.get(name)
        if description:
            parameter["description"] = description
        parameter["schema"] = _strip_null(field)
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


def _answer(
    description: str,
    schema: str,
    *,
    jsonp: bool = False,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": _ref(schema)}}
    if jsonp:
        content[JAVASCRIPT] = _JSONP_MEDIA
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = headers
    return response


def _body(
    model: type[Any], required: bool, example: dict[str, Any] | None = None
) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(model.__name__)}
    if example is not None:
        media["example"] = example
    return {"required": required, "content": {JSON: media}}


_LOCATION = {
    "Location": {
        "description": "Where to follow it (the same as status_url).",
        "schema": {"type": "string"},
        "required": True,
    }
}

_OPERATOR = [{"operatorToken": []}]


def _operations(registry: Registry) -> dict[str, dict[str, Any]]:
    slugs = [game.slug for game in registry]
    variants = list(dict.fromkeys(v for game in registry for v in game.variants))
    game = _path("game_slug", SLUG.pattern, "A game's slug (see /api/v1/games).", slugs)
    variant = _path("variant", VARIANT.pattern, "A variant of the game.", variants)
    player = _path("player_id", PLAYER_ID_PATTERN, "A player's id.", [])
    submission = _path("submission_id", SUBMISSION_ID_PATTERN, "A submission's id.", [])
    task = _path("task_id", SUBMISSION_ID_PATTERN, "An operator task's id.", [])
    run = _path("run_id", SUBMISSION_ID_PATTERN, "A run's id, from its session.", [])
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The same as submission_id: the same key twice is one entry.",
        "schema": {"type": "string", "pattern": SUBMISSION_ID_PATTERN},
    }
    read = {"tags": ["boards"], "parameters": [CALLBACK_PARAMETER]}
    board_read = [game, variant, CALLBACK_PARAMETER]
    admin = {"tags": ["operator"], "security": _OPERATOR}
    v1 = "/api/v1"
    return {
        f"{v1}/games/{{game_slug}}/sessions": {
            "post": {
                "tags": ["scores"],
                "operationId": "start_session",
                "summary": "Start a run",
                "description": "Issues a player id (or confirms the one the key or cookie "
                "proves) and, where the game uses them, a signed single-use run token. The "
                "player's key is also set as an HttpOnly cookie.",
                "parameters": [game],
                "requestBody": _body(SessionIn, False),
                "responses": {
                    "201": _answer("The run is started.", "Session"),
                    **_problems([400, 403, 404, 413, 415, 422]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}/scores": {
            "post": {
                "tags": ["scores"],
                "operationId": "submit_score",
                "summary": "Submit a finished game",
                "description": "Checks the envelope and the game's rules and answers 202 at "
                "once; a worker checks it again and ranks it. The same submission_id (or "
                "Idempotency-Key) twice is one entry.",
                "parameters": [game, idempotency_key],
                "requestBody": _body(
                    ScoreIn,
                    True,
                    {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000},
                ),
                "responses": {
                    "202": _answer("Taken for checking.", "ScoreQueued", headers=_LOCATION),
                    **_problems([400, 403, 404, 413, 415, 422]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}/runs/{{run_id}}/guesses": {
            "post": {
                "tags": ["scores"],
                "operationId": "guess",
                "summary": "Answer one guess of a run",
                "description": "For a game with a verifier: the service answers the guess "
                "higher, lower or correct and counts it; the run's token proves the caller "
                "started it. After correct the run is finished: submit it.",
                "parameters": [game, run],
                "requestBody": _body(GuessIn, True, {"guess": 50, "token": "<token>"}),
                "responses": {
                    "200": _answer("The answer, and the guesses answered so far.", "GuessOut"),
                    **_problems([400, 403, 404, 409, 413, 415, 422]),
                },
            }
        },
        f"{v1}/submissions/{{submission_id}}": {
            "get": {
                "tags": ["scores"],
                "operationId": "submission_status",
                "summary": "A submission's verdict (long-poll with wait)",
                "parameters": [submission, *query_parameters(WaitQuery), CALLBACK_PARAMETER],
                "responses": {
                    "200": _answer("The submission's status.", "Submission", jsonp=True),
                    **_problems([400, 404]),
                },
            }
        },
        f"{v1}/games": {
            "get": {
                **read,
                "operationId": "list_games",
                "summary": "The games and their boards",
                "responses": {
                    "200": _answer("The games.", "GameList", jsonp=True),
                    **_problems([400]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}": {
            "get": {
                **read,
                "operationId": "show_game",
                "summary": "One game and its boards",
                "parameters": [game, CALLBACK_PARAMETER],
                "responses": {
                    "200": _answer("The game.", "Game", jsonp=True),
                    **_problems([400, 404]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}/boards/{{variant}}": {
            "get": {
                **read,
                "operationId": "board_top",
                "summary": "A page of a board, best first",
                "parameters": [*board_read, *query_parameters(BoardQuery)],
                "responses": {
                    "200": _answer("A page of the board.", "BoardPage", jsonp=True),
                    **_problems([400, 404]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}/boards/{{variant}}/players/{{player_id}}": {
            "get": {
                **read,
                "operationId": "player_standing",
                "summary": "A player's rank and score, with neighbours",
                "parameters": [game, variant, player, CALLBACK_PARAMETER]
                + query_parameters(StandingQuery),
                "responses": {
                    "200": _answer("The player's standing.", "Standing", jsonp=True),
                    **_problems([400, 404]),
                },
            }
        },
        f"{v1}/games/{{game_slug}}/boards/{{variant}}/stats": {
            "get": {
                **read,
                "operationId": "board_stats",
                "summary": "Stats of a board",
                "parameters": [*board_read, *query_parameters(StatsQuery)],
                "responses": {
                    "200": _answer("The board's stats.", "Stats", jsonp=True),
                    **_problems([400, 404]),
                },
            }
        },
        f"{v1}/admin/rebuild": {
            "post": {
                **admin,
                "operationId": "start_rebuild",
                "summary": "Rebuild boards from their logs",
                "description": "All boards, a game's, or one variant's (game and variant).",
                "requestBody": _body(Scope, False, {"game": "guess", "variant": "10"}),
                "responses": {
                    "202": _answer("Queued.", "TaskQueued", headers=_LOCATION),
                    **_problems([400, 401, 403, 404, 409, 413, 415, 422]),
                },
            }
        },
        f"{v1}/admin/prune": {
            "post": {
                **admin,
                "operationId": "start_prune",
                "summary": "Prune the logs past retention now",
                "requestBody": _body(Scope, False),
                "responses": {
                    "202": _answer("Queued.", "TaskQueued", headers=_LOCATION),
                    **_problems([400, 401, 403, 404, 413, 415, 422]),
                },
            }
        },
        f"{v1}/admin/tasks/{{task_id}}": {
            "get": {
                **admin,
                "operationId": "task_status",
                "summary": "State and progress of an operator task",
                "parameters": [task],
                "responses": {
                    "200": _answer("The task.", "Task"),
                    **_problems([401, 403, 404]),
                },
            }
        },
        f"{v1}/admin/games/{{game_slug}}/players/{{player_id}}": {
            "delete": {
                **admin,
                "operationId": "remove_player",
                "summary": "Remove a player from every board of a game and ban them",
                "parameters": [game, player],
                "responses": {
                    "200": _answer("Removed and banned.", "PlayerRemoved"),
                    **_problems([401, 403, 404]),
                },
            }
        },
        f"{v1}/admin/status": {
            "get": {
                **admin,
                "operationId": "operator_status",
                "summary": "Queues, workers, beat runs and verdict counts",
                "responses": {
                    "200": _answer("The status.", "OperatorStatus"),
                    **_problems([401, 403]),
                },
            }
        },
        f"{v1}/openapi.json": {
            "get": {
                "tags": ["meta"],
                "operationId": "openapi_document",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **_problems([]),
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": ["meta"],
                "operationId": "healthz",
                "summary": "Liveness: the process answers",
                "responses": {"200": _answer("Alive.", "Health")},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["meta"],
                "operationId": "readyz",
                "summary": "Readiness: Redis answers and a worker's heartbeat is fresh",
                "responses": {
                    "200": _answer("Ready.", "Ready"),
                    "503": {
                        **_problems([503], limited=False)["503"],
                        "description": "Redis is unreachable, or no worker is alive.",
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["meta"],
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "The Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_problems([]),
                },
            }
        },
    }


def _package_version() -> str:
    try:
        return version("hiscore")
    except PackageNotFoundError:
        return "0"


def build_document(registry: Registry) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API for the games of ``registry``."""
    schemas: dict[str, Any] = {}
    for model in BODIES:
        schema = model.model_json_schema(ref_template=_SCHEMAS + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.update(ANSWERS)
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
        "paths": _operations(registry),
        "components": {
            "schemas": schemas,
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
        document = app.extensions[_CACHE] = build_document(app.extensions["hiscore.games"])
    return document


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI document of this API."""
    response = jsonify(document_of(current_app._get_current_object()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
