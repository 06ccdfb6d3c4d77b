"""Operator endpoints: the auth matrix, rebuild with its lock, prune, removal, status."""

import json

import pytest

from app.clock import now_ms
from app.leaderboard.boards import Entry, apply_entries
from app.storage import keys
from tests.cases import GOOD
from tests.conftest import PARTITIONS, ids_in_partitions, keyed

TOKEN = "testing-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = 86_400_000

ENDPOINTS = [
    ("POST", "/api/v1/admin/rebuild"),
    ("POST", "/api/v1/admin/prune"),
    ("GET", "/api/v1/admin/tasks/some-task-id"),
    ("GET", "/api/v1/admin/status"),
    ("DELETE", "/api/v1/admin/games/guess-claimed/players/" + "p" * 22),
    ("DELETE", "/api/v1/admin/players/" + "p" * 22 + "/sessions"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": "Bearer wrong-token"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, 403),
    ],
)
def test_operator_endpoints_refuse_all_but_the_right_token(
    client, redis_client, method, url, headers, status
):
    resp = client.open(url, method=method, headers=headers, json={})
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [(m, u, s) for (m, u), s in zip(ENDPOINTS, [202, 202, 404, 200, 200, 200], strict=True)],
)
def test_the_right_token_gets_through(client, method, url, status):
    # 404 for the task: the token was right, the made-up task id is unknown.
    assert client.open(url, method=method, headers=AUTH, json={}).status_code == status


def test_wrong_methods_are_405_with_the_allowed_ones(client):
    resp = client.get("/api/v1/admin/rebuild", headers=AUTH)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    assert resp.mimetype == "application/problem+json"
    assert client.post("/api/v1/admin/status", headers=AUTH).status_code == 405


def test_a_second_rebuild_of_the_same_board_gets_409(client, redis_client):
    first = client.post(
        "/api/v1/admin/rebuild", headers=AUTH, json={"game": "guess-claimed", "variant": "10"}
    )
    assert first.status_code == 202
    task_id = first.get_json()["task_id"]
    assert redis_client.get(keys.lock_key("guess-claimed", "10")) == task_id
    task = client.get(first.get_json()["status_url"], headers=AUTH).get_json()
    assert task["state"] == "queued" and task["progress"] == {"done": 0, "total": 0}

    again = client.post("/api/v1/admin/rebuild", headers=AUTH, json={"game": "guess-claimed"})
    assert again.status_code == 409
    assert task_id in again.get_json()["detail"]
    # The refused request took no lock of its own on the other variants.
    assert redis_client.get(keys.lock_key("guess-claimed", "25")) is None
    other = client.post(
        "/api/v1/admin/rebuild", headers=AUTH, json={"game": "guess-claimed", "variant": "25"}
    )
    assert other.status_code == 202


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"game": "chess"}, 404),
        ({"game": "guess-claimed", "variant": "7"}, 422),
        ({"variant": "10"}, 422),
        ({"game": 5}, 422),
        ({"everything": True}, 422),
    ],
)
def test_bad_rebuild_scopes(client, body, status):
    resp = client.post("/api/v1/admin/rebuild", headers=AUTH, json=body)
    assert resp.status_code == status


def run_queued_task(app):
    """Run the operator task the last request put on the maintenance queue, as a worker would:
    the message's task, with its id and arguments (Celery's memory broker holds it)."""
    celery = app.extensions["celery"]
    with celery.connection_for_write() as conn:
        message = conn.SimpleQueue("maintenance").get(timeout=1)
    message.ack()
    args, kwargs, _ = message.payload
    with app.app_context():
        celery.tasks[message.headers["task"]].apply(args, kwargs, task_id=message.headers["id"])


