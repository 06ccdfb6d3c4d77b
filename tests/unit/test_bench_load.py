"""The benchmarks' own arithmetic: scores that a tokened load can send without breaking the
rules of the game they go to, and the runs it started but did not send, kept for the next
run."""

from __future__ import annotations

from types import SimpleNamespace

from app.leaderboard.games import load_registry
from app.leaderboard.validation import check_rules
from bench import seed
from bench.load import WrkRun
from bench.sessions import (
    LONGEST_CLAIM_S,
    SCORE_TOP,
    Run,
    Scores,
    WrkBodies,
    score_body,
    write_slices,
)


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
