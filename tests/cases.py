"""Inputs shared by the unit and integration suites."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from app.clock import now_ms


def noon_utc(ms: int) -> int:
    """Noon UTC of the day of ``ms`` (epoch ms)."""
    day = datetime.fromtimestamp(ms / 1000, UTC).date()
    return int(datetime.combine(day, time(12), UTC).timestamp() * 1000)


#: "Now" for tests that pass the time in: noon UTC of the day the run started, by the real
#: clock. Redis (fake or real) expires keys by its own clock, so what is written as of this
#: instant stays readable as long as the run lasts, whatever the date.
NOW = noon_utc(now_ms())

GOOD = {"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}


def queued_payload(submission_id: str = "sub-00000001", **changes: object) -> dict:
    """A message as the web puts it on the ingest queue, with ``changes``."""
    payload = {
        "game": "guess-claimed",
        "variant": "10",
        "name": "Ann",
        "score": 3,
        "duration_ms": 4000,
        "player_id": "p" * 22,
        "submission_id": submission_id,
        "received_at": NOW - 5,
        "token": None,
    }
    payload.update(changes)
    return payload


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


@dataclass(frozen=True)
class BadRequest:
    """A submission that must be refused with ``status`` naming ``fields``."""

    id: str
    body: bytes
    status: int
    fields: frozenset[str] = frozenset()
    content_type: str = "application/json"
    game: str = "guess-claimed"
    headers: dict[str, str] = field(default_factory=dict)


#: A good body for the test game ``tally`` (a sum with a subscore and metadata).
TALLY = {"name": "Ann", "score": 12, "variant": "default", "subscore": 1, "metadata": {"p": "d"}}


def _bad(id: str, body: object, status: int = 422, *fields: str, **kw) -> BadRequest:
    raw = body if isinstance(body, bytes) else _json(body)
    return BadRequest(id, raw, status, frozenset(fields), **kw)


BAD_SUBMISSIONS: list[BadRequest] = [
    _bad("malformed-json", b'{"name": "Ann", "score": ', 400),
    _bad("json-nan", b'{"name": "Ann", "score": NaN, "variant": "10"}', 400),
    _bad("not-utf8", b'{"name": "\xff\xfe"}', 400),
    _bad("empty-body", b"", 400),
    _bad("text-plain", GOOD, 415, content_type="text/plain"),
    _bad(
        "form-encoded",
        b"name=Ann&score=4&variant=10",
        415,
        content_type="application/x-www-form-urlencoded",
    ),
    _bad("array", [GOOD], 422, "body"),
    _bad("null", None, 422, "body"),
    _bad("missing-everything", {}, 422, "name", "variant"),
    _bad("missing-score", {k: v for k, v in GOOD.items() if k != "score"}, 422, "score"),
    _bad("extra-field", {**GOOD, "rank": 1}, 422, "rank"),
    _bad("score-as-text", {**GOOD, "score": "4"}, 422, "score"),
    _bad("score-as-bool", {**GOOD, "score": True}, 422, "score"),
    _bad("name-as-number", {**GOOD, "name": 42}, 422, "name"),
    _bad("name-invisible", {**GOOD, "name": "\u3164\u2800"}, 422, "name"),
    _bad("name-zalgo", {**GOOD, "name": "Z\u0336\u0335\u0334algo"}, 422, "name"),
    _bad("name-mixed-scripts", {**GOOD, "name": "\u0430dmin"}, 422, "name"),
    _bad("variant-as-list", {**GOOD, "variant": ["10"]}, 422, "variant"),
    _bad("duration-as-text", {**GOOD, "duration_ms": "5s"}, 422, "duration_ms"),
    _bad("player-id-as-number", {**GOOD, "player_id": 123456789012345678}, 422, "player_id"),
    _bad("player-id-with-colon", {**GOOD, "player_id": "abcdefgh:ijklmnop"}, 422, "player_id"),
    _bad("submission-id-with-star", {**GOOD, "submission_id": "abc*defgh"}, 422, "submission_id"),
    _bad("negative-score", {**GOOD, "score": -1}, 422, "score"),
    _bad("zero-score", {**GOOD, "score": 0}, 422, "score"),
    _bad("huge-score", {**GOOD, "score": 10**30}, 422, "score"),
    _bad("huge-float", {**GOOD, "score": 1e308}, 422, "score"),
    _bad(
        "integer-beyond-float",
        b'{"name": "Ann", "variant": "10", "duration_ms": 5000, "score": 1' + b"0" * 400 + b"}",
        422,
        "score",
    ),
    _bad("nested-too-deep", b"[" * 5000 + b"]" * 5000, 400),
    _bad("fractional-guesses", {**GOOD, "score": 2.5}, 422, "score"),
    _bad("more-guesses-than-numbers", {**GOOD, "score": 11, "duration_ms": 60_000}, 422, "score"),
    _bad("too-fast-to-type", {**GOOD, "score": 8, "duration_ms": 300}, 422, "duration_ms"),
    _bad("no-duration", {k: v for k, v in GOOD.items() if k != "duration_ms"}, 422, "duration_ms"),
    _bad("negative-duration", {**GOOD, "duration_ms": -1}, 422, "duration_ms"),
    _bad("unknown-variant", {**GOOD, "variant": "11"}, 422, "variant"),
    _bad("unknown-game", GOOD, 404, game="chess"),
    _bad("megabyte-body", {**GOOD, "name": "x" * 1_000_000}, 413),
    _bad("name-with-control-chars", {**GOOD, "name": "Ann\x00\x1b[2J"}, 422, "name"),
    _bad("name-with-newline", {**GOOD, "name": "Ann\nBob"}, 422, "name"),
    _bad("name-of-1000-chars", {**GOOD, "name": "n" * 1000}, 422, "name"),
    _bad("name-of-spaces", {**GOOD, "name": "    "}, 422, "name"),
    _bad("bad-idempotency-key", GOOD, 422, "Idempotency-Key", headers={"Idempotency-Key": "a b"}),
    _bad("subscore-on-a-game-without-one", {**GOOD, "subscore": 3}, 422, "subscore"),
    _bad("metadata-on-a-game-without-any", {**GOOD, "metadata": {"a": 1}}, 422, "metadata"),
    _bad("metadata-not-an-object", {**TALLY, "metadata": ["dart"]}, 422, "metadata", game="tally"),
    _bad("metadata-as-text", {**TALLY, "metadata": "{}"}, 422, "metadata", game="tally"),
    _bad(
        "oversized-metadata", {**TALLY, "metadata": {"p": "x" * 60}}, 422, "metadata", game="tally"
    ),
    _bad(
        "deeply-nested-metadata",
        # Deeper than Python's own JSON encoder recurses, not deeper than the body parser goes.
        _json({**TALLY, "metadata": {}}).replace(
            b'"metadata": {}', b'"metadata": {"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        ),
        422,
        "metadata",
        game="tally",
    ),
    _bad("fractional-subscore", {**TALLY, "subscore": 1.5}, 422, "subscore", game="tally"),
    _bad("huge-subscore", {**TALLY, "subscore": 10**10}, 422, "subscore", game="tally"),
]

#: Names that are fine to show but must never become part of a Redis key.
HOSTILE_BUT_VALID_NAMES = ["*", "a:b", "{evil}", "</script>", "Zoë 🙂", "名前", "x|y"]
