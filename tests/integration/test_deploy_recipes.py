"""The other recipes of examples/deploy/: config checks, and ``microweb serve --workers``."""

from __future__ import annotations

import configparser
import contextlib
import json
import subprocess
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from tests.integration.conftest import DEPLOY, NGINX, main_config, site_config
from tests.support import BIN, PYTHON, ROOT, free_port, spawn


def test_gunicorn_accepts_the_config():
    res = subprocess.run([str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"),
                          "--check-config", "examples.showcase:application"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                              "MICROWEB_SHOWCASE_DATA": "/nonexistent-not-created"})
    assert res.returncode == 0, res.stdout + res.stderr


def test_nginx_accepts_the_site(tmp_path):
    (tmp_path / "site.conf").write_text(site_config([8001, 8002], free_port()))
    (tmp_path / "nginx.conf").write_text(main_config(tmp_path))
    res = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                          "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "syntax is ok" in res.stderr


def test_supervisor_program_runs_existing_things():
    conf = configparser.RawConfigParser()
    conf.read(DEPLOY / "supervisor.conf")
    program = conf["program:showcase"]
    assert conf["group:microweb"]["programs"] == "showcase"
    assert int(program["numprocs"]) == 3
    command = program["command"].replace("%(process_num)d", "1")
    assert "--bind 127.0.0.1:8001" in command
    assert "examples/deploy/gunicorn.conf.py" in command
    assert command.endswith("examples.showcase:application")


def test_systemd_unit_starts_gunicorn_with_the_recipe():
    unit = configparser.RawConfigParser(strict=False)
    unit.optionxform = str  # keys are case-sensitive in systemd
    unit.read(DEPLOY / "microweb@.service")
    service = unit["Service"]
    assert "gunicorn -c examples/deploy/gunicorn.conf.py examples.showcase:application" in \
        service["ExecStart"]
    assert service["ReadWritePaths"] == "/var/lib/microweb"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.redis
@pytest.mark.slow
def test_serve_workers_alternative_shares_the_chat_room(tmp_path, redis_port):
    """``microweb serve --workers 2`` with the Redis hub: one room across both workers."""
    port = free_port()
    env = {"MICROWEB_SHOWCASE_DATA": str(tmp_path / "data"),
           "MICROWEB_SHOWCASE_REDIS": f"redis://127.0.0.1:{redis_port}/0"}
    with spawn([PYTHON, "-m", "microweb.server", "examples.showcase:application",
                "--port", str(port), "--workers", "2", "--threads", "4"], port=port,
               env=env) as proc, contextlib.ExitStack() as stack:
        base = f"127.0.0.1:{port}"
        sockets = [stack.enter_context(connect(f"ws://{base}/chat/socket",
                                               origin=f"http://{base}", open_timeout=10))
                   for _ in range(8)]
        for s in sockets:
            _until(s, lambda m: m["type"] == "join")  # its own join went round the hub
        sockets[-1].send("one room for every worker")
        for s in sockets:
            said = _until(s, lambda m: m["type"] == "message")
            assert said["text"] == "one room for every worker"
        output = proc.output()
    assert "starting 2 workers" in output, output


def _until(socket: Any, wanted: Any) -> dict[str, Any]:
    """The next JSON message on ``socket`` that ``wanted`` accepts (others are skipped)."""
    while True:
        message = json.loads(socket.recv(timeout=10))
        if wanted(message):
            return message  # type: ignore[no-any-return]


def test_plain_gunicorn_worker_serves_pages_and_explains_websockets(tmp_path):
    """With gunicorn's sync worker (MICROWEB_WORKER_CLASS=sync) pages work; the socket says 426."""
    port = free_port()
    env = {"MICROWEB_SHOWCASE_DATA": str(tmp_path / "data"), "MICROWEB_WORKER_CLASS": "sync",
           "MICROWEB_WORKERS": "1"}
    with spawn([str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"), "--bind",
                f"127.0.0.1:{port}", "examples.showcase:application"], port=port, env=env):
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/houses", timeout=10).status_code == 200
        res = requests.get(f"{base}/chat/socket", timeout=10, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Origin": base,
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert res.status_code == 426
    assert "microweb.server.gunicorn.Worker" in res.text or "microweb serve" in res.text
