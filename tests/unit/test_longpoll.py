import json
import threading
import time

from app.storage import keys, submissions
from app.storage.longpoll import VerdictWaiter


def test_a_waiter_wakes_when_its_verdict_is_published(redis_client):
    key = keys.submission_key("sub-waiting")
    redis_client.set(key, json.dumps({"status": "queued"}))
    # The recheck and the timeout are an hour: only the published wake-up can end the wait.
    waiter = VerdictWaiter(redis_client, recheck=3600)
    reads = []

    def read():
        reads.append(1)
        return submissions.read(redis_client, "sub-waiting")

    result = {}

    def wait():
        result["record"] = waiter.wait(
            "sub-waiting", 3600, read, lambda r: r["status"] in submissions.FINAL
        )

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (reads and "sub-waiting" in waiter._waiting) and time.monotonic() < deadline:
        time.sleep(0.01)
    submissions.settle(redis_client, [("sub-waiting", {"status": "rejected"})], 60, 0)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the waiter was not woken"
    assert result["record"]["status"] == "rejected"


def test_a_waiter_answers_the_current_record_when_time_is_up(redis_client):
    redis_client.set(keys.submission_key("sub-slow"), json.dumps({"status": "queued"}))
    waiter = VerdictWaiter(redis_client, recheck=0.01)
    record = waiter.wait(
        "sub-slow",
        0.05,
        lambda: submissions.read(redis_client, "sub-slow"),
        lambda r: r["status"] in submissions.FINAL,
    )
    assert record == {"status": "queued"}
    assert waiter._waiting == {}
