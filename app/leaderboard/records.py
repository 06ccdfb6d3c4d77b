"""The records that cross a boundary, one typed shape each: what the web answers, what it
stores for a worker to settle, and what a worker stores back.

Times are epoch milliseconds inside (in Redis, in the stream) and ISO 8601 in a JSON answer:
:data:`Instant` is an int that ``model_dump(mode="json")`` writes as text. Stored records are
read leniently (unknown fields ignored, no field required beyond ``status``), so records that
older or newer code wrote still read during a rolling deploy. A submission's status record is
stored as compact text, packed and unpacked here and nowhere else (:func:`pack`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from app.clock import iso_time
from app.leaderboard.games import Keep, Ties
from app.leaderboard.windows import WINDOWS, Window
from app.storage.keys import PLAYER_ID_PATTERN

#: Epoch ms; an ISO 8601 UTC timestamp (with ms) in JSON.
Instant = Annotated[
    int,
    PlainSerializer(iso_time, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "ISO 8601, UTC, in ms."},
        mode="serialization",
    ),
]
Number = int | float
Count = Annotated[int, Field(ge=0)]
Rank = Annotated[int, Field(ge=1)]
Order = Annotated[Literal["lower", "higher"], Field(description="Which scores rank first.")]
FieldErrors = Annotated[dict[str, list[str]], Field(description="Messages per field or parameter.")]
UriReference = Annotated[str, Field(json_schema_extra={"format": "uri-reference"})]

SubmissionState = Literal["queued", "accepted", "rejected"]


class Answer(BaseModel):
    """A record the service builds itself: extra fields are a bug, not input."""

    model_config = ConfigDict(extra="forbid")


class BoardRef(Answer):
    """Which board a verdict ranks on."""

    game: str
    variant: str
    window: Window


class SubmissionRecord(BaseModel):
    """A submission's record: created ``queued`` by the web, settled by a worker; stored in
    the compact text of :func:`pack`."""

    model_config = ConfigDict(extra="ignore")

    status: SubmissionState
    code: str | None = Field(default=None, description="The rejection's reason code.")
    reason: str | None = Field(default=None, description="Why it was rejected.")
    errors: FieldErrors | None = None
    # The digest of what the client sent, to tell an honest retry from a reused id.
    fingerprint: str | None = None
    # The game, for the audit of rejections (not stored: an accepted record's board names it).
    game: str | None = None
    player_id: str | None = None
    # What an accepted record keeps of its player id: enough to tell a retry by another player.
    player_prefix: str | None = None
    board: BoardRef | None = None
    rank: Rank | None = Field(default=None, description="All-time rank.")
    ranks: (
        Annotated[
            dict[str, Rank | None],
            Field(description="Rank per window (null: not ranked there)."),
        ]
        | None
    ) = None
    score: Number | None = None
    achieved_at: Instant | None = None
    personal_best: bool | None = None
    # What went wrong in the service, for the dead letters (never stored in the record).
    error: str | None = None

    def stored(self) -> dict[str, Any]:
        """The record's fields (times in ms, absent fields left out)."""
        return self.model_dump(exclude_none=True)

    def packed(self, base_ms: int) -> str:
        """The record as it is stored (see :func:`pack`), its times counted from ``base_ms``."""
        return pack(self, base_ms)

    @classmethod
    def unpacked(cls, text: str, base_ms: int) -> SubmissionRecord | None:
        """The record that :meth:`packed` stored (None if it is not one this code can read)."""
        return unpack(text, base_ms)

    def may_be_of(self, player_id: str) -> bool:
        """Whether the submission may be ``player_id``'s, as far as the record tells."""
        if self.player_id is not None:
            return self.player_id == player_id
        return self.player_prefix is None or player_id.startswith(self.player_prefix)


class Submission(SubmissionRecord):
    """A submission's status as a client sees it, with the verdict once a worker settled it."""

    INTERNAL: ClassVar[frozenset[str]] = frozenset(
        {"fingerprint", "game", "player_id", "player_prefix", "error"}
    )

    submission_id: str
    # What the service keeps for itself. The player is not shown: an accepted record keeps
    # only a prefix of the id (the player knows it, and so do the boards).
    fingerprint: str | None = Field(default=None, exclude=True)
    game: str | None = Field(default=None, exclude=True)
    player_id: str | None = Field(default=None, exclude=True)
    player_prefix: str | None = Field(default=None, exclude=True)
    error: str | None = Field(default=None, exclude=True)

    @classmethod
    def of(cls, submission_id: str, record: SubmissionRecord) -> Submission:
        """The public view of a stored record."""
        return cls.model_validate({**record.stored(), "submission_id": submission_id})


