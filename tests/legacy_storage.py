"""A Redis as the storage layout with per-board rows hashes (``v1``) writes it, kept as a text
dump, and what the read functions of the code that wrote it answered on it.

``tests/fixtures/legacy-storage-v1.json`` was made by ``tests/fixtures/make_legacy_storage.py``
(see there how): every key of the data Redis with its type, its expiry as an absolute epoch ms
(``-1``: none) and its whole content. ``legacy-storage-v1.expected.json`` beside it holds what
the read functions answered then: a page of every readable board of each family played, with
its ``updated_at``, and the public view of every status record. A migration of that layout is
tested by loading the dump (:func:`load_dump`), running ``manage.py migrate-storage`` and
reading the answers again (:func:`answers`, :func:`check_migrated`).

The layout the dump holds: per board a ranking zset and a rows hash (player id ->
``<achieved ms>|<score>|<name>``, and ``:updated``), per family a log stream of every accepted
entry and an applied hash of every submission id, and one JSON string key with a TTL per status
record, ``hs:{ingest}:sub:<id>``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import redis

from app.leaderboard.boards import read_page
from app.leaderboard.games import Game, Registry
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.scoring import follow_submission
from app.leaderboard.stats import read_stats
from app.leaderboard.windows import DAY_MS, bucket_ms, period_of
from app.storage import keys
from config import DEFAULT_INGEST_PARTITIONS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DUMP = FIXTURES / "legacy-storage-v1.json"
EXPECTED = FIXTURES / "legacy-storage-v1.expected.json"

#: The ``format`` of the dumps this module writes (:func:`read_dump` refuses any other).
FORMAT = "hiscore redis dump 1"

#: A page long enough to hold any board of the fixture whole.
WHOLE_BOARD = 100_000

#: The prefix of a status record's key (the submission id follows it).
SUBMISSION_PREFIX = keys.legacy_submission_key("")

#: Fields of a status record's public view that the current layout no longer shows: an accepted
#: record keeps only a prefix of its player id, and no view shows the player.
DROPPED_VIEW_FIELDS = frozenset({"player_id"})

#: An idempotency window that keeps every status record of the dump (they were kept 7 days).
WHOLE_WINDOW_S = 8 * 86_400


def dump_path() -> Path:
    """The committed dump: ``.json``, or ``.json.gz`` when it grew past a megabyte."""
    zipped = DUMP.with_name(DUMP.name + ".gz")
    return zipped if zipped.exists() else DUMP


def read_document(path: Path) -> dict[str, Any]:
    """A JSON document of the fixture (gzip-compressed if its name ends in ``.gz``)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return cast(dict[str, Any], json.loads(raw))


def read_dump() -> dict[str, Any]:
    """The committed dump."""
    dump = read_document(dump_path())
    if dump.get("format") != FORMAT:
        raise ValueError(f"not a dump of format {FORMAT!r}: {dump.get('format')!r}")
    return dump


def read_expected() -> dict[str, Any]:
    """What the code that made the dump answered on it."""
    return read_document(EXPECTED)


def _score_text(text: str) -> str:
    # Redis 6 writes a score with 17 significant digits and Redis 7 with the fewest that
    # round-trip: the shortest repr is the same text whichever wrote it.
    return repr(float(text))


def dump_keys(client: redis.Redis, now_ms: int) -> dict[str, dict[str, Any]]:
    """Every key of ``client``'s database, sorted, with its type, absolute expiry (its PTTL
    counted from ``now_ms``; -1 for none) and content. ``client`` decodes responses."""
    found: dict[str, dict[str, Any]] = {}
    for key in sorted(cast(Iterable[str], client.scan_iter(count=1000))):
        kind = cast(str, client.type(key))
        ttl = cast(int, client.pttl(key))
        if ttl == -2:
            continue  # expired since the scan saw it
        item: dict[str, Any] = {"type": kind, "expire_at_ms": now_ms + ttl if ttl >= 0 else -1}
        if kind == "string":
            item["value"] = client.get(key)
        elif kind == "hash":
            item["value"] = dict(sorted(cast(dict[str, str], client.hgetall(key)).items()))
        elif kind == "set":
            item["value"] = sorted(cast(set[str], client.smembers(key)))
        elif kind == "zset":
            ranked = client.zrange(key, 0, -1, withscores=True, score_cast_func=str)
            item["value"] = [[member, _score_text(score)] for member, score in ranked]
        elif kind == "list":
            item["value"] = client.lrange(key, 0, -1)
        elif kind == "stream":
            info = cast(dict[str, Any], client.xinfo_stream(key))
            groups = cast(list[dict[str, Any]], client.xinfo_groups(key))
            for group in groups:
                if group["pending"]:
                    raise ValueError(f"{key}: group {group['name']} has pending entries")
            item["last_id"] = info["last-generated-id"]
            # Consumers are left out: with nothing pending, a consumer is only a name.
            item["groups"] = [
                {"name": g["name"], "last_delivered_id": g["last-delivered-id"]}
                for g in sorted(groups, key=lambda g: g["name"])
            ]
            entries = cast(list[Any], client.xrange(key))
            # An entry's fields in their order (a JSON object keeps it, and no entry here
            # repeats a field).
            item["value"] = [[entry_id, fields] for entry_id, fields in entries]
        else:
            raise ValueError(f"{key}: no dump of a {kind}")
        found[key] = item
    return found


