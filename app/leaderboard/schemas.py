"""The shapes of what clients send and what travels from the web to the workers."""

from __future__ import annotations

import math
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.storage.keys import PLAYER_ID_PATTERN, SUBMISSION_ID_PATTERN

NAME_MAX = 32


def clean_name(value: str) -> str:
    """Trim and NFC-normalise a display name; ValueError unless 1-32 printable characters."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    return value


def _finite(value: float) -> float:
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large to be a float
        finite = False
    if not finite:
        raise ValueError("must be a finite number within range")
    return value


def _variant_text(value: str | int) -> str:
    return str(value)


PlayerId = Annotated[str, StringConstraints(pattern=PLAYER_ID_PATTERN)]
SubmissionId = Annotated[str, StringConstraints(pattern=SUBMISSION_ID_PATTERN)]
# The length cap before cleaning keeps a huge string from being normalised at all.
DisplayName = Annotated[str, StringConstraints(max_length=4 * NAME_MAX), AfterValidator(clean_name)]
Score = Annotated[int | float, AfterValidator(_finite)]
# A variant as every endpoint takes it in a body: its name, or the integer that spells it (the
# guessing game's variants are numbers); either way it comes out as the name.
VariantName = Annotated[
    Annotated[str, StringConstraints(min_length=1, max_length=32)] | Annotated[int, Field(ge=0)],
    AfterValidator(_variant_text),
    Field(description="A variant of the game: its name, or the integer that is its name."),
]
DurationMs = Annotated[int, Field(ge=0, le=24 * 3600 * 1000)]


class ScoreIn(BaseModel):
    """The body of ``POST /api/v1/games/{game}/scores``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: DisplayName
    # Required of a game whose scores are claimed; refused for one with a verifier, whose
    # score the service computes from the run (see app.leaderboard.verified_runs).
    score: Score | None = None
    variant: VariantName
    player_id: PlayerId | None = None
    # Proof of player_id: what /sessions issued with it. Never leaves the web.
    player_key: Annotated[str, StringConstraints(max_length=128)] | None = None
    duration_ms: DurationMs | None = None
    token: Annotated[str, StringConstraints(max_length=1024)] | None = None
    submission_id: SubmissionId | None = None


class QueuedSubmission(ScoreIn):
    """What the web hands to a worker: the client's fields plus what the web stamped on them."""

    game: GameSlug
    # The claimed score, or for a verified game the one the web computed from its run.
    score: Score
    player_id: PlayerId
    submission_id: SubmissionId
    received_at: Annotated[int, Field(ge=0)]
    # The web's digest of what the client sent; kept in the verdict for idempotent retries.
    fingerprint: Annotated[str, StringConstraints(max_length=64)] = ""
    # The X-Request-ID of the request that brought it, so the worker's log lines carry it.
    request_id: Annotated[str, StringConstraints(max_length=64)] | None = None


GameSlug = Annotated[str, StringConstraints(max_length=32)]


class SessionIn(BaseModel):
    """The (optional) body of ``POST /api/v1/games/{game}/sessions``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    player_id: PlayerId | None = None
    player_key: Annotated[str, StringConstraints(max_length=128)] | None = None
    variant: VariantName | None = None


RunToken = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class GuessIn(BaseModel):
    """The body of ``POST /api/v1/games/{game}/runs/{run_id}/guesses``.

    The run's token proves the caller started the run: it names this run alone, and only the
    one who started it holds it.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    guess: Annotated[int, Field(ge=1, le=1_000_000)]
    token: RunToken


class GuessOut(BaseModel):
    """The answer to a guess: how it stands to the number, and how many were answered."""

    result: Literal["higher", "lower", "correct"]
    guesses: int


class Scope(BaseModel):
    """Which boards an operator task covers: all, one game's, or one variant's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    game: GameSlug | None = None
    variant: VariantName | None = None


Window = Literal["alltime", "daily", "weekly"]
PeriodLabel = Annotated[str, StringConstraints(max_length=16)]


class BoardQuery(BaseModel):
    """Query of ``GET .../boards/{variant}``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class StandingQuery(BaseModel):
    """Query of ``GET .../boards/{variant}/players/{player_id}``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None
    around: Annotated[int, Field(ge=0, le=50)] = 0


class StatsQuery(BaseModel):
    """Query of ``GET .../boards/{variant}/stats``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None


class WaitQuery(BaseModel):
    """Query of ``GET /submissions/{id}``: how long to long-poll, in seconds."""

    model_config = ConfigDict(extra="ignore")

    wait: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)] = 0
