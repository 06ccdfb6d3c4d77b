"""The prune job's compaction on the real redis-server, through ``manage.py prune``: the log
shrinks to what the boards need, in entries and in memory, the boards read the same, and the
entries dropped are in the archive, whole."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

from app.leaderboard.boards import read_page, read_standing
from app.leaderboard.games import load_registry
from app.leaderboard.rebuild import readable_boards, rebuild_family
from app.storage import keys, operations
from app.storage.archive import read_lines
from tests.processes import ROOT, TEST_GAMES

DB = 10
GAME = load_registry(str(TEST_GAMES)).get("guess-claimed")
VARIANT = "100"
DAY = 86_400_000
HOUR = 3_600_000
LOG = keys.log_key("guess-claimed", VARIANT)


def seed(client, now: int) -> None:
    """300 players' games over the 30 days before ``now``, each logged (with its applied id) a
    second after it was achieved, as if applied then."""
    rng = random.Random(7)
    games = sorted(
        (now - rng.randrange(30 * DAY), player, rng.randint(1, 100))
        for player in range(300)
        for _ in range(15)
    )
    pipe = client.pipeline(transaction=False)
    for n, (at, player, score) in enumerate(games):
        log_id = f"{at + 1000}-0"
        pipe.xadd(
            LOG,
            {
                "sid": f"sub-{n:06d}",
                "pid": f"player-{player:016d}",
                "name": f"P{player}",
                "score": score,
                "at": f"{at:013d}",
            },
            id=log_id,
        )
        pipe.hset(keys.applied_key("guess-claimed", VARIANT), f"sub-{n:06d}", log_id)
    pipe.execute()


def boards_read(client, now: int) -> dict:
    read = {}
    for board in readable_boards(GAME, VARIANT, now):
        page = read_page(client, board, 0, 1000)
        standings = [read_standing(client, board, row.player_id, 2) for row in page.rows[::25]]
        read[board.window, board.period] = (page.rows, page.total, standings)
    return read


def prune(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "prune", "--game", "guess-claimed", "--variant", VARIANT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_result(client) -> dict:
    """The result of the newest task ``manage.py`` recorded (one family's)."""
    tasks = [
        operations.read_task(client, key.rsplit(":", 1)[1])
        for key in client.keys(keys.task_key("*"))
    ]
    newest = max(tasks, key=lambda task: task["created_at"])
    assert newest["state"] == "done", newest
    return newest["result"]["families"]["guess-claimed/100"]


def log_ms(log_id: str) -> int:
    return int(log_id.split("-")[0])


def test_manage_prune_compacts_the_log_and_changes_no_board(data, redis_server, tmp_path):
    now = int(time.time() * 1000)
    seed(data, now)
    rebuild_family(data, GAME, VARIANT, now)
    before = boards_read(data, now)
    logged = {log_id: fields for log_id, fields in data.xrange(LOG)}
    memory = data.memory_usage(LOG, samples=0)

    env = {
        **os.environ,
        "HISCORE_CONFIG": "testing",
        "REDIS_URL": redis_server.url(DB),
        "HISCORE_GAMES_FILE": str(TEST_GAMES),
        "HISCORE_ARCHIVE_DIR": str(tmp_path),
        "HISCORE_IDEMPOTENCY_WINDOW": "7200",
    }
    done = prune(env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = last_result(data)
    assert result["past_retention"] == 0 and result["read"] == len(logged) == 4500

    after = {log_id: fields for log_id, fields in data.xrange(LOG)}
    assert len(after) == result["kept"] < len(logged) / 2
    assert result["dropped"] == result["archived"] == len(logged) - len(after)
    # The memory goes with the entries (XDEL alone would have freed next to none).
    shrunk = data.memory_usage(LOG, samples=0)
    assert shrunk < memory * (len(after) / len(logged)) * 1.5, (shrunk, memory)
    assert data.exists(keys.log_copy_key("guess-claimed", VARIANT)) == 0
    assert boards_read(data, now) == before
    # Only the ids of entries applied in the last two hours are still known.
    recent = {f["sid"] for i, f in logged.items() if log_ms(i) >= now - 2 * HOUR}
    assert set(data.hkeys(keys.applied_key("guess-claimed", VARIANT))) <= recent
    assert {f["sid"] for f in after.values()} >= recent

    archived = [line for path in sorted(tmp_path.rglob("*.ndjson.gz")) for line in read_lines(path)]
    assert sorted(line["id"] for line in archived) == sorted(set(logged) - set(after))
    for line in archived:
        fields = logged[line["id"]]
        assert (line["sid"], line["pid"], line["name"]) == (
            fields["sid"],
            fields["pid"],
            fields["name"],
        )
        assert (line["score"], line["at"]) == (int(fields["score"]), int(fields["at"]))
    for path in tmp_path.rglob("*.ndjson.gz"):
        assert path.parent == tmp_path / "guess-claimed" / VARIANT
        zcat = subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True)
        assert zcat.stdout.decode().count("\n") == len(read_lines(path))

    # A second run finds nothing more to drop, and the log goes on taking entries.
    again = prune(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert last_result(data)["dropped"] == 0
    assert log_ms(data.xadd(LOG, {"sid": "late"})) >= max(log_ms(i) for i in after)