def load_dump(client: redis.Redis, dump: dict[str, Any], now_ms: int) -> int:
    """Write a dump's keys into ``client``'s database as of ``now_ms``; return how many.

    Each key expires as long after ``now_ms`` as it did after the dump's own ``now_ms`` when
    ``now_ms`` is that (a key already expired by ``now_ms`` is left out), so the clock of the
    Redis it is loaded into does not matter. Streams get their entries with their own ids,
    their last generated id and their consumer groups. Works with fakeredis and redis-server.
    """
    pipe = client.pipeline(transaction=False)
    loaded = 0
    for key, item in dump["keys"].items():
        expire_at, kind, value = item["expire_at_ms"], item["type"], item["value"]
        if expire_at != -1 and expire_at <= now_ms:
            continue
        pipe.delete(key)
        if kind == "string":
            pipe.set(key, value)
        elif kind == "hash":
            pipe.hset(key, mapping=value)
        elif kind == "set":
            pipe.sadd(key, *value)
        elif kind == "zset":
            pipe.zadd(key, {member: float(score) for member, score in value})
        elif kind == "list":
            pipe.rpush(key, *value)
        elif kind == "stream":
            for entry_id, fields in value:
                pipe.xadd(key, fields, id=entry_id)
            last_id = item["last_id"]
            if not value or value[-1][0] != last_id:
                # Entries were deleted past the last one kept: an entry at the last id, deleted
                # again, moves the stream's last id there (fakeredis has no XSETID).
                pipe.xadd(key, {"deleted": ""}, id=last_id)
                pipe.xdel(key, last_id)
            for group in item["groups"]:
                pipe.xgroup_create(key, group["name"], id=group["last_delivered_id"])
        else:
            raise ValueError(f"{key}: no load of a {kind}")
        if expire_at != -1:
            pipe.pexpire(key, expire_at - now_ms)
        loaded += 1
    pipe.execute()
    return loaded


def families_played(dump: dict[str, Any]) -> list[tuple[str, str]]:
    """The (game, variant) of every family whose log the dump holds."""
    suffix = ":log"
    families = []
    for key in dump["keys"]:
        if key.endswith(suffix) and key.startswith(f"{keys.PREFIX}:{{"):
            game, variant = key[len(keys.PREFIX) + 2 : -len(suffix) - 1].split(":", 1)
            families.append((game, variant))
    return sorted(families)


def submissions_kept(dump: dict[str, Any]) -> list[str]:
    """The id of every submission whose status record the dump holds."""
    return sorted(
        k[len(SUBMISSION_PREFIX) :] for k in dump["keys"] if k.startswith(SUBMISSION_PREFIX)
    )


def answers(
    client: redis.Redis,
    registry: Registry,
    now_ms: int,
    families: Sequence[tuple[str, str]],
    submission_ids: Sequence[str],
    window_s: int = WHOLE_WINDOW_S,
) -> dict[str, Any]:
    """What the read functions answer: every board readable at ``now_ms`` of ``families``
    read whole (its rows, total and ``updated_at``), and each submission's public view as
    ``GET /submissions/<id>`` shows it with an idempotency window of ``window_s`` (None for
    one not found)."""
    boards: dict[str, Any] = {}
    for slug, variant in families:
        game = registry.get(slug)
        if game is None:
            raise ValueError(f"the registry has no game {slug}")
        family: dict[str, Any] = {}
        for board in readable_boards(game, variant, now_ms):
            page = read_page(client, board, 0, WHOLE_BOARD)
            if page.total > WHOLE_BOARD:
                raise ValueError(f"{board.ranking_key} does not fit a page")
            family[f"{board.window}:{board.period}"] = {
                "total": page.total,
                "updated_at": page.updated_at,
                "rows": [asdict(row) for row in page.rows],
            }
        boards[f"{slug}/{variant}"] = family
    views: dict[str, Any] = {}
    for sid in submission_ids:
        # No waiter: a wait of 0 never asks one.
        view = follow_submission(
            client, None, sid, 0.0, lambda: now_ms, window_s, DEFAULT_INGEST_PARTITIONS
        )
        views[sid] = None if view is None else view.model_dump(mode="json", exclude_none=True)
    return {"boards": boards, "submissions": views}


