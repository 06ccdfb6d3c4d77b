"""JSONP for the read endpoints, so a game hosted elsewhere can read boards with a script tag.

``?callback=`` must be a JavaScript identifier path (``a``, ``a.b``, ``$x._y1``); anything else,
such as ``alert(1)//`` or ``</script>``, is refused with 400 before the view runs.

An error is a call of the callback too, with the problem (its ``status`` inside), answered 200:
a browser runs no script whose answer has an error status, so a script tag would otherwise
learn only that something failed. That holds for the paths around the reads that match no
route, so a mistyped read calls back with its 404 as well.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState

from app.web.errors import Problem

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


def _offers_jsonp(endpoint: str) -> bool:
    blueprint = endpoint.rpartition(".")[0]
    return check_callback in current_app.before_request_funcs.get(blueprint, ())


def _near_the_reads(path: str) -> bool:
    """Whether ``path``, which matched no route, lies where JSONP reads live (under
    ``/api/v1/games`` or ``/api/v1/submissions``, say)."""
    for rule in current_app.url_map.iter_rules():
        if "GET" in (rule.methods or ()) and _offers_jsonp(rule.endpoint):
            root = rule.rule.split("<", 1)[0].rstrip("/")
            if path == root or path.startswith(root + "/"):
                return True
    return False


def _is_jsonp() -> bool:
    if request.url_rule is not None:
        return _offers_jsonp(request.url_rule.endpoint)
    return _near_the_reads(request.path)


def wrap(response: Response) -> Response:
    """Serve a JSON answer, or a problem, as a call of the callback (only ever a valid one)."""
    callback = _requested()
    if callback is None or not _is_jsonp():
        return response
    # A script tag must never run what it was not meant to, not even a refused callback's 400.
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not _valid(callback) or not response.is_json:
        return response
    if response.status_code >= 400:
        g.answered_status = response.status_code  # what the metrics count
        response.status_code = 200
        response.headers["Cache-Control"] = "no-store"  # a cache must not keep a 429 or a 503
    body = response.get_data(as_text=True)
    # The leading comment stops a content-sniffing attack on the first bytes.
    response.set_data(f"/**/{callback}({body});")
    response.mimetype = "application/javascript"
    return response


def _answer_jsonp(state: BlueprintSetupState) -> None:
    # App-wide, to reach the requests near the reads that match no route; once per app,
    # however many blueprints offer JSONP.
    if wrap not in state.app.after_request_funcs.get(None, ()):
        state.app.after_request(wrap)


def enable_jsonp(bp: Blueprint) -> None:
    """Offer JSONP on every GET endpoint of ``bp``, errors included."""
    bp.before_request(check_callback)
    bp.record_once(_answer_jsonp)
