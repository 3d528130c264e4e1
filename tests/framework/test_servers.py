"""The framework under real servers: gunicorn and wsgiref in subprocesses, over TCP.

The streaming checks read the first chunk before allowing the handler to produce the second
one, so they pass only if each chunk leaves the server as soon as it is produced.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests import support

WSGIREF = ("from wsgiref.simple_server import make_server; "
           "from tests.framework.apps import application; "
           "make_server('127.0.0.1', {port}, application).serve_forever()")


def gunicorn(target: str, port: int) -> list[str]:
    return [support.which("gunicorn") or "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--timeout", "30", target]


def fetch(port: int, path: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def read_incrementally(port: int, path: str, marker: Path) -> tuple[bytes, bytes]:
    """GET ``path``; read the first chunk, then let the server send the rest."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
    try:
        conn.request("GET", f"{path}?marker={quote(str(marker))}")
        response = conn.getresponse()
        assert response.status == 200
        first = response.read(len(b"first\n"))  # times out if the server held the chunk back
        marker.touch()
        return first, response.read()
    finally:
        conn.close()


def test_gunicorn_serves_the_hello_example(port: int) -> None:
    with support.spawn(gunicorn("examples.hello:application", port), port=port):
        status, headers, body = fetch(port, "/")
        assert (status, body) == (200, b"Hello, world")
        assert headers["Content-Type"] == "text/html; charset=UTF-8"
        status, _, body = fetch(port, "/hello/ann?greeting=Hi")
        assert json.loads(body) == {"hello": "ann", "greeting": "Hi"}
        status, _, body = fetch(port, "/stream?n=4")
        assert body == b"line 0\nline 1\nline 2\nline 3\n"
        assert fetch(port, "/missing")[0] == 404


@pytest.mark.parametrize("path", ["/stream/generator", "/stream/flush", "/stream/async"])
def test_gunicorn_streams_chunks_incrementally(port: int, path: str, tmp_path: Path) -> None:
    with support.spawn(gunicorn("tests.framework.apps:application", port), port=port):
        first, rest = read_incrementally(port, path, tmp_path / "go")
        assert (first, rest) == (b"first\n", b"second\n")


@pytest.mark.parametrize("path", ["/stream/generator", "/stream/flush"])
def test_wsgiref_streams_chunks_incrementally(port: int, path: str, tmp_path: Path) -> None:
    argv = [support.PYTHON, "-c", WSGIREF.format(port=port)]
    with support.spawn(argv, port=port):
        status, _, body = fetch(port, "/")
        assert (status, body) == (200, b"Hello, world")
        first, rest = read_incrementally(port, path, tmp_path / "go")
        assert (first, rest) == (b"first\n", b"second\n")


def test_wsgiref_form_post(port: int) -> None:
    argv = [support.PYTHON, "-c", WSGIREF.format(port=port)]
    with support.spawn(argv, port=port):
        status, _, body = fetch(port, "/echo", "POST", urlencode({"a": "é"}).encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and json.loads(body) == {"a": "é", "files": []}


def test_hello_module_runs_with_host_and_port(port: int) -> None:
    argv = [support.PYTHON, "-m", "examples.hello", "--host", "127.0.0.1", "--port", str(port)]
    with support.spawn(argv, port=port) as server:
        status, _, body = fetch(port, "/")
        assert (status, body) == (200, b"Hello, world"), server.output()


def test_hello_module_falls_back_to_wsgiref(port: int) -> None:
    """Without the bundled server (its import made to fail) the example uses wsgiref."""
    shim = ("import sys, runpy; sys.modules['microweb.server'] = None; "
            f"sys.argv = ['hello', '--port', '{port}']; "
            "runpy.run_module('examples.hello', run_name='__main__')")
    with support.spawn([sys.executable, "-c", shim], port=port) as server:
        status, _, body = fetch(port, "/")
        assert (status, body) == (200, b"Hello, world")
        assert "wsgiref" in server.output()


def bundled(target: str, port: int) -> list[str]:
    return [support.which("microweb") or "microweb", "serve", target, "--host", "127.0.0.1",
            "--port", str(port)]


def test_bundled_server_serves_the_hello_example(port: int) -> None:
    with support.spawn(bundled("examples.hello:application", port), port=port) as server:
        status, headers, body = fetch(port, "/hello/bo")
        assert status == 200, server.output()
        assert json.loads(body) == {"hello": "bo", "greeting": "Hello"}
        assert fetch(port, "/stream?n=2")[2] == b"line 0\nline 1\n"


@pytest.mark.parametrize("path", ["/stream/generator", "/stream/flush"])
def test_bundled_server_streams_chunks_incrementally(port: int, path: str,
                                                     tmp_path: Path) -> None:
    with support.spawn(bundled("tests.framework.apps:application", port), port=port):
        first, rest = read_incrementally(port, path, tmp_path / "go")
        assert (first, rest) == (b"first\n", b"second\n")


@pytest.mark.parametrize("server", ["bundled", "gunicorn"])
def test_on_finish_runs_after_the_response_is_sent(server: str, port: int,
                                                   tmp_path: Path) -> None:
    """The client has the whole response while on_finish still waits for it (as Tornado)."""
    argv = (bundled if server == "bundled" else gunicorn)("tests.framework.apps:application",
                                                          port)
    marker = tmp_path / "go"
    with support.spawn(argv, port=port):
        status, _, body = fetch(port, f"/after?marker={quote(str(marker))}")
        assert (status, body) == (200, b"sent")  # on_finish has not finished yet
        marker.touch()
        done = marker.with_name("go.done")
        deadline = time.monotonic() + 15
        while not (done.exists() and done.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done.read_text() == "on_finish ran after the response was sent"
