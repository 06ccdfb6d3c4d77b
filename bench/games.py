"""Whole games as the page plays them, in games per second: closed-loop players, each playing
one game after another for a fixed time, against hiscore and against the tutorial's design,
on seeded boards of two sizes.

hiscore's game is the page's (``app/static/game.js`` and ``hiscore.js``): start a run
(``POST …/sessions``: a player and a run token), submit the score with the token and the
player's id and key (202 and a ``status_url``), long-poll the status until the verdict, then
read the board's top 10. The tutorial's: ``POST`` the score (a bare ``LPUSH``), then read the
top 10 (the whole list fetched and sorted).

Every game is a new player's, as a visitor's first game (the page has no cookie yet): a
person plays a game in seconds, and one identity playing back to back at the service's pace
would meet the per-player limit on scores, a limit that guards against exactly that. So each
hiscore game adds a row to its board, and each tutorial game an element to its list: both
boards grow by one entry a game, from their seeded size.

The claimed game's rules make a score of s points take at least ``min_ms_per_point``·s ms of
play, and the run token refuses a score that claims more play than the run's age. A player
waiting out its play before each score would measure the waiting; so each player starts its
runs ahead, a pipeline of :data:`AHEAD` started runs: with each game it starts a new run (the
session request is part of that game's loop) and submits the oldest, old enough by then. A
game's time is its own session request plus everything from its score to its top 10; any
time a player still had to wait for a run to come of age is reported beside the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import redis

from app.clock import now_ms
from app.leaderboard.games import Registry
from bench import seed, storage
from bench.baseline_app import list_key
from bench.ingest import board_rows, cpu_ms_per
from bench.load import KeepAlive, get, percentile, post_json
from bench.processes import Stack
from bench.report import Figure, compare

GAME = seed.INGEST_GAME  # a claimed-score game with a minimum play time per point
HOST = "127.0.0.1"
#: Runs each player keeps started ahead of the one it submits.
AHEAD = 32
#: A game's score is 1 to this many points (the claimed play time grows with it).
MAX_POINTS = 5
#: The long-poll's hold per request (seconds), and how long a player follows a verdict.
WAIT_S = 5
FOLLOW_S = 60
#: Slack between the client's clock and the service's whole milliseconds.
AGE_MARGIN_S = 0.005
#: Share of the window players may spend waiting for runs before the figure counts play time.
MAX_WAITED_SHARE = 0.05
#: The load generator is one asyncio thread: near one core, it is what limits the figure.
MAX_LOAD_CORES = 0.8
DESIGNS = ("hiscore", "tutorial")
#: What a game ends with when everything went as it should, per design.
SUCCESS = {"hiscore": "accepted", "tutorial": "answered"}
#: The parts of a game, timed apart to show where its time goes.
STEPS = {"hiscore": ("session", "score", "verdict", "top10"), "tutorial": ("score", "top10")}


@dataclass(frozen=True)
class Run:
    """A started run: its token and player, when its session answered, how long that took."""

    token: str
    player_id: str
    player_key: str
    started: float  # time.monotonic()
    took: float


@dataclass(frozen=True)
class Played:
    """One game: when it ended, how long its requests took, and how it ended."""

    ended: float  # time.monotonic()
    seconds: float
    outcome: str  # the verdict, "answered", or the step that failed and its status
    player_id: str = ""
    landed: bool = False  # on the board as far as the player was told
    requests: int = 0
    waited: float = 0.0  # for its run to come of age, before the score
    steps: tuple[float, ...] = ()  # seconds of each of its design's STEPS


class Player(Protocol):
    """One closed-loop player, on a keep-alive connection of its own."""

    connection: KeepAlive

    async def prepare(self) -> None:
        """Whatever must happen before the first game."""

    async def play(self) -> Played:
        """Play one game."""


class HiscorePlayer:
    """Plays hiscore's game as the page does, with runs started :data:`AHEAD` games ahead."""

    def __init__(self, port: int, variant: str, ms_per_point: int, seat: int) -> None:
        self.port = port
        self.variant = variant
        self.ms_per_point = ms_per_point
        self.rng = random.Random(seat)
        self.connection = KeepAlive(HOST, port)
        self.runs: deque[Run] = deque()
        self.scores_path = f"/api/v1/games/{GAME}/scores"
        self.sessions_path = f"/api/v1/games/{GAME}/sessions"
        self.board_path = f"/api/v1/games/{GAME}/boards/{variant}?limit=10"

    async def _start(self) -> Run | str:
        sent = time.monotonic()
        raw = post_json(HOST, self.port, self.sessions_path, {"variant": self.variant})
        status, body = await self.connection.request(raw)
        if status != 201:
            return f"session {status}"
        answer = json.loads(body)
        now = time.monotonic()
        return Run(answer["token"], answer["player_id"], answer["player_key"], now, now - sent)

    async def prepare(self) -> None:
        """Start the pipeline's runs."""
        while len(self.runs) < AHEAD:
            run = await self._start()
            if isinstance(run, str):
                raise RuntimeError(f"hiscore refused a session while starting runs: {run}")
            self.runs.append(run)

    async def play(self) -> Played:
        """Start a later game's run; submit the oldest; follow its verdict; read the top 10."""
        began = time.monotonic()
        started = await self._start()
        if isinstance(started, str):
            return Played(time.monotonic(), time.monotonic() - began, started, requests=1)
        self.runs.append(started)
        run = self.runs.popleft()
        points = self.rng.randint(1, MAX_POINTS)
        duration_ms = points * self.ms_per_point
        waited = max(0.0, run.started + duration_ms / 1000 + AGE_MARGIN_S - time.monotonic())
        if waited:
            await asyncio.sleep(waited)
        sent = time.monotonic()
        body = {
            "name": "Bench player",
            "score": points,
            "variant": self.variant,
            "duration_ms": duration_ms,
            "player_id": run.player_id,
            "player_key": run.player_key,
            "token": run.token,
            "submission_id": uuid.uuid4().hex,  # as the page's: a retry counts once
        }
        verdict, requests, queued = await self._follow(body)
        followed = time.monotonic()
        board, _ = await self.connection.request(get(HOST, self.port, self.board_path))
        ended = time.monotonic()
        accepted = verdict == SUCCESS["hiscore"]
        return Played(
            ended,
            run.took + (ended - sent),
            verdict if board == 200 or not accepted else f"board {board}",
            run.player_id,
            landed=accepted,
            requests=requests + 2,  # its session and its top 10
            waited=waited,
            steps=(run.took, queued - sent, followed - queued, ended - followed),
        )

    async def _follow(self, body: dict[str, Any]) -> tuple[str, int, float]:
        """Submit the score and long-poll its status; return the verdict, the requests made
        and when the 202 came."""
        raw = post_json(HOST, self.port, self.scores_path, body)
        status, answer = await self.connection.request(raw)
        answered = time.monotonic()
        if status != 202:
            return f"score {status}", 1, answered
        queued = json.loads(answer)
        verdict, requests = queued["status"], 1
        url = urlsplit(queued["status_url"])
        poll = get(HOST, self.port, f"{url.path}?wait={WAIT_S}")
        deadline = time.monotonic() + FOLLOW_S
        while verdict == "queued" and time.monotonic() < deadline:
            status, answer = await self.connection.request(poll)
            requests += 1
            if status != 200:
                return f"status {status}", requests, answered
            verdict = json.loads(answer)["status"]
        return verdict, requests, answered


