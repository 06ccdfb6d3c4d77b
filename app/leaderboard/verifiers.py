"""Verifiers: how the service proves a run's score instead of taking the player's word for it.

A game that declares ``verifier = "module:attribute"`` in the games file (see
:mod:`app.leaderboard.games`) has its scores computed by the service. The object named there
implements :class:`Verifier`:

- ``start(variant)`` draws the secret state of a new run: a small dict of strings, kept in Redis
  beside the run's move log (:mod:`app.storage.runs`) and never shown to the player;
- ``replay(run)`` replays the run's move log against that state and answers a :class:`Proven`
  score and play time, or a :class:`Unproven` reason. The web replays a run when its score is
  submitted and the worker replays it again before ranking it, so neither trusts the other.

Example, the guessing game's own (``verifier = "app.leaderboard.verifiers:guess"``)::

    >>> run = Run(player_id="p" * 22, started_at=1_000, state={"secret": "7"},
    ...           moves=(50, 25, 7), finished_at=4_500)
    >>> guess.replay(run, Variant("100", 1, 100))
    Proven(score=3, duration_ms=3500)
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol, cast

from app.leaderboard.games import Game, Variant


@dataclass(frozen=True)
class Run:
    """What the service recorded of one verified run."""

    player_id: str
    started_at: int  # epoch ms, when the run's token was issued
    state: Mapping[str, str]  # what ``start`` drew
    moves: tuple[int, ...] = ()
    finished_at: int | None = None  # epoch ms of the move that ended it


@dataclass(frozen=True)
class Proven:
    """The score and play time a run's moves prove."""

    score: int
    duration_ms: int


@dataclass(frozen=True)
class Unproven:
    """Why a run's moves prove no score: a stable code and a sentence."""

    code: str
    detail: str


class Verifier(Protocol):
    """What a game's verifier does (see the module's docstring)."""

    def start(self, variant: Variant) -> dict[str, str]:
        """The secret state of a new run of ``variant``."""
        ...

    def replay(self, run: Run, variant: Variant) -> Proven | Unproven:
        """The score ``run``'s moves prove, or why they prove none."""
        ...


@dataclass(frozen=True)
class GuessVerifier:
    """Guess the number: the service draws it, answers each guess, and counts them."""

    #: The state field that holds the number (the Lua script ``guess.lua`` reads it).
    secret_field: str = field(default="secret")

    def start(self, variant: Variant) -> dict[str, str]:
        """Draw the number between 1 and the variant's maximum, with a CSPRNG."""
        return {self.secret_field: str(1 + secrets.randbelow(int(variant.score_max)))}

    def answer(self, secret: int, guess: int) -> str:
        """``higher``, ``lower`` or ``correct``: how ``guess`` stands to ``secret``."""
        if guess == secret:
            return "correct"
        return "higher" if guess < secret else "lower"

    def replay(self, run: Run, variant: Variant) -> Proven | Unproven:
        """The number of guesses up to the correct one, and the time from start to it."""
        try:
            secret = int(run.state[self.secret_field])
        except (KeyError, ValueError):
            return Unproven("run_invalid", "the run has no number to guess")
        if run.finished_at is None or not run.moves or run.moves[-1] != secret:
            return Unproven("run_unfinished", "the run has not found its number yet")
        if secret in run.moves[:-1] or len(run.moves) > variant.score_max:
            return Unproven("run_invalid", "the run's guesses are not a game of this variant")
        return Proven(len(run.moves), max(0, run.finished_at - run.started_at))


#: The built-in guessing game's verifier.
guess = GuessVerifier()


@cache
def _load(dotted: str) -> Verifier:
    module, _, attribute = dotted.partition(":")
    found = getattr(importlib.import_module(module), attribute, None)
    if not callable(getattr(found, "start", None)) or not callable(getattr(found, "replay", None)):
        raise ValueError(f"verifier {dotted} has no start and replay")
    return cast(Verifier, found)


def verifier_of(game: Game) -> Verifier | None:
    """The verifier ``game`` declares, or None; ValueError if it cannot be loaded."""
    if game.verifier is None:
        return None
    try:
        return _load(game.verifier)
    except ImportError as exc:
        raise ValueError(f"game {game.slug}: verifier {game.verifier}: {exc}") from None
