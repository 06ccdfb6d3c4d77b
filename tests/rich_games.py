"""Games of every board setting of SPEC §11, for the property tests of the keep modes, tie
policies and subscores, and the instants they draw entries around."""

from datetime import UTC, datetime

from app.leaderboard.games import Game, game_from_table

DAY = 86_400_000


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# Monday 2036-12-01 begins a day, an ISO week, a month and a season (of 7 days from 11-24).
TURN = ms(2036, 12, 1)
NOW = ms(2036, 12, 3)


def rich_game(keep: str, ties: str, subscore: str | None, higher: bool) -> Game:
    """A game on every window, with metadata, by its keep rule, ties policy and orders."""
    table = {
        "order": "higher" if higher else "lower",
        "keep": keep,
        "ties": ties,
        "metadata_max_bytes": 64,
        "windows": ["alltime", "daily", "weekly", "monthly", "season"],
        "season": {"every": "7d", "starts_at": "2036-11-24T00:00:00Z"},
    }
    if subscore:
        table["subscore_order"] = subscore
    slug = f"{keep}-{ties}-{subscore or 'none'}-{'h' if higher else 'l'}"
    return game_from_table(slug, table)
