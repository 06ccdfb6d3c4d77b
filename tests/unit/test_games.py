import pytest

from app.leaderboard.games import game_from_table, load_registry


def test_guess_is_built_in_with_its_variants():
    guess = load_registry().get("guess")
    assert guess is not None
    assert guess.lower_is_better and guess.integer
    assert list(guess.variants) == ["10", "25", "100", "1000"]
    assert guess.variants["25"].score_min == 1
    assert guess.variants["25"].score_max == 25


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
    ],
)
def test_wrong_game_tables_are_refused(slug, table):
    with pytest.raises(ValueError):
        game_from_table(slug, table)
