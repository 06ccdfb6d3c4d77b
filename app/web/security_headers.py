"""Security headers on every answer, pages and API alike, set in this one place."""

from __future__ import annotations

from flask import Flask, Response

#: The pages load their scripts and styles from /static only (no inline script, style or
#: handler) and talk to the API on their own origin; nothing may frame them.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def add_headers(response: Response, headers: dict[str, str]) -> None:
    """Add ``headers`` to ``response`` but those it has already (one pass over its headers,
    not one per name: werkzeug's ``setdefault`` scans the list each time)."""
    present = {name.lower() for name in response.headers.keys()}
    for name, value in headers.items():
        if name.lower() not in present:
            response.headers.add(name, value)


def add_security_headers(response: Response) -> Response:
    """Set :data:`HEADERS` on ``response`` (a view that set one of its own keeps it)."""
    add_headers(response, HEADERS)
    return response


def init_security_headers(app: Flask) -> None:
    """Add the headers to every answer the app gives, errors included."""
    app.after_request(add_security_headers)
