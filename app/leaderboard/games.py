"""The games registry: which games exist, how they sort, and what a plausible score is.

Games are data. The built-in table holds the demo's two games, the guessing game (``guess``)
and a paper plane throw (``throw``, whose settings show off those below); a TOML file named by
``HISCORE_GAMES_FILE`` adds games or replaces built-in ones without touching code::

    [games.reaction]
    title = "Reaction time (ms)"
    order = "lower"            # "lower" or "higher" is better
    integer = true             # whole-number scores only
    score_min = 80
    score_max = 2000
    variants = ["visual", "audio"]
    retention_days = 365       # entries older than this are pruned from the log
    daily_retention_days = 7   # a finished day stays readable this long
    weekly_retention_days = 35
    min_ms_per_point = 0       # plausibility: a run lasts at least score * this (0: no check)
    duration_required = false

A variant may also be a table of overrides: ``[games.guess.variants.10] score_max = 10``.

How boards rank and show scores is set per game too (every setting is optional)::

    keep = "best"              # "best", "latest" (the last achieved) or "sum" (a total;
                               # needs integer = true, so that totals are exact)
    subscore_order = "higher"  # a second whole number ("subscore") breaks ties of the score
    metadata_max_bytes = 256   # a JSON object ("metadata") of at most this many bytes
    windows = ["alltime", "daily", "weekly", "monthly", "season"]
    season = { every = "14d", starts_at = "2026-01-05T00:00:00Z" }
    ties = "competition"       # "unique" (1, 2, 3), "dense" (1, 1, 2), "competition" (1, 1, 3)
    format = "decimal:1"       # "integer", "time_ms" (m:ss.mmm) or "decimal:N" (the score
    unit = "m"                 # counts tenths, hundredths...); unit follows a shown score
    monthly_retention_days = 93
    season_retention_days = 90

A game may declare a verifier: then the service computes its scores, and refuses a claimed one.
A verifier is an object named by ``"module:attribute"`` that implements
:class:`app.leaderboard.verifiers.Verifier`: ``start(variant)`` draws the secret state of a new
run (a dict of short strings the service keeps in Redis for the run), and ``replay(run)``
replays the run's move log against that state and returns the score and play time it proves,
or why it proves none. The built-in ``guess`` declares the guessing game's own::

    [games.guess]
    verifier = "app.leaderboard.verifiers:guess"

whose moves are guesses the service answers ``higher``, ``lower`` or ``correct``
(``POST /api/v1/games/guess/runs/{run_id}/guesses``), so the score is the number of guesses it
answered and the play time runs from the run's start to the correct one. Another game declares
its own, say ``verifier = "mygames.verifiers:mastermind"``: any object whose ``start`` and
``replay`` work on a move log as ``GuessVerifier`` does.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from app.leaderboard.windows import DAY_MS, DEFAULT_WINDOWS, WINDOWS, Season, Window

Keep = Literal["best", "latest", "sum"]
Ties = Literal["unique", "dense", "competition"]
Order = Literal["lower", "higher"]

#: The largest subscore an entry may carry, either sign: a total of a million of them is still
#: exact in a double (and in the 17 digits a ranking member gives it).
SUBSCORE_LIMIT = 10**9

#: The most bytes of metadata a game may allow per entry.
METADATA_LIMIT = 4096

FORMAT = re.compile(r"^(integer|time_ms|decimal:[1-6])$")
_EVERY = re.compile(r"^([1-9][0-9]?)d$")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
VARIANT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Variant:
    """One variant of a game with its own score bounds."""

    name: str
    score_min: float
    score_max: float


@dataclass(frozen=True)
class Game:
    """A game declared in configuration."""

    slug: str
    title: str
    lower_is_better: bool
    integer: bool
    variants: Mapping[str, Variant]
    retention_days: int = 365
    daily_retention_days: int = 7
    weekly_retention_days: int = 35
    min_ms_per_point: int = 0
    duration_required: bool = False
    description: str = ""
    #: ``"module:attribute"`` of the game's verifier, or None: its scores are claimed.
    verifier: str | None = None
    keep: Keep = "best"
    #: Which subscores rank first, or None: the game's entries carry none.
    subscore_order: Order | None = None
    metadata_max_bytes: int = 0
    windows: tuple[Window, ...] = DEFAULT_WINDOWS
    season: Season | None = None
    ties: Ties = "unique"
    format: str = "integer"
    unit: str = ""
    monthly_retention_days: int = 93
    season_retention_days: int = 90

    def __hash__(self) -> int:
        return hash(self.slug)

    @property
    def order(self) -> Literal["lower", "higher"]:
        """``"lower"`` or ``"higher"``: which scores rank first."""
        return "lower" if self.lower_is_better else "higher"

    @property
    def sign(self) -> int:
        """Multiplies a score into its sorted-set score, so ascending order is rank order."""
        return 1 if self.lower_is_better else -1

    @property
    def verified(self) -> bool:
        """Whether the service computes this game's scores (it declares a verifier)."""
        return self.verifier is not None

    @property
    def sub_sign(self) -> int:
        """Multiplies a subscore into the order its rows rank in (0: the game has none)."""
        return {"lower": 1, "higher": -1, None: 0}[self.subscore_order]

    def window_retention_ms(self, window: str) -> int | None:
        """How long a finished period of ``window`` stays readable, or None to keep it."""
        days = {
            "daily": self.daily_retention_days,
            "weekly": self.weekly_retention_days,
            "monthly": self.monthly_retention_days,
            "season": self.season_retention_days,
        }
        return days[window] * DAY_MS if window in days else None


