"""A Redis as the storage layout with per-board rows hashes (``v1``) writes it, kept as a text
dump, and what the read functions of the code that wrote it answered on it.

``tests/fixtures/legacy-storage-v1.json`` was made by ``tests/fixtures/make_legacy_storage.py``
(see there how): every key of the data Redis with its type, its expiry as an absolute epoch ms
(``-1``: none) and its whole content. ``legacy-storage-v1.expected.json`` beside it holds what
the read functions answered then: a page of every readable board of each family played, with
its ``updated_at``, and the public view of every status record. A migration of that layout is
tested by loading the dump (:func:`load_dump`), migrating, and reading the same answers
(:func:`answers`).

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
from app.leaderboard.games import Registry
from app.leaderboard.rebuild import readable_boards
from app.leaderboard.scoring import follow_submission
from app.storage import keys

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DUMP = FIXTURES / "legacy-storage-v1.json"
EXPECTED = FIXTURES / "legacy-storage-v1.expected.json"

#: The ``format`` of the dumps this module writes (:func:`read_dump` refuses any other).
FORMAT = "hiscore redis dump 1"

#: A page long enough to hold any board of the fixture whole.
WHOLE_BOARD = 100_000

#: The prefix of a status record's key (the submission id follows it).
SUBMISSION_PREFIX = keys.submission_key("")


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
) -> dict[str, Any]:
    """What the read functions answer: every board readable at ``now_ms`` of ``families``
    read whole (its rows, total and ``updated_at``), and each submission's public view as
    ``GET /submissions/<id>`` shows it (None for one not found)."""
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
        view = follow_submission(client, None, sid, 0.0)
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
