"""Convert a Redis written by the layout with per-board rows hashes and one key per status
record into the current one: players and meta hashes beside each board's ranking, a compacted
log, and status records in generations of hashes.

Per family with a log (under its lock, as a rebuild holds it):

1. the boards are rebuilt from the log, which this layout kept whole: rankings, the players
   hash and each board's sum of scores;
2. each readable board's entry counts (``n``, ``t:<bucket>``), which a rebuild keeps rather than
   derives, are counted from that whole log and set in one script that first checks that the
   log has not grown since (an entry applied meanwhile counts itself); the same script puts back
   the time of the board's last change that its rows hash held, which the rebuild's swap set
   to now;
3. every rows hash of the family is deleted, those of periods no longer readable too;
4. the log is compacted as the prune job does it (:mod:`app.leaderboard.compaction`).

A family without a rows hash is taken as converted and left alone, so a second run changes
nothing; one interrupted before its rows hashes went is converted again whole (its log is still
whole: only step 4 shortens it, and the prune job runs that step anyway). Each status record
``hs:{ingest}:sub:<id>`` is written into the generation of the time it was settled (or queued)
and deleted; one settled longer ago than the idempotency window is only deleted.

Plain functions over a redis client; time is passed in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import pydantic
import redis

from app.leaderboard import statuses
from app.leaderboard.boards import Board
from app.leaderboard.compaction import Compaction, compact_family
from app.leaderboard.games import Game, Registry
from app.leaderboard.rebuild import SLICE, readable_boards, rebuild_family
from app.leaderboard.records import SubmissionRecord
from app.leaderboard.windows import bucket_ms, period_of
from app.storage import keys, operations, scripts
from app.storage.submissions import Generation

#: The field of a rows hash that held the time of the board's last change.
LEGACY_UPDATED = ":updated"

#: Status records read (and written) per round trip.
RECORD_BATCH = 500

#: Tries at setting the counts while entries keep arriving.
COUNT_TRIES = 5


@dataclass
class FamilyMigrated:
    """What converting one family did (or, in a dry run, would do)."""

    state: str = "converted"  # converted, already (nothing legacy), skipped (locked), dry-run
    entries: int = 0  # log entries the boards were rebuilt from
    boards: int = 0  # readable boards rebuilt and counted
    rows_deleted: int = 0  # rows hashes deleted
    compaction: dict[str, int] = field(default_factory=dict)


@dataclass
class RecordsMigrated:
    """What converting the status records did (or, in a dry run, would do)."""

    converted: int = 0  # written into the generations' hashes, then deleted
    expired: int = 0  # older than the idempotency window: deleted only
    unreadable: int = 0  # not a record this code reads: kept, for an operator to look at


def legacy_rows_keys(client: redis.Redis, game: str, variant: str) -> list[str]:
    """Every rows hash of a family, of any period."""
    pattern = keys.legacy_rows_key(game, variant, "*", "*")
    return sorted(cast(Iterable[str], client.scan_iter(match=pattern, count=1000)))


def count_entries(client: redis.Redis, boards: list[Board]) -> tuple[str, dict[str, Counter[str]]]:
    """The log id read up to and, per board (by meta key), its ``n`` and ``t:<bucket start>``
    counts of the log's entries achieved in its period, in one pass of slices."""
    first = boards[0]
    log = keys.log_key(first.game.slug, first.variant)
    by_key = {board.meta_key: board for board in boards}
    counts: dict[str, Counter[str]] = {key: Counter() for key in by_key}
    # An entry belongs on its all-time board and its day's and week's, where readable.
    metas: dict[tuple[str, str], str] = {(b.window, b.period): b.meta_key for b in boards}
    buckets = {b.meta_key: bucket_ms(b.window) for b in boards}
    position, start = "-", "-"
    while True:
        entries = cast(list[Any], client.xrange(log, start, "+", count=SLICE))
        for log_id, fields in entries:
            at = int(fields["at"])
            for window in ("alltime", "daily", "weekly"):
                key = metas.get((window, period_of(window, at)))
                if key is not None:
                    counted = counts[key]
                    counted["n"] += 1
                    counted[f"t:{at - at % buckets[key]}"] += 1
            position = log_id
        if len(entries) < SLICE:
            return position, counts
        start = f"({entries[-1][0]}"


def set_counts(
    client: redis.Redis, boards: list[Board], updated: dict[str, str | None]
) -> tuple[str, dict[str, Counter[str]]]:
    """Count every board's entries from the log and set them, with each board's ``updated``
    where ``updated`` names one; count again while entries arrive meanwhile."""
    log = keys.log_key(boards[0].game.slug, boards[0].variant)
    for _ in range(COUNT_TRIES):
        position, counts = count_entries(client, boards)
        args: list[str | int] = [position]
        for board in boards:
            pairs = sorted(counts[board.meta_key].items())
            args += [board.expire_at(), updated.get(board.meta_key) or "", len(pairs)]
            for name, count in pairs:
                args += [name, count]
        done = scripts.script(client, "set_counts")(
            keys=[log, *(board.meta_key for board in boards)], args=args
        )
        if done:
            return position, counts
    raise RuntimeError(f"{log} kept growing while its entries were counted")