class TutorialPlayer:
    """Plays the tutorial's game: post the score, read the top 10."""

    def __init__(self, port: int, variant: str, ms_per_point: int, seat: int) -> None:
        self.port = port
        self.variant = variant
        self.ms_per_point = ms_per_point
        self.seat = seat
        self.games = 0
        self.rng = random.Random(seat)
        self.connection = KeepAlive(HOST, port)
        self.scores_path = f"/api/v1/games/{GAME}/scores"
        self.board_path = f"/api/v1/games/{GAME}/boards/{variant}?limit=10"

    async def prepare(self) -> None:
        """Nothing: the tutorial has no runs."""

    async def play(self) -> Played:
        """Post the score; read the top 10."""
        self.games += 1
        player_id = f"tutorial-{self.seat:03d}-{self.games:07d}"
        points = self.rng.randint(1, MAX_POINTS)
        body = {
            "player_id": player_id,
            "name": "Bench player",
            "score": points,
            "variant": self.variant,
            "duration_ms": points * self.ms_per_point,
        }
        sent = time.monotonic()
        posted, _ = await self.connection.request(
            post_json(HOST, self.port, self.scores_path, body)
        )
        if posted != 202:
            return Played(time.monotonic(), time.monotonic() - sent, f"score {posted}", requests=1)
        posted_at = time.monotonic()
        board, _ = await self.connection.request(get(HOST, self.port, self.board_path))
        ended = time.monotonic()
        outcome = SUCCESS["tutorial"] if board == 200 else f"board {board}"
        steps = (posted_at - sent, ended - posted_at)
        return Played(ended, ended - sent, outcome, player_id, True, 2, steps=steps)


