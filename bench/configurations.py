"""The configurations a benchmark runs hiscore in: production's, by default, and a light one to
compare with (the configuration the benchmarks ran before they ran production's).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from bench.processes import Stack, http_post_json
from bench.seed import INGEST_GAME

#: The variant the probe's requests go to (the ingest warm-up's, not the measured one's).
PROBE_VARIANT = "25"

#: Every rate limit of a production run: far above what the load generators offer (thousands
#: of requests a second, all from 127.0.0.1), so that each request pays for its counting in
#: Redis as in production but none is refused; a refusal would measure the limiter's 429.
RAISED_LIMIT = "100000000/minute"
RATE_LIMIT_SETTINGS = (
    "HISCORE_RATE_LIMIT",
    "HISCORE_RATE_LIMIT_SCORES",
    "HISCORE_RATE_LIMIT_SCORES_PER_PLAYER",
    "HISCORE_RATE_LIMIT_SESSIONS",
    "HISCORE_RATE_LIMIT_ADMIN",
)


@dataclass(frozen=True)
class Configuration:
    """The environment hiscore's processes run with, and what it means for the load."""

    name: str
    env: dict[str, str]
    #: Whether every score needs a run token from a session started for it.
    tokens: bool
    #: What it is, for the report's header.
    summary: str

    @property
    def title(self) -> str:
        """``production configuration`` or ``light configuration``."""
        return f"{self.name} configuration"

    def described(self) -> dict[str, object]:
        """What the report's JSON says of the configuration (no secrets)."""
        settings = {k: v for k, v in self.env.items() if k not in ("SECRET_KEY", "OPERATOR_TOKEN")}
        return {"name": self.name, "summary": self.summary, "tokens": self.tokens, "env": settings}


def production() -> Configuration:
    """ProductionConfig as a deployment runs it: run tokens required, rate limits counted in
    Redis (raised above the load), JSON access lines in the service's log; secrets made up for
    this run.

    Its secure player cookie does not matter here: the load generators keep no cookies, and
    each score carries its player's id and key in its body, as a page on another site does.
    """
    env = {
        "HISCORE_CONFIG": "production",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "OPERATOR_TOKEN": secrets.token_urlsafe(32),
        "HISCORE_RUN_TOKENS_REQUIRED": "1",
        "HISCORE_RATE_LIMITS_ENABLED": "1",
        **{name: RAISED_LIMIT for name in RATE_LIMIT_SETTINGS},
        "LOG_FORMAT": "json",
    }
    summary = (
        f"HISCORE_CONFIG=production, run tokens required, rate limits on (each raised to "
        f"{RAISED_LIMIT}, above the load, so that none refuses), JSON access logs"
    )
    return Configuration("production", env, tokens=True, summary=summary)


def light() -> Configuration:
    """The testing configuration with rate limits off and scores without run tokens (testing
    does not require them; this says so even if the calling shell does)."""
    env = {
        "HISCORE_CONFIG": "testing",
        "HISCORE_RATE_LIMITS_ENABLED": "0",
        "HISCORE_RUN_TOKENS_REQUIRED": "0",
    }
    summary = "HISCORE_CONFIG=testing, rate limits off, no run tokens"
    return Configuration("light", env, tokens=False, summary=summary)


def limits_on(config: Configuration) -> bool:
    """Whether the configuration counts requests against rate limits."""
    return config.env.get("HISCORE_RATE_LIMITS_ENABLED") == "1"


def probe(stack: Stack) -> dict[str, Any]:
    """What the running web shows of its configuration: whether a request is counted against a
    rate limit (its headers say so), and whether a score without a run token is refused."""
    game = f"{stack.web_url}/api/v1/games/{INGEST_GAME}"
    status, headers, _ = http_post_json(f"{game}/sessions", {"variant": PROBE_VARIANT})
    limit = next((v for k, v in headers.items() if k.lower() == "x-ratelimit-limit"), None)
    bare = {"name": "Probe", "score": 1, "variant": PROBE_VARIANT, "duration_ms": 60_000}
    score_status, _, answer = http_post_json(f"{game}/scores", bare)
    errors = answer.get("errors", {}) if isinstance(answer, dict) else {}
    return {
        "session_status": status,
        "rate_limit_header": limit,
        "rate_limits_on": limit is not None,
        "score_without_token_status": score_status,
        "tokens_required": score_status == 422 and "token" in errors,
    }


def mismatches(config: Configuration, probed: dict[str, Any]) -> list[str]:
    """Where the running web contradicts the configuration it was started with."""
    found = []
    if probed["session_status"] != 201:
        found.append(f"POST /sessions answered {probed['session_status']}, not 201")
    if probed["tokens_required"] != config.tokens:
        found.append(
            f"a score without a run token was answered {probed['score_without_token_status']}: "
            f"tokens {'not ' if config.tokens else ''}required, unlike the {config.name} "
            "configuration"
        )
    if probed["rate_limits_on"] != limits_on(config):
        found.append(
            f"rate limits {'on' if probed['rate_limits_on'] else 'off'}, unlike the "
            f"{config.name} configuration"
        )
    return found
