"""The pages in a real browser: play to a win, watch a board refresh, rebuild as an operator."""

from __future__ import annotations

import requests
from playwright.sync_api import Page, expect

from app.clock import now_ms
from app.leaderboard.games import load_registry
from app.leaderboard.stats import compute_family
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
