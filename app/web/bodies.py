"""Request bodies read up front, within a size and a time bound, before the app sees them.

With gunicorn facing clients (the Procfile's web process), nothing else bounds how long a
client may take to send its body: one that trickles a byte every few seconds would hold a
connection for good, and enough of them would hold them all. A chunked body has no length to
check in advance, and werkzeug cuts one at the size limit instead of refusing it. So every
body is read here, at most the limit and one byte more, within ``BODY_TIMEOUT_SECONDS``:

- a body that takes longer is answered 408 and its connection closed;
- a body over the limit, declared or chunked, reaches the app with its true length (one past
  the limit at least), which answers 413; the rest is never read and the connection closed;
- any other body reaches the app whole, from memory, with its length.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyTimeout(Exception):
    """The client did not send its body in time."""


def _cooperative() -> bool:
    """Whether sockets are gevent's (gunicorn's gevent worker patches them)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket"))


def _read(stream: Any, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class BodyGuard:
    """WSGI middleware: read each request body within ``max_bytes`` and ``timeout`` seconds."""

    def __init__(self, app: WSGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked"
        try:
            declared = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.app(environ, start_response)  # werkzeug answers a bad length
        if not chunked and declared == 0:
            return self.app(environ, start_response)
        if not chunked and declared > self.max_bytes:
            # The app answers 413 from the header alone; the body is never read.
            return self._closing(self.app(environ, start_response), environ)
        wanted = self.max_bytes + 1 if chunked else declared
        try:
            body = self._read_within_bound(environ, wanted)
        except BodyTimeout:
            log.info("answering 408: the body of %s %s was too slow", *_line(environ))
            return self._closing(_timeout_response(start_response, self.timeout), environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        response = self.app(environ, start_response)
        if chunked and len(body) > self.max_bytes:
            return self._closing(response, environ)  # what is left of the body is never read
        return response

    def _read_within_bound(self, environ: dict[str, Any], size: int) -> bytes:
        stream = environ["wsgi.input"]
        if _cooperative():
            import gevent

            try:
                with gevent.Timeout(self.timeout):
                    return _read(stream, size)
            except gevent.Timeout:
                raise BodyTimeout from None
        sock = environ.get("gunicorn.socket")
        if sock is None:  # the development server or a test client: nothing to bound
            return _read(stream, size)
        # A blocking worker: bound each wait on the socket (not the whole body).
        previous = sock.gettimeout()
        sock.settimeout(self.timeout)
        try:
            return _read(stream, size)
        except TimeoutError:
            raise BodyTimeout from None
        finally:
            sock.settimeout(previous)

    @staticmethod
    def _closing(response: Iterable[bytes], environ: dict[str, Any]) -> Iterable[bytes]:
        """Close the connection once ``response`` is sent: the server would otherwise read
        the rest of the body (as slowly as the client sends it) to reach the next request."""
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return response
        return ClosingIterator(response, [lambda: _hang_up(sock)])


def _line(environ: dict[str, Any]) -> tuple[str, str]:
    return environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")


def _hang_up(sock: socket.socket) -> None:
    # Take what already arrived, so that closing does not reset the connection (a reset
    # may lose the answer before the client reads it), then end both directions.
    try:
        sock.setblocking(False)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _timeout_response(start_response: Callable[..., Any], timeout: float) -> list[bytes]:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Request Timeout",
            "status": 408,
            "detail": f"The request body did not arrive within {timeout:g} seconds.",
        }
    ).encode()
    start_response(
        "408 Request Timeout",
        [
            ("Content-Type", "application/problem+json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]