def document_text(document: Any, width: int = 100, depth: int = 4) -> str:
    """``document`` as JSON text that diffs well: a container whose compact text is longer
    than ``width``, at a depth below ``depth``, is laid out one element a line."""

    def text(value: Any, level: int) -> str:
        compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        if not isinstance(value, dict | list) or not value:
            return compact
        if level >= depth or len(compact) + level <= width:
            return compact
        pad = " " * (level + 1)
        if isinstance(value, dict):
            parts = [
                f"{pad}{json.dumps(k, ensure_ascii=False)}: {text(v, level + 1)}"
                for k, v in value.items()
            ]
            return "{\n" + ",\n".join(parts) + "\n" + " " * level + "}"
        parts = [f"{pad}{text(v, level + 1)}" for v in value]
        return "[\n" + ",\n".join(parts) + "\n" + " " * level + "]"

    return text(document, 0) + "\n"


def differences(
    loaded: dict[str, dict[str, Any]], dumped: dict[str, dict[str, Any]], slack_ms: int = 10_000
) -> list[str]:
    """The keys that differ between two :func:`dump_keys`, ``loaded`` taken up to ``slack_ms``
    after ``dumped`` (so its keys may expire that much sooner)."""
    differing = sorted(set(loaded) ^ set(dumped))
    for key in sorted(set(loaded) & set(dumped)):
        now, then = dict(loaded[key]), dict(dumped[key])
        now_at, then_at = now.pop("expire_at_ms"), then.pop("expire_at_ms")
        if then_at == -1:
            expires_alike = now_at == -1
        else:
            expires_alike = now_at != -1 and then_at - slack_ms <= now_at <= then_at
        if now != then or not expires_alike:
            differing.append(key)
    return differing


def sample_dump(now_ms: int) -> dict[str, Any]:
    """A small dump of what the fixture's own keys do not show: a stream whose newest entries
    were deleted, an empty one, a list, an expired key, a fractional score."""
    return {
        "format": FORMAT,
        "now_ms": now_ms,
        "keys": {
            "s:trimmed": {
                "type": "stream",
                "expire_at_ms": -1,
                "last_id": "1700000000300-2",
                "groups": [{"name": "g", "last_delivered_id": "1700000000300-2"}],
                "value": [["1700000000100-0", {"a": "1", "b": "2"}]],
            },
            "s:empty": {
                "type": "stream",
                "expire_at_ms": now_ms + 60_000,
                "last_id": "1700000000500-0",
                "groups": [],
                "value": [],
            },
            "l": {"type": "list", "expire_at_ms": -1, "value": ["b", "a", "b"]},
            "z": {"type": "zset", "expire_at_ms": -1, "value": [["m", "-0.1"], ["n", "2.5"]]},
            "gone": {"type": "string", "expire_at_ms": now_ms, "value": "x"},
        },
    }


