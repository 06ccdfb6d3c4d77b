"""Security headers on the pages, the API and their errors; no inline script in the pages."""

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/admin",
        "/boards/guess/100",
        "/play/throw",
        "/no/such/page",
        "/api/v1/games",
        "/api/v1/games/nope",
        "/api/v1/openapi.json",
        "/healthz",
    ],
)
def test_every_answer_carries_the_security_headers(client, path):
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] in (
        "strict-origin-when-cross-origin",
        "strict-origin",
        "same-origin",
        "no-referrer",
    )


def test_a_refused_post_carries_them_too(client):
    resp = client.post("/api/v1/games/guess/scores", data="x", content_type="text/plain")
    assert resp.status_code == 415
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_the_templates_hold_no_inline_script_style_or_handler(template):
    html = (TEMPLATES / template).read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "<style" not in html and not re.search(r"\sstyle\s*=", html)
    assert "javascript:" not in html
