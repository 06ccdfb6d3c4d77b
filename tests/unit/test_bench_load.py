"""The benchmarks' own arithmetic: the profile's shares from py-spy's raw output; scores that a
tokened load can send without breaking the rules of the game they go to; the runs it started
but did not send, kept for the next run, and counted as they are started; fixed loads judged by
their backlog; and seeded boards as their generator describes them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from app.leaderboard.games import load_registry
from app.leaderboard.validation import check_rules
from app.storage import keys
from bench import seed
from bench.baseline_app import list_key
from bench.ingest import OpenLoopRun, backlog_allowed, backlog_grew, backlog_series
from bench.load import Sent, WrkRun
from bench.profile import frame_of, render, summarize
from bench.sessions import (
    AGE_MARGIN_S,
    LONGEST_CLAIM_S,
    SCORE_TOP,
    LineCount,
    Run,
    Scores,
    WrkBodies,
    ready_at,
    score_body,
    write_slices,
)

RAW = "\n".join(
    [
        "main (srv.py:1);handle (srv.py:9);view (app/api.py:20);dumps (json/__init__.py:231) 6",
        "main (srv.py:1);handle (srv.py:10);view (app/api.py:21) 2",
        "main (srv.py:1);handle (srv.py:9);log (app/logs.py:5);log (app/logs.py:7) 2",
        "",
    ]
)


def test_a_frame_is_its_function_and_file_whatever_the_line():
    assert frame_of("Flask.wsgi_app (flask/app.py:1511)") == ("Flask.wsgi_app", "flask/app.py")
    assert frame_of("<module> (<string>:9)") == ("<module>", "<string>")
    assert frame_of("odd frame") == ("odd frame", "")


def test_shares_are_of_all_samples_and_a_recursive_frame_counts_once():
    profile = summarize(RAW)
    assert profile["samples"] == 10
    inclusive = {(r["function"], r["file"]): r["share"] for r in profile["inclusive"]}
    assert inclusive[("view", "app/api.py")] == pytest.approx(0.8)
    assert inclusive[("log", "app/logs.py")] == pytest.approx(0.2)  # not 0.4
    own = [(r["function"], r["share"]) for r in profile["self"]]
    assert own == [("dumps", 0.6), ("view", 0.2), ("log", 0.2)]


def test_frames_always_on_the_stack_together_are_one_line_named_by_the_deepest():
    top = summarize(RAW)["inclusive"][0]
    assert (top["function"], top["share"]) == ("handle", 1.0)
    assert top["with"] == ["main (srv.py)"]
    assert "[+1 caller on exactly these stacks]" in render(
        {"available": True, "rate_hz": 200, "seconds": 1, "asked": 200, "profiler_cpu_s": 0}
        | summarize(RAW),
        "profile",
    )


def test_an_unavailable_profile_says_why():
    text = render({"available": False, "reason": "py-spy could not sample: denied"}, "profile")
    assert text == "profile: no profile — py-spy could not sample: denied"


def test_a_tokened_load_claims_plausible_play_times_no_longer_than_it_waits(tmp_path):
    registry = load_registry(str(seed.write_games_file(tmp_path / "games.toml")))
    game = registry.get(seed.INGEST_GAME)
    assert game is not None
    run = Run("p" * 22, "k" * 40, "t" * 120)
    for i in range(3 * SCORE_TOP):
        body = score_body(run, i, "100")
        assert check_rules(game, "100", body["score"], body["duration_ms"]) == {}
        assert body["duration_ms"] <= LONGEST_CLAIM_S * 1000
        assert (body["player_id"], body["player_key"], body["token"]) == (
            "p" * 22,
            "k" * 40,
            "t" * 120,
        )


def test_each_wrk_thread_gets_its_own_slice_of_the_bodies_in_order(tmp_path):
    prefix = write_slices(tmp_path / "bodies", [f"b{i}" for i in range(5)], threads=2)
    assert (tmp_path / "bodies-0").read_text().split() == ["b0", "b2", "b4"]
    assert (tmp_path / "bodies-1").read_text().split() == ["b1", "b3"]
    assert prefix == tmp_path / "bodies"


def test_runs_a_wrk_run_did_not_reach_are_taken_before_any_new_session(tmp_path):
    stack = SimpleNamespace(run_dir=tmp_path, web_url="http://127.0.0.1:9")  # nothing listens
    scores = Scores(stack, tokens=True, connections=4)
    runs = [Run(f"p{i}", f"k{i}", f"t{i}") for i in range(6)]
    bodies = WrkBodies("bodies.lua", [], "100", (runs[0::2], runs[1::2]))
    sent = WrkRun(5, 1.0, 0, 0, 1.0, 2.0, 4, extra={"sent_by_thread": [2, 1]})
    scores.after_wrk(bodies, sent)
    assert scores.sessions is not None
    assert scores.sessions.take("100", 3) == [runs[4], runs[3], runs[5]]
    assert scores.sessions.rounds == []  # no session started


def test_the_seeding_scripts_write_the_entries_seed_entries_describes(redis_client):
    first_at = 1_764_600_000_000
    assert seed.seed_log(redis_client, seed.GAME, seed.SMALL, 12, first_at) == 12
    assert seed.seed_tutorial_list(redis_client, seed.GAME, seed.SMALL, 12, first_at) == 12
    log = redis_client.xrange(keys.log_key(seed.GAME, seed.SMALL))
    documents = redis_client.lrange(list_key(seed.GAME, seed.SMALL), 0, -1)
    applied = redis_client.hgetall(keys.applied_key(seed.GAME, seed.SMALL))
    expected = list(seed.entries(12, first_at))
    assert [entry_id for entry_id, _ in log] == [f"{e.at}-0" for e in expected]
    assert [fields for _, fields in log] == [
        {"sid": e.sid, "pid": e.pid, "name": e.name, "score": str(e.score), "at": f"{e.at:013d}"}
        for e in expected
    ]
    assert applied == {e.sid: f"{e.at}-0" for e in expected}
    assert documents == [
        json.dumps({"player_id": e.pid, "name": e.name, "score": e.score, "at": e.at})
        for e in expected
    ]
    assert len({e.score for e in expected}) > 1


def test_a_round_counts_the_runs_its_threads_have_written_so_far(tmp_path):
    paths = [tmp_path / "sessions-0", tmp_path / "sessions-1"]
    answered = LineCount(paths)
    assert answered() == 0  # no thread has written yet
    paths[0].write_text('{"a": 1}\n{"a": 2}\n{"a"')
    assert answered() == 2  # a line being written is not a run yet
    with paths[0].open("a") as f:
        f.write(": 3}\n")
    paths[1].write_text('{"b": 1}\n')
    assert answered() == 4


def test_a_fixed_load_whose_backlog_grew_is_suspect_and_one_that_drained_is_not():
    drained = {
        "other_answers": 0,
        "not_seen_visible": 0,
        "statuses": {"accepted": 3000},
        "backlog_end": 50,
        "backlog_allowed": backlog_allowed(200.0),
    }
    assert drained["backlog_allowed"] == 50  # a quarter second of the load
    assert backlog_grew("latency", drained) == []
    (problem,) = backlog_grew("latency", {**drained, "backlog_end": 51})
    assert "51 submissions sent were not yet visible" in problem


def test_the_backlog_is_what_was_sent_and_not_yet_visible_at_each_moment():
    # Due every 0.1 s from 10.0; each visible 0.05 s later, but the last three never.
    sent = [Sent(f"s{i}", 10.0 + i / 10, b"", status=202) for i in range(10)]
    seen = {job.key: job.due + 0.05 for job in sent[:7]}
    series = backlog_series(OpenLoopRun(sent, seen, []), every=0.3)
    assert [t for t, _ in series] == [0.0, 0.3, 0.6, 0.9]
    assert [n for _, n in series] == [1, 1, 1, 3]  # the last moment is the last due
    assert backlog_series(OpenLoopRun([], {}, [])) == []


def test_a_load_waits_only_for_the_tokens_it_would_send_before_they_come_of_age():
    # Scores 0..9 claim 0.2 s to 2.0 s of play (score_fields); sent one every 0.5 s.
    old = [Run(f"p{i}", "k", "t", issued_by=100.0) for i in range(4)]
    new = [Run(f"q{i}", "k", "t", issued_by=200.0) for i in range(6)]

    def every_half_second(i: int) -> float:
        return i / 2

    # The first young token's score (index 4) claims 1.0 s and leaves 2.0 s after the start;
    # the later ones leave later than they claim more.
    assert ready_at(old + new, every_half_second) == pytest.approx(199.0 + AGE_MARGIN_S)
    # Sent all at once, the youngest token's longest claim (index 9, 2.0 s) decides.
    assert ready_at(old + new, lambda i: 0.0) == pytest.approx(202.0 + AGE_MARGIN_S)
    assert ready_at(old, every_half_second) == pytest.approx(100.2 + AGE_MARGIN_S)