async def closed_loop(
    players: Sequence[Player],
    warmup: float,
    seconds: float,
    sample: Callable[[], dict[str, float]],
) -> tuple[list[Played], tuple[float, float], dict[str, float], dict[str, float]]:
    """Every player plays games back to back from a common start; games ending in the window
    after ``warmup`` count. A game in progress when the window closes is finished (its score is
    on its way). Returns every game, the window and ``sample()`` at its two ends."""
    await asyncio.gather(*(player.prepare() for player in players))
    start = time.monotonic() + warmup
    window = (start, start + seconds)

    async def loop(player: Player) -> list[Played]:
        games = []
        while time.monotonic() < window[1]:
            games.append(await player.play())
        player.connection.close()
        return games

    async def sampled() -> tuple[dict[str, float], dict[str, float]]:
        await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
        before = sample()
        await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
        return before, sample()

    sampler = asyncio.create_task(sampled())
    played = await asyncio.gather(*(loop(player) for player in players))
    before, after = await sampler
    return [game for games in played for game in games], window, before, after


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def _entries(client: redis.Redis, design: str, variant: str) -> int:
    if design == "hiscore":
        return board_rows(client, GAME, variant)
    return cast(int, client.llen(list_key(GAME, variant)))


def play(
    stack: Stack,
    client: redis.Redis,
    design: str,
    variant: str,
    ms_per_point: int,
    players: int,
    warmup: float,
    seconds: float,
) -> dict[str, Any]:
    """``players`` closed-loop players of one design on one board: games per second, a whole
    game's p50/p99, how every game ended, the board's growth and the CPU per game."""
    kind: type[HiscorePlayer] | type[TutorialPlayer]
    kind = HiscorePlayer if design == "hiscore" else TutorialPlayer
    port = stack.web_port if design == "hiscore" else stack.baseline_port
    seats: list[Player] = [kind(port, variant, ms_per_point, seat) for seat in range(players)]
    before = _entries(client, design, variant)
    games, (start, end), cpu_before, cpu_after = asyncio.run(
        closed_loop(seats, warmup, seconds, stack.cpu_seconds)
    )
    after = _entries(client, design, variant)
    window = end - start
    counted = [g for g in games if start <= g.ended <= end and g.outcome == SUCCESS[design]]
    times = [g.seconds for g in counted]
    outcomes: dict[str, int] = {}
    for g in games:
        outcomes[g.outcome] = outcomes.get(g.outcome, 0) + 1
    waited = sum(g.waited for g in games if start <= g.ended <= end)
    return {
        "design": design,
        "players": players,
        "ahead": AHEAD if design == "hiscore" else 0,
        "seconds": window,
        "games": len(counted),
        "rate": len(counted) / window,
        "p50_ms": _ms(percentile(times, 50)),
        "p99_ms": _ms(percentile(times, 99)),
        "step_p50_ms": {
            step: _ms(percentile([g.steps[i] for g in counted], 50))
            for i, step in enumerate(STEPS[design])
        },
        "requests_per_game": sum(g.requests for g in counted) / len(counted) if counted else None,
        "games_all": len(games),
        "outcomes": outcomes,
        "entries_before": before,
        "entries_after": after,
        "landed": len({g.player_id for g in games if g.landed}),
        "waited_share": waited / (players * window),
        "cpu_ms_per_game": cpu_ms_per(cpu_before, cpu_after, len(counted)),
        "load_cores": (cpu_after["load"] - cpu_before["load"]) / window,
    }