# The stored text of a record: positional fields separated by "|", the first naming the format
# and the status at once (q, a, r are this format's; a later format takes other first fields,
# so that no reader misreads one). A record is kept for the idempotency window, and Redis keeps
# a small hash compact only while each value is at most 64 bytes (``hash-max-ziplist-value``):
# a record of up to 64 bytes costs about 100 bytes in a small hash and 137 in a large one, a
# longer one up to 190 (tests/integration/test_record_memory.py). So an accepted record, the
# common one, holds only what its answer and the retry check need, in at most 64 bytes up to
# boards of a million players:
#
#   q|<fingerprint>|<player id>
#   a|<fingerprint>|<player prefix>|<game>|<variant>|<score>|<at>|<ranks>|<personal best>
#   r|<fingerprint>|<player id>|<code>[|<JSON: [reason, errors]>]
#
# - player prefix: the first PLAYER_PREFIX characters of the player id, enough to tell another
#   player's retry from the player's own (an accepted entry's full id is in its family's log);
# - at: the achieved time, in ms after ``base_ms`` (the start of the generation of the hash
#   that holds the record, see app.storage.submissions): 8 digits rather than 13;
# - ranks: the all-time, daily and weekly ranks, comma-separated, empty where not ranked; the
#   board a verdict names is the all-time one;
# - personal best: 1, 0, or empty when unknown (a replay);
# - a rejection that says what its code usually says (USUAL_REJECTIONS) is its code, followed by
#   the place of what it says in the code's list unless that is the first; otherwise a JSON
#   array follows: the reason (its place in the list, or the text) and the field errors (null:
#   none; a string: that field, with the reason as its message), each cut to a bound, so that
#   no submission makes its record longer than about 450 bytes.
# A fingerprint or player id that is not of the expected shape (only a message that did not
# come from the web carries one) is left out.

_TAGS: dict[str, str] = {"queued": "q", "accepted": "a", "rejected": "r"}
_STATUSES = {tag: status for status, tag in _TAGS.items()}
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_PLAYER_ID = re.compile(PLAYER_ID_PATTERN)
_CODE = re.compile(r"^[a-z0-9_]{1,32}$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_PERSONAL_BEST = {True: "1", False: "0", None: ""}
_PERSONAL_BEST_READ = {text: value for value, text in _PERSONAL_BEST.items()}

#: Characters of the player id an accepted record keeps (36 bits of a random id).
PLAYER_PREFIX = 6

#: Longest reason (characters) and field errors (characters of their JSON) a record keeps.
REASON_MAX = 160
ERRORS_MAX = 240


def _repeated(field: str, text: str) -> tuple[str, dict[str, list[str]]]:
    return text, {field: [text]}


_RULES = "the score breaks the rules of the game"

#: What rejections usually say, per code: the reasons and field errors the service gives,
#: stored as their place in the list (nothing for the first). A rejection that says something
#: else is stored in full (its reason as its place, if it is one of these).
USUAL_REJECTIONS: dict[str, list[tuple[str, dict[str, list[str]]]]] = {
    "failed": [("the service could not process this submission", {})],
    "banned": [("this player may not enter this game's boards", {})],
    "token_reused": [_repeated("token", "this run token was already used by another submission")],
    "token_invalid": [_repeated("token", "the run token is not one this service issued")],
    "token_mismatch": [
        _repeated("token", "the run token was issued for another game, variant or player")
    ],
    "token_expired": [
        _repeated("token", "the run token has expired; start a new run"),
        ("the score waited too long to be checked against its run token", {}),
    ],
    "token_missing": [
        (
            "a run token is required: start each run with POST /games/{game}/sessions",
            {"token": ["is required"]},
        ),
        ("no run", {}),
        (_RULES, {}),
    ],
    "run_missing": [_repeated("token", "the run's moves are gone: it expired or never started")],
    "run_mismatch": [_repeated("score", "the score differs from what the run's moves prove")],
    "run_unfinished": [_repeated("token", "the run has not found its number yet")],
    "run_invalid": [
        ("the run is not of a verified game", {}),
        _repeated("token", "the run has no number to guess"),
        _repeated("token", "the run's guesses are not a game of this variant"),
    ],
    "implausible": [(_RULES, {})],
    "unknown_variant": [(_RULES, {})],
    "invalid": [
        ("the submission does not have the expected shape", {}),
        ("the submission could not be read", {}),
        ("the message is not an object", {}),
    ],
}


def _shaped(value: str | None, pattern: re.Pattern[str]) -> str:
    return value if value is not None and pattern.match(value) else ""


def _number(value: int | float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))