def test_prune_removes_the_entries_past_retention_and_the_boards_follow(
    app, client, redis_client, registry
):
    guess = registry.get("guess-claimed")
    now = now_ms()
    old, recent = now - (guess.retention_days + 35) * DAY, now - DAY

    def scored(variant, player, score, at):
        sid = f"sub-{variant}-{player}-{score}"
        return Entry(sid, guess, variant, player * 22, player.upper(), score, at)

    stale = [scored("100", "a", 2, old), scored("100", "b", 3, old)]
    kept = [scored("100", "a", 5, recent), scored("100", "c", 4, recent)]
    elsewhere = scored("10", "d", 1, old)  # outside the scope asked for
    apply_entries(redis_client, [*stale, *kept, elsewhere], now)

    queued = client.post(
        "/api/v1/admin/prune", headers=AUTH, json={"game": "guess-claimed", "variant": "100"}
    )
    assert queued.status_code == 202
    run_queued_task(app)

    task = client.get(queued.get_json()["status_url"], headers=AUTH).get_json()
    assert task["state"] == "done" and task["progress"] == {"done": 4, "total": 4}
    # The two left were applied just now, inside the idempotency window: compaction keeps them.
    compacted = {
        "read": 2,
        "kept": 2,
        "dropped": 0,
        "archived": 0,
        "applied_dropped": 0,
        "metadata_dropped": 0,
    }
    assert task["result"] == {
        "families": {"guess-claimed/100": {"past_retention": 2, **compacted}},
        "skipped": [],
    }
    log = redis_client.xrange(keys.log_key("guess-claimed", "100"))
    assert sorted(f["sid"] for _, f in log) == sorted(e.submission_id for e in kept)
    assert sorted(redis_client.hkeys(keys.applied_key("guess-claimed", "100"))) == sorted(
        e.submission_id for e in kept
    )
    # a's old best (2) went with its entry, their newer 5 stands; b had only an old entry.
    top = client.get("/api/v1/games/guess-claimed/boards/100").get_json()["entries"]
    assert [(e["player_id"], e["score"]) for e in top] == [("c" * 22, 4), ("a" * 22, 5)]
    other = client.get("/api/v1/games/guess-claimed/boards/10").get_json()["entries"]
    assert [(e["player_id"], e["score"]) for e in other] == [("d" * 22, 1)]
    assert redis_client.xlen(keys.log_key("guess-claimed", "10")) == 1
    assert redis_client.get(keys.lock_key("guess-claimed", "100")) is None


def test_removing_a_player_bans_them_from_every_variant(client, redis_client, work):
    cheater = {**GOOD, **keyed("c" * 22), "score": 1, "duration_ms": 900}
    client.post("/api/v1/games/guess-claimed/scores", json=cheater)
    client.post("/api/v1/games/guess-claimed/scores", json={**GOOD, **keyed("h" * 22)})
    work()
    resp = client.delete("/api/v1/admin/games/guess-claimed/players/" + "c" * 22, headers=AUTH)
    assert resp.get_json() == {
        "game": "guess-claimed",
        "player_id": "c" * 22,
        "banned": True,
        "rows_removed": 3,
    }
    top = client.get("/api/v1/games/guess-claimed/boards/10").get_json()
    assert [e["player_id"] for e in top["entries"]] == ["h" * 22]
    assert redis_client.sismember(keys.banned_key("guess-claimed", "1000"), "c" * 22)

    later = client.post("/api/v1/games/guess-claimed/scores", json={**cheater, "variant": "25"})
    ((sid, verdict),) = work()
    assert sid == later.get_json()["submission_id"]
    assert verdict["code"] == "banned"


def test_status_reports_queues_workers_beat_and_verdicts(client, redis_client, work):
    first, second, other = ids_in_partitions([3, 3, 5])
    for sid, name in ((first, "A"), (second, "B"), (other, "C")):
        client.post(
            "/api/v1/games/guess-claimed/scores",
            json={**GOOD, "name": name, "submission_id": sid},
        )
    before = client.get("/api/v1/admin/status", headers=AUTH).get_json()
    # The first submission of each partition scheduled its drain; the second waits for it.
    assert before["queues"] == {"ingest": 2, "maintenance": 0}
    assert before["ingest_stream"] == {"waiting": 3, "in_progress": 0}
    waiting = {p: counts["waiting"] for p, counts in before["ingest_partitions"].items()}
    assert waiting == {str(p): {3: 2, 5: 1}.get(p, 0) for p in range(PARTITIONS)}
    assert before["workers"] == [] and before["beat"] == {}
    work()
    after = client.get("/api/v1/admin/status", headers=AUTH).get_json()
    assert after["ingest_stream"] == {"waiting": 0, "in_progress": 0}
    assert after["submissions"] == {"accepted": 3, "rejected": {}}


def test_readyz_needs_a_worker_heartbeat(client, redis_client):
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.mimetype == "application/problem+json"
    from app.worker.status import record_heartbeat

    record_heartbeat(redis_client, "w@host", {"hostname": "w@host"})
    assert client.get("/readyz", headers=AUTH).get_json() == {"status": "ready", "workers": 1}


