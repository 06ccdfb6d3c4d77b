"""The benchmark harness runs end to end on real processes, in production's configuration: a
quick run, no figure judged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.processes import ROOT, without_tool


@pytest.mark.timeout(480)  # the run itself may take 240 s, and 120 s to stop
def test_a_quick_benchmark_run_measures_every_figure_without_errors(tmp_path):
    # As root on Debian the harness installs wrk itself (and fails if it cannot).
    if shutil.which("wrk") is None and not (os.geteuid() == 0 and shutil.which("apt-get")):
        raise without_tool("the benchmarks need wrk: apt-get install wrk (as root) to run this")
    output = tmp_path / "bench.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        said, _ = run.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        run.terminate()  # the harness stops every process it started on SIGTERM
        said, _ = run.communicate(timeout=120)
        pytest.fail(f"the quick run took over 240 s:\n{said[-3000:]}")
    assert run.returncode == 0, said[-3000:]
    report = json.loads(output.read_text())
    details = report["details"]
    assert details["warnings"] == []
    assert details["ingest"]["accepted"] > 0
    assert details["ingest"]["missing"] == 0
    # Both fixed loads ran, at their shares of the capacity the saturation run measured, and
    # each drained its load as it came.
    latency = details["latency"]
    assert latency["capacity"] == pytest.approx(details["ingest"]["rate_end_to_end"])
    for name, share in (("half", 0.5), ("four_fifths", 0.8)):
        lat = latency[name]
        assert lat["rate"] == pytest.approx(max(1.0, share * latency["capacity"]))
        assert lat["answered_202"] == lat["sent"] > 0
        assert lat["statuses"] == {"accepted": lat["answered_202"]}
        assert lat["submit_202_p99_ms"] is not None and lat["submit_visible_p99_ms"] is not None
        assert lat["backlog_end"] >= 0 and lat["backlog_allowed"] > 0
    figures = {f["name"]: f for f in report["figures"]}
    half, high = (f"at {latency[n]['rate']:,.0f}/s" for n in ("half", "four_fifths"))
    assert figures[f"submit→202 p50 / p99 {half} (½ capacity) (ms)"]["target"] == "p99 ≤ 10"
    assert figures[f"submit→visible p50 / p99 {high} (0.8 capacity) (ms)"]["target"] == (
        "p99 ≤ 250"
    )
    backlog = "  backlog at the end of the phase: sent, not yet visible (subs)"
    # Met or not: a quick run's 2 s of saturation sizes its loads too roughly to judge them.
    assert [f["met"] in (True, False) for f in report["figures"] if f["name"] == backlog] == [
        True,
        True,
    ]
    assert details["rebuild"]["read"] == report["settings"]["big"]
    for runs in details["reads"].values():
        assert all(run["requests"] > 0 for run in runs.values())
    games = details["games"]
    assert set(games) == {
        f"{design}_{board}"
        for design in ("hiscore", "tutorial")
        for board in ("play-small", "play-large")
    }
    for run in games.values():
        assert run["games"] > 0
        # Every game a new player's: each one played is an entry more on its board.
        assert run["entries_after"] - run["entries_before"] == run["landed"] == run["games_all"]
        if run["design"] == "hiscore":
            assert run["outcomes"] == {"accepted": run["games_all"]}
            assert run["requests_per_game"] >= 4  # session, score, long-poll, top 10
    assert sum(f["name"].startswith("whole games") for f in report["figures"]) == 2
    assert {"figure", "hiscore", "baseline", "ratio"} <= set(said.split())
    # Production's configuration ran: the web refused a score without a run token and
    # counted requests against its (raised) limits, and scores with tokens were accepted.
    assert report["configuration"]["name"] == "production"
    assert "production configuration" in said
    probe = details["configuration_probe"]
    assert probe["tokens_required"] and probe["rate_limits_on"]
    assert details["sessions"]["started"] >= details["ingest"]["accepted"]
    assert details["ingest"]["bodies"]["bodies_reused"] == 0
    # The large board's reads with rate limits on, against a second web with them off.
    limits = details["reads_rate_limits"]
    assert limits["compared"] and limits["header_on"] and limits["header_off"] is None
    ratios = [f for f in report["figures"] if f["baseline_name"] == "limits off"]
    assert len(ratios) == 2 and all(f["ratio"] > 0 for f in ratios)
    assert all(f["target"] == "≥ 0.9" for f in ratios)
    # Where a web worker's CPU went, or why that could not be known.
    profile = details["ingest"]["profile"]
    if profile["available"]:
        assert profile["samples"] > 0 and profile["inclusive"] and profile["self"]
        assert "inclusive share" in said
    else:
        assert profile["reason"] and "no profile" in said


@pytest.mark.timeout(300)
def test_a_quick_long_run_measures_each_day_and_keeps_memory_within_its_bound(tmp_path):
    output = tmp_path / "longrun.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--long-run", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    report = json.loads(output.read_text())
    details = report["details"]
    assert report["settings"]["quick"] and details["warnings"] == []
    stream = details["stream"]
    assert stream["submissions"] == 50_000 == sum(stream["per_day"])
    assert 0.02 < stream["rejected"] / stream["submissions"] < 0.04
    assert stream["accepted"] + stream["rejected"] == stream["submissions"]
    assert 0 < stream["players_seen"] <= 2_000 and stream["renames"] > 0
    # Heavy-tailed: the busiest hundredth of the players sent far more than a hundredth.
    assert stream["top_1pct_share"] > 0.1
    days = details["days"]
    assert [d["day"] for d in days] == list(range(1, 11))
    kinds = set(days[0]["kinds"])
    assert {"log", "applied", "zsets", "players", "meta", "status records", "other"} <= kinds
    for day in days:
        assert set(day["kinds"]) == kinds
        assert 0 < sum(k["bytes"] for k in day["kinds"].values()) <= day["used_memory"]
        assert day["board_rows"]["alltime"] > 0 and day["log_length"] > 0
        assert day["previous_layout"]["total"] > 0
        # The entries of the idempotency window the compaction dropped (their ids are Redis's
        # clock's), added back at the day's own bytes per entry.
        window = day["window"]
        assert window["held"] + window["missing_log"] == window["entries"]
        assert 0 <= window["missing_applied"] <= window["entries"]
        assert day["corrected_used_memory"] == day["used_memory"] + window["bytes"]
    assert all(d["window"]["missing_log"] > 0 for d in days)
    # Time ran ahead of Redis's clock and keys still expired by the simulated one: the first
    # days' daily boards (readable 7 days after their day) and the first status records, whose
    # hashes expire by the generation in their name. A day's end is a generation's: the records
    # alive are those of the last window (a day), at least the day's and fewer than two days'.
    assert any(day["expired"].get("zsets") for day in days)
    assert any(day["expired"].get("status records") for day in days)
    per_day = stream["per_day"]
    for n, day in enumerate(days[1:], start=1):
        records = day["kinds"]["status records"]["elements"]
        assert per_day[n] <= records < per_day[n] + per_day[n - 1]
    # Bytes, not time: the last days' corrected memory stays within the players × periods
    # bound, worked out from the stream's players, readable periods and window's submissions.
    bound = details["bound"]
    judged = bound["days_judged"]
    assert bound["name"] == "players × periods" and judged >= 2 and bound["held"]
    for day, most in zip(days[-judged:], bound["bytes"][-judged:], strict=True):
        assert day["corrected_used_memory"] <= most
    figures = {f["name"]: f for f in report["figures"]}
    against = figures["used_memory on day 10, corrected, less the empty server's (MiB)"]
    assert against["baseline_name"] == "previous layout, formula" and against["ratio"] > 0
    said = run.stdout
    assert "previous layout bytes = " in said and "corrected used_memory = " in said
    assert "█" in said


@pytest.mark.timeout(300)
def test_a_quick_scaling_run_settles_every_entry_with_each_count_of_drain_processes(tmp_path):
    output = tmp_path / "scaling.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--scaling", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    report = json.loads(output.read_text())
    details = report["details"]
    assert report["settings"]["quick"] and details["warnings"] == []
    assert report["configuration"]["name"] == "production"
    assert report["configuration"]["env"]["HISCORE_RUN_TOKENS_REQUIRED"] == "1"
    entries = report["settings"]["entries"]
    runs = details["runs"]
    assert [r["processes"] for r in runs] == [1, 2, 4]
    for r in runs:
        # Every entry pre-filled, then settled: accepted, its record final, off the stream.
        assert r["backlog_before"]["waiting"] == entries
        assert r["verdicts"] == {"accepted": entries}
        assert r["records"] == {"accepted": entries}
        assert r["backlog_after"] == {"waiting": 0, "in_progress": 0}
        assert r["round_trips"]["acked"] == entries
        # Spread over every partition, each asked to be drained as the web asks.
        assert r["partitions"] == 8 == r["drain_tasks_sent"]
        assert sum(b["waiting"] for b in r["backlog_before_by_partition"].values()) == entries
        assert all(b["waiting"] > 0 for b in r["backlog_before_by_partition"].values())
        assert sum(d["settled"] for d in r["drains"]) == entries
        assert len({d["consumer"] for d in r["drains"]}) <= r["processes"]
        assert r["rate"] > 0 and r["window_s"] > 0
        assert r["cpu_ms_per_entry"]["workers"] > 0 and r["cpu_ms_per_entry"]["redis"] > 0
        assert r["redis_script_ms_per_entry"] > 0 and r["commandstats"]
        assert r["fill_redis"]["script_us_per_entry"] > 0
        assert r["batches"] >= 1 and 0 < r["batch_size"] <= 500
        assert r["round_trips_per_batch"] >= 2  # at least its read and its acknowledgement
        assert any("apply_entry" in what for what in r["round_trips_per_batch_by_kind"])
    by_k = details["by_processes"]
    assert set(by_k) == {"1", "2", "4"} and by_k["1"]["speedup"] == 1
    figures = {f["name"]: f for f in report["figures"]}
    two = figures["entries settled per second, 2 drain processes"]
    assert two["target"] == "≥ 1.7" and two["ratio"] == pytest.approx(by_k["2"]["speedup"])
    assert two["met"] in (True, False)  # a quick run's figures are not judged
    for words in ("round trips per batch", "busiest commands", "The request slot"):
        assert words in run.stdout
    # What counting a request's limits costs the request slot, for each kind of request.
    slot = details["request_slot"]
    counters = {what: c["counters"] for what, c in slot.items()}
    assert counters == {"score": 3, "session": 2, "read": 1}
    assert all(c["script_us_per_request"] > 0 for c in slot.values())
