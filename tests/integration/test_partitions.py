"""Ingest partitions on real processes: a stream of scores spread over every partition, drained
by more than one worker process at once, each settling its share."""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.clock import now_ms
from app.leaderboard import statuses
from app.storage import submissions
from tests.cases import GOOD
from tests.conftest import PARTITIONS, WINDOW_S, generation_at, stream_length
from tests.processes import wait_for

pytestmark = pytest.mark.integration

#: Scores sent: enough that every partition gets some and the drains overlap.
SCORES = 400

# The line a drain task logs when it settled entries (its consumer is ``<worker>:<pid>``).
_SETTLED = re.compile(r"(\S+):(\d+) settled (\d+) entries of ingest partitions ([\d,]+)")


def _post(base_url: str, sid: str, n: int) -> int:
    body = {**GOOD, "name": f"P{n}", "submission_id": sid}
    resp = requests.post(f"{base_url}/api/v1/games/guess-claimed/scores", json=body, timeout=30)
    return resp.status_code


def _settled(live, sids: list[str]) -> int:
    now = generation_at(now_ms(), WINDOW_S)
    records = statuses.read_many(live.data, sids, now)
    return sum(1 for r in records if r is not None and r.status in submissions.FINAL)


def test_scores_over_every_partition_settle_and_every_worker_process_drains_some(live):
    assert live.env.get("HISCORE_INGEST_PARTITIONS", str(PARTITIONS)) == "8" == str(PARTITIONS)
    sids = [f"spread-{n:06d}" for n in range(SCORES)]
    spread = Counter(submissions.partition_of(sid, PARTITIONS) for sid in sids)
    assert set(spread) == set(range(PARTITIONS))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: _post(live.base_url, sids[n], n), range(SCORES)))
    assert answers == [202] * SCORES
    wait_for(lambda: _settled(live, sids) == SCORES, 60, f"verdicts for all {SCORES} scores")
    wait_for(lambda: stream_length(live.data) == 0, 20, "every partition's stream empty")

    def drains() -> tuple[Counter[str], set[int]]:
        by_process: Counter[str] = Counter()
        partitions_seen: set[int] = set()
        for _, pid, count, held in _SETTLED.findall(live.worker.log()):
            by_process[pid] += int(count)
            partitions_seen.update(int(p) for p in held.split(","))
        return by_process, partitions_seen

    # A drain logs what it settled once it has let its partitions go, a moment after.
    wait_for(lambda: sum(drains()[0].values()) >= SCORES, 20, "the drains' lines in the log")
    by_process, partitions_seen = drains()
    # Both pool processes (one consumer each) settled a share, every partition was drained, and
    # nothing was settled twice.
    assert len(by_process) == 2 and min(by_process.values()) > 0, by_process
    assert sum(by_process.values()) == SCORES, by_process
    assert partitions_seen == set(range(PARTITIONS))