def measure_games(
    stack: Stack,
    client: redis.Redis,
    registry: Registry,
    args: argparse.Namespace,
    phase: Callable[[str], AbstractContextManager[None]],
    quiet: Callable[[], None],
) -> dict[str, Any]:
    """Seed the claimed game's two play boards (hiscore's and the tutorial's), then play whole
    games on each, hiscore's and the tutorial's; ``quiet`` before each timed run."""
    game = registry.get(GAME)
    assert game is not None
    ms_per_point = game.min_ms_per_point or 0
    boards = {seed.PLAY_SMALL: args.small, seed.PLAY_LARGE: args.games_big}
    sizes = " and ".join(f"{n:,}" for n in boards.values())
    with phase(f"games: seed boards of {sizes} entries, hiscore's and the tutorial's"):
        first_at = now_ms() - 60_000 - max(boards.values())
        for variant, count in boards.items():
            seed.seed_log(client, GAME, variant, count, first_at)
            storage.time_rebuild(client, game, variant)
            seed.seed_tutorial_list(client, GAME, variant, count, first_at)
    out: dict[str, Any] = {}
    for design in DESIGNS:
        for variant, count in boards.items():
            with phase(f"games: {design}, {count:,}-entry board, {args.players} players"):
                quiet()
                out[f"{design}_{variant}"] = {
                    "board": count,
                    **play(
                        stack,
                        client,
                        design,
                        variant,
                        ms_per_point,
                        args.players,
                        args.warmup_seconds,
                        args.game_seconds,
                    ),
                }
            stack.check_alive()
    return {"games": out}


def _pair(run: dict[str, Any]) -> str:
    return " / ".join("—" if v is None else f"{v:,.1f}" for v in (run["p50_ms"], run["p99_ms"]))


def figures(games: dict[str, Any]) -> list[Figure]:
    """The table's lines: games per second and a game's p50/p99 on each board, beside the
    tutorial's; the load generator's CPU."""
    lines = []
    for variant in (seed.PLAY_SMALL, seed.PLAY_LARGE):
        mine, theirs = games[f"hiscore_{variant}"], games[f"tutorial_{variant}"]
        board = f"{mine['board']:,}"
        lines += [
            compare(
                f"whole games, {mine['players']} players, {board} board (games/s)",
                mine["rate"],
                theirs["rate"],
                "tutorial",
            ),
            Figure(f"  a game's p50 / p99, {board} board (ms)", _pair(mine), _pair(theirs)),
        ]
    mine, theirs = (
        " / ".join(
            f"{games[f'{d}_{v}']['load_cores']:.2f}" for v in (seed.PLAY_SMALL, seed.PLAY_LARGE)
        )
        for d in DESIGNS
    )
    lines.append(Figure("  load generator CPU, both boards (cores)", mine, theirs))
    return lines


def problems(games: dict[str, Any]) -> list[str]:
    """What makes the game figures suspect: games that did not end as they should, entries
    missing from the boards, players waiting for their runs, a saturated load generator."""
    found = []
    for name, run in games.items():
        success = SUCCESS[run["design"]]
        others = {k: v for k, v in run["outcomes"].items() if k != success}
        if others:
            found.append(f"games {name}: {sum(others.values())} games ended otherwise: {others}")
        if not run["games"]:
            found.append(f"games {name}: no game completed in the window")
        grown = run["entries_after"] - run["entries_before"]
        if grown != run["landed"]:
            found.append(f"games {name}: the board grew by {grown}, {run['landed']} players landed")
        if run["waited_share"] > MAX_WAITED_SHARE:
            found.append(
                f"games {name}: players spent {run['waited_share']:.0%} of the window waiting for"
                " their runs to come of age: the figure counts play time"
            )
        if run["load_cores"] > MAX_LOAD_CORES:
            found.append(
                f"games {name}: the load generator took {run['load_cores']:.2f} cores: it may be"
                " what limits the figure"
            )
    return found
