"""Request bodies: a chunked body over the limit is refused, not cut at the limit and processed
(a test client does not chunk on the wire; tests/integration/test_bodies.py does, through
gunicorn)."""

import io

GOOD = b'{"name": "Ann", "score": 4, "variant": "10", "duration_ms": 5000}'


def chunked(client, body: bytes):
    return client.post(
        "/api/v1/games/guess-claimed/scores",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
    )


def test_a_chunked_body_over_the_limit_is_refused_413_and_nothing_is_queued(client, queued):
    body = GOOD[:-1] + b', "name2": "' + b"x" * 20_000 + b'"}'
    resp = chunked(client, body)
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"
    assert queued() == []


def test_a_chunked_body_cut_at_the_limit_would_still_parse_is_refused(client, queued):
    body = GOOD + b" " * 20_000  # whitespace after JSON: a cut body is a valid score
    resp = chunked(client, body)
    assert resp.status_code == 413
    assert queued() == []


def test_a_chunked_body_within_the_limit_is_read_whole(client, queued):
    resp = chunked(client, GOOD + b" " * 1000)
    assert resp.status_code == 202
    assert len(queued()) == 1
