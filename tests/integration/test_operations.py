"""Operators over real HTTP: rebuilds with progress, readers during a rebuild, beat."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.cases import GOOD
from tests.processes import BIN, Process, wait_for

OPERATOR = {"Authorization": "Bearer testing-operator-token"}

AUTH = {"Authorization": "Bearer testing-operator-token"}


def rebuild(stack, body: dict) -> dict:
    resp = requests.post(stack.url("/api/v1/admin/rebuild"), json=body, headers=AUTH, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()


def follow(stack, status_url: str, seen: list | None = None) -> dict:
    """Poll a task until it ends, keeping every progress seen."""

    def ended():
        task = requests.get(stack.url(status_url), headers=AUTH, timeout=10).json()
        if seen is not None:
            seen.append(task)
        return task if task["state"] in ("done", "failed") else None

    return wait_for(ended, 300, "the task to end", every=0.1)


def board(stack, variant: str, **params) -> dict:
    return requests.get(
        stack.url(f"/api/v1/games/guess-claimed/boards/{variant}"), params=params, timeout=10
    ).json()


def test_an_operator_rebuilds_a_board_and_follows_its_progress(live):
    live.seed_log("guess-claimed", "1000", 30_000, 1000)
    started = rebuild(live, {"game": "guess-claimed", "variant": "1000"})
    seen: list[dict] = []
    task = follow(live, started["status_url"], seen)
    assert task["state"] == "done", task
    assert task["progress"] == {"done": 30_000, "total": 30_000}
    dones = [t["progress"]["done"] for t in seen]
    assert dones == sorted(dones)
    top = board(live, "1000", limit=3)
    assert top["total"] == 30_000
    # Scores cycle 1..1000 over the seeded players: the best are score 1, earliest first.
    assert [(e["rank"], e["score"], e["name"]) for e in top["entries"]] == [
        (1, 1, "P0"),
        (2, 1, "P1000"),
        (3, 1, "P2000"),
    ]
    # A second rebuild leaves the board exactly as the first made it.
    before = board(live, "1000", limit=100, offset=500)
    follow(live, rebuild(live, {"game": "guess-claimed", "variant": "1000"})["status_url"])
    assert board(live, "1000", limit=100, offset=500)["entries"] == before["entries"]


def test_readers_never_see_a_missing_or_partial_board_during_a_rebuild(live):
    players = 200_000
    live.seed_log("guess-claimed", "100", players, 100)
    assert (
        follow(live, rebuild(live, {"game": "guess-claimed", "variant": "100"})["status_url"])[
            "state"
        ]
        == "done"
    )

    reads: list[tuple[int, int, str]] = []
    stop = threading.Event()
    state = {"task": "queued"}

    def reader():
        while not stop.is_set():
            page = board(live, "100", limit=10)
            reads.append((page["total"], len(page["entries"]), state["task"]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        started = rebuild(live, {"game": "guess-claimed", "variant": "100"})
        second = requests.post(
            live.url("/api/v1/admin/rebuild"),
            headers=AUTH,
            json={"game": "guess-claimed", "variant": "100"},
            timeout=10,
        )
        assert second.status_code == 409

        def running():
            task = requests.get(live.url(started["status_url"]), headers=AUTH, timeout=10).json()
            state["task"] = task["state"]
            return task["state"] == "running" and task["progress"]["done"] > 0

        wait_for(running, 60, "the rebuild to start")
        # A score sent mid-rebuild is ranked at once and survives the swap.
        sent = requests.post(
            live.url("/api/v1/games/guess-claimed/scores"),
            json={**GOOD, "variant": "100", "name": "Mid Rebuild"},
            timeout=10,
        )
        verdict = live.verdict(sent.json()["submission_id"])
        task_when_ranked = requests.get(
            live.url(started["status_url"]), headers=AUTH, timeout=10
        ).json()
        task = follow(live, started["status_url"])
        state["task"] = task["state"]
    finally:
        stop.set()
        thread.join()

    assert task["state"] == "done"
    print(
        f"rebuild of {players} entries took {task['finished_at'] - task['started_at']} ms;"
        f" {len(reads)} reads, {sum(r[2] == 'running' for r in reads)} while it ran"
    )
    assert verdict["status"] == "accepted"
    assert task_when_ranked["state"] == "running", "ingestion waited for the rebuild"
    during = [r for r in reads if r[2] == "running"]
    assert len(during) >= 3, reads[-5:]
    before_new = [r for r in reads if r[0] == players]
    assert all(total in (players, players + 1) and shown == 10 for total, shown, _ in reads)
    assert before_new, "the reader never saw the board"
    after = board(live, "100", limit=1)
    assert after["total"] == players + 1
    mine = requests.get(
        live.url(f"/api/v1/games/guess-claimed/boards/100/players/{sent.json()['player_id']}"),
        timeout=10,
    ).json()
    assert mine["name"] == "Mid Rebuild"


def test_one_beat_ticks_at_a_time_and_a_standby_takes_over(live, tmp_path):
    env = {
        **live.env,
        "HISCORE_BEAT_LOCK_TIMEOUT": "3",
        "HISCORE_BEAT_LOOP_SECONDS": "1",
        "HISCORE_STATS_EVERY": "1",
    }
    args = [str(BIN / "celery"), "-A", "celery_worker", "beat", "--loglevel=INFO"]
    first = Process("beat-1", args, env, tmp_path).start()
    wait_for(lambda: "Acquired lock" in first.log(), 60, "the first beat to take the lock")
    second = Process("beat-2", args, env, tmp_path).start()
    try:
        wait_for(lambda: first.log().count("Sending due task stats") >= 4, 60, "ticks")
        wait_for(lambda: "beat: Starting" in second.log(), 60, "the second beat to start")
        assert "Sending due task" not in second.log()
        assert "Acquired lock" not in second.log()

        first.signal(signal.SIGKILL)
        first.popen.wait()
        killed_at = time.monotonic()
        wait_for(lambda: "Sending due task stats" in second.log(), 60, "the standby to tick")
        took_over = time.monotonic() - killed_at
        print(f"standby beat ticked {took_over:.1f}s after the active one was killed")

        status = requests.get(live.url("/api/v1/admin/status"), headers=AUTH, timeout=10)
        runs = wait_for(
            lambda: (
                requests.get(live.url("/api/v1/admin/status"), headers=AUTH, timeout=10)
                .json()["beat"]
                .get("stats")
            ),
            30,
            "a recorded stats run",
        )
        assert status.status_code == 200 and runs["ok"] is True
    finally:
        for beat in (first, second):
            beat.kill()


def _served(metrics, endpoint: str) -> float:
    """The requests for ``endpoint`` that ``metrics`` (prometheus families) count."""
    return sum(
        sample.value
        for family in metrics
        for sample in family.samples
        if sample.name == "hiscore_http_request_duration_seconds_count"
        and sample.labels.get("endpoint") == endpoint
    )


def test_metrics_count_requests_served_by_every_web_worker(live):
    def scraped() -> float:
        text = requests.get(live.url("/metrics"), headers=OPERATOR, timeout=10).text
        return _served(text_string_to_metric_families(text), "api.boards.list_games")

    def by_worker(endpoint: str) -> dict[int, float]:
        # Each gunicorn worker writes its samples into a file of its own, named by its pid.
        counts = {}
        for worker in psutil.Process(live.web.popen.pid).children():
            own = live.metrics_dir / f"histogram_{worker.pid}.db"
            found = own.exists()
            counts[worker.pid] = (
                _served(MultiProcessCollector.merge([own]), endpoint) if found else 0
            )
        return counts

    before_scraped, before = scraped(), by_worker("api.boards.list_games")
    assert len(before) == 2
    sent = 0

    def both_served() -> bool:
        nonlocal sent
        # A new connection each time: whichever worker accepts it first answers.
        assert requests.get(live.url("/api/v1/games"), timeout=10).ok
        sent += 1
        return all(n > before[pid] for pid, n in by_worker("api.boards.list_games").items())

    wait_for(both_served, 60, "both gunicorn workers to answer a request", every=0)
    after = by_worker("api.boards.list_games")
    assert after.keys() == before.keys()
    assert sum(after.values()) - sum(before.values()) == sent

    # Whichever worker answers /metrics, it counts what both served.
    scrapes = by_worker("metrics")

    def both_scraped() -> bool:
        assert scraped() == before_scraped + sent
        return all(n > scrapes[pid] for pid, n in by_worker("metrics").items())

    wait_for(both_scraped, 60, "both gunicorn workers to answer /metrics", every=0)
    # Both Celery workers report in within a heartbeat (the fixture wiped the data Redis).
    wait_for(
        lambda: (
            requests.get(live.url("/readyz"), headers=OPERATOR, timeout=10).json().get("workers")
            == 2
        ),
        30,
        "both workers' heartbeats",
    )
