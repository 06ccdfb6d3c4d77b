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

Then what the single ingest slot ``{ingest}`` held goes into the ingest partitions (see
:func:`migrate_ingest`), and likewise what a different ``HISCORE_INGEST_PARTITIONS`` left in
partitions (:func:`migrate_partitions_left`). Every move writes its destination first and
deletes its source after, so that a run cut short leaves a copy in both places, never none,
and the next run moves what is left: a status record is written only where its partition has
none, a stream entry appended twice is settled once by the drain (it carries
:data:`app.storage.intake.MOVED`, so its record is read first, and copies in one batch are
judged once), and counts are added and their hash deleted in one transaction on a single
Redis (on Redis Cluster, where the two are in different slots, in one round trip).

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
from app.leaderboard.boards import Board, entry_boards
from app.leaderboard.compaction import Compaction, compact_family
from app.leaderboard.games import Game, Registry
from app.leaderboard.rebuild import SLICE, readable_boards, rebuild_family
from app.leaderboard.records import SubmissionRecord
from app.leaderboard.windows import bucket_ms
from app.storage import intake, keys, operations, scripts
from app.storage.connection import DataClient, is_cluster
from app.storage.submissions import BUCKETS, SUBMISSION_ID, Generation, partition_of

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


def legacy_rows_keys(client: DataClient, game: str, variant: str) -> list[str]:
    """Every rows hash of a family, of any period."""
    pattern = keys.legacy_rows_key(game, variant, "*", "*")
    return sorted(cast(Iterable[str], client.scan_iter(match=pattern, count=1000)))


def count_entries(client: DataClient, boards: list[Board]) -> tuple[str, dict[str, Counter[str]]]:
    """The log id read up to and, per board (by meta key), its ``n`` and ``t:<bucket start>``
    counts of the log's entries achieved in its period, in one pass of slices."""
    first = boards[0]
    log = keys.log_key(first.game.slug, first.variant)
    by_key = {board.meta_key: board for board in boards}
    counts: dict[str, Counter[str]] = {key: Counter() for key in by_key}
    # An entry belongs on one board of each of the game's windows, where readable.
    metas: dict[tuple[str, str], str] = {(b.window, b.period): b.meta_key for b in boards}
    buckets = {b.meta_key: bucket_ms(b.window) for b in boards}
    position, start = "-", "-"
    while True:
        entries = cast(list[Any], client.xrange(log, start, "+", count=SLICE))
        for log_id, fields in entries:
            at = int(fields["at"])
            for board in entry_boards(first.game, first.variant, at):
                key = metas.get((board.window, board.period))
                if key is not None:
                    counted = counts[key]
                    counted["n"] += 1
                    counted[f"t:{at - at % buckets[key]}"] += 1
            position = log_id
        if len(entries) < SLICE:
            return position, counts
        start = f"({entries[-1][0]}"


