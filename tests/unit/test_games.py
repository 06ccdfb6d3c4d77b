import pytest

from app.leaderboard.games import game_from_table, load_registry
from app.leaderboard.windows import DAY_MS, Season


def test_guess_is_built_in_with_its_variants():
    guess = load_registry().get("guess")
    assert guess is not None
    assert guess.lower_is_better and guess.integer
    assert list(guess.variants) == ["10", "25", "100", "1000"]
    assert guess.variants["25"].score_min == 1
    assert guess.variants["25"].score_max == 25


def test_the_paper_plane_is_built_in_beside_guess():
    registry = load_registry()
    throw = registry.get("throw")
    assert throw is not None
    assert [game.slug for game in registry] == ["guess", "throw"]
    assert throw.order == "higher" and throw.integer and throw.keep == "sum"
    assert list(throw.variants) == ["park"]
    assert (throw.variants["park"].score_min, throw.variants["park"].score_max) == (0, 1500)
    assert throw.windows == ("alltime", "daily", "weekly", "monthly", "season")
    # Weekly seasons from Monday 2026-11-30 00:00 UTC.
    assert throw.season == Season(7 * DAY_MS, 1_795_996_800_000)
    assert (throw.ties, throw.subscore_order, throw.sub_sign) == ("competition", "lower", 1)
    assert (throw.format, throw.unit, throw.metadata_max_bytes) == ("decimal:1", "m", 256)
    assert throw.duration_required and throw.min_ms_per_point == 2
    assert not throw.verified  # its scores are claimed, each with a run token


def test_a_second_game_is_added_by_configuration_alone(tmp_path):
    games_file = tmp_path / "games.toml"
    games_file.write_text(
        """
[games.reaction]
title = "Reaction"
order = "higher"
integer = false
score_min = 0
score_max = 100
variants = ["easy", "hard"]
"""
    )
    registry = load_registry(str(games_file))
    assert registry.get("guess") is not None
    reaction = registry.get("reaction")
    assert reaction is not None
    assert not reaction.lower_is_better and not reaction.integer
    assert reaction.sign == -1 and registry.get("guess").sign == 1
    assert set(reaction.variants) == {"easy", "hard"}


def test_variant_tables_override_bounds():
    game = game_from_table("g", {"score_max": 50, "variants": {"small": {"score_max": 5}, "x": {}}})
    assert game.variants["small"].score_max == 5
    assert game.variants["x"].score_max == 50


@pytest.mark.parametrize(
    ("slug", "table"),
    [
        ("Bad Slug", {}),
        ("g", {"order": "sideways"}),
        ("g", {"variants": ["no spaces"]}),
        ("g", {"variants": []}),
        ("g", {"score_min": 10, "score_max": 1}),
        ("g", {"retension_days": 3}),  # a typo is an error, not a silent default
        ("g", {"variants": {"a": {"score_maxx": 3}}}),
        ("g", {"keep": "max"}),
        ("g", {"keep": "sum", "integer": False}),  # a float total would depend on order
        ("g", {"windows": ["daily"]}),  # every game has its all-time board
        ("g", {"windows": ["alltime", "yearly"]}),
        ("g", {"windows": ["alltime", "season"]}),  # a season window needs its schedule
        ("g", {"season": {"every": "7d", "starts_at": "2026-01-05T00:00:00Z"}}),
        (
            "g",
            {
                "windows": ["alltime", "season"],
                "season": {"every": "91d", "starts_at": "2026-01-05T00:00:00Z"},
            },
        ),
        (
            "g",
            {
                "windows": ["alltime", "season"],
                "season": {"every": "7d", "starts_at": "2026-01-05"},
            },
        ),
        ("g", {"ties": "shared"}),
        ("g", {"format": "decimal:9"}),
        ("g", {"subscore_order": "up"}),
        ("g", {"metadata_max_bytes": 5000}),
    ],
)
def test_wrong_game_tables_are_refused(slug, table):
    with pytest.raises(ValueError):
        game_from_table(slug, table)


def test_board_settings_are_read_from_the_table():
    game = game_from_table(
        "throw",
        {
            "keep": "sum",
            "subscore_order": "higher",
            "metadata_max_bytes": 200,
            "windows": ["season", "alltime", "monthly"],
            "season": {"every": "14d", "starts_at": "2026-01-05T00:00:00Z"},
            "ties": "competition",
            "format": "decimal:1",
            "unit": "m",
        },
    )
    assert (game.keep, game.subscore_order, game.sub_sign) == ("sum", "higher", -1)
    assert game.windows == ("alltime", "monthly", "season")  # in the canonical order
    assert game.season == Season(14 * DAY_MS, 1767571200000)
    assert (game.ties, game.format, game.unit, game.metadata_max_bytes) == (
        "competition",
        "decimal:1",
        "m",
        200,
    )
    assert game.window_retention_ms("monthly") == 93 * DAY_MS
    assert game.window_retention_ms("season") == 90 * DAY_MS


def test_guess_keeps_the_boards_it_always_had():
    guess = load_registry().get("guess")
    assert guess is not None
    assert (guess.keep, guess.ties, guess.sub_sign, guess.metadata_max_bytes) == (
        "best",
        "unique",
        0,
        0,
    )
    assert guess.windows == ("alltime", "daily", "weekly")
