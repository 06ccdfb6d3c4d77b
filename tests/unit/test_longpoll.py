import json
import threading

from app import keys, submissions
from app.longpoll import VerdictWaiter


def test_a_waiter_wakes_when_its_verdict_is_published(redis_client):
    key = keys.submission_key("sub-waiting")
    redis_client.set(key, json.dumps({"status": "queued"}))
    # With a recheck far beyond the timeout, only the published wake-up can end the wait early.
    waiter = VerdictWaiter(redis_client, recheck=60)
    registered = threading.Event()

    def read():
        registered.set()
        return submissions.read(redis_client, "sub-waiting")

    def settle():
        registered.wait(5)
        submissions.settle(redis_client, [("sub-waiting", {"status": "rejected"})], 60, 0)

    threading.Thread(target=settle).start()
    record = waiter.wait("sub-waiting", 30, read, lambda r: r["status"] in submissions.FINAL)
    assert record["status"] == "rejected"


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