def migrate_family(
    client: redis.Redis,
    game: Game,
    variant: str,
    now_ms: int,
    compaction: Compaction,
    owner: str,
    dry_run: bool = False,
) -> FamilyMigrated:
    """Convert one family (see the module's docstring), holding its lock as ``owner``."""
    slug = game.slug
    legacy = legacy_rows_keys(client, slug, variant)
    report = FamilyMigrated(rows_deleted=len(legacy))
    if not legacy:
        return FamilyMigrated(state="already")
    boards = readable_boards(game, variant, now_ms)
    report.boards = len(boards)
    if dry_run:
        report.state = "dry-run"
        report.entries = cast(int, client.xlen(keys.log_key(slug, variant)))
        return report
    if operations.lock_families(client, [(slug, variant)], owner, operations.LOCK_TTL):
        return FamilyMigrated(state="skipped")
    try:

        def renew(done: int, total: int) -> None:
            operations.renew_families(client, [(slug, variant)])

        pipe = client.pipeline(transaction=False)
        for board in boards:
            pipe.hget(
                keys.legacy_rows_key(slug, variant, board.window, board.period), LEGACY_UPDATED
            )
        updated = dict(zip((b.meta_key for b in boards), pipe.execute(), strict=True))
        report.entries = rebuild_family(client, game, variant, now_ms, renew)
        set_counts(client, boards, updated)
        for first in range(0, len(legacy), 500):
            client.unlink(*legacy[first : first + 500])
        compacted = compact_family(
            client, game, variant, now_ms, compaction.window_s, compaction.archive_dir, renew
        )
        report.compaction = asdict(compacted)
    finally:
        operations.release_families(client, [(slug, variant)], owner)
    return report


def legacy_record(text: str) -> tuple[SubmissionRecord, int | None] | None:
    """A record as the previous layout stored it (JSON), and when it was last written (ms,
    if it says); None if it is not one."""
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            return None
        record = SubmissionRecord.model_validate(raw)
    except (ValueError, pydantic.ValidationError):
        return None
    written = raw.get("settled_at", raw.get("queued_at"))
    return record, written if isinstance(written, int) else None


def migrate_records(
    client: redis.Redis, now_ms: int, window_s: int, partitions: int, dry_run: bool = False
) -> RecordsMigrated:
    """Rewrite every status record of the previous layout into the generations' hashes of its
    ingest partition (of ``partitions``)."""
    report = RecordsMigrated()
    prefix = keys.legacy_submission_key("")
    found = cast(Iterable[str], client.scan_iter(match=f"{prefix}*", count=1000))
    batch: list[str] = []
    for key in found:
        batch.append(key)
        if len(batch) == RECORD_BATCH:
            _migrate_records(client, batch, prefix, now_ms, window_s, partitions, dry_run, report)
            batch = []
    if batch:
        _migrate_records(client, batch, prefix, now_ms, window_s, partitions, dry_run, report)
    return report


def _migrate_records(
    client: redis.Redis,
    names: list[str],
    prefix: str,
    now_ms: int,
    window_s: int,
    partitions: int,
    dry_run: bool,
    report: RecordsMigrated,
) -> None:
    texts = cast(list[str | None], client.mget(names))
    pipe = client.pipeline(transaction=False)
    for name, text in zip(names, texts, strict=True):
        if text is None:
            continue  # expired since the scan saw it
        parsed = legacy_record(text)
        if parsed is None:
            report.unreadable += 1
            continue
        record, written = parsed
        at_ms = written if written is not None else now_ms
        if dry_run:
            kept = Generation.at(at_ms, window_s, partitions).expire_at_ms > now_ms
        else:
            sid = name[len(prefix) :]
            kept = statuses.write(pipe, sid, record, at_ms, now_ms, window_s, partitions)
            # Deleted after its write, in the same pipeline: an interruption leaves it in one
            # layout or both, and a second run writes the same text again.
            pipe.delete(name)
        if kept:
            report.converted += 1
        else:
            report.expired += 1
    if not dry_run:
        for reply in pipe.execute():
            if isinstance(reply, list) and reply:
                raise redis.ResponseError(f"could not store a record: {reply[0]}")


def migrate_storage(
    client: redis.Redis,
    registry: Registry,
    now_ms: int,
    compaction: Compaction,
    owner: str,
    partitions: int,
    dry_run: bool = False,
    on_family: Callable[[str, FamilyMigrated], None] = lambda family, report: None,
) -> tuple[dict[str, FamilyMigrated], RecordsMigrated]:
    """Convert every family of ``registry`` that has a log, then the status records (into
    their partitions, of ``partitions``)."""
    families: dict[str, FamilyMigrated] = {}
    for game in registry:
        for variant in game.variants:
            if not client.exists(keys.log_key(game.slug, variant)):
                continue
            report = migrate_family(client, game, variant, now_ms, compaction, owner, dry_run)
            families[f"{game.slug}/{variant}"] = report
            on_family(f"{game.slug}/{variant}", report)
    records = migrate_records(client, now_ms, compaction.window_s, partitions, dry_run)
    return families, records