def test_metrics_expose_requests_and_verdicts(client, work):
    client.post("/api/v1/games/guess-claimed/scores", json=GOOD)
    work()
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'hiscore_submissions_total{code="",verdict="accepted"} 1.0' in text
    assert "hiscore_ingest_latency_seconds_count 1.0" in text
    assert 'hiscore_queue_depth{queue="ingest"} 1.0' in text  # the drain, never run here
    assert 'hiscore_ingest_backlog{state="waiting"} 0.0' in text
    assert 'endpoint="api.scores.submit_score"' in text


def test_metrics_count_a_jsonp_error_by_the_status_it_answered(client):
    answer = client.get("/api/v1/games/nope?callback=cb")
    assert answer.status_code == 200  # a script tag runs nothing answered with an error status
    body = answer.get_data(as_text=True)
    assert body.startswith("/**/cb(") and json.loads(body[len("/**/cb(") : -2])["status"] == 404
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("hiscore_http_request_duration_seconds_count")
        and 'endpoint="api.boards.show_game"' in line
    ]
    assert counted and all('status="404"' in line for line in counted), counted


# One variant type for every endpoint that takes one in a body: what the score endpoint
# accepts, the session and operator endpoints accept, and what it refuses they refuse alike.
VARIANT_BODIES = {
    "scores": ("/api/v1/games/guess-claimed/scores", lambda v: {**GOOD, "variant": v}),
    "sessions": ("/api/v1/games/guess-claimed/sessions", lambda v: {"variant": v}),
    "rebuild": ("/api/v1/admin/rebuild", lambda v: {"game": "guess-claimed", "variant": v}),
    "prune": ("/api/v1/admin/prune", lambda v: {"game": "guess-claimed", "variant": v}),
}


def _post_variant(client, endpoint: str, variant):
    url, body = VARIANT_BODIES[endpoint]
    return client.post(url, headers=AUTH, json=body(variant))


@pytest.mark.parametrize("endpoint", list(VARIANT_BODIES))
def test_every_endpoint_takes_an_integer_variant(app, client, redis_client, endpoint):
    resp = _post_variant(client, endpoint, 25)
    assert resp.status_code in (201, 202), resp.get_json()
    if endpoint == "sessions":
        assert resp.get_json()["variant"] == "25"
    elif endpoint == "rebuild":
        assert redis_client.get(keys.lock_key("guess-claimed", "25")) == resp.get_json()["task_id"]
    elif endpoint == "prune":
        run_queued_task(app)
        task = client.get(resp.get_json()["status_url"], headers=AUTH).get_json()
        assert task["state"] == "done"
        assert task["result"]["families"] == {
            "guess-claimed/25": {
                "past_retention": 0,
                "read": 0,
                "kept": 0,
                "dropped": 0,
                "archived": 0,
                "applied_dropped": 0,
                "metadata_dropped": 0,
            }
        }


@pytest.mark.parametrize("variant", [7, "7", True, 2.5, "abc", -25, "", [25], {"max": 25}])
def test_every_endpoint_refuses_a_bad_variant_with_the_same_problem(client, redis_client, variant):
    answers = {}
    for endpoint in VARIANT_BODIES:
        resp = _post_variant(client, endpoint, variant)
        assert resp.mimetype == "application/problem+json", endpoint
        problem = resp.get_json()
        answers[endpoint] = (
            resp.status_code,
            problem["type"],
            problem["title"],
            problem["detail"],
            problem["errors"],
        )
    assert answers["scores"][0] == 422
    assert set(answers["scores"][4]) == {"variant"}
    assert all(answer == answers["scores"] for answer in answers.values()), answers
    assert redis_client.dbsize() == 0


def test_a_task_record_left_as_a_fragment_after_it_expired_is_unknown(client, redis_client):
    # The record expired; the task's last progress update then wrote a few fields back.
    redis_client.hset(keys.task_key("gone-task-0001"), mapping={"done": 5, "total": 5})
    answer = client.get("/api/v1/admin/tasks/gone-task-0001", headers=AUTH)
    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"


def test_stats_stored_by_a_later_release_with_more_fields_still_read(client, redis_client):
    from app.leaderboard.records import Stats

    stored = {
        **Stats.not_computed("guess", "100", "alltime", "all").model_dump(),
        "count": 1,
        "computed_at": 1,
        "a_later_field": 7,
    }
    redis_client.set(keys.stats_key("guess", "100", "alltime", "all"), json.dumps(stored))
    answer = client.get("/api/v1/games/guess/boards/100/stats")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["count"] == 1 and "a_later_field" not in answer.get_json()
