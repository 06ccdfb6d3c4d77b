"""Runs whose score the service proves: start one, answer its moves, resolve its score.

A run of a game with a verifier (see :mod:`app.leaderboard.verifiers`) starts with its run
token: the service draws the run's secret state then and keeps it with the run's moves
(:mod:`app.storage.runs`). The token is also what lets a caller play the run: it names this
one run, and only whoever started the run holds it (a player's key would prove the player,
not the run, and a cookie would let another site's form play it). When the score is
submitted, the web replays the moves for the score and play time it ranks, and the worker
replays them again before it ranks the entry. The token's single use (checked as the entry
is applied) means a run is ranked once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from app.leaderboard import run_tokens
from app.leaderboard.games import Game, Registry
from app.leaderboard.run_tokens import RunToken, TokenPolicy, TokenProblem
from app.leaderboard.validation import Rejection
from app.leaderboard.verifiers import GuessVerifier, Proven, Run, Unproven, verifier_of
from app.storage import runs
from app.storage.connection import DataClient


@dataclass(frozen=True)
class RunProblem:
    """Why a move cannot be played: an HTTP-like status, a stable code and a sentence."""

    status: int
    code: str
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class Answer:
    """The service's answer to one guess."""

    result: Literal["higher", "lower", "correct"]
    guesses: int


def _where(run: RunToken) -> runs.RunKey:
    return runs.RunKey(run.game, run.variant, run.run_id)


def start_run(
    client: DataClient, game: Game, variant: str, run: RunToken, policy: TokenPolicy
) -> None:
    """Keep a new run's secret state, if ``game`` has a verifier (else do nothing)."""
    verifier = verifier_of(game)
    if verifier is None:
        return
    state = verifier.start(game.variants[variant])
    runs.start(client, _where(run), run.player_id, run.issued_at, state, policy.max_age_s * 1000)


def answer_guess(
    client: DataClient,
    game: Game,
    run_id: str,
    token: str,
    guess: int,
    policy: TokenPolicy,
    now_ms: int,
) -> Answer | RunProblem:
    """Answer one guess of the run ``run_id`` of ``game``, played with its ``token``."""
    verifier = verifier_of(game)
    if not isinstance(verifier, GuessVerifier):
        return RunProblem(404, "not_guessed", f"{game.slug} is not played by guesses")
    run = run_tokens.read(policy.secret, token)
    if isinstance(run, TokenProblem) or run.game != game.slug or run.run_id != run_id:
        # The same answer whether the token is forged or another run's: it is not this run's.
        return RunProblem(403, "token_mismatch", "the run token is not this run's", "token")
    rules = game.variants.get(run.variant)
    if rules is None:
        return RunProblem(404, "no_such_run", "there is no such run")
    highest = int(rules.score_max)
    if guess > highest:
        return RunProblem(422, "out_of_range", f"must be between 1 and {highest}", "guess")
    code, count = runs.guess(
        client,
        _where(run),
        guess,
        now_ms,
        max_guesses=highest,
        keep_until=run_tokens.run_forgotten_at(run, policy),
    )
    if code == runs.NO_SUCH_RUN:
        return RunProblem(404, "no_such_run", "there is no such run, or it has expired")
    if code == runs.FINISHED:
        return RunProblem(409, "run_finished", "this run has found its number; submit it")
    if code == runs.OUT_OF_GUESSES:
        return RunProblem(409, "out_of_guesses", f"this run has used all {highest} guesses")
    return Answer(runs.ANSWERS[code], count)


def run_of(fields: Mapping[str, str]) -> Run | None:
    """The run a stored hash describes, or None if it is gone or unreadable."""
    try:
        moves = tuple(int(m) for m in fields["moves"].split(",") if m)
        finished = fields.get("finished")
        state = {k: v for k, v in fields.items() if k not in ("player", "started", "moves", "n")}
        state.pop("finished", None)
        return Run(
            player_id=fields["player"],
            started_at=int(fields["started"]),
            state=state,
            moves=moves,
            finished_at=int(finished) if finished is not None else None,
        )
    except (KeyError, ValueError):
        return None


def replay_runs(
    client: DataClient, registry: Registry, tokens: Sequence[RunToken]
) -> list[Proven | Rejection]:
    """What each verified run proves (in one round trip), or why it proves nothing."""
    stored = runs.read_many(client, [_where(t) for t in tokens])
    proofs: list[Proven | Rejection] = []
    for token, fields in zip(tokens, stored, strict=True):
        game = registry.get(token.game)
        verifier = verifier_of(game) if game else None
        run = run_of(fields)
        if game is None or verifier is None or token.variant not in game.variants:
            proofs.append(Rejection("run_invalid", "the run is not of a verified game"))
        elif run is None or run.player_id != token.player_id:
            detail = "the run's moves are gone: it expired or never started"
            proofs.append(Rejection("run_missing", detail, {"token": [detail]}))
        else:
            proof = verifier.replay(run, game.variants[token.variant])
            if isinstance(proof, Unproven):
                proofs.append(Rejection(proof.code, proof.detail, {"token": [proof.detail]}))
            else:
                proofs.append(proof)
    return proofs


def resolve_score(
    client: DataClient,
    game: Game,
    claimed: float | None,
    duration_ms: int | None,
    run: RunToken | None,
) -> tuple[float, int | None] | Rejection:
    """The score and play time to rank: the run's proof for a verified game, else the claim."""
    if not game.verified:
        assert claimed is not None  # check_claim requires it
        return claimed, duration_ms
    if run is None:
        detail = f"a {game.slug} run is proven by its token"
        return Rejection("token_missing", detail, {"token": ["is required"]})
    (proof,) = replay_runs(client, Registry({game.slug: game}), [run])
    if isinstance(proof, Rejection):
        return proof
    return proof.score, proof.duration_ms
