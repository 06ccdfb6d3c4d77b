"""The pages in a real browser: play to a win, watch a board refresh, rebuild as an operator,
throw a paper plane, and read a board in its game's format, ties, periods and friends."""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests
from playwright.sync_api import Page, expect

from app.clock import now_ms
from app.leaderboard.boards import Entry, apply_entries
from app.leaderboard.games import load_registry
from app.leaderboard.stats import compute_family
from app.leaderboard.windows import DAY_MS, period_of
from tests.browser.conftest import screenshots
from tests.cases import GOOD
from tests.processes import TEST_GAMES

TOKEN = "testing-operator-token"


def play_to_a_win(page: Page, maximum: int) -> int:
    """Binary-search the secret from the page's higher/lower feedback; return the guesses."""
    # The run starts once the service has drawn its number; it answers each guess.
    expect(page.locator("#play")).to_be_visible(timeout=10_000)
    low, high, guesses = 1, maximum, 0
    while page.locator("#play").is_visible():
        guess = (low + high) // 2
        field = page.locator("#guess")
        field.press_sequentially(str(guess), delay=50)  # typed, as a person would
        field.press("Enter")
        guesses += 1
        if page.locator("#result").is_visible():
            break
        expect(page.locator("#count")).to_have_text(str(guesses))
        hint = page.locator("#feedback").get_attribute("data-hint")
        if hint == "higher":
            low = guess + 1
        else:
            assert hint == "lower"
            high = guess - 1
    return guesses


def test_a_player_wins_sees_the_verdict_and_finds_themselves(page, live):
    page.goto("/")
    screenshots(page, "game-start")
    page.fill("#name", "Browser Bot")
    page.check("input[name=max][value='100']")
    page.press("#name", "Enter")  # the keyboard starts the game too
    expect(page.locator("#play")).to_be_visible()
    expect(page.locator("#guess")).to_be_focused()

    guesses = play_to_a_win(page, 100)
    assert 1 <= guesses <= 7
    expect(page.locator("#summary")).to_contain_text(f"in {guesses} guess")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-status", "accepted", timeout=30_000)
    expect(verdict).to_contain_text("Ranked #1 of all time")
    screenshots(page, "game-won")

    page.click("#board-link")
    expect(page).to_have_url(f"{live.base_url}/boards/guess/100?find=me")
    mine = page.locator("tr.me")
    expect(mine).to_contain_text("Browser Bot")
    expect(mine).to_contain_text(str(guesses))
    expect(page.locator("#message")).to_contain_text("You are #1 of 1")
    # The player's key lives in the HttpOnly cookie alone, out of reach of any script.
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "hiscore_player"]
    assert cookie["httpOnly"]
    stored = page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
    assert cookie["value"] not in stored and "player_key" not in stored


