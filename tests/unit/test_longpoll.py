import threading
import time

from app.leaderboard import statuses
from app.leaderboard.records import SubmissionRecord
from app.storage import submissions
from app.storage.longpoll import VerdictWaiter
from tests.cases import NOW
from tests.conftest import PARTITIONS, generation_at

NOW_THEN = generation_at(NOW, 60)


def _queue(client, sid):
    pipe = client.pipeline(transaction=False)
    statuses.write(pipe, sid, SubmissionRecord(status="queued"), NOW, NOW, 60, PARTITIONS)
    pipe.execute()


def test_a_waiter_wakes_when_its_verdict_is_published(redis_client):
    _queue(redis_client, "sub-waiting")
    # The recheck and the timeout are an hour: only the published wake-up can end the wait.
    waiter = VerdictWaiter(redis_client, recheck=3600)
    reads = []

    def read():
        reads.append(1)
        return statuses.read(redis_client, "sub-waiting", NOW_THEN)

    result = {}

    def wait():
        result["record"] = waiter.wait(
            "sub-waiting", 3600, read, lambda r: r.status in submissions.FINAL
        )

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (reads and "sub-waiting" in waiter._waiting) and time.monotonic() < deadline:
        time.sleep(0.01)
    rejected = SubmissionRecord(status="rejected", code="failed")
    verdict = statuses.verdict("sub-waiting", rejected, NOW_THEN)
    submissions.settle(redis_client, [verdict], NOW_THEN, NOW)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the waiter was not woken"
    assert result["record"].status == "rejected"


def test_a_waiter_answers_the_current_record_when_time_is_up(redis_client):
    _queue(redis_client, "sub-slow")
    waiter = VerdictWaiter(redis_client, recheck=0.01)
    record = waiter.wait(
        "sub-slow",
        0.05,
        lambda: statuses.read(redis_client, "sub-slow", NOW_THEN),
        lambda r: r.status in submissions.FINAL,
    )
    assert record == SubmissionRecord(status="queued")
    assert waiter._waiting == {}
