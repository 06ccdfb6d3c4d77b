"""The files of deploy/: systemd units that systemd accepts and that run what the Procfile runs,
an nginx site that nginx accepts, a Redis configuration that the project's redis-server runs
with, and an environment file that names every setting.

The tools come from Debian when they are missing: ``systemd`` is installed with apt-get (as
root; where it is missing it is not the init, so installing it starts nothing), and nginx is
unpacked from its package into tests/artifacts/ (installing it would start a web server on
port 80). A test is skipped, saying why, only when that cannot be done, and fails instead in
CI (``CI`` set), where a skip would pass for a check never made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from app.storage.embedded_redis import free_port, redis_server_path
from config import BEAT_JOBS, Config, celery_settings, maintenance_time_limit
from tests.processes import ROOT, wait_for, without_tool

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
TOOLS = ROOT / "tests" / "artifacts" / "tools"
#: Procfile process -> its unit.
UNIT_OF = {
    "web": "hiscore-web.service",
    "worker": "hiscore-worker.service",
    "maintenance": "hiscore-maintenance.service",
    "beat": "hiscore-beat.service",
}


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


def _apt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return _run(["apt-get", "-qq", *args], env=env, cwd=cwd)


def _is_root_with_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    """``systemd-analyze``, installed from Debian's ``systemd`` if missing and we are root."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if not _is_root_with_apt():
        raise without_tool(
            "systemd-analyze is missing: apt-get install systemd (as root) to run this"
        )
    print("installing Debian's systemd for systemd-analyze")
    installed = _apt("update")
    if installed.returncode == 0:
        installed = _apt("install", "-y", "--no-install-recommends", "systemd")
    found = shutil.which("systemd-analyze")
    if not found:
        raise without_tool(f"apt-get could not install systemd: {installed.stderr[-500:]}")
    return found


