"""Operator authentication: a bearer token from the environment, compared in constant time."""

from __future__ import annotations

import hmac

from flask import current_app, request

from app.web.errors import Problem


def check_operator() -> None:
    """Raise 401 without credentials and 403 with wrong ones."""
    expected = current_app.config.get("OPERATOR_TOKEN") or ""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "Operator endpoints need an 'Authorization: Bearer <token>' header.",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="hiscore-admin"'},
        )
    # An unset token denies everyone; compare_digest keeps the timing independent of the guess.
    if not expected or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Problem(403, "Forbidden", "The operator token is not valid.", kind="forbidden")
