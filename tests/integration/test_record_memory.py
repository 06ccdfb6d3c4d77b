"""A status record costs at most 150 bytes of Redis, on the real redis-server, whether its
bucket holds a few records (a compact hash) or many (a hash table): measured by ``used_memory``
over some 24,000 records of each kind that a busy service stores, written as the worker and
the web write them.

A server of its own, since ``used_memory`` is the whole server's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import redis

from app.leaderboard import statuses
from app.leaderboard.records import USUAL_REJECTIONS, BoardRef, SubmissionRecord
from app.storage import keys, submissions
from app.storage.embedded_redis import EmbeddedRedis
from app.storage.submissions import BUCKETS
from tests.cases import NOW
from tests.conftest import PARTITIONS, generation_at

pytestmark = pytest.mark.integration

BUDGET = 150  # bytes a record
W = 24 * 3600
G_MS = generation_at(NOW, W).seconds * 1000
START = generation_at(NOW, W).start_ms


@pytest.fixture
def server(tmp_path) -> Iterator[redis.Redis]:
    with EmbeddedRedis(tmp_path) as embedded:
        client = redis.Redis(port=embedded.port, decode_responses=True)
        yield client
        client.close()


def record(rng: random.Random, at: int) -> SubmissionRecord:
    """A record as a service with boards of a million players stores them: mostly accepted,
    some queued still, some rejected."""
    player = submissions.new_id()
    fingerprint = submissions.fingerprint({"score": rng.random()})
    kind = rng.random()
    if kind < 0.1:
        return SubmissionRecord(status="queued", fingerprint=fingerprint, player_id=player)
    if kind < 0.2:
        code = rng.choice(sorted(USUAL_REJECTIONS))
        reason, errors = USUAL_REJECTIONS[code][0]
        return SubmissionRecord(
            status="rejected",
            code=code,
            reason=reason,
            errors=errors or None,
            fingerprint=fingerprint,
            player_id=player,
        )
    variant = rng.choice(["10", "25", "100", "1000"])
    ranks = {
        "alltime": rng.randint(1, 1_000_000),
        "daily": rng.randint(1, 50_000),
        "weekly": rng.randint(1, 200_000),
    }
    return SubmissionRecord(
        status="accepted",
        fingerprint=fingerprint,
        player_id=player,
        board=BoardRef(game="guess", variant=variant, window="alltime"),
        rank=ranks["alltime"],
        ranks=ranks,
        score=rng.randint(1, int(variant)),
        achieved_at=at - rng.randint(0, 2_000),
        personal_best=rng.random() < 0.5,
    )


def _bytes_per_record(client: redis.Redis, written: list[tuple[str, int]]) -> float:
    """``used_memory`` a record, storing one for each (id, time written) of ``written``."""
    rng = random.Random(7)
    now = max(at for _, at in written)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    for start in range(0, len(written), 2_000):
        pipe = client.pipeline(transaction=False)
        for sid, at in written[start : start + 2_000]:
            assert statuses.write(pipe, sid, record(rng, at), at, now, W, PARTITIONS)
        pipe.execute()
    return (int(client.info("memory")["used_memory"]) - before) / len(written)


def _encodings(client: redis.Redis) -> set[str]:
    return {
        client.object("encoding", k) for k in client.scan_iter(keys.PARTITION_SUBMISSIONS_PATTERN)
    }


def _ids(count: int, buckets: int) -> list[str]:
    """``count`` submission ids (22 characters) that fall in the first ``buckets`` buckets."""
    ids: list[str] = []
    i = 0
    while len(ids) < count:
        sid = f"sub-{i:018d}"
        if submissions.bucket(sid) < buckets:
            ids.append(sid)
        i += 1
    return ids


def test_a_record_costs_at_most_150_bytes_among_few_in_its_bucket(server):
    # Some 8 a bucket in each of three generations: about 33,000 records a day.
    per_generation = 8 * BUCKETS
    written = [
        (submissions.new_id(), START + g * G_MS + i * (G_MS // per_generation))
        for g in range(3)
        for i in range(per_generation)
    ]
    cost = _bytes_per_record(server, written)
    # Compact hashes, each of them: no record is longer than a compact hash holds.
    assert _encodings(server) <= {"ziplist", "listpack"}
    print(f"few a bucket: {cost:.1f} bytes a record over {len(written)}")
    assert cost <= BUDGET


def test_a_record_costs_at_most_150_bytes_among_many_in_its_bucket(server):
    # 600 a bucket (past the 512 of a compact hash): some 600,000 records a generation.
    ids = _ids(40 * 600, 40)
    written = [(sid, START + i) for i, sid in enumerate(ids)]
    cost = _bytes_per_record(server, written)
    assert _encodings(server) == {"hashtable"}
    print(f"many a bucket: {cost:.1f} bytes a record over {len(written)}")
    assert cost <= BUDGET
