"""The process entry points: `celery ... beat`, and `manage.py up`, which starts everything."""

from __future__ import annotations

import os
import signal
import socket
import sys

import psutil
import pytest
import requests

from app.storage.embedded_redis import free_port
from tests.cases import GOOD
from tests.processes import BIN, TEST_GAMES, Process, wait_for


def test_celery_beat_starts_from_the_worker_module(live, tmp_path):
    beat = Process(
        "beat",
        [str(BIN / "celery"), "-A", "celery_worker", "beat", "--loglevel=INFO"],
        live.env,
        tmp_path,
    ).start()
    try:
        wait_for(lambda: "beat: Starting" in beat.log() or not beat.alive, 60, "beat to start")
        assert beat.alive, beat.log()
    finally:
        beat.stop()
    log = beat.log()
    assert "Traceback" not in log, log[-4000:]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ctrl_c(up: Process) -> None:
    os.killpg(up.popen.pid, signal.SIGINT)  # a terminal sends it to the whole foreground job


def _sigint(up: Process) -> None:
    up.popen.send_signal(signal.SIGINT)


def _sigterm(up: Process) -> None:
    up.popen.send_signal(signal.SIGTERM)  # what a supervisor sends


@pytest.mark.parametrize("stop", [_ctrl_c, _sigint, _sigterm], ids=["ctrl-c", "sigint", "sigterm"])
def test_up_starts_redis_web_worker_and_beat_and_stops_them_all(tmp_path, stop):
    web_port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        HISCORE_CONFIG="testing",
        HISCORE_REDIS_PORT=str(redis_port),
        HISCORE_INSTANCE_PATH=str(tmp_path / "instance"),
        WEB_CONCURRENCY="1",
        WORKER_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
        HISCORE_GAMES_FILE=str(TEST_GAMES),
    )
    up = Process(
        "up", [sys.executable, "manage.py", "up", "--port", str(web_port)], env, tmp_path
    ).start()
    try:
        base = f"http://127.0.0.1:{web_port}"
        wait_for(
            lambda: requests.get(base + "/healthz", timeout=1).ok or not up.alive,
            90,
            "the web process",
        )
        assert up.alive, up.log()
        submitted = requests.post(
            base + "/api/v1/games/guess-claimed/scores", json=GOOD, timeout=10
        )
        assert submitted.status_code == 202
        status_url = base + submitted.json()["status_url"]

        def verdict():
            return (
                requests.get(status_url, params={"wait": 5}, timeout=15).json()["status"]
                != "queued"
            )

        wait_for(verdict, 90, "the worker's verdict")
        wait_for(lambda: "beat: Starting" in up.log(), 60, "beat")
        children = psutil.Process(up.popen.pid).children(recursive=True)
        assert len(children) >= 4  # redis-server, honcho, and the three processes under it

        stop(up)
        up.popen.wait(60)
        assert up.popen.returncode == 0, up.log()
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], [p.cmdline() for p in alive]
        assert not port_open(redis_port) and not port_open(web_port)
        aof = list((tmp_path / "instance" / "redis").glob("appendonly.aof*"))
        assert aof and aof[0].stat().st_size > 0
    finally:
        up.kill()
    assert "stopping the embedded Redis" in up.log()
    assert "Traceback" not in up.log(), up.log()