def test_the_board_shows_a_score_posted_over_the_api_without_reloading(page, live):
    # A game whose scores are claimed, so the test can post the scores it wants.
    requests.post(
        live.url("/api/v1/games/guess-claimed/scores"),
        json={**GOOD, "variant": "25", "name": "Already Here"},
        timeout=10,
    )
    page.goto("/boards/guess-claimed/25")
    expect(page.locator("#rows")).to_contain_text("Already Here")
    page.evaluate("window.notReloaded = true")

    sent = requests.post(
        live.url("/api/v1/games/guess-claimed/scores"),
        json={**GOOD, "variant": "25", "name": "Live Arrival", "score": 2},
        timeout=10,
    )
    assert sent.status_code == 202
    expect(page.locator("#rows tr").first).to_contain_text("Live Arrival", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True

    game = load_registry(str(TEST_GAMES)).get("guess-claimed")
    compute_family(live.data, game, "25", now_ms())
    page.click("[role=tab][data-window='weekly']")
    expect(page.locator("#stats-summary")).to_contain_text("2 games by 2 players")
    expect(page.locator("#histogram rect")).to_have_count(3)  # scores 2, 3 and 4
    screenshots(page, "board")


def test_an_operator_rebuilds_a_board_to_100_percent(page, live):
    live.seed_log("guess", "1000", 20_000, 1000)
    page.goto("/admin")
    page.fill("#token", "not-the-token")
    page.press("#token", "Enter")
    expect(page.locator("#login-message")).to_have_text("That token was not accepted.")

    page.fill("#token", TOKEN)
    page.press("#token", "Enter")
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("ingest@")
    page.select_option("#scope", "guess/1000")
    page.click("#rebuild")
    task = page.locator("#task")
    expect(task).to_have_attribute("data-state", "done", timeout=60_000)
    expect(task).to_contain_text("20,000 of 20,000 log entries (100%)")
    assert page.evaluate("document.getElementById('progress').position") == 1
    screenshots(page, "admin")

    page.reload()  # the token is kept for this tab
    expect(page.locator("#console")).to_be_visible()
    board = requests.get(live.url("/api/v1/games/guess/boards/1000"), timeout=10).json()
    assert board["total"] == 20_000


def test_an_unavailable_service_is_told_in_words_and_works_again_once_back(page, live):
    page.goto("/")
    page.fill("#name", "Unlucky")
    page.check("input[name=max][value='100']")
    page.click("#start")
    expect(page.locator("#play")).to_be_visible(timeout=10_000)
    live.stop_redis()  # the run has started; its guesses find the store down
    try:
        page.locator("#guess").press_sequentially("50", delay=50)
        page.press("#guess", "Enter")
        expect(page.locator("#feedback")).to_have_text(
            "The leaderboard is unavailable right now. Try again in a moment.", timeout=30_000
        )
        expect(page.locator("#count")).to_have_text("0")  # nothing was answered, nothing counted
    finally:
        live.start_redis()

    # The run was kept: the same game goes on to a ranked win.
    guesses = play_to_a_win(page, 100)
    expect(page.locator("#summary")).to_contain_text(f"in {guesses} guess")
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-status", "accepted", timeout=30_000)
    expect(verdict).to_contain_text("Ranked #1 of all time")

    page.click("#again")
    page.click("#start")
    play_to_a_win(page, 100)
    expect(verdict).to_have_attribute("data-status", "accepted", timeout=30_000)


THROW_BOARD = "/boards/throw/park"


@dataclass
class Thrower:
    """A player of the paper plane, posting throws over the API as a game's page would."""

    name: str
    player_id: str | None = None
    player_key: str | None = None

    def throw(self, live, *tenths: int) -> Thrower:
        """Post each distance as one throw and wait until each is counted."""
        for score in tenths:
            body = {
                "name": self.name,
                "variant": "park",
                "score": score,
                "duration_ms": 5000,
                "subscore": 1,
                "metadata": {"plane": "dart", "wind": 0},
            }
            if self.player_id:
                body.update(player_id=self.player_id, player_key=self.player_key)
            sent = requests.post(live.url("/api/v1/games/throw/scores"), json=body, timeout=10)
            assert sent.status_code == 202, sent.text
            answer = sent.json()
            if self.player_id is None:
                self.player_id, self.player_key = answer["player_id"], answer["player_key"]
            assert live.verdict(answer["submission_id"])["status"] == "accepted"
        return self


def be(page: Page, player: Thrower) -> None:
    """Make the page's player ``player``: the id the page keeps to find them by."""
    page.evaluate(
        "id => localStorage.setItem('hiscore.player', JSON.stringify({player_id: id}))",
        player.player_id,
    )


def column(page: Page, index: int, rows: str = "#rows") -> list[str]:
    """The texts of one column of a board's table, top row first."""
    return page.locator(f"{rows} tr td:nth-child({index})").all_inner_texts()


def test_a_board_shows_scores_in_the_games_format(page, live):
    Thrower("Far").throw(live, 1234)
    Thrower("Near").throw(live, 5)
    page.goto(THROW_BOARD)
    expect(page.locator("#rows tr")).to_have_count(2)
    assert column(page, 3) == ["123.4 m", "0.5 m"]  # tenths, shown as metres
    # The same formatter serves every format a game may declare.
    formats = page.evaluate(
        """() => [hiscore.formatScore(83456, "time_ms"), hiscore.formatScore(42, "integer"),
                  hiscore.formatScore(7, "decimal:2", "kg"),
                  hiscore.formatScore(-15, "decimal:1")]"""
    )
    assert formats == ["1:23.456", "42", "0.07 kg", "-1.5"]
    screenshots(page, "throw-board")


def test_a_board_with_subscores_shows_them_and_one_without_does_not(page, live):
    Thrower("Twice").throw(live, 100, 100)  # 20.0 m in 2 throws
    Thrower("Once").throw(live, 200)  # 20.0 m in 1: fewer throws to a total rank first
    page.goto(THROW_BOARD)
    expect(page.locator("#rows tr")).to_have_count(2)
    expect(page.locator("#subscore-head")).to_have_text("Subscore")
    assert column(page, 2) == ["Once", "Twice"]
    assert column(page, 3) == ["20.0 m", "20.0 m"]
    assert column(page, 4) == ["1", "2"]
    assert column(page, 1) == ["1", "2"]  # a subscore that differs is no tie
    page.goto("/boards/guess/100")
    expect(page.locator("#board thead th")).to_have_count(4)
    expect(page.locator("#subscore-head")).to_have_count(0)


def test_equal_rows_share_a_rank_as_the_api_answers(page, live):
    for name in ("First", "Second"):
        Thrower(name).throw(live, 300)
    Thrower("Third").throw(live, 100)
    page.goto(THROW_BOARD)
    expect(page.locator("#rows tr")).to_have_count(3)
    api = requests.get(live.url("/api/v1/games/throw/boards/park"), timeout=10).json()
    assert [row["rank"] for row in api["entries"]] == [1, 1, 3]  # competition ties
    assert column(page, 1) == ["1", "1", "3"]
    assert column(page, 2) == [row["name"] for row in api["entries"]]


def test_find_me_says_how_many_players_the_player_beats(page, live):
    for index, score in enumerate((100, 200, 300)):
        Thrower(f"Other {index}").throw(live, score)
    me = Thrower("Me").throw(live, 250, 250)  # 50.0 m: first of four
    page.goto(THROW_BOARD)
    be(page, me)
    page.click("#find-me")
    expect(page.locator("#message")).to_have_text("You are #1 of 4, better than 75 % of players.")
    expect(page.locator("tr.me")).to_contain_text("50.0 m")
    expect(page.locator("#page-info")).to_contain_text("around you")


def test_the_friends_view_shows_the_listed_players_with_their_ranks(page, live):
    leader = Thrower("Leader").throw(live, 900)
    friend = Thrower("Friend").throw(live, 500)
    Thrower("Stranger").throw(live, 700)
    unknown = "u" * 22
    page.goto(THROW_BOARD)
    expect(page.locator("#rows tr")).to_have_count(3)
    for player_id in (friend.player_id, unknown, leader.player_id):
        page.fill("#friend-id", player_id)
        page.press("#friend-id", "Enter")
    expect(page.locator("#friend-rows tr")).to_have_count(2)
    assert column(page, 2, "#friend-rows") == ["Leader", "Friend"]  # best first
    assert column(page, 1, "#friend-rows") == ["1", "3"]  # their ranks on the whole board
    expect(page.locator("#friends-message")).to_have_text(f"Not on this board: {unknown}.")

    page.reload()  # the list is kept in the browser
    expect(page.locator("#friend-list li")).to_have_count(3)
    expect(page.locator("#friend-rows tr")).to_have_count(2)
    page.click(f"#friend-list li[data-player='{leader.player_id}'] button")
    expect(page.locator("#friend-rows tr")).to_have_count(1)
    assert column(page, 2, "#friend-rows") == ["Friend"]
    screenshots(page, "friends")


def test_the_period_picker_reads_a_finished_day(page, live):
    throw = load_registry(str(TEST_GAMES)).get("throw")
    now = now_ms()
    yesterday = now - DAY_MS
    entries = [
        Entry(f"sub-yesterday-{i}", throw, "park", f"{c}" * 22, name, score, at, subscore=1)
        for i, (c, name, score, at) in enumerate(
            [("y", "Yesterday", 400, yesterday), ("t", "Today", 300, now - 1000)]
        )
    ]
    apply_entries(live.data, entries, now)
    page.goto(THROW_BOARD)
    tabs = page.locator("[role=tab]")
    expect(tabs).to_have_text(["All time", "Today", "This week", "This month", "This season"])
    expect(page.locator("#period-picker")).to_be_hidden()  # all time has one period

    page.click("[role=tab][data-window='daily']")
    expect(page.locator("#period-picker")).to_be_visible()
    resets = re.compile(r"^resets in (\d+ h( \d+ min)?|\d+ min|under a minute)$")
    expect(page.locator("#resets")).to_have_text(resets)
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Today")
    periods = requests.get(
        live.url("/api/v1/games/throw/boards/park/periods?window=daily"), timeout=10
    ).json()["periods"]
    day_before = period_of("daily", yesterday)
    assert [p["period"] for p in periods][:2] == [period_of("daily", now), day_before]
    expect(page.locator("#period option")).to_have_count(len(periods))

    page.select_option("#period", day_before)
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("Yesterday")
    expect(page.locator("#rows")).to_contain_text("40.0 m")
    expect(page.locator("#resets")).to_contain_text("ended")
    page.click("[role=tab][data-window='alltime']")
    expect(page.locator("#rows tr")).to_have_count(2)


def test_a_throw_on_its_page_shows_on_its_board(page, live):
    page.goto("/play/throw")
    screenshots(page, "throw-start")
    page.fill("#name", "Paper Pilot")
    page.check("input[name=plane][value='glider']")
    for slider, value in (("#angle", 22), ("#power", 60)):
        page.eval_on_selector(
            slider,
            "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
            value,
        )
    expect(page.locator("#angle-out")).to_have_text("22°")
    page.press("#name", "Enter")  # the keyboard throws too
    expect(page.locator("#throw-button")).to_be_disabled()
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-status", "accepted", timeout=30_000)
    tenths = int(page.locator("#distance").get_attribute("data-score"))
    shown = f"{tenths // 10}.{tenths % 10} m"
    expect(page.locator("#distance")).to_have_text(f"Your glider flew {shown}.")
    expect(verdict).to_contain_text(f"Your total is {shown} in 1 throw: #1 of 1 all time")
    expect(page.locator("#throw-button")).to_be_enabled()
    screenshots(page, "throw-landed")

    page.click("#board-link")
    expect(page).to_have_url(f"{live.base_url}{THROW_BOARD}?find=me")
    mine = page.locator("tr.me")
    expect(mine).to_contain_text("Paper Pilot")
    expect(mine).to_contain_text(shown)
    board = requests.get(live.url("/api/v1/games/throw/boards/park?metadata=1"), timeout=10).json()
    (row,) = board["entries"]
    assert (row["score"], row["subscore"]) == (tenths, 1)
    assert row["metadata"]["plane"] == "glider" and row["metadata"]["wind"] in range(-3, 4)