def _read_number(text: str) -> int | float | None:
    if not text:
        return None
    return int(text) if _INTEGER.match(text) else float(text)


def _bounded_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """``errors`` with as many fields and messages (each cut short) as fit in ERRORS_MAX."""
    kept: dict[str, list[str]] = {}
    size = 2  # the braces
    for name, messages in errors.items():
        for message in messages:
            field, text = name[:40], message[:120]
            # The message and its comma; a new field's name, colon and brackets.
            grows = len(json.dumps(text)) + 1
            if field not in kept:
                grows += len(json.dumps(field)) + 4
            if size + grows > ERRORS_MAX:
                return kept
            kept.setdefault(field, []).append(text)
            size += grows
    return kept


def _rejection_tail(code: str, reason: str | None, errors: dict[str, list[str]]) -> str:
    usual = USUAL_REJECTIONS.get(code, [])
    reasons = [said for said, _ in usual]
    if reason in reasons:
        place = reasons.index(reason)
        if usual[place][1] == errors:
            return str(place) if place else ""
    said: str | int | None = reason[:REASON_MAX] if reason is not None else None
    if reason in reasons:
        said = reasons.index(reason)
    shown: str | dict[str, list[str]] | None = None
    if errors:
        (field, messages), *others = errors.items()
        if not others and messages == [reason] and len(field) <= 40:
            shown = field  # the reason, under one field
        else:
            shown = _bounded_errors(errors)
    return json.dumps([said, shown], separators=(",", ":"))


def pack(record: SubmissionRecord, base_ms: int) -> str:
    """The stored text of ``record`` (in the format above), its times counted from
    ``base_ms``."""
    player_id = _shaped(record.player_id, _PLAYER_ID)
    fields = [_TAGS[record.status], _shaped(record.fingerprint, _FINGERPRINT)]
    if record.status == "accepted":
        ranks = record.ranks if record.ranks is not None else {"alltime": record.rank}
        at = record.achieved_at
        fields += [
            player_id[:PLAYER_PREFIX] or (record.player_prefix or "")[:PLAYER_PREFIX],
            record.board.game if record.board else "",
            record.board.variant if record.board else "",
            _number(record.score),
            "" if at is None else str(at - base_ms),
            _ranks_text(ranks),
            _PERSONAL_BEST[record.personal_best],
        ]
    elif record.status == "rejected":
        code = record.code if record.code and _CODE.match(record.code) else "unknown"
        fields += [player_id, code, _rejection_tail(code, record.reason, record.errors or {})]
    else:
        fields.append(player_id)
    return "|".join(fields).rstrip("|")


def _ranks_text(ranks: Mapping[str, int | None]) -> str:
    """A verdict's ranks by position in WINDOWS, up to the last window it has: ``-`` for a
    window its game does not have, empty for a board it is not ranked on."""
    last = max((WINDOWS.index(cast(Window, w)) for w in ranks), default=0)
    return ",".join(
        _number(ranks[window]) if window in ranks else "-" for window in WINDOWS[: last + 1]
    )


def _accepted_fields(parts: list[str], base_ms: int) -> dict[str, Any]:
    prefix, game, variant, score, at, ranks, best = (parts + [""] * 7)[:7]
    by_window = dict(zip(WINDOWS, ranks.split(","), strict=False)) if ranks else {}
    return {
        "player_prefix": prefix or None,
        "game": game or None,
        "board": {"game": game, "variant": variant, "window": "alltime"} if game else None,
        "score": _read_number(score),
        "achieved_at": base_ms + int(at) if at else None,
        "ranks": {w: int(r) if r else None for w, r in by_window.items() if r != "-"} or None,
        "rank": int(by_window["alltime"]) if by_window.get("alltime") else None,
        "personal_best": _PERSONAL_BEST_READ[best],
    }


def _rejected_fields(player_id: str, code: str, tail: str) -> dict[str, Any]:
    usual = USUAL_REJECTIONS.get(code, [])
    said = json.loads(tail) if tail else 0
    if isinstance(said, int):  # one of the usual rejections, whole
        reason, errors = usual[said] if said < len(usual) else (None, {})
    else:
        said, shown = said
        reason = usual[said][0] if isinstance(said, int) else said
        errors = {shown: [reason]} if isinstance(shown, str) else shown
    return {
        "player_id": player_id or None,
        "code": code,
        "reason": reason,
        "errors": errors or None,
    }


