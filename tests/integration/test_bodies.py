"""Request bodies through the real gunicorn: a body trickled slower than HISCORE_BODY_TIMEOUT
is answered 408 and its connection closed, and a chunked body over the limit is refused 413."""

from __future__ import annotations

import json
import select
import socket

import pytest
import requests

from app.storage.embedded_redis import free_port
from tests.cases import GOOD

SCORES = "/api/v1/games/guess-claimed/scores"


def _head(path: str, port: int, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def impatient(live):
    """A second gunicorn of the stack that waits at most 2 s for a request body."""
    port = free_port()
    web = live.run_web("web-impatient", port, HISCORE_BODY_TIMEOUT="2")
    yield port
    web.stop()
    assert "Traceback" not in web.log(), web.log()


def test_a_trickled_body_is_answered_408_and_its_connection_closed(impatient):
    body = json.dumps(GOOD).encode()
    with socket.create_connection(("127.0.0.1", impatient)) as sock:
        sock.sendall(_head(SCORES, impatient, f"Content-Length: {len(body)}\r\n"))
        sent = 0
        # A byte a second: far slower than the 2 s the server gives the whole body.
        while sent < len(body):
            sock.sendall(body[sent : sent + 1])
            sent += 1
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                break
        raw = _read_all(sock)  # returns only once the server has closed the connection
    assert sent < len(body), "the server waited for the whole trickled body"
    status, problem = _status_and_body(raw)
    assert status == 408
    assert b"application/problem+json" in raw.partition(b"\r\n\r\n")[0]
    assert problem["status"] == 408
    # The same server still takes a score sent at once.
    resp = requests.post(f"http://127.0.0.1:{impatient}{SCORES}", json=GOOD, timeout=10)
    assert resp.status_code == 202


def _chunked(payload: bytes, size: int = 4096) -> bytes:
    parts = [
        f"{len(payload[i : i + size]):x}\r\n".encode() + payload[i : i + size] + b"\r\n"
        for i in range(0, len(payload), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_limit_is_refused_413_and_nothing_is_queued(live):
    # Cut at 16 KiB this is still a valid score (whitespace follows the JSON).
    payload = json.dumps(GOOD).encode() + b" " * 20_000
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(_head(SCORES, live.port, "Transfer-Encoding: chunked\r\n"))
        sock.sendall(_chunked(payload))
        raw = _read_all(sock)
    status, problem = _status_and_body(raw)
    assert status == 413
    assert problem["status"] == 413
    assert live.data_keys() == []


def test_a_chunked_body_within_the_limit_is_taken_whole(live):
    payload = json.dumps(GOOD).encode() + b" " * 10_000
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            _head(SCORES, live.port, "Transfer-Encoding: chunked\r\nConnection: close\r\n")
        )
        sock.sendall(_chunked(payload))
        raw = _read_all(sock)
    status, answer = _status_and_body(raw)
    assert status == 202
    assert live.verdict(answer["submission_id"])["status"] == "accepted"