def set_counts(
    client: DataClient, boards: list[Board], updated: dict[str, str | None]
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
    client: DataClient,
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
    client: DataClient, now_ms: int, window_s: int, partitions: int, dry_run: bool = False
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
    client: DataClient,
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


#: Stream entries moved per round trip.
MOVE_BATCH = 500


@dataclass
class IngestMoved:
    """What moving ingest keys into the partitions did (or, in a dry run, would do)."""

    entries: int = 0  # stream entries appended to their partition's stream, then deleted
    pending: int = 0  # of which a consumer had read and not acknowledged
    records: int = 0  # status records moved into their partition's hashes
    counts: int = 0  # fields of verdict counts and latency histograms added into partition 0's
    rejections: int = 0  # entries of rejection audits appended to partition 0's
    dead_letters: int = 0  # dead letters appended to partition 0's
    leases: int = 0  # drain leases deleted
    kept: list[str] = field(default_factory=list)  # streams left: entries arrived meanwhile

    @property
    def anything(self) -> bool:
        """Whether there was anything to move."""
        return any(
            (self.entries, self.records, self.counts, self.rejections, self.dead_letters)
        ) or bool(self.leases or self.kept)


def _one_node(client: DataClient) -> bool:
    """Whether a transaction may hold keys of several slots: on a single Redis, not a cluster."""
    return not is_cluster(client)


def _entry_partition(fields: dict[str, str], partitions: int) -> int:
    """The partition of the submission a stream entry carries (0 when it names none: the drain
    drops such an entry, as it did where it was)."""
    try:
        payload = json.loads(fields.get("p", ""))
    except ValueError:
        return 0
    sid = payload.get("submission_id") if isinstance(payload, dict) else None
    if isinstance(sid, str) and SUBMISSION_ID.match(sid):
        return partition_of(sid, partitions)
    return 0


def _moved(entry_id: str, fields: dict[str, str]) -> dict[Any, Any]:
    """An entry's fields as appended elsewhere: the same, and the id it had (which says when it
    was written) unless a move before this one gave it one."""
    return {**fields, intake.MOVED: fields.get(intake.MOVED, entry_id)}


def _pending_ids(client: DataClient, stream: str, groups: list[str]) -> set[str]:
    """The ids of a stream's entries that its consumers read and did not acknowledge."""
    pending: set[str] = set()
    for group in groups:
        start = "-"
        while True:
            page = cast(
                list[dict[str, Any]],
                client.xpending_range(stream, group, min=start, max="+", count=MOVE_BATCH),
            )
            pending.update(p["message_id"] for p in page)
            if len(page) < MOVE_BATCH:
                break
            start = f"({page[-1]['message_id']}"
    return pending


def _delete_moved(client: DataClient, stream: str, groups: list[str], ids: list[str]) -> None:
    """Take moved entries off the ingest stream they came from (and its consumers' pending
    lists), in one transaction on its slot."""
    pipe = client.pipeline(transaction=True)
    for group in groups:
        pipe.xack(stream, group, *ids)
    pipe.xdel(stream, *ids)
    pipe.execute()


def move_stream(
    client: DataClient, stream: str, partitions: int, report: IngestMoved, dry_run: bool
) -> None:
    """Append every entry of an ingest stream that is not a partition's of ``partitions``,
    waiting or pending, to its submission's partition's stream (the same fields, and
    :data:`app.storage.intake.MOVED`), then delete it there; then the stream, once empty, with
    its consumer groups."""
    if client.type(stream) != "stream":
        return
    groups = [g["name"] for g in cast(list[dict[str, Any]], client.xinfo_groups(stream))]
    pending = _pending_ids(client, stream, groups)
    start = "-"
    while True:
        chunk = cast(list[Any], client.xrange(stream, start, "+", count=MOVE_BATCH))
        if not chunk:
            break
        ids = [entry_id for entry_id, _ in chunk]
        report.entries += len(ids)
        report.pending += sum(entry_id in pending for entry_id in ids)
        if not dry_run:
            pipe = client.pipeline(transaction=False)
            for entry_id, fields in chunk:
                target = keys.ingest_stream(_entry_partition(fields, partitions))
                pipe.xadd(target, _moved(entry_id, fields))
            pipe.execute()
            # Deleted once appended, not in one transaction (the two streams are in different
            # slots): cut short in between, the entries are on both, and the next run appends
            # them again, for the drain to settle once.
            _delete_moved(client, stream, groups, ids)
        start = f"({ids[-1]}"
    if not dry_run and not scripts.script(client, "drop_moved_stream")(keys=[stream]):
        report.kept.append(stream)


def append_stream(client: DataClient, source: str, target: str, dry_run: bool) -> int:
    """Append a stream's entries, in their order, to ``target`` (the same fields, and
    :data:`app.storage.intake.MOVED`: the time their ids said), deleting them from ``source``
    (in the same transaction on a single Redis), then ``source``; how many."""
    if client.type(source) != "stream":
        return 0
    moved, start = 0, "-"
    while True:
        chunk = cast(list[Any], client.xrange(source, start, "+", count=MOVE_BATCH))
        if not chunk:
            break
        ids = [entry_id for entry_id, _ in chunk]
        moved += len(ids)
        if not dry_run:
            pipe = client.pipeline(transaction=_one_node(client))
            for entry_id, fields in chunk:
                pipe.xadd(target, _moved(entry_id, fields))
            pipe.xdel(source, *ids)
            pipe.execute()
        start = f"({ids[-1]}"
    if not dry_run:
        scripts.script(client, "drop_moved_stream")(keys=[source])
    return moved


def add_counts(client: DataClient, source: str, target: str, dry_run: bool) -> int:
    """Add a hash of counts (verdicts, or a latency histogram) into ``target`` and delete it,
    in one transaction on a single Redis; how many fields."""
    if client.type(source) != "hash":
        return 0
    counted = cast(dict[str, str], client.hgetall(source))
    if not dry_run and counted:
        pipe = client.pipeline(transaction=_one_node(client))
        for name, value in counted.items():
            if value.lstrip("-").isdigit():
                pipe.hincrby(target, name, int(value))
            else:  # a histogram's sum of seconds
                pipe.hincrbyfloat(target, name, float(value))
        pipe.delete(source)
        pipe.execute()
    return len(counted)


def move_records(
    client: DataClient,
    key: str,
    partition: int | None,
    generation: int,
    bucket: int,
    partitions: int,
    dry_run: bool,
) -> int:
    """Move the records of a hash (of ``partition``, None: the single slot's) that belong to
    another partition of ``partitions`` into that partition's hash of the same generation and
    bucket (with the hash's remaining TTL, if it has none yet); how many."""
    if (
        partition is not None
        and partition < partitions
        and BUCKETS % partitions == 0
        and bucket % partitions == partition
    ):
        # Every id of a bucket has the same CRC-32 modulo BUCKETS, so the same partition when
        # the partitions divide BUCKETS: this hash holds only its partition's, no need to read it.
        return 0
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(key)
    pipe.pttl(key)
    held, ttl_ms = cast(tuple[dict[str, str], int], tuple(pipe.execute()))
    if ttl_ms == -2:
        return 0  # expired since the scan saw it
    by_target: dict[int, dict[str, str]] = {}
    for sid, value in held.items():
        target = partition_of(sid, partitions)
        if target != partition:
            by_target.setdefault(target, {})[sid] = value
    moving = {sid: value for pairs in by_target.values() for sid, value in pairs.items()}
    if dry_run or not moving:
        return len(moving)
    calls: list[scripts.Call] = [
        (
            [keys.partition_submissions_key(target, generation, bucket)],
            [ttl_ms, *(item for pair in pairs.items() for item in pair)],
        )
        for target, pairs in by_target.items()
    ]
    for reply in scripts.run_each(client, "keep_moved_records", calls):
        if isinstance(reply, Exception):
            raise reply
    scripts.script(client, "forget_moved_records")(
        keys=[key], args=[item for pair in moving.items() for item in pair]
    )
    return len(moving)


def _scan(client: DataClient, pattern: str) -> list[str]:
    return sorted(cast(Iterable[str], client.scan_iter(match=pattern, count=1000)))


def migrate_ingest(client: DataClient, partitions: int, dry_run: bool = False) -> IngestMoved:
    """Move what the single ingest slot held into the partitions (of ``partitions``): each
    status record into its partition's hash of the same generation and bucket, each entry of
    the stream (waiting or pending) onto its partition's stream; the verdict counts and the
    latency histogram added into partition 0's, the audit of rejections and the dead letters
    appended to partition 0's; the drain lease deleted."""
    report = IngestMoved()
    for key in _scan(client, keys.LEGACY_SUBMISSIONS_PATTERN):
        parts = keys.submissions_key_parts(key)
        if parts is not None:
            report.records += move_records(
                client, key, None, parts[1], parts[2], partitions, dry_run
            )
    move_stream(client, keys.LEGACY_INGEST_STREAM, partitions, report, dry_run)
    report.counts += add_counts(client, keys.LEGACY_VERDICT_COUNTS, keys.verdict_counts(0), dry_run)
    report.counts += add_counts(
        client, keys.LEGACY_LATENCY_HISTOGRAM, keys.latency_histogram(0), dry_run
    )
    report.rejections += append_stream(
        client, keys.LEGACY_REJECTED_STREAM, keys.rejected_stream(0), dry_run
    )
    report.dead_letters += append_stream(
        client, keys.LEGACY_DEAD_LETTERS, keys.dead_letters(0), dry_run
    )
    report.leases += _delete_lease(client, keys.LEGACY_DRAIN_FLAG, dry_run)
    return report


def _delete_lease(client: DataClient, key: str, dry_run: bool) -> int:
    return cast(int, client.exists(key) if dry_run else client.delete(key))


def migrate_partitions_left(
    client: DataClient, partitions: int, dry_run: bool = False
) -> IngestMoved:
    """Move what a different partition count left into the partitions of ``partitions``: the
    status records held by a partition other than their own, then, of each partition past the
    last one, the stream's entries onto their partitions' streams, the counts and latency added
    into partition 0's, the audit and dead letters appended to partition 0's, and the lease
    deleted."""
    report = IngestMoved()
    found = _scan(client, keys.PARTITION_KEYS_PATTERN)
    others = []
    for key in found:
        parts = keys.submissions_key_parts(key)
        if parts is None:
            others.append(key)
        else:
            report.records += move_records(client, key, *parts, partitions, dry_run)
    for key in others:
        p = keys.partition_in(key)
        if p is None or p < partitions:
            continue
        if key == keys.ingest_stream(p):
            move_stream(client, key, partitions, report, dry_run)
        elif key == keys.verdict_counts(p):
            report.counts += add_counts(client, key, keys.verdict_counts(0), dry_run)
        elif key == keys.latency_histogram(p):
            report.counts += add_counts(client, key, keys.latency_histogram(0), dry_run)
        elif key == keys.rejected_stream(p):
            report.rejections += append_stream(client, key, keys.rejected_stream(0), dry_run)
        elif key == keys.dead_letters(p):
            report.dead_letters += append_stream(client, key, keys.dead_letters(0), dry_run)
        elif key == keys.drain_flag(p):
            report.leases += _delete_lease(client, key, dry_run)
    return report


@dataclass
class StorageMigrated:
    """What ``migrate-storage`` did (or, in a dry run, would do)."""

    families: dict[str, FamilyMigrated]
    records: RecordsMigrated
    ingest: IngestMoved  # out of the single ingest slot
    partitions_left: IngestMoved  # out of partitions a different partition count left


def migrate_storage(
    client: DataClient,
    registry: Registry,
    now_ms: int,
    compaction: Compaction,
    owner: str,
    partitions: int,
    dry_run: bool = False,
    on_family: Callable[[str, FamilyMigrated], None] = lambda family, report: None,
) -> StorageMigrated:
    """Convert every family of ``registry`` that has a log, then the status records (into
    their partitions, of ``partitions``), then move what the single ingest slot and other
    partition counts left into the partitions."""
    families: dict[str, FamilyMigrated] = {}
    for game in registry:
        for variant in game.variants:
            if not client.exists(keys.log_key(game.slug, variant)):
                continue
            report = migrate_family(client, game, variant, now_ms, compaction, owner, dry_run)
            families[f"{game.slug}/{variant}"] = report
            on_family(f"{game.slug}/{variant}", report)
    records = migrate_records(client, now_ms, compaction.window_s, partitions, dry_run)
    ingest = migrate_ingest(client, partitions, dry_run)
    left = migrate_partitions_left(client, partitions, dry_run)
    return StorageMigrated(families, records, ingest, left)
