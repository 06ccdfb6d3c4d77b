"""Bad input over real HTTP: the right 4xx, nothing stored, and the worker stays up."""

from __future__ import annotations

import requests

from tests.cases import BAD_SUBMISSIONS, GOOD, HOSTILE_BUT_VALID_NAMES, NOW
from tests.conftest import rejections


def test_every_bad_submission_is_refused_and_nothing_is_stored(live):
    pid = live.worker.popen.pid
    for case in BAD_SUBMISSIONS:
        try:
            resp = requests.post(
                live.url(f"/api/v1/games/{case.game}/scores"),
                data=case.body,
                headers={"Content-Type": case.content_type, **case.headers},
                timeout=10,
            )
        except requests.ConnectionError:
            # A server may close the connection while a too-large body is still being sent.
            assert case.status == 413, case.id
            continue
        assert resp.status_code == case.status, (case.id, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json", case.id
        problem = resp.json()
        assert problem["status"] == case.status, case.id
        assert set(problem.get("errors", {})) == case.fields, (case.id, problem)
    assert live.data_keys() == []
    assert live.broker.llen("ingest") == 0

    # The same worker process still ranks a good score.
    resp = requests.post(live.url("/api/v1/games/guess-claimed/scores"), json=GOOD, timeout=10)
    assert live.verdict(resp.json()["submission_id"])["status"] == "accepted"
    assert live.worker.popen.pid == pid and live.worker.alive


def test_odd_names_are_shown_as_sent_and_never_become_keys(live):
    for name in HOSTILE_BUT_VALID_NAMES:
        resp = requests.post(
            live.url("/api/v1/games/guess-claimed/scores"), json={**GOOD, "name": name}, timeout=10
        )
        assert resp.status_code == 202
        assert live.verdict(resp.json()["submission_id"])["status"] == "accepted"
    top = requests.get(
        live.url("/api/v1/games/guess-claimed/boards/10?limit=100"), timeout=10
    ).json()
    assert sorted(e["name"] for e in top["entries"]) == sorted(HOSTILE_BUT_VALID_NAMES)
    for key in live.data_keys():
        assert not any(name in key for name in HOSTILE_BUT_VALID_NAMES), key


def test_the_worker_judges_messages_that_skipped_the_web(live):
    """A hostile producer on the broker gets rejections, never a crash or a ranked cheat."""
    base = {
        "game": "guess-claimed",
        "variant": "10",
        "name": "Eve",
        "score": 1,
        "duration_ms": 900,
        "player_id": "e" * 22,
        "token": None,
        "received_at": NOW,
    }
    hostile = {
        "forged-score-0001": {**base, "score": 0},
        "forged-speed-0001": {**base, "score": 9, "duration_ms": 10},
        "forged-game-00001": {**base, "game": "../../etc"},
        "forged-shape-0001": {**base, "score": {"$gt": 1}},
        "forged-name-00001": {**base, "name": "x" * 5000},
    }
    for sid, payload in hostile.items():
        live.send({**payload, "submission_id": sid})
    for junk in ("a string", 12, None, [1, 2, 3], {"submission_id": "*"}):
        live.send(junk)
    live.send({**base, "submission_id": "honest-after-junk"})

    assert live.verdict("honest-after-junk")["status"] == "accepted"
    for sid in hostile:
        verdict = live.verdict(sid)
        assert verdict["status"] == "rejected", sid
        assert verdict["reason"], sid
    rejected = [f["sid"] for _, f in rejections(live.data)]
    assert sorted(rejected) == sorted(hostile)
    top = requests.get(live.url("/api/v1/games/guess-claimed/boards/10"), timeout=10).json()
    assert [(e["name"], e["score"]) for e in top["entries"]] == [("Eve", 1)]
