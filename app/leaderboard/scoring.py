"""A player's side of a score: start a run, submit the score, follow its verdict.

Plain functions over a Redis client; the caller (the web) has already parsed the request,
proved the player and picked the submission id, and passes in the time and how to ask for a
drain of the ingest stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from app.leaderboard import run_tokens, statuses, verified_runs
from app.leaderboard.games import Game
from app.leaderboard.records import Session, Submission, SubmissionRecord
from app.leaderboard.run_tokens import RunToken, TokenPolicy
from app.leaderboard.schemas import QueuedSubmission, ScoreIn
from app.leaderboard.validation import Rejection, check_run
from app.storage import intake, submissions
from app.storage.longpoll import VerdictWaiter
from app.storage.rate_limits import Counted, Counter
from app.storage.submissions import Generation


class TokenRefused(Exception):
    """The run token does not vouch for the score."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.detail)
        self.rejection = rejection


class SubmissionIdReused(Exception):
    """The submission id was already used for a different submission."""


class KeyRevoked(Exception):
    """The key that proved the player was revoked or replaced."""


class RateLimited(Exception):
    """The request broke one of its rate limits; nothing was stored."""

    def __init__(self, limits: Counted) -> None:
        super().__init__("rate limited")
        self.limits = limits


@dataclass(frozen=True)
class Taken:
    """A score taken for checking: its record, whose it is, and whether to hand its key."""

    record: SubmissionRecord
    player_id: str
    # Whoever proved the player, or made it just now, gets the player's key; never a mere
    # repeat of someone's request, which anyone who guessed the id could send.
    hand_key: bool


def start_session(
    client: redis.Redis,
    game: Game,
    variant: str | None,
    player_id: str,
    player_key: str,
    tokens: TokenPolicy,
    now_ms: int,
) -> Session:
    """A started run of ``player_id``: for a variant, with a signed single-use run token (and
    for a game with a verifier, the run's secret state kept in Redis)."""
    session = Session(game=game.slug, player_id=player_id, player_key=player_key)
    if variant is not None:
        run = RunToken(game.slug, variant, player_id, submissions.new_id(), now_ms)
        session.variant = variant
        session.token = run_tokens.issue(
            tokens.secret, game.slug, variant, player_id, run.run_id, now_ms
        )
        session.token_expires_at = now_ms + tokens.max_age_s * 1000
        if game.verified:
            verified_runs.start_run(client, game, variant, run, tokens)
            session.run_id = run.run_id
    return session


def submit_score(
    client: redis.Redis,
    game: Game,
    body: ScoreIn,
    *,
    submission_id: str,
    claimed: str | None,
    key_generation: int = 0,
    tokens: TokenPolicy | None,
    now_ms: int,
    idempotency_s: int,
    partitions: int,
    request_id: str | None,
    request_drain: Callable[[int], None],
    counters: Sequence[Counter] = (),
    report_limits: Callable[[Counted], None] | None = None,
    split: bool = False,
) -> Taken:
    """Queue a score (its rules already checked) for a worker; repeat an earlier answer for a
    retry of the same submission.

    ``claimed`` is the player the request proved, if any, by a key of ``key_generation``; a
    retry is known as such for ``idempotency_s`` seconds (at least) after the first request.
    The score goes to its ingest partition (of ``partitions``); ``request_drain`` is called with
    the partition when this score asked for its drain. ``counters`` are the request's rate
    limits, counted in the same round trip as the score is stored (with ``split``, a Redis
    Cluster's, in a round trip of their own before it: see :func:`app.storage.intake.enqueue`);
    ``report_limits`` is told how they stand.
    Raises :class:`TokenRefused` (also for a verified game's run that proves no score),
    :class:`RateLimited`, :class:`KeyRevoked` or :class:`SubmissionIdReused`; nothing is stored
    then.
    """
    sent = body.model_dump()
    fingerprint = submissions.fingerprint({**sent, "game": game.slug})
    player_id = claimed or submissions.new_id()
    # Everything about the token but its single use is checked here, to answer a bad one now;
    # the worker checks it all again.
    run = check_run(
        tokens,
        body.token,
        game=game.slug,
        variant=body.variant,
        player_id=player_id,
        received_at=now_ms,
        duration_ms=body.duration_ms,
    )
    if isinstance(run, Rejection):
        raise TokenRefused(run)
    # A verified game's score and play time are the run's; a claimed one's the client's.
    scored = verified_runs.resolve_score(client, game, body.score, body.duration_ms, run)
    if isinstance(scored, Rejection):
        raise TokenRefused(scored)
    # Made of fields validated above and values the web stamps, so not validated a second time
    # here; the worker validates it again from scratch.
    queued = QueuedSubmission.model_construct(
        **{
            **sent,
            "score": scored[0],
            "duration_ms": scored[1],
            "game": game.slug,
            "player_id": player_id,
            "submission_id": submission_id,
            "received_at": now_ms,
            "fingerprint": fingerprint,
            "request_id": request_id,
        }
    )
    record = SubmissionRecord(
        status="queued", fingerprint=fingerprint, game=game.slug, player_id=player_id
    )
    now = Generation.at(now_ms, idempotency_s, partitions)
    enqueued = intake.enqueue(
        client,
        submission_id,
        record.packed(now.start_ms),
        queued.model_dump(mode="json", exclude={"player_key"}),  # the key never leaves the web
        now,
        key=(claimed, key_generation) if claimed else None,
        counters=counters,
        split=split,
    )
    if report_limits is not None:
        report_limits(enqueued.limits)
    if enqueued.limits.breached is not None:
        raise RateLimited(enqueued.limits)
    if enqueued.revoked:
        raise KeyRevoked(claimed)
    if enqueued.schedule_drain:
        request_drain(enqueued.partition)
    if enqueued.existing is None:
        return Taken(record, player_id, hand_key=True)
    existing = statuses.unpacked(enqueued.existing)
    if existing is None:  # a record this code cannot read: the id is taken all the same
        raise SubmissionIdReused(submission_id)
    # A retry says the same, as nobody in particular or as the player the first got.
    same_player = claimed is None or existing.may_be_of(claimed)
    if existing.fingerprint != fingerprint or not same_player:
        raise SubmissionIdReused(submission_id)
    # An accepted record keeps only a prefix of its player's id; the log has the whole id.
    first = existing.player_id or claimed or statuses.logged_player(client, submission_id, existing)
    return Taken(existing, first or player_id, hand_key=claimed is not None)


def follow_submission(
    client: redis.Redis,
    waiter: VerdictWaiter,
    submission_id: str,
    wait: float,
    clock: Callable[[], int],
    idempotency_s: int,
    partitions: int,
) -> Submission | None:
    """A submission's status (None if unknown); held up to ``wait`` s until it is final.
    ``clock`` tells the time of each read (a long-poll reads again as it waits)."""

    def read() -> SubmissionRecord | None:
        return statuses.read(
            client, submission_id, Generation.at(clock(), idempotency_s, partitions)
        )

    record = read()
    if record is not None and record.status not in submissions.FINAL and wait > 0:
        record = waiter.wait(
            submission_id,
            wait,
            read,
            lambda r: r is None or r.status in submissions.FINAL,
        )
    if record is None:
        return None
    return Submission.of(submission_id, record)
