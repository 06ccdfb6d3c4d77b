"""Maintenance runs: progress to the end, locks released, records kept, stats exact."""

import statistics

import pytest

from app.leaderboard.boards import Board
from app.leaderboard.maintenance import families_of, read_beat_runs, run_operation
from app.leaderboard.stats import compute_family, percentile, read_stats
from app.storage import keys, operations
from tests.unit.test_boards import DAY, GUESS
from tests.unit.test_rebuild import NOW, seeded

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def instant() -> int:
    return NOW


def run(r, registry, kind, families, owner="task-1"):
    operations.create_task(r, owner, kind, {}, NOW)
    seen = []
    outcome = run_operation(
        r, registry, kind, families, owner, lambda: NOW, True, lambda d, t: seen.append((d, t))
    )
    return outcome, seen


def test_a_recorded_rebuild_reports_progress_to_the_end_and_unlocks(redis_client, registry):
    seeded(redis_client, n=5000)
    outcome, seen = run(redis_client, registry, "rebuild", [("guess", "100")])
    assert outcome == {"families": {"guess/100": 5000}, "skipped": []}
    assert seen[0] == (0, 5000) and seen[-1] == (5000, 5000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes backwards
    task = operations.read_task(redis_client, "task-1")
    assert task["state"] == "done" and task["progress"] == {"done": 5000, "total": 5000}
    assert redis_client.get(keys.lock_key("guess", "100")) is None


def test_a_family_locked_by_another_task_is_skipped(redis_client, registry):
    redis_client.set(keys.lock_key("guess", "10"), "someone-else")
    outcome, _ = run(redis_client, registry, "prune", families_of(registry, "guess"))
    assert outcome["skipped"] == ["guess/10"]
    assert set(outcome["families"]) == {"guess/25", "guess/100", "guess/1000"}
    assert redis_client.get(keys.lock_key("guess", "10")) == "someone-else"


def test_the_cli_rebuilds_as_a_recorded_task(runner, redis_client):
    seeded(redis_client, n=300)
    result = runner.invoke(args=["rebuild", "--game", "guess", "--variant", "100"])
    assert result.exit_code == 0, result.output
    assert "guess/100: 300" in result.output
    (task_key,) = redis_client.keys(keys.task_key("*"))
    task = operations.read_task(redis_client, task_key.rsplit(":", 1)[1])
    assert task["state"] == "done" and task["progress"] == {"done": 300, "total": 300}
    assert runner.invoke(args=["rebuild", "--game", "chess"]).exit_code == 2


def test_stats_equal_an_independent_computation_over_the_log(redis_client):
    seeded(redis_client, n=1000, seed=3)
    compute_family(redis_client, GUESS, "100", NOW)
    log = [f for _, f in redis_client.xrange(keys.log_key("guess", "100"))]
    stats = read_stats(redis_client, Board(GUESS, "100"))
    scores = sorted(int(f["score"]) for f in log)
    assert stats["count"] == 1000
    assert stats["players"] == len({f["pid"] for f in log})
    assert stats["best"] == scores[0]
    assert stats["mean"] == statistics.fmean(scores)
    assert stats["median"] == statistics.median(scores)
    assert stats["p90"] == scores[899]  # nearest rank: the 900th best of 1,000
    assert sum(b["count"] for b in stats["histogram"]) == 1000
    assert sum(c["count"] for c in stats["over_time"]["counts"]) == 1000
    for bucket in stats["histogram"]:
        assert bucket["count"] == sum(bucket["from"] <= s <= bucket["to"] for s in scores)

    wednesday = Board(GUESS, "100", "daily", "2036-11-19")
    day = read_stats(redis_client, wednesday)
    lo, hi = wednesday.achieved_range()
    assert day["count"] == sum(lo <= int(f["at"]) < hi for f in log) > 0


def test_a_days_stats_last_as_long_as_its_board(redis_client, clock):
    seeded(redis_client, n=300)
    compute_family(redis_client, GUESS, "100", clock.now)
    log = [f for _, f in redis_client.xrange(keys.log_key("guess", "100"))]
    stats = read_stats(redis_client, Board(GUESS, "100"))
    # None for 2036-11-12, whose entries are in the log but whose board is gone (7 days after
    # the day) ...
    days = {d: Board(GUESS, "100", "daily", f"2036-11-{d}") for d in (12, 13, 14)}
    lo, hi = days[12].achieved_range()
    assert any(lo <= int(f["at"]) < hi for f in log)
    assert read_stats(redis_client, days[12]) is None
    assert read_stats(redis_client, days[13])["count"] > 0
    clock.advance(DAY + 1)  # ... and 2036-11-13's go with its board, a day later
    assert read_stats(redis_client, days[13]) is None
    assert read_stats(redis_client, days[14])["count"] > 0
    assert read_stats(redis_client, Board(GUESS, "100")) == stats  # all-time ones stay


def test_percentile_is_nearest_rank():
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert percentile([5], 0.9) == 5


def test_beat_jobs_record_their_last_run(app, redis_client):
    from app.worker.tasks import stats

    with app.app_context():
        stats.apply(task_id="beat-tick")
    runs = read_beat_runs(redis_client)
    assert runs["stats"]["ok"] is True and runs["stats"]["duration_ms"] >= 0
