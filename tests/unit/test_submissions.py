"""Status records live in generations of hashes: found for the idempotency window, gone at
most a generation after it, by the time the callers tell."""

import collections
import zlib

import pytest
import redis

from app.leaderboard import statuses
from app.leaderboard.records import SubmissionRecord
from app.storage import submissions
from app.storage.submissions import BUCKETS, Generation
from tests.cases import GOOD, NOW
from tests.conftest import PARTITIONS, generation_at, stream_length

W = 24 * 3600  # the apps' window (s)
G = 6 * 3600  # its generation: a quarter of it
W_MS, G_MS = W * 1000, G * 1000
SCORES = "/api/v1/games/guess-claimed/scores"
GEN_START = generation_at(NOW, W).start_ms + 10 * G_MS  # a generation's first instant


@pytest.mark.parametrize(
    ("window", "generation", "read"), [(W, G, 5), (60, 15, 5), (5, 2, 4), (1, 1, 2), (0, 1, 2)]
)
def test_a_generation_is_a_quarter_of_the_window_and_a_lookup_reads_the_window(
    window, generation, read
):
    now = generation_at(NOW, window)
    assert now.seconds == generation
    readable = now.readable()
    assert [g.number for g in readable] == [now.number - age for age in range(read)]
    # What the oldest generation read holds was written at most the window (and a
    # generation) ago, and its hashes outlive the window from the last instant of it.
    oldest = readable[-1]
    assert oldest.expire_at_ms - (oldest.start_ms + generation * 1000) >= max(window, 1) * 1000


def test_every_record_key_is_in_its_partitions_slot_and_one_of_the_buckets():
    sids = [submissions.new_id() for _ in range(200)]
    now = generation_at(NOW, W)
    for partition, ids in submissions.by_partition(sids, PARTITIONS).items():
        names, _ = submissions.lookup_arguments(ids, now)
        assert all(name.startswith(f"hs:{{ingest:{partition}}}:subs:") for name in names)
    assert {submissions.bucket(sid) for sid in sids} <= set(range(BUCKETS))


def test_a_partition_uses_the_buckets_congruent_to_it():
    sids = [submissions.new_id() for _ in range(2000)]
    for sid in sids:
        partition = submissions.partition_of(sid, PARTITIONS)
        assert submissions.bucket(sid) % PARTITIONS == partition
        assert 0 <= submissions.partition_of(sid, 1000) < 1000
    # Spread over every partition, none with more than twice its share.
    counts = collections.Counter(submissions.partition_of(sid, PARTITIONS) for sid in sids)
    assert set(counts) == set(range(PARTITIONS))
    assert max(counts.values()) < 2 * len(sids) / PARTITIONS
    assert submissions.partition_of("sub-00000001", PARTITIONS) == zlib.crc32(b"sub-00000001") % 8


@pytest.mark.parametrize("offset", [0, 1, G_MS // 2, G_MS - 1], ids=lambda o: f"+{o}ms")
def test_a_verdict_is_found_for_the_window_and_gone_a_generation_later(
    client, redis_client, work, clock, offset
):
    written = GEN_START + offset
    clock.move_to(written)
    status_url = client.post(SCORES, json=GOOD).get_json()["status_url"]
    work()
    key = generation_at(written, W).key(status_url.rsplit("/", 1)[1])
    # Across every generation boundary of the window, up to the window's last instant.
    for later in [G_MS - offset, 2 * G_MS, 3 * G_MS + 1, W_MS - 1, W_MS]:
        clock.move_to(written + later)
        assert client.get(status_url).get_json()["status"] == "accepted", later
    clock.move_to(written + W_MS + G_MS)
    assert client.get(status_url).status_code == 404  # no longer among the generations read
    clock.advance(1)
    assert not redis_client.exists(key)  # and its hash has expired


def test_a_verdict_stored_a_generation_later_hides_the_queued_record(
    client, redis_client, work, clock
):
    clock.move_to(GEN_START - 1)
    answer = client.post(SCORES, json=GOOD).get_json()
    sid = answer["submission_id"]
    clock.advance(2)  # the drain runs in the next generation
    work()
    assert client.get(answer["status_url"]).get_json()["status"] == "accepted"
    queued = redis_client.hget(generation_at(GEN_START - 1, W).key(sid), sid)
    final = redis_client.hget(generation_at(GEN_START + 1, W).key(sid), sid)
    assert (queued[0], final[0]) == ("q", "a")


def test_a_retry_in_a_later_generation_finds_its_submission(client, redis_client, clock):
    clock.move_to(GEN_START + 5)
    body = {**GOOD, "submission_id": "retry-across-gens"}
    assert client.post(SCORES, json=body).status_code == 202
    clock.advance(2 * G_MS)  # two generations on: the record is in the third one read
    again = client.post(SCORES, json=body)
    assert (again.status_code, again.get_json()["status"]) == (202, "queued")
    assert client.post(SCORES, json={**body, "score": 5, "duration_ms": 5000}).status_code == 422
    assert stream_length(redis_client) == 1  # one entry, whatever the retries
    clock.advance(W_MS - G_MS)  # a window and a generation after the first: a new submission
    assert client.post(SCORES, json={**body, "score": 5, "duration_ms": 5000}).status_code == 202
    assert stream_length(redis_client) == 2


def _same_bucket(n: int) -> list[str]:
    sids, first = [], None
    while len(sids) < n:
        sid = submissions.new_id()
        if first is None or submissions.bucket(sid) == first:
            first = submissions.bucket(sid)
            sids.append(sid)
    return sids


def _verdict(sid: str, now: Generation) -> submissions.Verdict:
    record = SubmissionRecord(status="rejected", code="banned", reason="x", player_id="p" * 22)
    return statuses.verdict(sid, record, now)


def test_a_hash_gets_its_ttl_once_and_keeps_it(redis_client):
    now = generation_at(NOW, W)
    a, b = _same_bucket(2)
    submissions.settle(redis_client, [_verdict(a, now)], now, NOW)
    key = now.key(a)
    assert W_MS <= redis_client.pttl(key) <= W_MS + G_MS
    redis_client.pexpire(key, 999_999)  # whatever TTL it has, a later write leaves alone
    submissions.settle(redis_client, [_verdict(b, now)], now, NOW)
    assert 0 < redis_client.pttl(key) <= 999_999
    assert [r and r.status for r in statuses.read_many(redis_client, [a, b, "nope-0000"], now)] == [
        "rejected",
        "rejected",
        None,
    ]


def test_a_record_that_cannot_be_written_fails_alone(redis_client):
    now = generation_at(NOW, W)
    bad, good = "sub-bad-hash", submissions.new_id()
    while now.key(good) == now.key(bad):
        good = submissions.new_id()
    redis_client.set(now.key(bad), "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        submissions.settle(redis_client, [_verdict(bad, now), _verdict(good, now)], now, NOW)
    assert statuses.read(redis_client, good, now).status == "rejected"
