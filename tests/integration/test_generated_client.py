"""A client generated from the served OpenAPI document plays the guessing game against the real
stack, and every answer parses into the generated model it is documented with, field for field."""

from __future__ import annotations

import datetime
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest
import requests

from tests.processes import BIN, wait_for

pytestmark = pytest.mark.integration

PACKAGE = "hiscore_client"
GAME, VARIANT = "guess", "1000"


@pytest.fixture
def generated(live, tmp_path, monkeypatch) -> Iterator[ModuleType]:
    """The client package openapi-python-client writes from the live document, imported."""
    served = requests.get(live.url("/api/v1/openapi.json"), timeout=10)
    assert served.status_code == 200, served.text
    document = tmp_path / "openapi.json"
    document.write_bytes(served.content)
    # No post-hooks: the default ones run ruff over the output, which this test does not need
    # and which should never pick up the project's own configuration.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    command = [
        str(BIN / "openapi-python-client"),
        "generate",
        "--path",
        str(document),
        "--output-path",
        str(tmp_path / PACKAGE),
        "--meta",
        "none",
        "--config",
        str(config),
        "--fail-on-warning",
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    print(f"client generated in {time.monotonic() - started:.1f}s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Anything the generator skipped or could not express would be a hole in the client.
    assert "Warning" not in output and "Skipping" not in output, output
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[module]


def _same(raw: Any, dumped: Any, where: str) -> None:
    """Assert that the model's dump says what the wire said: the same keys at every level (so no
    field was dropped as unknown), the same values, datetimes compared as instants."""
    if isinstance(raw, dict):
        assert isinstance(dumped, dict), where
        assert set(raw) == set(dumped), f"{where}: sent {sorted(raw)}, parsed {sorted(dumped)}"
        for key, value in raw.items():
            _same(value, dumped[key], f"{where}.{key}")
    elif isinstance(raw, list):
        assert isinstance(dumped, list) and len(raw) == len(dumped), where
        for i, (a, b) in enumerate(zip(raw, dumped, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif raw != dumped:
        assert isinstance(raw, str) and isinstance(dumped, str), f"{where}: {raw!r} != {dumped!r}"
        assert datetime.datetime.fromisoformat(raw) == datetime.datetime.fromisoformat(dumped), (
            f"{where}: {raw!r} != {dumped!r}"
        )


def _no_extras(value: Any, where: str) -> None:
    """Assert that no model in ``value`` kept fields its schema does not name."""
    if attrs.has(type(value)):
        names = {a.name for a in attrs.fields(type(value))}
        # A model whose only field is additional_properties is a map (ranks by window, say):
        # its entries are its content. Any other model holds there what its schema omits.
        if names != {"additional_properties"}:
            assert getattr(value, "additional_properties", {}) == {}, where
        for attribute in attrs.fields(type(value)):
            _no_extras(getattr(value, attribute.name), f"{where}.{attribute.name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{where}[{i}]")


def strict(response: Any, status: int, model: type) -> Any:
    """The parsed answer, asserted to be ``model`` and to hold exactly what was sent."""
    assert response.status_code == status, response.content
    parsed = response.parsed
    assert isinstance(parsed, model), (type(parsed), response.content)
    _same(json.loads(response.content), parsed.to_dict(), model.__name__)
    _no_extras(parsed, model.__name__)
    return parsed


def play(client: Any, name: str) -> tuple[str, int]:
    """Play one run of the 1000 variant by binary search and submit it; the player id and the
    score the service accepted."""
    from hiscore_client.api.scores import guess, start_session, submission_status, submit_score
    from hiscore_client.models import (
        GuessAnswer,
        GuessAnswerResult,
        GuessIn,
        ScoreIn,
        ScoreQueued,
        Session,
        SessionIn,
        Submission,
        SubmissionStatus,
    )

    answer = start_session.sync_detailed(GAME, client=client, body=SessionIn(variant=VARIANT))
    session = strict(answer, 201, Session)
    assert isinstance(session.run_id, str) and isinstance(session.token, str), session
    low, high, answers = 1, 1000, []
    while True:
        number = (low + high) // 2
        body = GuessIn(guess=number, token=session.token)
        answer = guess.sync_detailed(GAME, session.run_id, client=client, body=body)
        answers.append(strict(answer, 200, GuessAnswer))
        if answers[-1].result is GuessAnswerResult.CORRECT:
            break
        if answers[-1].result is GuessAnswerResult.HIGHER:
            low = number + 1
        else:
            high = number - 1
        assert low <= high and len(answers) < 10, answers
    assert [a.guesses for a in answers] == list(range(1, len(answers) + 1))

    score = ScoreIn(
        name=name,
        variant=VARIANT,
        token=session.token,
        player_id=session.player_id,
        player_key=session.player_key,
    )
    queued = strict(submit_score.sync_detailed(GAME, client=client, body=score), 202, ScoreQueued)
    assert queued.player_id == session.player_id

    def settled() -> Any:
        answer = submission_status.sync_detailed(queued.submission_id, client=client, wait=10)
        verdict = strict(answer, 200, Submission)
        return None if verdict.status is SubmissionStatus.QUEUED else verdict

    verdict = wait_for(settled, 60, f"the verdict on {name}'s run")
    assert verdict.status is SubmissionStatus.ACCEPTED, verdict
    assert verdict.score == len(answers), verdict
    return session.player_id, len(answers)


def test_a_generated_client_plays_and_reads_the_board_parsing_every_answer(generated, live):
    from hiscore_client import Client
    from hiscore_client.api.boards import board_top, player_standing
    from hiscore_client.models import BoardPage, BoardPageOrder, Standing

    def client() -> Any:
        # One client per player: each keeps the cookie of its own player.
        return Client(
            base_url=live.base_url,
            raise_on_unexpected_status=True,
            timeout=httpx.Timeout(30),  # the verdict is long-polled for up to 10 s
        )

    players = []
    for name in ("Ada", "Brin"):
        with client() as player:
            players.append((name, *play(player, name)))
    # Fewer guesses rank first; of two equal runs, the one ranked first is the earlier.
    expected = sorted(players, key=lambda p: p[2])

    with client() as reader:
        board = strict(board_top.sync_detailed(GAME, VARIANT, client=reader), 200, BoardPage)
        assert board.order is BoardPageOrder.LOWER
        assert board.total == 2
        assert [(e.rank, e.name, e.player_id, e.score) for e in board.entries] == [
            (rank, name, player_id, score)
            for rank, (name, player_id, score) in enumerate(expected, 1)
        ]
        for rank, (name, player_id, score) in enumerate(expected, 1):
            answer = player_standing.sync_detailed(
                GAME, VARIANT, player_id, client=reader, around=1
            )
            standing = strict(answer, 200, Standing)
            assert (standing.rank, standing.player_id, standing.score, standing.name) == (
                rank,
                player_id,
                score,
                name,
            )
            assert [row.player_id for row in standing.neighbours] == [p[1] for p in expected]
