"""Maintenance runs: progress to the end, locks released, records kept, stats exact."""

import random
import statistics
from collections import Counter

import pytest

from app.leaderboard.boards import Board, apply_entries, read_page
from app.leaderboard.games import game_from_table
from app.leaderboard.maintenance import families_of, read_beat_runs, run_operation
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.stats import compute_family, histogram, percentile, read_stats
from app.storage import keys, operations
from tests.unit.test_boards import DAY, GUESS, T0, entry
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


def _reference(r, board, log):
    """The stats of a board worked out the plain way: its rows, and the log's entries."""
    scores = [row.score for row in read_page(r, board, 0, 100_000).rows]  # best first
    lo, hi = board.achieved_range()
    entries = [f for f in log if lo <= int(f["at"]) and (hi == 0 or int(f["at"]) < hi)]
    return scores, entries


@pytest.mark.parametrize("seed", [3, 4])
def test_stats_equal_an_independent_computation_over_board_and_log(redis_client, seed):
    seeded(redis_client, n=1000, seed=seed)
    results = compute_family(redis_client, GUESS, "100", NOW)
    log = [f for _, f in redis_client.xrange(keys.log_key("guess", "100"))]
    assert len(results) == len(readable_boards(GUESS, "100", NOW))
    for board in readable_boards(GUESS, "100", NOW):
        stats = read_stats(redis_client, board)
        scores, entries = _reference(redis_client, board, log)
        assert stats["count"] == len(entries)
        assert stats["players"] == len(scores) == len({f["pid"] for f in entries})
        if not scores:
            assert stats["best"] is None and stats["histogram"] == []
            continue
        assert stats["best"] == scores[0]
        assert stats["mean"] == pytest.approx(statistics.fmean(scores))
        assert stats["median"] == statistics.median(scores)
        assert stats["p90"] == percentile(scores, 0.9)
        assert stats["histogram"] == histogram(sorted(scores), GUESS.integer)
        per = stats["over_time"]["bucket_ms"]
        assert stats["over_time"]["counts"] == [
            {"at": at, "count": n}
            for at, n in sorted(Counter(int(f["at"]) // per * per for f in entries).items())
        ]

    wednesday = read_stats(redis_client, Board(GUESS, "100", "daily", "2036-11-19"))
    assert wednesday["count"] > 0 and wednesday["over_time"]["bucket_ms"] == 3_600_000


@pytest.mark.parametrize("order", ["lower", "higher"])
def test_stats_of_a_float_game_bin_every_row_once(redis_client, order):
    game = game_from_table("points", {"order": order, "integer": False, "score_max": 1e6})
    rng = random.Random(7)
    apply_entries(
        redis_client,
        [
            entry(p, rng.choice([0.5, 1.25, 3.0, 3.0, 10.75, 99.5]), T0 - p, game, "default")
            for p in range(200)
        ],
        NOW,
    )
    (stats, *_) = compute_family(redis_client, game, "default", NOW)
    scores = [r.score for r in read_page(redis_client, Board(game, "default"), 0, 1000).rows]
    assert stats["best"] == scores[0] and stats["players"] == 200
    assert stats["median"] == statistics.median(scores)
    assert stats["p90"] == percentile(scores, 0.9)
    assert stats["histogram"] == histogram(sorted(scores), False)
    assert sum(b["count"] for b in stats["histogram"]) == 200
    assert stats["histogram"][-1]["count"] == scores.count(max(scores))  # the top edge is in


def test_an_empty_board_has_stats_of_nothing(redis_client):
    (stats, *_) = compute_family(redis_client, GUESS, "100", NOW)
    assert stats["count"] == stats["players"] == 0
    assert stats["best"] is stats["mean"] is stats["median"] is stats["p90"] is None
    assert stats["histogram"] == [] and stats["over_time"]["counts"] == []


def test_all_time_counts_cover_the_games_retention(redis_client):
    old = NOW - (GUESS.retention_days + 2) * DAY
    apply_entries(redis_client, [entry(1, 5, old), entry(2, 6, T0)], NOW)
    (stats, *_) = compute_family(redis_client, GUESS, "100", NOW)
    assert stats["count"] == 1  # the entry past retention is no longer counted ...
    assert [c["at"] for c in stats["over_time"]["counts"]] == [T0 // DAY * DAY]
    assert stats["players"] == 2  # ... though its row stays until a prune drops it


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
