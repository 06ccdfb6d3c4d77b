"""A hundred clients long-polling at once do not starve anyone else."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests

from app import keys
from tests.processes import wait_for

WAITERS = 100


def accepted_connections(stack) -> int:
    """Connections that gunicorn's workers have accepted on the web port."""
    workers = psutil.Process(stack.web.popen.pid).children()
    return sum(
        1
        for worker in workers
        for conn in worker.net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == stack.port
    )


def test_many_waiters_and_other_requests_are_served_together(live):
    ids = [f"waiting-{i:05d}" for i in range(WAITERS)]
    for sid in ids:
        live.data.set(keys.submission_key(sid), json.dumps({"status": "queued"}), ex=600)

    def wait(sid: str) -> dict:
        return requests.get(
            live.url(f"/api/v1/submissions/{sid}"), params={"wait": 30}, timeout=60
        ).json()

    with ThreadPoolExecutor(WAITERS) as pool:
        waiting = [pool.submit(wait, sid) for sid in ids]
        # Every waiter is held by a web worker before anything else is asked.
        wait_for(lambda: accepted_connections(live) >= WAITERS, 30, "the waiters to connect")
        for _ in range(20):
            resp = requests.get(live.url("/api/v1/games"), timeout=10)
            assert resp.status_code == 200
        assert not any(f.done() for f in waiting), "a waiter returned before its verdict"

        for sid in ids:
            live.data.set(
                keys.submission_key(sid), json.dumps({"status": "accepted", "rank": 1}), ex=600
            )
        live.data.publish(keys.VERDICT_CHANNEL, " ".join(ids))
        answers = [f.result(timeout=60) for f in waiting]
    assert [a["status"] for a in answers] == ["accepted"] * WAITERS
