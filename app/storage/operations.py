"""Operator tasks: family locks so one rewrite of a board runs at a time, and task records
with state and progress that the admin API and page follow."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from app.storage import keys
from app.storage.connection import DataClient
from app.storage.scripts import script

Family = tuple[str, str]  # (game slug, variant)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

#: How long an operator task's record stays readable.
TASK_TTL = 7 * 24 * 3600

#: Seconds a family lock lasts unless its holder renews it (it does, as it makes progress),
#: so the lock of a run that died frees itself soon.
LOCK_TTL = 120


def lock_families(
    client: DataClient, families: Sequence[Family], owner: str, ttl: int
) -> list[Family]:
    """Take every family's lock for ``owner``, or none; return the families held by others."""
    pipe = client.pipeline(transaction=False)
    for game, variant in families:
        pipe.set(keys.lock_key(game, variant), owner, nx=True, ex=ttl)
    taken = pipe.execute()
    busy = [family for family, ok in zip(families, taken, strict=True) if not ok]
    if busy:
        release_families(client, [f for f, ok in zip(families, taken, strict=True) if ok], owner)
    return busy


def release_families(client: DataClient, families: Sequence[Family], owner: str) -> None:
    """Release the locks ``owner`` holds (one key at a time: each family is its own slot)."""
    release = script(client, "release_locks")
    for game, variant in families:
        release(keys=[keys.lock_key(game, variant)], args=[owner])


def renew_families(client: DataClient, families: Sequence[Family], ttl: int = LOCK_TTL) -> None:
    """Extend the locks of ``families`` (held by the caller) by ``ttl`` seconds from now."""
    pipe = client.pipeline(transaction=False)
    for game, variant in families:
        pipe.expire(keys.lock_key(game, variant), ttl)
    pipe.execute()


def lock_holder(client: DataClient, game: str, variant: str) -> str | None:
    """The task holding a family's lock, if any."""
    return cast(str | None, client.get(keys.lock_key(game, variant)))


def create_task(
    client: DataClient, task_id: str, kind: str, params: dict[str, Any], now_ms: int
) -> None:
    """Record a queued operator task."""
    key = keys.task_key(task_id)
    client.hset(
        key,
        mapping={
            "kind": kind,
            "state": QUEUED,
            "params": json.dumps(params),
            "done": 0,
            "total": 0,
            "created_at": now_ms,
        },
    )
    client.expire(key, TASK_TTL)


def update_task(client: DataClient, task_id: str, **fields: Any) -> None:
    """Change fields of a task record (state, done, total, result, error, …)."""
    mapping = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    client.hset(keys.task_key(task_id), mapping=mapping)


def read_task(client: DataClient, task_id: str) -> dict[str, Any] | None:
    """A task record as the API shows it, or None."""
    raw = cast(dict[str, str], client.hgetall(keys.task_key(task_id)))
    if "kind" not in raw:
        # Unknown, or expired and then touched by the task's last progress update: what is
        # left is no record.
        return None
    task: dict[str, Any] = {
        "task_id": task_id,
        "kind": raw.get("kind"),
        "state": raw.get("state"),
        "progress": {"done": int(raw.get("done", 0)), "total": int(raw.get("total", 0))},
        "params": json.loads(raw.get("params", "{}")),
    }
    for name in ("created_at", "started_at", "finished_at"):
        if raw.get(name):
            task[name] = int(raw[name])
    if raw.get("result"):
        task["result"] = json.loads(raw["result"])
    if raw.get("error"):
        task["error"] = raw["error"]
    return task