def unpack(text: str, base_ms: int) -> SubmissionRecord | None:
    """The record whose stored text is ``text`` (None if it is not of this format)."""
    tag, _, rest = text.partition("|")
    status = _STATUSES.get(tag)
    if status is None:
        return None
    try:
        if status == "rejected":
            fingerprint, player_id, code, tail = (rest.split("|", 3) + [""] * 4)[:4]
            fields = _rejected_fields(player_id, code, tail)
        else:
            fingerprint, *parts = rest.split("|")
            if status == "accepted":
                fields = _accepted_fields(parts, base_ms)
            else:
                fields = {"player_id": parts[0] if parts and parts[0] else None}
        return SubmissionRecord.model_validate(
            {"status": status, "fingerprint": fingerprint or None, **fields}
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class ScoreQueued(Answer):
    """A score taken for checking; follow status_url for the verdict."""

    submission_id: str
    status: Annotated[
        SubmissionState,
        Field(description="queued, or the verdict when this repeats a settled submission."),
    ]
    status_url: UriReference
    player_id: str
    player_key: str | None = Field(
        default=None, description="Only for a new player or one the request proved."
    )


class Session(Answer):
    """A started run: the player (new, or the one the key or cookie proved) and, for a
    variant, its run token."""

    game: str
    player_id: str
    player_key: str = Field(description="Proves player_id in later requests; keep it secret.")
    variant: str | None = Field(default=None, description="The variant of the run, if sent.")
    token: str | None = Field(
        default=None,
        description="A signed, single-use run token to send with the score (when a variant "
        "was sent).",
    )
    token_expires_at: Instant | None = None
    run_id: str | None = Field(
        default=None,
        description="The run the service started, for a game with a verifier: send its "
        "guesses to /runs/{run_id}/guesses with the token.",
    )


class GuessAnswer(Answer):
    """The answer to one guess of a run: how it stands to the number, and how many guesses the
    run has had answered."""

    result: Literal["higher", "lower", "correct"]
    guesses: int = Field(ge=1)


class VariantInfo(Answer):
    """One board family of a game."""

    name: str
    score_min: Number
    score_max: Number
    board_url: UriReference


class GameInfo(Answer):
    """A game and its boards."""

    slug: str
    title: str
    description: str = ""
    order: Order
    integer_scores: bool
    windows: list[Window] = Field(description="The game's own windows.")
    variants: list[VariantInfo]
    keep: Keep = Field(
        description="What a player's row holds: the best score, the latest, or the sum."
    )
    ties: Ties = Field(
        description="The rank shown for equal scores: unique (1, 2, 3), dense (1, 1, 2) or "
        "competition (1, 1, 3)."
    )
    format: str = Field(description="How to show a score: integer, time_ms or decimal:N.")
    unit: str = Field(description="Shown after a score (may be empty).")
    subscore_order: Order | None = Field(
        description="Which subscores rank first among equal scores; null: the game has none."
    )
    metadata_max_bytes: Count = Field(description="The most bytes of metadata an entry may carry.")
    ends_at: dict[str, Instant | None] = Field(
        description="Per window, when its current period ends (null for alltime); before the "
        "first season, when the first season starts."
    )


class GameList(Answer):
    """The games and their boards."""

    games: list[GameInfo]


PeriodText = Annotated[
    str,
    Field(
        description="all, a day 2036-11-19, an ISO week 2036-W47, a month 2036-11 or a season S3."
    ),
]


class BoardRow(Answer):
    """One line of a board; ``rank`` is the shown rank of the game's ties policy."""

    rank: Rank
    player_id: str
    name: str
    score: Number
    achieved_at: Instant
    subscore: int | None = Field(
        default=None, description="The row's subscore (only in a game that has them)."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="The JSON object the row's entry carried, null if none (only when asked "
        "with metadata=1).",
    )


class BoardPage(Answer):
    """A page of a board, best first."""

    game: str
    variant: str
    window: Window
    period: PeriodText
    order: Order
    total: Count
    offset: Count
    limit: Annotated[int, Field(ge=1)]
    updated_at: Instant | None
    entries: list[BoardRow]


class Standing(Answer):
    """A player's row on a board, with neighbours on each side."""

    game: str
    variant: str
    window: Window
    period: PeriodText
    total: Count
    updated_at: Instant | None
    rank: Rank
    player_id: str
    name: str
    score: Number
    achieved_at: Instant
    subscore: int | None = Field(
        default=None, description="The row's subscore (only in a game that has them)."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="As on a board's rows (only when asked with metadata=1)."
    )
    percentile: Annotated[float, Field(ge=0, le=100)] = Field(
        description="The share of the board's rows ranked below the player's rank, in percent "
        "(one decimal)."
    )
    neighbours: list[BoardRow] = Field(
        description="Rows around the player's, the player's included."
    )


class BoardLookup(Answer):
    """Some players' rows on a board (a friends board), best first, each with its rank on the
    whole board."""

    game: str
    variant: str
    window: Window
    period: PeriodText
    total: Count = Field(description="Rows on the whole board.")
    updated_at: Instant | None
    rows: list[BoardRow]
    missing: list[str] = Field(description="The ids asked for that have no row on this board.")


class Period(Answer):
    """One readable period of a window; all-time's has no start or end."""

    period: PeriodText
    starts_at: Instant | None
    ends_at: Instant | None = Field(description="Exclusive.")


class BoardPeriods(Answer):
    """The readable periods of a window, newest first."""

    game: str
    variant: str
    window: Window
    periods: list[Period]


class HistogramBin(Answer):
    """Scores counted in one bin ``from``..``to``."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    low: Number = Field(alias="from")
    high: Number = Field(alias="to")
    count: Count


class CountAt(Answer):
    """Entries made in the bucket starting at ``at``."""

    at: Instant
    count: Count


class OverTime(Answer):
    """Entries per time bucket."""

    bucket_ms: Annotated[int, Field(ge=1)] | None
    counts: list[CountAt]


class Stats(Answer):
    """Stats of a board, as of the stats job's last run (computed_at null: not yet)."""

    # Read back from what the stats job stored, perhaps by a later release with more fields.
    model_config = ConfigDict(extra="ignore")

    game: str
    variant: str
    window: Window
    period: str
    count: Count
    players: Count
    best: Number | None
    mean: Number | None
    median: Number | None
    p90: Number | None
    histogram: list[HistogramBin]
    over_time: OverTime
    computed_at: Instant | None

    @classmethod
    def not_computed(cls, game: str, variant: str, window: str, period: str) -> Stats:
        """The stats of a board the stats job has not seen yet."""
        return cls.model_validate(
            {
                "game": game,
                "variant": variant,
                "window": window,
                "period": period,
                "count": 0,
                "players": 0,
                "best": None,
                "mean": None,
                "median": None,
                "p90": None,
                "histogram": [],
                "over_time": {"bucket_ms": None, "counts": []},
                "computed_at": None,
            }
        )


class TaskQueued(Answer):
    """An operator task taken; follow status_url."""

    task_id: str
    status_url: UriReference


class Progress(Answer):
    """How far a task got."""

    done: Count
    total: Count


class Task(BaseModel):
    """An operator task and its progress (times in epoch ms)."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    kind: Literal["rebuild", "prune"]
    state: Literal["queued", "running", "done", "failed"]
    progress: Progress
    params: dict[str, Any]
    created_at: Count | None = None
    started_at: Count | None = None
    finished_at: Count | None = None
    result: Any = None
    error: str | None = None


class PlayerRemoved(Answer):
    """A player taken off a game's boards and banned from them."""

    game: str
    player_id: str
    banned: bool
    rows_removed: Count


class KeysRevoked(Answer):
    """A player whose keys issued so far were all ended."""

    player_id: str
    revoked: Literal[True] = True
    player_key: str = Field(
        description="A key of the player's next generation, the only one that now works: for "
        "the operator to hand to the rightful player, or to drop."
    )


class VerdictCounts(Answer):
    """Accepted submissions, and rejected ones by reason code."""

    accepted: Count
    rejected: dict[str, Count]


class OperatorStatus(Answer):
    """Queue depths, live workers, the last run of each beat job, and verdict counts."""

    queues: dict[str, Count] = Field(description="Messages waiting per broker queue.")
    ingest_stream: dict[str, Count] | None = Field(
        default=None, description="Submissions on the ingest streams, by state, in total."
    )
    ingest_partitions: dict[str, dict[str, Count]] | None = Field(
        default=None,
        description="Submissions on each ingest partition's stream (by its number), by state.",
    )
    workers: list[dict[str, Any]]
    beat: dict[str, dict[str, Any]] = Field(description="The last run of each beat job.")
    submissions: VerdictCounts