@dataclass(frozen=True)
class Registry:
    """The games this deployment serves, by slug."""

    games: Mapping[str, Game] = field(default_factory=dict)

    def get(self, slug: str) -> Game | None:
        """The game called ``slug``, or None."""
        return self.games.get(slug)

    def __iter__(self) -> Iterator[Game]:
        return iter(self.games.values())


#: The guessing game's verifier (see :mod:`app.leaderboard.verifiers`).
GUESS_VERIFIER = "app.leaderboard.verifiers:guess"
VERIFIER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _guess() -> Game:
    sizes = (10, 25, 100, 1000)
    return Game(
        slug="guess",
        title="Guess the number",
        description="Guess the number between 1 and max; the score is the number of guesses.",
        lower_is_better=True,
        integer=True,
        variants={str(n): Variant(str(n), 1, n) for n in sizes},
        # Typing a number and pressing Enter takes a person well over a fifth of a second.
        min_ms_per_point=200,
        duration_required=True,
        verifier=GUESS_VERIFIER,
    )


#: The paper plane's weekly seasons start on Monday 2026-11-30, 00:00 UTC.
_THROW_SEASONS_FROM = datetime(2026, 11, 30, tzinfo=UTC)


def _throw() -> Game:
    return Game(
        slug="throw",
        title="Paper plane",
        description="Throw a paper plane as far as you can; the score is your total distance.",
        lower_is_better=False,
        integer=True,  # tenths of a metre, so that totals stay exact
        variants={"park": Variant("park", 0, 1500)},
        # The page's flight lasts over a second plus 4 ms per tenth of a metre flown.
        min_ms_per_point=2,
        duration_required=True,
        keep="sum",
        # One per throw: of two equal totals, the one thrown in fewer throws ranks first. A
        # count that ranked more throws first would let a player climb a tie by throwing zeros.
        subscore_order="lower",
        metadata_max_bytes=256,
        windows=WINDOWS,
        season=Season(7 * DAY_MS, int(_THROW_SEASONS_FROM.timestamp() * 1000)),
        ties="competition",
        format="decimal:1",
        unit="m",
    )


BUILTIN_GAMES: tuple[Game, ...] = (_guess(), _throw())


_GAME_FIELDS = frozenset(
    {
        "title",
        "description",
        "order",
        "integer",
        "score_min",
        "score_max",
        "variants",
        "retention_days",
        "daily_retention_days",
        "weekly_retention_days",
        "min_ms_per_point",
        "duration_required",
        "verifier",
        "keep",
        "subscore_order",
        "metadata_max_bytes",
        "windows",
        "season",
        "ties",
        "format",
        "unit",
        "monthly_retention_days",
        "season_retention_days",
    }
)
_VARIANT_FIELDS = frozenset({"score_min", "score_max"})


