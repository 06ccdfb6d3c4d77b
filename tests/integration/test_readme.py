"""The README's "Try it" block, run as written against a real stack (gunicorn, a Celery worker,
redis-server): each ``curl`` through bash, its answer held to the ``# {...}`` line under it, and
the demo seeding through ``manage.py``. The block is read from README.md, so a change to it that
no longer works fails here."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.processes import ROOT, Stack, without_tool

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
#: What the block says starts the stack; the fixture has started one already.
START = "./dev start &"
#: Where the block says the web listens.
README_ADDRESS = "localhost:5000"
#: The id placeholder: the ``submission_id`` the previous command answered.
ID = "<id>"
#: The run's placeholders: the ``run_id``, ``token`` and ``player_key`` a session answered.
RUN_PLACEHOLDERS = {"<run_id>": "run_id", "<token>": "token", "<player_key>": "player_key"}
#: Any value at all, where the README's expected output shows one.
ANY = "..."


@dataclass
class Step:
    """One command of the block, with the output the README shows under it (if any)."""

    command: str
    expected: list[dict[str, Any]] = field(default_factory=list)


def try_it_block(text: str) -> list[str]:
    """The lines of the first ``sh`` fence under the ``## Try it`` heading."""
    section = re.search(r"^## Try it\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, 'README.md has no "## Try it" section'
    fence = re.search(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    assert fence, 'the "Try it" section has no ```sh block'
    return fence.group(1).splitlines()


def expected_output(comment: str) -> dict[str, Any] | None:
    """The JSON shape a ``# {...}`` line shows (``...`` for elided keys), or None for prose."""
    text = comment.removeprefix("#").strip()
    if not text.startswith("{"):
        return None
    # `, ...}` says "and more keys"; the keys shown must be there.
    shown = re.sub(r",\s*\.\.\.\s*(?=[}\]])", "", text)
    try:
        return json.loads(shown)
    except ValueError:
        pytest.fail(f"the README's expected output is not JSON with `...`: {comment}")


def steps_of(lines: list[str]) -> list[Step]:
    """The block's commands (continuation lines joined) with the outputs shown after each."""
    steps: list[Step] = []
    continued = False
    for line in lines:
        if continued:
            steps[-1].command += "\n" + line
        elif line.lstrip().startswith("#"):
            shape = expected_output(line.strip())
            if shape is not None:
                assert steps, f"expected output before any command: {line}"
                steps[-1].expected.append(shape)
        elif line.strip():
            steps.append(Step(line.strip()))
        continued = line.endswith("\\")
    return steps


def matches(expected: Any, actual: Any, submission_id: str | None, where: str = "") -> list[str]:
    """Where ``actual`` differs from the README's shape: each key shown present, each value
    shown equal (``...`` is any value; ``<id>`` is the submission's id)."""
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'the answer'}: {actual!r} is not an object"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}{key}: missing")
            else:
                problems += matches(value, actual[key], submission_id, f"{where}{key}.")
        return problems
    if isinstance(expected, str) and ID in expected:
        assert submission_id, f"{where}: {ID} shown before any submission_id was answered"
        expected = expected.replace(ID, submission_id)
    if expected != actual:
        return [f"{where.rstrip('.')}: {actual!r}, the README shows {expected!r}"]
    return []


def manage_args(command: str) -> list[str] | None:
    """The ``manage.py`` arguments of a ``./dev manage …`` or ``.venv/bin/python manage.py …``
    line, or None for any other command."""
    words = shlex.split(command, comments=True)
    if words[:2] == ["./dev", "manage"]:
        return words[2:]
    if words[:2] == [".venv/bin/python", "manage.py"]:
        return words[2:]
    return None


def distinct_players(stack: Stack, game: str) -> set[str]:
    """Every player on any all-time board of ``game``, read page by page through the API."""
    variants = requests.get(stack.url(f"/api/v1/games/{game}"), timeout=10).json()["variants"]
    players: set[str] = set()
    for variant in variants:
        offset = 0
        while True:
            page = requests.get(
                stack.url(variant["board_url"]),
                params={"limit": 100, "offset": offset},
                timeout=10,
            ).json()
            players.update(row["player_id"] for row in page["entries"])
            offset += len(page["entries"])
            if not page["entries"] or offset >= page["total"]:
                break
    return players


def run_curl(
    command: str, address: str, submission_id: str | None, run: dict[str, str] | None = None
) -> Any:
    """Run one of the block's curl lines (or a loop of them) through bash against ``address``,
    with the placeholders filled in; its JSON answer."""
    if ID in command:
        assert submission_id, f"{ID} before any submission_id was answered: {command}"
        command = command.replace(ID, submission_id)
    for placeholder, name in RUN_PLACEHOLDERS.items():
        if placeholder in command:
            assert run and name in run, f"{placeholder} before any session answered it: {command}"
            command = command.replace(placeholder, run[name])
    assert README_ADDRESS in command, f"a curl line not at {README_ADDRESS}: {command}"
    command = command.replace(README_ADDRESS, address)
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{command}\nexit {done.returncode}: {done.stderr}"
    try:
        return json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"{command}\nanswered what is not JSON: {done.stdout[:500]!r}")


def test_the_readme_try_it_block_runs_as_written(live):
    if shutil.which("curl") is None and not Path("/usr/bin/curl").exists():
        raise without_tool("the README's block needs curl: apt-get install curl to run this")
    lines = try_it_block(README.read_text(encoding="utf-8"))
    steps = steps_of(lines)
    commands = [step.command for step in steps]
    # The stack is up already; the line that would start it must still be the first.
    assert commands, "the block has no commands"
    assert commands[0] == START, f"the block starts with {commands[0]!r}, not {START!r}"
    address = urlsplit(live.base_url).netloc
    submission_id: str | None = None
    run: dict[str, str] = {}
    ran: list[str] = []
    seeded: int | None = None
    for step in steps[1:]:
        words = shlex.split(step.command, comments=True)
        manage = manage_args(step.command)
        # A curl line, or a loop of them (the guesses of a run).
        if words and (words[0] == "curl" or (words[0] == "for" and "curl" in words)):
            answer = run_curl(step.command, address, submission_id, run)
            assert isinstance(answer, dict), answer
            # An error would be problem+json: a title and an integer status.
            assert not isinstance(answer.get("status"), int), answer
            submission_id = answer.get("submission_id", submission_id)
            run.update({k: answer[k] for k in RUN_PLACEHOLDERS.values() if k in answer})
            for shape in step.expected:
                problems = matches(shape, answer, submission_id)
                assert not problems, f"{step.command}\n" + "\n".join(problems) + f"\n{answer}"
        elif manage is not None:
            assert manage[:1] == ["seed-demo"], (
                f"a manage.py command this test does not know: {manage}"
            )
            done = subprocess.run(
                [sys.executable, "manage.py", *manage],
                cwd=ROOT,
                env=live.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            seeded = int(manage[manage.index("--players") + 1])
        else:
            pytest.fail(f"the README's block has a command this test does not know: {step.command}")
        ran.append(words[0])
    # What the block shows: a run played and its verdict, a board read, then the demo players.
    assert ran.count("curl") >= 3 and "for" in ran, ran
    assert submission_id is not None
    assert seeded is not None, "the block no longer seeds the demo players"
    players = distinct_players(live, "guess")
    assert len(players) >= seeded, len(players)
