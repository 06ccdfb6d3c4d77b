"""/metrics needs the operator token (unless opened on purpose), and /readyz tells its details
only to the operator: publicly it says ready or not."""

from app import create_app
from app.web.api.openapi import build_document
from app.worker.status import record_heartbeat
from config import celery_settings

AUTH = {"Authorization": "Bearer testing-operator-token"}


def test_metrics_need_the_operator_token(client):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 403
    assert wrong.mimetype == "application/problem+json"
    assert b"hiscore_" not in wrong.get_data()
    answered = client.get("/metrics", headers=AUTH)
    assert answered.status_code == 200
    assert b"hiscore_http_request_duration_seconds" in answered.get_data()


def test_metrics_can_be_opened_on_purpose(redis_client):
    app = create_app(
        "testing",
        {
            "REDIS_CLIENT": redis_client,
            "CELERY": celery_settings("memory://"),
            "RATE_LIMITS_ENABLED": False,
            "METRICS_PUBLIC": True,
        },
    )
    assert app.test_client().get("/metrics").status_code == 200


def test_readyz_tells_only_its_status_without_the_token(client, redis_client):
    public = client.get("/readyz")
    assert public.status_code == 503
    assert "worker" not in public.get_json()["detail"]
    told = client.get("/readyz", headers=AUTH)
    assert told.status_code == 503 and "worker" in told.get_json()["detail"]
    record_heartbeat(redis_client, "w@host", {"hostname": "w@host"})
    assert client.get("/readyz").get_json() == {"status": "ready"}
    assert client.get("/readyz", headers=AUTH).get_json() == {"status": "ready", "workers": 1}
    assert client.get("/readyz", headers={"Authorization": "Bearer guess"}).status_code == 403


def test_token_guesses_on_the_probes_count_in_the_operator_budget(limited):
    client = limited(RATE_LIMIT_ADMIN_PER_ADDRESS="3/minute").test_client()
    wrong = {"Authorization": "Bearer guess"}
    codes = [
        client.get("/metrics", headers=wrong).status_code,
        client.get("/readyz", headers=wrong).status_code,
        client.get("/api/v1/admin/status", headers=wrong).status_code,
        client.get("/readyz", headers=wrong).status_code,
        client.get("/metrics", headers=AUTH).status_code,
    ]
    assert codes == [403, 403, 403, 429, 429]
    # A probe without a token is never limited.
    assert {client.get("/readyz").status_code for _ in range(5)} == {503}


def test_the_document_says_metrics_need_the_operator_token(app):
    metrics = build_document(app)["paths"]["/metrics"]["get"]
    assert metrics["security"] == [{"operatorToken": []}]
    assert {"401", "403"} <= set(metrics["responses"])
