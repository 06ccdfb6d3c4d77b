"""The seed tutorial's design, as the benchmarks' baseline: a bare ``LPUSH`` per score, and a
board read by fetching the whole list and sorting it in Python.

It answers on the same paths as hiscore, so one load script drives both. It runs under the same
gunicorn settings (``gunicorn.conf.py``): ``gunicorn 'bench.baseline_app:create_app()'``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from flask import Flask, Response, abort, jsonify, request


def list_key(game: str, variant: str) -> str:
    """The list that holds every score of one board, newest first."""
    return f"bench:tutorial:{game}:{variant}"


def _sorted_rows(client: redis.Redis, game: str, variant: str) -> list[dict[str, Any]]:
    rows = [json.loads(raw) for raw in client.lrange(list_key(game, variant), 0, -1)]
    rows.sort(key=lambda row: (row["score"], row.get("at", 0)))
    return rows


def create_app() -> Flask:
    """The baseline app, on the Redis named by ``REDIS_URL``."""
    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.post("/api/v1/games/<game>/scores")
    def submit(game: str) -> tuple[Response, int]:
        score = request.get_json()
        client.lpush(list_key(game, str(score.get("variant"))), json.dumps(score))
        return jsonify({"status": "queued"}), 202

    @app.get("/api/v1/games/<game>/boards/<variant>")
    def top(game: str, variant: str) -> Response:
        limit = request.args.get("limit", 10, type=int)
        rows = _sorted_rows(client, game, variant)
        return jsonify({"total": len(rows), "entries": rows[:limit]})

    @app.get("/api/v1/games/<game>/boards/<variant>/players/<player_id>")
    def around(game: str, variant: str, player_id: str) -> Response:
        k = request.args.get("around", 0, type=int)
        rows = _sorted_rows(client, game, variant)
        rank = next((i for i, row in enumerate(rows) if row["player_id"] == player_id), None)
        if rank is None:
            abort(404)
        return jsonify(
            {
                "total": len(rows),
                "rank": rank + 1,
                "neighbours": rows[max(0, rank - k) : rank + k + 1],
            }
        )

    return app
