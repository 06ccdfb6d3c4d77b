"""An operator's tasks: start a rebuild or a prune of some boards, as a task to follow.

Plain functions over a Redis client; the caller passes how to queue the task's work
(``queue(task_id, families)``), so nothing here knows the task system.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.storage import operations
from app.storage.connection import DataClient
from app.storage.operations import Family
from app.storage.submissions import new_id

#: Sends a task's work to the workers: ``queue(task_id, families)``.
Queue = Callable[[str, list[list[str]]], None]


class Busy(Exception):
    """Another rewrite of some of the boards runs."""

    def __init__(self, families: Sequence[Family], holders: Sequence[str]) -> None:
        super().__init__(", ".join(f"{g}/{v}" for g, v in families))
        self.families = list(families)
        self.holders = list(holders)


def start_rebuild(client: DataClient, families: Sequence[Family], now_ms: int, queue: Queue) -> str:
    """Lock the families and queue their rebuild; the task's id. Raises :class:`Busy`."""
    task_id = new_id()
    busy = operations.lock_families(client, families, task_id, operations.LOCK_TTL)
    if busy:
        holders = sorted({operations.lock_holder(client, g, v) or "" for g, v in busy} - {""})
        raise Busy(busy, holders)
    operations.create_task(client, task_id, "rebuild", {"families": families}, now_ms)
    try:
        queue(task_id, [list(f) for f in families])
    except Exception:
        operations.release_families(client, families, task_id)
        raise
    return task_id


def start_prune(client: DataClient, families: Sequence[Family], now_ms: int, queue: Queue) -> str:
    """Queue a prune of the families' logs (boards being rebuilt are skipped); the task's id."""
    task_id = new_id()
    operations.create_task(client, task_id, "prune", {"families": families}, now_ms)
    try:
        queue(task_id, [list(f) for f in families])
    except Exception:
        operations.update_task(
            client, task_id, state=operations.FAILED, error="could not be queued"
        )
        raise
    return task_id
