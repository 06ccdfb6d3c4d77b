"""manage.py outside ./dev: a configuration the app refuses is told in one line, not a trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HISCORE_CONFIG", "SECRET_KEY", "REDIS_URL", "OPERATOR_TOKEN")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [["seed-demo", "--players", "3"], ["rebuild"], ["stats"]])
def test_a_command_without_production_settings_says_what_to_set(command):
    done = manage(*command)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        "Error: production configuration needs these environment variables: SECRET_KEY, "
        "REDIS_URL, OPERATOR_TOKEN (on a laptop: HISCORE_CONFIG=development, or ./dev manage …)"
    ]
    assert done.stdout == ""
