"""No cookie session: a player is its signed key, everything else is in Redis."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from flask.sessions import SessionInterface, SessionMixin


class NoSessions(SessionInterface):
    """hiscore keeps no cookie session (a player is its signed key; the rest is in Redis), so
    no request pays for opening one."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def init_sessions(app: Flask) -> None:
    """Open no session on any request (Flask's default signs and parses a cookie each time)."""
    app.session_interface = NoSessions()
