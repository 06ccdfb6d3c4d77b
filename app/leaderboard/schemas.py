"""The shapes of what clients send and what travels from the web to the workers."""

from __future__ import annotations

import math
import unicodedata
from typing import TYPE_CHECKING, Annotated, Any

import icu
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.leaderboard.games import SUBSCORE_LIMIT
from app.leaderboard.windows import Window
from app.storage.keys import PLAYER_ID_PATTERN, SUBMISSION_ID_PATTERN

NAME_MAX = 32

#: Combining marks allowed on one base character: enough for any script's diacritics (a Thai
#: vowel and tone, Vietnamese, Arabic shadda with a vowel), too few for a "Zalgo" stack.
MARKS_MAX = 2

# Letters that draw nothing: Hangul fillers and the blank Braille pattern. A name holding one
# looks like a name without it, so none is allowed anywhere.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Code points that renderers are told to draw as nothing (ICU's data is newer than Python's).
_IGNORABLE = icu.UnicodeSet("[:Default_Ignorable_Code_Point:]")
# Unicode TR39's "moderately restrictive" level: one script, or Latin with one other that does
# not look like it (Han, Kana, Hangul, Arabic, ...; never Cyrillic or Greek), so "\u0430dmin"
# with a Cyrillic a is refused. A check of the name alone: it costs no Redis and the web and
# the worker agree on it by running the same function.
_SPOOF_CHECKER = icu.SpoofChecker()
_SPOOF_CHECKER.setChecks(icu.USpoofChecks.RESTRICTION_LEVEL)
_SPOOF_CHECKER.setRestrictionLevel(icu.URestrictionLevel.MODERATELY_RESTRICTIVE)


def _visible(char: str) -> bool:
    category = unicodedata.category(char)
    return (
        category[0] not in "CMZ"  # controls, formats, marks alone, separators
        and not char.isspace()
        and char not in _BLANK_LETTERS
        and not _IGNORABLE.contains(char)
    )


def _longest_mark_stack(value: str) -> int:
    longest = run = 0
    for char in value:
        run = run + 1 if unicodedata.category(char)[0] == "M" else 0
        longest = max(longest, run)
    return longest


def clean_name(value: str) -> str:
    """Trim and NFKC-normalise a display name; ValueError unless it is 1-32 printable
    characters with one visible, no blank letters, no stacks of marks and no look-alike
    mix of scripts."""
    # NFKC: a fullwidth or ligature letter is the letter, so "\uff21nn" is "Ann".
    value = unicodedata.normalize("NFKC", value).strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters")
    if not value.isprintable():
        raise ValueError("must contain printable characters only")
    if not any(_visible(char) for char in value):
        raise ValueError("must contain a visible character")
    if _BLANK_LETTERS.intersection(value):
        raise ValueError("must not contain blank letters such as U+3164 HANGUL FILLER")
    if _longest_mark_stack(value) > MARKS_MAX:
        raise ValueError(f"must not stack more than {MARKS_MAX} combining marks on one character")
    if _SPOOF_CHECKER.check(value) & icu.USpoofChecks.RESTRICTION_LEVEL:
        raise ValueError("must not mix scripts that look alike, such as Latin with Cyrillic")
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
if TYPE_CHECKING:
    # What a validated model holds: the integer a client may send is turned into its name.
    VariantName = str
else:
    VariantName = Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=32)]
        | Annotated[int, Field(ge=0)],
        AfterValidator(_variant_text),
        Field(description="A variant of the game: its name, or the integer that is its name."),
    ]
DurationMs = Annotated[int, Field(ge=0, le=24 * 3600 * 1000)]
Subscore = Annotated[int, Field(ge=-SUBSCORE_LIMIT, le=SUBSCORE_LIMIT)]


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
    # Only for a game that declares subscore_order / metadata_max_bytes (checked per game).
    subscore: Subscore | None = None
    metadata: dict[str, Any] | None = None


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
    # With a proven player: replace their key with a new one, and end the old.
    rotate: bool = False


RunToken = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class GuessIn(BaseModel):
    """The body of ``POST /api/v1/games/{game}/runs/{run_id}/guesses``.

    The run's token proves the caller started the run: it names this run alone, and only the
    one who started it holds it.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    guess: Annotated[int, Field(ge=1, le=1_000_000)]
    token: RunToken


class Scope(BaseModel):
    """Which boards an operator task covers: all, one game's, or one variant's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    game: GameSlug | None = None
    variant: VariantName | None = None


PeriodLabel = Annotated[str, StringConstraints(max_length=16)]


#: ``metadata=1`` asks for each row's metadata.
Flag = Annotated[bool, Field(description="1 to add each row's metadata (object or null).")]


class BoardQuery(BaseModel):
    """Query of ``GET .../boards/{variant}``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    metadata: Flag = False


class StandingQuery(BaseModel):
    """Query of ``GET .../boards/{variant}/players/{player_id}``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None
    around: Annotated[int, Field(ge=0, le=50)] = 0
    metadata: Flag = False


class StatsQuery(BaseModel):
    """Query of ``GET .../boards/{variant}/stats``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"
    period: PeriodLabel | None = None


class PeriodsQuery(BaseModel):
    """Query of ``GET .../boards/{variant}/periods``."""

    model_config = ConfigDict(extra="ignore")

    window: Window = "alltime"


#: The most players one lookup reads.
LOOKUP_MAX = 100


class LookupIn(BaseModel):
    """The body of ``POST .../boards/{variant}/lookup``: the players of a friends board."""

    model_config = ConfigDict(extra="forbid", strict=True)

    player_ids: Annotated[list[PlayerId], Field(min_length=1, max_length=LOOKUP_MAX)]
    window: Window = "alltime"
    period: PeriodLabel | None = None
    metadata: bool = Field(default=False, description="Add each row's metadata.")


class WaitQuery(BaseModel):
    """Query of ``GET /submissions/{id}``: how long to long-poll, in seconds."""

    model_config = ConfigDict(extra="ignore")

    wait: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False)] = 0
