"""Verified runs in Redis: each run's secret state and move log, one hash per run.

The hash (:func:`app.storage.keys.run_state_key`) holds ``player`` (22-64 bytes), ``started``
(13), the verifier's state (the guessing game's ``secret``: 1-4), ``moves`` (the guesses,
comma-separated: at most 5 bytes each), ``n`` (their count) and, once found, ``finished`` (13):
with field names and Redis's own overhead about 200 bytes for a run of ten guesses, and at most
about 5.3 KB for the longest (the 1,000 guesses variant 1000 allows). It lives for the run
token's max age from the start: an unfinished run is of no use once its token has expired. A
finished run is kept until its token's use is forgotten (issue + twice the max age, see
:func:`app.leaderboard.run_tokens.run_forgotten_at`), so the worker can replay it however long
its score waited in the queue. Each guess is one round trip: ``app/lua/guess.lua`` checks and
records it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from app.storage import keys, scripts
from app.storage.connection import DataClient

#: What the guess script answers, by its code.
ANSWERS: dict[int, Literal["higher", "lower", "correct"]] = {
    0: "correct",
    1: "higher",
    2: "lower",
}
NO_SUCH_RUN, FINISHED, OUT_OF_GUESSES = -1, -2, -3


@dataclass(frozen=True)
class RunKey:
    """Where one verified run is kept: its game, variant and id."""

    game: str
    variant: str
    run_id: str

    @property
    def key(self) -> str:
        """The run's Redis hash."""
        return keys.run_state_key(self.game, self.variant, self.run_id)


def start(
    client: DataClient,
    run: RunKey,
    player_id: str,
    started_at: int,
    state: Mapping[str, str],
    ttl_ms: int,
) -> None:
    """Record a new run's start and secret state, kept for ``ttl_ms``."""
    fields = {**state, "player": player_id, "started": str(started_at), "moves": "", "n": "0"}
    pipe = client.pipeline(transaction=True)
    pipe.hset(run.key, mapping=fields)
    pipe.pexpire(run.key, ttl_ms)
    pipe.execute()


def guess(
    client: DataClient, run: RunKey, guess: int, now_ms: int, max_guesses: int, keep_until: int
) -> tuple[int, int]:
    """Answer and record one guess: (code, guesses answered); see ``app/lua/guess.lua``."""
    code, count = scripts.script(client, "guess")(
        keys=[run.key], args=[guess, now_ms, max_guesses, keep_until]
    )
    return int(code), int(count)


def read_many(client: DataClient, runs: Sequence[RunKey]) -> list[dict[str, str]]:
    """The stored fields of each run ({} for one that is gone), in one round trip."""
    if not runs:
        return []
    pipe = client.pipeline(transaction=False)
    for run in runs:
        pipe.hgetall(run.key)
    return [{_text(k): _text(v) for k, v in fields.items()} for fields in pipe.execute()]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
