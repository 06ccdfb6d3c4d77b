"""Maintenance runs over many families: progress, locks and records around the per-family functions
of :mod:`app.leaderboard.rebuild` and :mod:`app.leaderboard.stats`. Plain functions; tasks wrap
them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

from app.leaderboard.compaction import Compaction, prune_and_compact
from app.leaderboard.games import Game, Registry
from app.leaderboard.rebuild import Progress, rebuild_family, reconcile_family
from app.leaderboard.stats import compute_family
from app.storage import keys, operations
from app.storage.connection import DataClient
from app.storage.operations import Family

log = logging.getLogger(__name__)

#: Per-family work: (client, game, variant, now ms, progress) -> a JSON-able result.
FamilyWork = Callable[[DataClient, Game, str, int, Progress], Any]


def families_of(
    registry: Registry, game: str | None = None, variant: str | None = None
) -> list[Family]:
    """Every (game, variant) of the registry, or those of one game, or one."""
    return [
        (g.slug, v)
        for g in registry
        if game in (None, g.slug)
        for v in g.variants
        if variant in (None, v)
    ]


def run_families(
    client: DataClient,
    registry: Registry,
    families: Sequence[Family],
    work: FamilyWork,
    now_ms: int,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Run ``work`` on each family with one progress count over all of them (log entries)."""
    totals = [cast(int, client.xlen(keys.log_key(g, v))) for g, v in families]
    grand_total = sum(totals)
    done_before = 0
    results: dict[str, Any] = {}
    on_progress(0, grand_total)
    for (slug, variant), total in zip(families, totals, strict=True):
        game = registry.get(slug)
        if game is None or variant not in game.variants:
            continue

        def progress(done: int, _total: int, base: int = done_before) -> None:
            on_progress(base + done, max(grand_total, base + done))

        results[f"{slug}/{variant}"] = work(client, game, variant, now_ms, progress)
        done_before += total
        on_progress(done_before, grand_total)
    return results


def _drifted(
    client: DataClient, game: Game, variant: str, now_ms: int, progress: Progress
) -> list[str]:
    return [
        f"{b.window}:{b.period}" for b in reconcile_family(client, game, variant, now_ms, progress)
    ]


def _stats(client: DataClient, game: Game, variant: str, now_ms: int, progress: Progress) -> int:
    return len(compute_family(client, game, variant, now_ms))


WORK: dict[str, FamilyWork] = {
    "rebuild": rebuild_family,
    "prune": prune_and_compact,
    "reconcile": _drifted,
    "stats": _stats,
}

#: Kinds that rewrite boards and so hold the family locks while they run.
LOCKING = frozenset({"rebuild", "prune", "reconcile"})


def run_operation(
    client: DataClient,
    registry: Registry,
    kind: str,
    families: Sequence[Family],
    owner: str,
    now: Callable[[], int],
    record: bool,
    on_progress: Callable[[int, int], None] | None = None,
    compaction: Compaction | None = None,
) -> dict[str, Any]:
    """Run one maintenance kind over ``families`` as ``owner``.

    Locking kinds use the families whose lock ``owner`` holds or can take; the others are
    reported as skipped (a rebuild is running there). With ``record``, the task record of
    ``owner`` follows state and progress; ``on_progress`` hears it too (a terminal bar).
    A prune compacts the logs as ``compaction`` says (the defaults: a day's window, no archive).
    """
    started = now()
    skipped: list[str] = []
    mine = list(families)
    if kind in LOCKING:
        mine = []
        for game, variant in families:
            holder = operations.lock_holder(client, game, variant)
            if holder == owner or not operations.lock_families(
                client, [(game, variant)], owner, operations.LOCK_TTL
            ):
                mine.append((game, variant))
            else:
                skipped.append(f"{game}/{variant}")
    if record:
        operations.update_task(client, owner, state=operations.RUNNING, started_at=started)

    def progress(done: int, total: int) -> None:
        if kind in LOCKING:
            operations.renew_families(client, mine)
        if record:
            operations.update_task(client, owner, done=done, total=total)
        if on_progress is not None:
            on_progress(done, total)

    try:
        work = WORK[kind]
        if kind == "prune" and compaction is not None:
            work = partial(prune_and_compact, compaction=compaction)
        results = run_families(client, registry, mine, work, started, progress)
    except Exception as exc:
        if record:
            operations.update_task(
                client, owner, state=operations.FAILED, error=str(exc), finished_at=now()
            )
        raise
    finally:
        if kind in LOCKING:
            operations.release_families(client, mine, owner)
    outcome = {"families": results, "skipped": skipped}
    if record:
        operations.update_task(
            client, owner, state=operations.DONE, result=outcome, finished_at=now()
        )
    return outcome


def record_beat_run(
    client: DataClient,
    job: str,
    started_ms: int,
    finished_ms: int,
    outcome: dict[str, Any] | None,
    error: str | None = None,
) -> None:
    """Remember the last run of a beat job, for the status endpoint."""
    run: dict[str, Any] = {
        "started_at": started_ms,
        "finished_at": finished_ms,
        "duration_ms": finished_ms - started_ms,
        "ok": error is None,
    }
    if error:
        run["error"] = error
    elif outcome is not None:
        run["skipped"] = outcome.get("skipped", [])
    client.hset(keys.BEAT_RUNS, job, json.dumps(run))


def read_beat_runs(client: DataClient) -> dict[str, Any]:
    """The last run of each beat job."""
    runs = cast(dict[str, str], client.hgetall(keys.BEAT_RUNS))
    return {job: json.loads(raw) for job, raw in runs.items()}
