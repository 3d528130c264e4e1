"""The server as users run it: CLI, workers, signals, reload, unix socket, fd, TLS, IPv6."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import BIN, PYTHON, ROOT, spawn, wait_for_port
from tests.support import http_get as _get

from .conftest import read_response, wait_until

APP = "tests.server.apps:app"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _serve_argv(port: int, *extra: str) -> list[str]:
    return [PYTHON, "-m", "microweb.server", APP, "--port", str(port), *extra]


def test_python_m_serves_and_sigterm_finishes_in_flight_request(port):
    with spawn(_serve_argv(port, "--graceful-timeout", "10"), port=port) as sp:
        assert _get(port) == (200, "hello v1")
        result = {}
        slow = threading.Thread(target=lambda: result.update(r=_get(port, "/sleep?1")))
        slow.start()
        time.sleep(0.3)
        sp.proc.send_signal(signal.SIGTERM)
        slow.join(15)
        assert result["r"][0] == 200  # the in-flight request finished
        assert sp.proc.wait(15) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert f"listening on http://127.0.0.1:{port}" in sp.output()


def test_master_sigterm_finishes_in_flight_requests(port):
    with spawn(_serve_argv(port, "--workers", "2", "--graceful-timeout", "10"), port=port) as sp:
        results = []
        slow = [threading.Thread(target=lambda: results.append(_get(port, "/sleep?1")))
                for _ in range(3)]
        for t in slow:
            t.start()
        time.sleep(0.3)
        sp.proc.send_signal(signal.SIGTERM)
        for t in slow:
            t.join(15)
        assert [r[0] for r in results] == [200, 200, 200]
        assert sp.proc.wait(15) == 0
        assert _children(sp.proc.pid) == set()


def test_console_script_with_access_log(port):
    argv = [str(BIN / "microweb"), "serve", APP, "--port", str(port), "--access-log"]
    with spawn(argv, port=port) as sp:
        assert _get(port, "/x?y=1") == (200, "hello v1")
        assert wait_until(lambda: '"GET /x?y=1 HTTP/1.1" 200' in sp.output(), 10)


def test_workers_share_the_socket_and_crashed_worker_is_replaced(port):
    with spawn(_serve_argv(port, "--workers", "2", "--threads", "2"), port=port) as sp:
        master = sp.proc.pid
        assert wait_until(lambda: len(_children(master)) == 2, 15)
        before = _children(master)
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(port, "/crash", timeout=5)
        assert wait_until(lambda: len(_children(master)) == 2 and _children(master) != before, 15)
        assert wait_until(lambda: _get(port)[0] == 200, 10)
        assert "died (exit 17)" in sp.output()
        assert sp.stop() == 0


def test_sighup_replaces_workers_without_dropping_requests(port):
    with spawn(_serve_argv(port, "--workers", "2", "--threads", "4"), port=port) as sp:
        master = sp.proc.pid
        assert wait_until(lambda: len(_children(master)) == 2, 15)
        old = _children(master)
        failures, served, stop = [], [0], threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    assert _get(port)[0] == 200
                    served[0] += 1
                except Exception as exc:  # noqa: BLE001 - any failure is a dropped request
                    failures.append(repr(exc))

        slow_result = {}
        slow = threading.Thread(target=lambda: slow_result.update(r=_get(port, "/sleep?1.5")))
        hammers = [threading.Thread(target=hammer) for _ in range(3)]
        for t in hammers:
            t.start()
        slow.start()
        time.sleep(0.3)
        sp.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: _children(master).isdisjoint(old) and
                          len(_children(master)) == 2, 20)
        stop.set()
        for t in [*hammers, slow]:
            t.join(20)
        assert slow_result["r"][0] == 200
        assert failures == [] and served[0] > 0
        assert int(_get(port, "/pid")[1]) not in old


def test_unix_socket(tmp_path):
    path = str(tmp_path / "web.sock")
    with spawn(_serve_argv(0, "--unix-socket", path)) as sp:
        assert wait_until(lambda: os.path.exists(path), 15), sp.output()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"hello v1"


def _refused(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI expecting it to give up at once (a timeout means it served instead)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)


def test_unix_socket_of_a_live_server_is_refused(tmp_path):
    path = str(tmp_path / "web.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen(16)
        done = _refused(_serve_argv(0, "--unix-socket", path))
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and path in done.stderr
        assert "another server is listening" in done.stderr
        with socket.socket(socket.AF_UNIX) as client:  # the live server keeps its socket
            client.settimeout(5)
            client.connect(path)


def test_stale_unix_socket_is_replaced(tmp_path):
    path = str(tmp_path / "web.sock")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(path)  # closed without unlinking: what a killed server leaves behind
    assert os.path.exists(path)
    with spawn(_serve_argv(0, "--unix-socket", path)) as sp:
        def answers() -> bool:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                try:
                    s.connect(path)
                except OSError:
                    return False
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return read_response(s)[1] == b"hello v1"

        assert wait_until(answers, 15), sp.output()


def test_unix_socket_path_that_is_not_a_socket_is_left_alone(tmp_path):
    path = tmp_path / "web.sock"
    path.write_text("not a socket\n")
    done = _refused(_serve_argv(0, "--unix-socket", str(path)))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and str(path) in done.stderr
    assert "not a socket" in done.stderr
    assert path.read_text() == "not a socket\n"


def test_inherited_fd():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_serve_argv(0, "--fd", str(lsock.fileno())), cwd=ROOT, env=env,
                            pass_fds=[lsock.fileno()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        lsock.close()
        wait_for_port(port, proc=proc)
        assert _get(port) == (200, "hello v1")
    finally:
        proc.terminate()
        proc.wait(15)


def test_tls(tmp_path, port):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True,
                   timeout=60)
    with spawn(_serve_argv(port, "--certfile", str(cert), "--keyfile", str(key)), port=port):
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            buf = bytearray()
            for _ in range(3):  # keep-alive over TLS
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert read_response(s, buf)[1] == b"hello v1"
        r = requests.get(f"https://localhost:{port}/", verify=str(cert), timeout=10)
        assert r.text == "hello v1"
        r = requests.get(f"https://localhost:{port}/file", verify=str(cert), timeout=10)
        assert r.content == (ROOT / "tests" / "server" / "apps.py").read_bytes()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    with spawn(_serve_argv(port, "--host", "::1")) as sp:
        assert wait_until(lambda: "listening on http://[::1]" in sp.output(), 15)
        conn = http.client.HTTPConnection("::1", port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello v1"
        conn.close()


def test_reload_restarts_on_code_change(tmp_path, port):
    module = tmp_path / "reloadme.py"
    module.write_text("def app(e, s):\n    s('200 OK', [])\n    return [b'one']\n")
    argv = [PYTHON, "-m", "microweb.server", "reloadme:app", "--port", str(port), "--reload"]
    with spawn(argv, port=port, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}):
        assert _get(port) == (200, "one")
        time.sleep(0.5)
        module.write_text("def app(e, s):\n    s('200 OK', [])\n    return [b'second version']\n")

        def changed() -> bool:
            try:
                return _get(port, timeout=2) == (200, "second version")
            except OSError:
                return False

        assert wait_until(changed, 20)


def test_config_file(tmp_path, port):
    toml = tmp_path / "site.toml"
    toml.write_text(f'[app]\nmodule = "{APP}"\n\n[server]\nport = {port}\nthreads = 2\n')
    argv = [str(BIN / "microweb"), "serve", "--config", str(toml)]
    with spawn(argv, port=port) as sp:
        assert _get(port) == (200, "hello v1")
        assert "1 worker(s) x 2 threads" in sp.output()


def test_bad_app_exits_with_error(port):
    for workers in ("1", "2"):
        proc = subprocess.run([PYTHON, "-m", "microweb.server", "nope_missing:app", "--port",
                               str(port), "--workers", workers],
                              cwd=ROOT, capture_output=True, timeout=30)
        assert proc.returncode != 0
        assert b"nope_missing" in proc.stderr


def test_requests_session_against_cli(port):
    with spawn(_serve_argv(port, "--threads", "2"), port=port), requests.Session() as s:
        for _ in range(20):
            assert s.get(f"http://127.0.0.1:{port}/").text == "hello v1"


def test_sighup_loads_new_code(tmp_path, port):
    module = tmp_path / "hupapp.py"
    module.write_text("def app(e, s):\n    s('200 OK', [])\n    return [b'old code']\n")
    argv = [PYTHON, "-m", "microweb.server", "hupapp:app", "--port", str(port), "--workers", "2"]
    with spawn(argv, port=port, cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{ROOT}"}) as sp:
        assert _get(port) == (200, "old code")
        module.write_text("def app(e, s):\n    s('200 OK', [])\n    return [b'brand new code']\n")
        sp.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: _get(port) == (200, "brand new code"), 20)
        # once the old workers are retired, every answer comes from the new code
        time.sleep(1.0)
        assert {_get(port)[1] for _ in range(10)} == {"brand new code"}
