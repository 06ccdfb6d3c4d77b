"""The benchmarks' own arithmetic: the profile's shares from py-spy's raw output; scores that a
tokened load can send without breaking the rules of the game they go to; and the runs it
started but did not send, kept for the next run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.leaderboard.games import load_registry
from app.leaderboard.validation import check_rules
from bench import seed
from bench.load import WrkRun
from bench.profile import frame_of, render, summarize
from bench.sessions import (
    LONGEST_CLAIM_S,
    SCORE_TOP,
    Run,
    Scores,
    WrkBodies,
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