def latest_names(dump: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per family (``game/variant``), each player's name in their latest entry of its log
    (greatest achieved ms; equal ms: the greater name), and the players who used more than
    one name."""
    found: dict[str, dict[str, str]] = {}
    for slug, variant in families_played(dump):
        latest: dict[str, tuple[int, str]] = {}
        for _, fields in dump["keys"][keys.log_key(slug, variant)]["value"]:
            pid, named = fields["pid"], (int(fields["at"]), fields["name"])
            latest[pid] = max(latest.get(pid, named), named)
        found[f"{slug}/{variant}"] = {pid: name for pid, (_, name) in latest.items()}
    return found


def renamed_players(dump: dict[str, Any]) -> dict[str, set[str]]:
    """Per family, the players whose entries in its log carry more than one name."""
    renamed: dict[str, set[str]] = {}
    for slug, variant in families_played(dump):
        names: dict[str, set[str]] = {}
        for _, fields in dump["keys"][keys.log_key(slug, variant)]["value"]:
            names.setdefault(fields["pid"], set()).add(fields["name"])
        renamed[f"{slug}/{variant}"] = {pid for pid, seen in names.items() if len(seen) > 1}
    return renamed


def log_counts(dump: dict[str, Any], game: Game, variant: str, now_ms: int) -> dict[str, Any]:
    """Per readable board (``window:period``), the entries of the dump's log the stats count
    there: those achieved in its period (for all-time, those of days inside the retention),
    in all and per time bucket."""
    entries = dump["keys"][keys.log_key(game.slug, variant)]["value"]
    cutoff = now_ms - game.retention_days * DAY_MS
    counts: dict[str, Any] = {}
    for board in readable_boards(game, variant, now_ms):
        per_bucket: dict[int, int] = {}
        size = bucket_ms(board.window)
        for _, fields in entries:
            at = int(fields["at"])
            if board.window != "alltime" and period_of(board.window, at) != board.period:
                continue
            if board.window == "alltime" and at - at % DAY_MS + DAY_MS <= cutoff:
                continue
            per_bucket[at - at % size] = per_bucket.get(at - at % size, 0) + 1
        counts[f"{board.window}:{board.period}"] = {
            "count": sum(per_bucket.values()),
            "over_time": [{"at": at, "count": n} for at, n in sorted(per_bucket.items())],
        }
    return counts


def legacy_keys(client: redis.Redis) -> list[str]:
    """The keys only the previous layout writes: rows hashes and one-key status records."""
    rows = keys.legacy_rows_key("*", "*", "*", "*")
    return sorted(
        [
            *cast(Iterable[str], client.scan_iter(match=rows, count=1000)),
            *cast(Iterable[str], client.scan_iter(match=f"{SUBMISSION_PREFIX}*", count=1000)),
        ]
    )


def check_migrated(
    client: redis.Redis,
    registry: Registry,
    dump: dict[str, Any],
    expected: dict[str, Any],
    window_s: int = WHOLE_WINDOW_S,
) -> None:
    """Assert that a Redis loaded with ``dump`` and migrated answers as ``expected`` says, under
    the current layout's rules: the same rows in the same order with the same rank, player,
    score and time, each named by the player's latest entry (the previous layout showed the
    name of the entry the row holds: the two differ only for players who renamed, and do for
    some); the same time of last change; the same public view of every status record but the
    fields the layout dropped; no key of the previous layout left."""
    now_ms = expected["now_ms"]
    families = [cast(tuple[str, str], tuple(f.split("/"))) for f in expected["boards"]]
    got = answers(client, registry, now_ms, families, list(expected["submissions"]), window_s)
    latest, renamed = latest_names(dump), renamed_players(dump)
    renamed_seen = False
    assert got["boards"].keys() == expected["boards"].keys()
    for family, boards in expected["boards"].items():
        assert got["boards"][family].keys() == boards.keys(), family
        for name, board in boards.items():
            now = got["boards"][family][name]
            assert now["total"] == board["total"], (family, name)
            if board["updated_at"] is not None:
                assert now["updated_at"] == board["updated_at"], (family, name)

            def shown(row: dict[str, Any]) -> tuple[Any, ...]:
                return row["rank"], row["player_id"], row["score"], row["achieved_at"]

            assert [shown(r) for r in now["rows"]] == [shown(r) for r in board["rows"]], name
            for before, after in zip(board["rows"], now["rows"], strict=True):
                assert after["name"] == latest[family][after["player_id"]], (name, after)
                if before["name"] != after["name"]:
                    assert after["player_id"] in renamed[family], (name, before, after)
                    renamed_seen = True
    assert renamed_seen, "no row of a renamed player changed its name"
    assert got["submissions"].keys() == expected["submissions"].keys()
    for sid, view in expected["submissions"].items():
        kept = {k: v for k, v in view.items() if k not in DROPPED_VIEW_FIELDS}
        assert got["submissions"][sid] == kept, sid
    assert legacy_keys(client) == []


def check_stats_counts(client: redis.Redis, registry: Registry, dump: dict[str, Any]) -> None:
    """Assert that the stats the stats job stored count, on every readable board, the entries
    of the dump's log (in all and per time bucket)."""
    now_ms = dump["now_ms"]
    for slug, variant in families_played(dump):
        game = registry.get(slug)
        assert game is not None
        counts = log_counts(dump, game, variant, now_ms)
        for board in readable_boards(game, variant, now_ms):
            stored = read_stats(client, board)
            assert stored is not None, board
            want = counts[f"{board.window}:{board.period}"]
            assert stored["count"] == want["count"], (slug, variant, board.period)
            assert stored["over_time"]["counts"] == want["over_time"], (slug, board.period)
