"""Startup.bat cannot run here; these catch what breaks it most often: a process of the Procfile
left out or started with other arguments, mixed line endings, a parenthesis that closes a
block early, a jump to a label that does not exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAT = (ROOT / "Startup.bat").read_bytes().decode("ascii")
LINES = BAT.split("\r\n")
PROCFILE = dict(
    line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
)


def _expanded(line: str) -> str:
    """``line`` as cmd reads it in a batch file: %% is a %, %NAME% a variable, a lone % gone."""

    def read(match: re.Match[str]) -> str:
        if match[0] == "%%":
            return "%"
        return f"<{match[1]}>" if match[1] else ""

    return re.sub(r"%%|%(\w+)%|%", read, line)


def _started() -> dict[str, list[str]]:
    """Window title -> the command ``start`` runs in it."""
    started = {}
    for line in LINES:
        if line.startswith("start "):
            words = shlex.split(_expanded(line[len("start ") :]), posix=False)
            title, *command = [word.strip('"') for word in words]
            started[title] = command
    return started


def test_every_line_ends_with_crlf():
    assert "\n" not in BAT.replace("\r\n", "")
    assert BAT.endswith("\r\n")


def test_each_celery_process_of_the_procfile_starts_with_the_solo_pool():
    started = _started()
    for process in ("worker", "maintenance", "beat"):
        expected = shlex.split(PROCFILE[process])
        # The solo pool runs one task at a time: there is no concurrency to set.
        expected = [arg for arg in expected if not arg.startswith("--concurrency=")]
        command = started[f"hiscore {process}"]
        assert command[0] == r".venv\Scripts\celery"
        if process != "beat":
            assert "--pool=solo" in command
            command = [arg for arg in command if arg != "--pool=solo"]
        assert sorted(command[1:]) == sorted(expected[1:]), process


def test_the_web_and_redis_start_in_windows_of_their_own():
    started = _started()
    assert started["hiscore web"][:3] == [r".venv\Scripts\python", "manage.py", "run"]
    assert set(started) == {f"hiscore {name}" for name in ("redis", "worker", "maintenance")} | {
        "hiscore beat",
        "hiscore web",
    }
    assert "--appendonly" in started["hiscore redis"]


def test_a_stale_redis_is_shut_down_keeping_its_data():
    shutdowns = [line for line in LINES if re.search(r"\bshutdown\b", line, re.I)]
    assert shutdowns and not any("nosave" in line.lower() for line in shutdowns)
    first_redis_start = next(
        i for i, line in enumerate(LINES) if line.startswith('start "hiscore redis"')
    )
    assert (
        LINES.index(next(line for line in shutdowns if not line.startswith("REM")))
        < first_redis_start
    )


def test_blocks_close_where_they_should():
    depth = 0
    for number, line in enumerate(LINES, 1):
        text = re.sub(r'"[^"]*"', '""', line.strip())
        if not text or text.upper().startswith("REM") or text.startswith(":"):
            continue
        if text.lower().startswith("echo"):
            # Inside a block, an echoed ")" would end the block there.
            assert depth == 0 or ")" not in text, f"line {number}: {line}"
            continue
        depth += text.count("(") - text.count(")")
        assert depth >= 0, f"line {number}: {line}"
    assert depth == 0


def test_every_goto_has_its_label():
    labels = {line[1:].strip().lower() for line in LINES if re.match(r":\w", line)}
    for target in re.findall(r"\bgoto\s+:?(\w+)", BAT, re.I):
        assert target.lower() in labels, target
