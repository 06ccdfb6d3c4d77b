import pytest
from pydantic import ValidationError

from app.leaderboard.games import load_registry
from app.leaderboard.schemas import ScoreIn, clean_name
from app.leaderboard.validation import check_rules, validate_queued
from tests.cases import NOW, queued_payload
from tests.processes import TEST_GAMES

GUESS = load_registry().get("guess")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ann  ", "Ann"),
        ("Zoë", "Zoë"),
        ("Zoe\u0308", "Zoë"),  # NFC: one code point, not two
        ("*:{}", "*:{}"),
        ("🙂 player", "🙂 player"),
        ("x" * 32, "x" * 32),
        ("\uff21\uff4e\uff4e", "Ann"),  # NFKC: fullwidth letters are the letters
        ("\ufb01ve", "five"),
        (
            "nbsp\u00a0inside",
            "nbsp inside",
        ),  # NFKC: a no-break space is a space  # NFKC: a ligature is its letters
        ("Zoe\u0308\u0301", "Zoë\u0301"),  # two marks on one letter are allowed
        ("Привет", "Привет"),  # one script other than Latin
        ("東京 Tokyo", "東京 Tokyo"),  # Han with Latin, as Japanese is written
        ("Ann\u2764\ufe0f", "Ann\u2764\ufe0f"),  # an emoji's variation selector
    ],
)
def test_names_are_trimmed_and_normalised(raw, clean):
    assert clean_name(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "x" * 33,
        "bad\x00name",
        "tab\tname",
        "new\nline",
        "bell\x07",
        "rtl\u202eoverride",
    ],
)
def test_bad_names_are_refused(raw):
    with pytest.raises(ValueError):
        clean_name(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "\u3164",  # HANGUL FILLER
        "\u3164\u3164\u3164",
        "\u2800",  # BRAILLE PATTERN BLANK
        "\u115f",  # HANGUL CHOSEONG FILLER
        "\u1160",  # HANGUL JUNGSEONG FILLER
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u200b",  # ZERO WIDTH SPACE (a format character)
        "\u0301",  # a combining mark with nothing to sit on
        "\u3000",  # IDEOGRAPHIC SPACE
    ],
)
def test_names_without_a_visible_character_are_refused(raw):
    with pytest.raises(ValueError, match="visible|printable|empty"):
        clean_name(raw)


@pytest.mark.parametrize("raw", ["Ann\u3164", "\u2800Ann", "A\uffa0nn"])
def test_blank_letters_are_refused_anywhere(raw):
    # They would make "Ann" and a name that looks exactly like it two different names.
    with pytest.raises(ValueError, match="blank"):
        clean_name(raw)


@pytest.mark.parametrize(
    "raw", ["Zalgo\u0334\u0335\u0336\u0337", "x" + "\u0336" * 3, "ok" + "\u0489\u0300" * 10]
)
def test_stacks_of_combining_marks_are_refused(raw):
    with pytest.raises(ValueError, match="combining marks"):
        clean_name(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "\u0430dmin",  # Cyrillic a, then Latin: looks like "admin"
        "p\u0430ypal",
        "\u0391nn",  # Greek capital alpha before Latin
        "\u041f\u0440\u0438\u0432\u0435\u0442 Bob",
    ],
)
def test_names_mixing_look_alike_scripts_are_refused(raw):
    with pytest.raises(ValueError, match="scripts"):
        clean_name(raw)


@pytest.mark.parametrize(
    ("variant", "score", "duration", "fields"),
    [
        ("10", 3, 5000, set()),
        ("10", 1, 200, set()),
        ("10", 10, 2000, set()),
        ("10", 11, 60000, {"score"}),
        ("10", 0, 5000, {"score"}),
        ("10", -1, 5000, {"score"}),
        ("10", 2.5, 5000, {"score"}),
        ("1000", 1e300, 5000, {"score"}),  # speed is judged only for a possible score
        ("10", 5, 999, {"duration_ms"}),  # 5 guesses in under a second is not a person
        ("10", 5, None, {"duration_ms"}),  # the guessing game needs a duration
        ("11", 5, 5000, {"variant"}),
    ],
)
def test_guess_rules(variant, score, duration, fields):
    assert set(check_rules(GUESS, variant, score, duration)) == fields


@pytest.mark.parametrize(
    "body",
    [
        {"score": 3, "variant": "10"},  # no name
        {"name": "a", "score": "3", "variant": "10"},  # score as text
        {"name": "a", "score": True, "variant": "10"},  # a boolean is not a number
        {"name": "a", "score": 3, "variant": "10", "extra": 1},
        {"name": "a", "score": 3, "variant": "10", "player_id": "short"},
        {"name": "a", "score": 3, "variant": "10", "player_id": "a" * 16 + ":*"},
        {"name": "a", "score": 3, "variant": "10", "duration_ms": -5},
        {"name": "a", "score": 3, "variant": ["10"]},
        {"name": "a", "score": float("nan"), "variant": "10"},
        {"name": 5, "score": 3, "variant": "10"},
    ],
)
def test_schema_refuses_wrong_shapes(body):
    with pytest.raises(ValidationError):
        ScoreIn.model_validate(body)


def test_variant_may_be_a_number_or_text():
    assert ScoreIn.model_validate({"name": "a", "score": 3, "variant": 10}).variant == "10"
    assert ScoreIn.model_validate({"name": "a", "score": 3, "variant": "10"}).variant == "10"


queued = queued_payload


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not an object", "invalid"),
        ([1, 2], "invalid"),
        (queued(received_at="yesterday"), "invalid"),
        (queued(game="chess"), "unknown_game"),
        (queued(variant="7"), "unknown_variant"),
        (queued(score=99), "implausible"),
        (queued(name="\x1b[31mred"), "invalid"),
        (queued(name="\u0430dmin"), "invalid"),  # the worker refuses what the web does
        (queued(name="\u3164"), "invalid"),
    ],
)
def test_the_worker_judges_queued_messages_from_scratch(payload, code):
    assert validate_queued(load_registry(str(TEST_GAMES)), payload).code == code


def test_a_good_queued_message_passes():
    sub, game, run = validate_queued(load_registry(str(TEST_GAMES)), queued())
    assert run is None  # no token, and none asked for
    assert game.slug == "guess-claimed" and sub.score == 3 and sub.received_at == NOW - 5
