"""Fields bound to the log lines of a block of work (a request, a submission), with no
dependency on Flask or Celery, so that the domain may bind them too."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
#: An incoming request id is kept only when it is a short, plain token.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("hiscore_log_context")


def bind(**fields: Any) -> Token[Mapping[str, Any]]:
    """Bind ``fields`` (None values left out) until :func:`unbind` is given the token."""
    return _context.set(
        {**_context.get(_EMPTY), **{k: v for k, v in fields.items() if v is not None}}
    )


def unbind(token: Token[Mapping[str, Any]]) -> None:
    """Drop what the :func:`bind` that returned ``token`` bound."""
    _context.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` to every log line written inside the block (None values are left out)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current_request_id() -> str | None:
    """The id of the request being served (or bound by :func:`log_context`), if any."""
    return _context.get(_EMPTY).get("request_id")


def bound_fields() -> dict[str, Any]:
    """The fields bound here, as a new dict."""
    return dict(_context.get(_EMPTY))
