"""Run tokens: proof that a score comes from a run the service saw start.

``POST /sessions`` with a variant issues a token signed with the app's secret (itsdangerous),
bound to the game, the variant and the player, carrying its issue time and a random id. A
score that carries it is accepted only if the token is genuine, unexpired, for that game,
variant and player, not used by another submission before, and at least as old as the play
time the score claims (with no slack: the token's age must cover the claim). For a game with a
verifier the token is also the key to its run's moves (:mod:`app.leaderboard.verified_runs`).
Everything but "not used before" can be checked without Redis, so the web refuses a bad
token at once; the worker checks it all again, and marks the token used in the same script that
applies the entry (see ``app/lua/apply_entry.lua``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer

_SALT = "hiscore.run"

#: How far the web processes' clocks may disagree: a token issued by one expires this much
#: later by another's clock. Never added to a claimed play time (see :func:`check`).
CLOCK_SLACK_MS = 1_000


@dataclass(frozen=True)
class TokenProblem:
    """Why a token cannot vouch for a score: a stable code and a sentence."""

    code: str
    detail: str


@dataclass(frozen=True)
class TokenPolicy:
    """How the service treats run tokens (from the app's configuration)."""

    secret: str
    required: bool
    max_age_s: int


@dataclass(frozen=True)
class RunToken:
    """What a genuine token says."""

    game: str
    variant: str
    player_id: str
    run_id: str
    issued_at: int  # epoch ms


def issue(secret: str, game: str, variant: str, player_id: str, run_id: str, now_ms: int) -> str:
    """A signed token for one run of ``game``/``variant`` by ``player_id``."""
    claims = {"g": game, "v": variant, "p": player_id, "r": run_id, "t": now_ms}
    return _serializer(secret).dumps(claims)


def read(secret: str, token: str) -> RunToken | TokenProblem:
    """What a token says, if this service signed it (whatever its age)."""
    try:
        claims = _serializer(secret).loads(token)
    except BadSignature:
        return _rejection("token_invalid", "the run token is not one this service issued")
    try:
        return RunToken(
            game=str(claims["g"]),
            variant=str(claims["v"]),
            player_id=str(claims["p"]),
            run_id=str(claims["r"]),
            issued_at=int(claims["t"]),
        )
    except (KeyError, TypeError, ValueError):
        return _rejection("token_invalid", "the run token is not one this service issued")


def check(
    secret: str,
    token: str,
    *,
    game: str,
    variant: str,
    player_id: str,
    received_at: int,
    duration_ms: int | None,
    max_age_s: int,
) -> RunToken | TokenProblem:
    """The token's claims, or why it cannot vouch for this score (all but single use)."""
    run = read(secret, token)
    if isinstance(run, TokenProblem):
        return run
    if (run.game, run.variant, run.player_id) != (game, variant, player_id):
        return _rejection(
            "token_mismatch", "the run token was issued for another game, variant or player"
        )
    # Judged as of the score's arrival, so a backlog in the workers cannot expire a good token.
    elapsed = received_at - run.issued_at
    # The token's age is read off two hosts' clocks (the one that issued it, the one that
    # received the score): the slack for their skew favours the player here, where it only
    # lengthens the token's life a little.
    if elapsed > max_age_s * 1000 + CLOCK_SLACK_MS:
        return _rejection("token_expired", "the run token has expired; start a new run")
    # No slack for the claimed play time: it would shorten every game's minimum play time by
    # as much, so a run claimed at its minimum could be sent a moment after its token.
    if duration_ms is not None and duration_ms > max(elapsed, 0):
        return _rejection(
            "token_too_fast",
            f"the run claims {duration_ms} ms of play, but its token is only {max(elapsed, 0)}"
            " ms old",
        )
    return run


def run_forgotten_at(run: RunToken, policy: TokenPolicy) -> int:
    """Epoch ms at which a run's use is forgotten.

    A score may arrive until the token expires and then wait in the queue; the use is kept for
    as long again, and a score checked at or after this instant is refused rather than risk a
    second use of its token going unnoticed.
    """
    return run.issued_at + 2 * policy.max_age_s * 1000


def use_ttl_ms(run: RunToken, policy: TokenPolicy, now_ms: int) -> int | None:
    """How long (ms) to remember a use of ``run`` made at ``now_ms``; None once it cannot be.

    From :func:`run_forgotten_at` on, a use would be remembered for no time at all (and Redis
    refuses a TTL of 0), so its score is refused instead: every use accepted is remembered up
    to that instant, and any other score with the same token is checked against it or refused.
    """
    left = run_forgotten_at(run, policy) - now_ms
    return left if left >= 1 else None


@lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeSerializer:
    # One per secret and process: building it for each token cost 12 of the 30 us of a check.
    return URLSafeSerializer(secret, salt=_SALT)


def _rejection(code: str, detail: str) -> TokenProblem:
    return TokenProblem(code, detail)
