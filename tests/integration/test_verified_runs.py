"""A verified run over real HTTP: the service answers each guess, the worker ranks the run."""

from __future__ import annotations

import requests


def test_a_run_played_over_http_is_ranked_at_the_guesses_the_service_answered(live):
    http = requests.Session()
    base = live.url("/api/v1/games/guess")
    session = http.post(f"{base}/sessions", json={"variant": "1000"}, timeout=10).json()
    low, high, answers = 1, 1000, []
    while True:
        number = (low + high) // 2
        answered = http.post(
            f"{base}/runs/{session['run_id']}/guesses",
            json={"guess": number, "token": session["token"]},
            timeout=10,
        )
        assert answered.status_code == 200, answered.text
        answers.append(answered.json())
        if answers[-1]["result"] == "correct":
            break
        low, high = (number + 1, high) if answers[-1]["result"] == "higher" else (low, number - 1)
    assert [a["guesses"] for a in answers] == list(range(1, len(answers) + 1))
    again = http.post(
        f"{base}/runs/{session['run_id']}/guesses",
        json={"guess": number, "token": session["token"]},
        timeout=10,
    )
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"

    run = {"name": "Verified", "variant": "1000", "token": session["token"]}
    claimed = http.post(f"{base}/scores", json={**run, "score": 1}, timeout=10)
    assert claimed.status_code == 422 and "score" in claimed.json()["errors"]
    sent = http.post(f"{base}/scores", json=run, timeout=10)
    assert sent.status_code == 202, sent.text
    verdict = http.get(live.url(sent.json()["status_url"]), params={"wait": 20}, timeout=30).json()
    assert verdict["status"] == "accepted", verdict
    assert (verdict["rank"], verdict["score"]) == (1, len(answers))

    board = http.get(f"{base}/boards/1000", timeout=10).json()
    assert [(e["name"], e["score"]) for e in board["entries"]] == [("Verified", len(answers))]
    # The same run a second time is refused by the worker: a run is ranked once.
    second = http.post(f"{base}/scores", json=run, timeout=10).json()
    replay = http.get(live.url(second["status_url"]), params={"wait": 20}, timeout=30).json()
    assert (replay["status"], replay["code"]) == ("rejected", "token_reused")