def game_from_table(slug: str, table: Mapping[str, Any]) -> Game:
    """Build a :class:`Game` from one ``[games.<slug>]`` table; ValueError if it is wrong."""
    if not SLUG.match(slug):
        raise ValueError(f"game slug {slug!r} must match {SLUG.pattern}")
    unknown = set(table) - _GAME_FIELDS
    if unknown:
        raise ValueError(f"game {slug}: unknown settings {', '.join(sorted(unknown))}")
    order = table.get("order", "lower")
    if order not in ("lower", "higher"):
        raise ValueError(f"game {slug}: order must be 'lower' or 'higher'")
    score_min = float(table.get("score_min", 0))
    score_max = float(table.get("score_max", 1e9))
    raw_variants = table.get("variants", ["default"])
    if isinstance(raw_variants, Mapping):
        items: Iterable[tuple[str, Mapping[str, Any]]] = raw_variants.items()
    else:
        items = ((str(name), {}) for name in raw_variants)
    variants: dict[str, Variant] = {}
    for name, overrides in items:
        name = str(name)
        if not VARIANT.match(name):
            raise ValueError(f"game {slug}: variant {name!r} must match {VARIANT.pattern}")
        if set(overrides) - _VARIANT_FIELDS:
            raise ValueError(f"game {slug}: variant {name} has unknown settings")
        variants[name] = Variant(
            name,
            float(overrides.get("score_min", score_min)),
            float(overrides.get("score_max", score_max)),
        )
    if not variants:
        raise ValueError(f"game {slug}: at least one variant is needed")
    for v in variants.values():
        if v.score_min > v.score_max:
            raise ValueError(f"game {slug}: variant {v.name} has score_min > score_max")
    verifier = table.get("verifier")
    if verifier is not None and not (isinstance(verifier, str) and VERIFIER.match(verifier)):
        raise ValueError(f"game {slug}: verifier must be 'module:attribute'")
    integer = bool(table.get("integer", True))
    keep = _choice(slug, table, "keep", Keep, "best")
    if keep == "sum" and not integer:
        raise ValueError(f"game {slug}: keep = 'sum' needs integer = true (totals stay exact)")
    windows = _windows(slug, table.get("windows", list(DEFAULT_WINDOWS)))
    season = _season(slug, table.get("season"))
    if ("season" in windows) != (season is not None):
        raise ValueError(f"game {slug}: the season window and a [season] table go together")
    metadata_max_bytes = int(table.get("metadata_max_bytes", 0))
    if not 0 <= metadata_max_bytes <= METADATA_LIMIT:
        raise ValueError(f"game {slug}: metadata_max_bytes must be 0 to {METADATA_LIMIT}")
    score_format = str(table.get("format", "integer"))
    if not FORMAT.match(score_format):
        raise ValueError(f"game {slug}: format must be integer, time_ms or decimal:1 to 6")
    unit = str(table.get("unit", ""))
    if len(unit) > 8:
        raise ValueError(f"game {slug}: unit must be at most 8 characters")
    subscore_order = table.get("subscore_order")
    if subscore_order not in (None, "lower", "higher"):
        raise ValueError(f"game {slug}: subscore_order must be 'lower' or 'higher'")
    return Game(
        slug=slug,
        title=str(table.get("title", slug)),
        description=str(table.get("description", "")),
        lower_is_better=order == "lower",
        integer=integer,
        variants=variants,
        retention_days=int(table.get("retention_days", 365)),
        daily_retention_days=int(table.get("daily_retention_days", 7)),
        weekly_retention_days=int(table.get("weekly_retention_days", 35)),
        min_ms_per_point=int(table.get("min_ms_per_point", 0)),
        duration_required=bool(table.get("duration_required", False)),
        verifier=verifier,
        keep=keep,
        subscore_order=cast(Order | None, subscore_order),
        metadata_max_bytes=metadata_max_bytes,
        windows=windows,
        season=season,
        ties=_choice(slug, table, "ties", Ties, "unique"),
        format=score_format,
        unit=unit,
        monthly_retention_days=int(table.get("monthly_retention_days", 93)),
        season_retention_days=int(table.get("season_retention_days", 90)),
    )


def _choice(slug: str, table: Mapping[str, Any], name: str, kind: Any, default: str) -> Any:
    value = table.get(name, default)
    allowed = get_args(kind)
    if value not in allowed:
        raise ValueError(f"game {slug}: {name} must be one of {', '.join(allowed)}")
    return value


def _windows(slug: str, names: Any) -> tuple[Window, ...]:
    if not isinstance(names, list) or any(name not in WINDOWS for name in names):
        raise ValueError(f"game {slug}: windows must be a list of {', '.join(WINDOWS)}")
    if "alltime" not in names:
        raise ValueError(f"game {slug}: windows must include alltime")
    return tuple(window for window in WINDOWS if window in names)


def _season(slug: str, table: Any) -> Season | None:
    if table is None:
        return None
    if not isinstance(table, Mapping) or set(table) != {"every", "starts_at"}:
        raise ValueError(f"game {slug}: season needs every (1d to 90d) and starts_at, only")
    every = _EVERY.match(str(table["every"]))
    if not every or int(every[1]) > 90:
        raise ValueError(f"game {slug}: season every must be 1d to 90d")
    starts_at = table["starts_at"]
    if isinstance(starts_at, str):
        try:
            starts_at = datetime.fromisoformat(starts_at)
        except ValueError:
            raise ValueError(f"game {slug}: season starts_at must be an ISO time") from None
    if not isinstance(starts_at, datetime) or starts_at.tzinfo is None:
        raise ValueError(f"game {slug}: season starts_at must be an ISO time with its offset")
    return Season(int(every[1]) * DAY_MS, int(starts_at.timestamp() * 1000))


def load_registry(games_file: str | None = None) -> Registry:
    """The built-in games, plus (or replaced by) those of a TOML file."""
    games = {game.slug: game for game in BUILTIN_GAMES}
    if games_file:
        with open(games_file, "rb") as fh:
            data = tomllib.load(fh)
        for slug, table in data.get("games", {}).items():
            games[slug] = game_from_table(slug, table)
    from app.leaderboard.verifiers import verifier_of  # it needs the Game type of this module

    for game in games.values():
        verifier_of(game)  # a verifier that cannot be loaded fails at start, not mid-run
    return Registry(games)
