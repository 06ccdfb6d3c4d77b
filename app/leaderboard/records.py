"""The records that cross a boundary, one typed shape each: what the web answers, what it
stores for a worker to settle, and what a worker stores back.

Times are epoch milliseconds inside (in Redis, in the stream) and ISO 8601 in a JSON answer:
:data:`Instant` is an int that ``model_dump(mode="json")`` writes as text. Stored records are
read leniently (unknown fields ignored, no field required beyond ``status``), so records that
older or newer code wrote still read during a rolling deploy.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from app.clock import iso_time
from app.leaderboard.windows import Window

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
    """A submission's record as stored: created ``queued`` by the web, settled by a worker."""

    model_config = ConfigDict(extra="ignore")

    status: SubmissionState
    code: str | None = Field(default=None, description="The rejection's reason code.")
    reason: str | None = Field(default=None, description="Why it was rejected.")
    errors: FieldErrors | None = None
    # The digest of what the client sent, to tell an honest retry from a reused id.
    fingerprint: str | None = None
    game: str | None = None
    player_id: str | None = None
    queued_at: int | None = None
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
    # What went wrong in the service, for the dead letters.
    error: str | None = None
    settled_at: int | None = None

    def stored(self) -> dict[str, Any]:
        """The record as it is written to Redis (times in ms, absent fields left out)."""
        return self.model_dump(exclude_none=True)


class Submission(SubmissionRecord):
    """A submission's status as a client sees it, with the verdict once a worker settled it."""

    INTERNAL: ClassVar[frozenset[str]] = frozenset(
        {"fingerprint", "game", "queued_at", "error", "settled_at"}
    )

    submission_id: str
    # What the service keeps for itself.
    fingerprint: str | None = Field(default=None, exclude=True)
    game: str | None = Field(default=None, exclude=True)
    queued_at: int | None = Field(default=None, exclude=True)
    error: str | None = Field(default=None, exclude=True)
    settled_at: int | None = Field(default=None, exclude=True)

    @classmethod
    def of(cls, submission_id: str, record: SubmissionRecord) -> Submission:
        """The public view of a stored record."""
        return cls.model_validate({**record.stored(), "submission_id": submission_id})


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
    windows: list[Window]
    variants: list[VariantInfo]


class GameList(Answer):
    """The games and their boards."""

    games: list[GameInfo]


class BoardRow(Answer):
    """One line of a board."""

    rank: Rank
    player_id: str
    name: str
    score: Number
    achieved_at: Instant


class BoardPage(Answer):
    """A page of a board, best first."""

    game: str
    variant: str
    window: Window
    period: str = Field(description="all, 2036-11-19 or 2036-W47.")
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
    period: str
    total: Count
    updated_at: Instant | None
    rank: Rank
    player_id: str
    name: str
    score: Number
    achieved_at: Instant
    neighbours: list[BoardRow] = Field(
        description="Rows around the player's, the player's included."
    )


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
        default=None, description="Submissions on the ingest stream, by state."
    )
    workers: list[dict[str, Any]]
    beat: dict[str, dict[str, Any]] = Field(description="The last run of each beat job.")
    submissions: VerdictCounts
