"""JSONP for the read endpoints, so a game hosted elsewhere can read boards with a script tag.

``?callback=`` must be a JavaScript identifier path (``a``, ``a.b``, ``$x._y1``); anything else,
such as ``alert(1)//`` or ``</script>``, is refused with 400 before the view runs.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, request

from app.errors import Problem

CALLBACK = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$", re.ASCII)
CALLBACK_MAX = 64


def _requested() -> str | None:
    return request.args.get("callback") if request.method == "GET" else None


def _valid(callback: str) -> bool:
    # fullmatch: with match, ``$`` would also let a trailing newline through.
    return len(callback) <= CALLBACK_MAX and CALLBACK.fullmatch(callback) is not None


def check_callback() -> None:
    """Refuse a callback that is not a JavaScript identifier path."""
    callback = _requested()
    if callback is not None and not _valid(callback):
        raise Problem(
            400,
            "Invalid callback",
            "callback must be a JavaScript identifier path such as hiscore.onBoard.",
            kind="invalid-query",
            errors={"callback": ["must be a JavaScript identifier path of at most 64 chars"]},
        )


def wrap(response: Response) -> Response:
    """Serve a JSON answer as a call of the callback (only ever a valid one)."""
    callback = _requested()
    if callback is None or not _valid(callback) or not response.is_json:
        return response
    body = response.get_data(as_text=True)
    # The leading comment stops a content-sniffing attack on the first bytes.
    response.set_data(f"/**/{callback}({body});")
    response.mimetype = "application/javascript"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def enable_jsonp(bp: Blueprint) -> None:
    """Offer JSONP on every GET endpoint of ``bp``."""
    bp.before_request(check_callback)
    bp.after_request(wrap)
