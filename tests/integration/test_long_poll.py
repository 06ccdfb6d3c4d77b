"""A hundred clients long-polling at once are woken by the verdicts' announcement, and do not
starve anyone else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all

import psutil
import pytest
import requests

from app.clock import now_ms
from app.leaderboard import statuses
from app.leaderboard.records import SubmissionRecord
from app.storage import keys
from app.storage.embedded_redis import free_port
from tests.conftest import PARTITIONS, WINDOW_S
from tests.processes import Process, wait_for

WAITERS = 100
WAIT_S = 30  # the longest a long-poll may wait


def accepted_connections(web: Process, port: int) -> int:
    """Connections that ``web``'s gunicorn workers have accepted on ``port``."""
    workers = psutil.Process(web.popen.pid).children()
    return sum(
        1
        for worker in workers
        for conn in worker.net_connections(kind="tcp")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
    )


def store(client, ids: list[str], record: SubmissionRecord) -> None:
    """Store ``record`` as the status of each of ``ids``, as of now."""
    pipe = client.pipeline(transaction=False)
    for sid in ids:
        statuses.write(pipe, sid, record, now_ms(), now_ms(), WINDOW_S, PARTITIONS)
    pipe.execute()


class ReadsSeen:
    """The submission records Redis has been asked for (by the lookup script's HGET of the
    submission id), as its MONITOR reports them."""

    def __init__(self, client, ids: list[str]) -> None:
        self.wanted = set(ids)
        self.seen: set[str] = set()
        self._monitor = client.monitor()
        self._monitor.__enter__()  # MONITOR is on from here: no read can be missed
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            for command in self._monitor.listen():
                parts = command["command"].split(" ")
                if parts[0].upper() == "HGET" and len(parts) > 2 and parts[2] in self.wanted:
                    self.seen.add(parts[2])
                    if self.seen == self.wanted:
                        return
        except Exception:  # the connection closed under it at the end of the test
            return

    def close(self) -> None:
        self._monitor.connection.disconnect()


@pytest.fixture
def woken_only(live) -> Iterator[tuple[Process, str]]:
    """A web of its own on the live stack whose long-polls never re-read a record on their own
    (the recheck is an hour): only the announcement of a verdict ends their wait early."""
    port = free_port()
    web = live.run_web("web-no-recheck", port, HISCORE_LONGPOLL_RECHECK="3600")
    try:
        yield web, f"http://127.0.0.1:{port}"
    finally:
        web.stop()
    assert "Traceback" not in web.log(), web.log()


def test_many_waiters_are_woken_by_the_announcement_and_others_are_served(live, woken_only):
    web, base_url = woken_only
    port = int(base_url.rsplit(":", 1)[1])
    ids = [f"waiting-{i:05d}" for i in range(WAITERS)]
    store(live.data, ids, SubmissionRecord(status="queued"))

    def wait(sid: str) -> dict:
        return requests.get(
            f"{base_url}/api/v1/submissions/{sid}", params={"wait": WAIT_S}, timeout=60
        ).json()

    reads = ReadsSeen(live.data, ids)
    with ThreadPoolExecutor(WAITERS) as pool:
        # Every waiter's wait begins after this: none ends on its own before started + WAIT_S.
        started = time.monotonic()
        waiting = [pool.submit(wait, sid) for sid in ids]
        # Every waiter is held by a web worker before anything else is asked, and has read its
        # record (still queued), so that what it answers later it learnt from the announcement.
        wait_for(lambda: accepted_connections(web, port) >= WAITERS, 20, "the waiters to connect")
        wait_for(lambda: reads.seen == reads.wanted, 20, "every waiter to read its record")
        reads.close()
        store(live.data, ids, SubmissionRecord(status="accepted", rank=1))
        # The verdicts are stored, and nobody looks at them until told.
        for _ in range(20):
            resp = requests.get(f"{base_url}/api/v1/games", timeout=10)
            assert resp.status_code == 200
        assert not any(f.done() for f in waiting), "a waiter returned before it was woken"

        live.data.publish(keys.VERDICT_CHANNEL, " ".join(ids))
        # Well before a wait could run out: only the announcement can have ended them.
        done, not_done = wait_all(waiting, timeout=started + WAIT_S - 5 - time.monotonic())
        assert not not_done, f"{len(not_done)} waiters were not woken by the announcement"
        answers = [f.result() for f in waiting]
    assert [a["status"] for a in answers] == ["accepted"] * WAITERS