@pytest.fixture(scope="session")
def nginx() -> str:
    """``nginx``: the installed one, or Debian's unpacked into tests/artifacts/tools."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found:
        return found
    unpacked = TOOLS / "nginx" / "usr" / "sbin" / "nginx"
    if unpacked.exists():
        return str(unpacked)
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise without_tool("nginx is missing and this is not Debian: install nginx to run this")
    TOOLS.mkdir(parents=True, exist_ok=True)
    print("unpacking Debian's nginx into", TOOLS)
    downloaded = _apt("download", "nginx", cwd=TOOLS)
    if downloaded.returncode != 0 and _is_root_with_apt():
        _apt("update")
        downloaded = _apt("download", "nginx", cwd=TOOLS)
    debs = sorted(TOOLS.glob("nginx_*.deb"))
    if downloaded.returncode != 0 or not debs:
        raise without_tool(f"apt-get could not download nginx: {downloaded.stderr[-500:]}")
    _run(["dpkg-deb", "-x", str(debs[-1]), str(TOOLS / "nginx")], check=True)
    debs[-1].unlink()
    return str(unpacked)


def _installed(text: str) -> str:
    """A deploy file as it would be on a machine where the checkout is /opt/hiscore."""
    return text.replace("/opt/hiscore", str(ROOT))


def _settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_accepts_the_units(systemd_analyze, tmp_path):
    for unit in UNITS:
        (tmp_path / unit.name).write_text(_installed(unit.read_text()))
    result = _run([systemd_analyze, "verify", "--man=no", *[str(tmp_path / u.name) for u in UNITS]])
    # verify exits 0 on an unknown key or a value it cannot parse, and only says so.
    said = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "hiscore" in line or str(tmp_path) in line
    ]
    assert result.returncode == 0 and not said, result.stdout + result.stderr


def test_the_units_run_what_the_procfile_runs():
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(procfile) - {"release"} == set(UNIT_OF)
    for process, unit_name in UNIT_OF.items():
        settings = _settings(DEPLOY / "systemd" / unit_name)
        (exec_start,) = settings["ExecStart"]
        # systemd expands %h and the like itself (%h: the home directory): Celery's %h must be
        # written %%h. The Procfile's ${NAME:-default} is a default in the unit.
        assert "%" not in exec_start.replace("%%", ""), f"{unit_name}: a % that systemd expands"
        command = exec_start.replace("/opt/hiscore/.venv/bin/", "").replace("%%", "%")
        expected = procfile[process]
        for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", expected):
            expected = expected.replace(f"${{{name}:-{default}}}", f"${{{name}}}")
            assert f"{name}={default}" in " ".join(settings["Environment"]).split(), unit_name
        assert command == expected, unit_name
        assert settings["EnvironmentFile"] == ["/etc/hiscore/hiscore.env"]
        assert settings["WorkingDirectory"] == ["/opt/hiscore"]
        assert settings["User"] == ["hiscore"]


def test_a_stop_waits_longer_than_the_work_it_lets_finish():
    """SIGTERM to the main process only (Celery's warm shutdown, gunicorn's graceful stop),
    and a kill only after the longest piece of work it waits for."""
    gunicorn_conf = (ROOT / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", gunicorn_conf, re.M).group(1))
    waits_for = {
        "hiscore-web.service": graceful,
        "hiscore-worker.service": celery_settings("memory://")["task_time_limit"],
        "hiscore-maintenance.service": maintenance_time_limit(),
        "hiscore-beat.service": 0,
    }
    for unit_name, longest in waits_for.items():
        settings = _settings(DEPLOY / "systemd" / unit_name)
        assert settings["KillSignal"] == ["SIGTERM"], unit_name
        assert settings["KillMode"] == ["mixed"], unit_name
        assert int(settings["TimeoutStopSec"][0]) > longest, unit_name


def _nginx_conf(tmp_path: Path, port: int = 80) -> Path:
    site = tmp_path / "hiscore.conf"
    text = _installed((DEPLOY / "nginx" / "hiscore.conf").read_text())
    if port != 80:  # to serve it here: loopback only, on a free port
        text = text.replace("listen 80;", f"listen 127.0.0.1:{port};")
        text = text.replace("listen [::]:80;\n", "")
    site.write_text(text)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path / 'access.log'};\n"
        f"{temp_paths}\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


def test_nginx_accepts_the_site(nginx, tmp_path):
    conf = _nginx_conf(tmp_path)
    result = _run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", "stderr"])
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_site_allows_what_the_app_allows():
    site = (DEPLOY / "nginx" / "hiscore.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)k;", site)
    assert size and int(size.group(1)) * 1024 == Config.MAX_CONTENT_LENGTH
    long_poll = re.search(r"location /api/v1/submissions/ \{(.*?)\}", site, re.S).group(1)
    assert int(re.search(r"proxy_read_timeout (\d+)s;", long_poll).group(1)) > 30
    assert "proxy_buffering off;" in long_poll


def test_redis_runs_with_the_configuration(tmp_path):
    conf = (DEPLOY / "redis" / "hiscore.conf").read_text()
    password = re.search(r"^requirepass (\S+)$", conf, re.M).group(1)
    # The configuration's data directory, moved to the test's own.
    (tmp_path / "redis.conf").write_text(
        re.sub(r"^dir .*$", f"dir {tmp_path}", conf, count=1, flags=re.M)
    )
    port = free_port()
    log = tmp_path / "redis.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [redis_server_path(), str(tmp_path / "redis.conf"), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(port=port, password=password, decode_responses=True)
        wait_for(lambda: server.poll() is not None or client.ping(), 15, "redis-server")
        assert server.poll() is None, log.read_text()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        settings = {}
        for name in ("appendonly", "appendfsync", "maxmemory-policy", "protected-mode", "bind"):
            settings.update(client.config_get(name))
        assert settings == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
            "protected-mode": "yes",
            "bind": "127.0.0.1",
        }
        client.set("k", "v")
        assert wait_for(lambda: (tmp_path / "appendonly.aof").stat().st_size > 0, 10, "the AOF")
        client.shutdown()
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


def _variables_read_by_the_code() -> set[str]:
    """Every environment variable config.py, gunicorn.conf.py, app/ and the Procfile read."""
    name = r"\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
    by_config = re.compile(rf"(?:environ\.get\(|env\.get\(|_env_int\(|_env_bool\(){name}")
    by_others = re.compile(rf"(?:os\.environ\.get\(|os\.environ\[|os\.getenv\(){name}")
    names = set(by_config.findall((ROOT / "config.py").read_text()))
    names |= {variable for _, variable, _ in BEAT_JOBS.values()}
    for path in [ROOT / "gunicorn.conf.py", *sorted((ROOT / "app").rglob("*.py"))]:
        names |= set(by_others.findall(path.read_text()))
    names |= set(re.findall(r"\$\{(\w+)", (ROOT / "Procfile").read_text()))
    return names


def test_the_environment_file_names_every_setting():
    example = (DEPLOY / "hiscore.env.example").read_text()
    named = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.M))
    missing = _variables_read_by_the_code() - named
    assert not missing, f"add these to deploy/hiscore.env.example: {sorted(missing)}"
    for required in ("HISCORE_CONFIG", "SECRET_KEY", "OPERATOR_TOKEN", "REDIS_URL"):
        assert re.search(rf"^{required}=", example, re.M), required
    assert re.search(r"^HISCORE_CONFIG=production$", example, re.M)
    assert re.search(r"^HISCORE_TRUSTED_PROXIES=1$", example, re.M)
    assert re.search(r"^LOG_FORMAT=json$", example, re.M)


def _raw(port: int, request: bytes) -> tuple[bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ],
    ids=["malformed", "uri-too-long", "header-too-long", "unknown-coding", "metrics"],
)
def test_what_nginx_refuses_itself_is_problem_json(nginx, tmp_path, request_bytes, status):
    port = free_port()
    conf = _nginx_conf(tmp_path, port)
    log = tmp_path / "nginx.out"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(tmp_path), "-e", "stderr", "-g", "daemon off;"],
            stderr=out,
        )
    try:
        wait_for(lambda: _port_open(port) or server.poll() is not None, 10, "nginx to listen")
        assert server.poll() is None, log.read_text()
        head, body = _raw(port, request_bytes)
    finally:
        server.terminate()
        server.wait(10)
    assert head.split(b" ")[1] == str(status).encode(), head
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == status


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
