"""WebSockets under other servers: a clear 426 where a socket cannot be handed over (wsgiref,
gunicorn's own workers), and the full service under gunicorn with microweb's worker class."""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import support

from . import apps, raw

GUNICORN = support.which("gunicorn") or "gunicorn"
APP = "tests.websocket.apps:application"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def wsgiref_port() -> Iterator[int]:
    httpd = make_server("127.0.0.1", 0, apps.application, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def _gunicorn(port: int, *extra: str) -> list[str]:
    return [GUNICORN, "-b", f"127.0.0.1:{port}", "--no-control-socket", *extra, APP]


def _assert_426(port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10):
            pass
    response = info.value.response
    assert response.status_code == 426
    body = bytes(response.body).decode()
    assert "microweb serve" in body and "microweb.server.gunicorn.Worker" in body


def test_wsgiref_answers_426_with_directions(wsgiref_port: int,
                                             caplog: pytest.LogCaptureFixture) -> None:
    sock, head = raw.handshake(wsgiref_port, "/echo")  # wsgiref answers HTTP/1.0
    with sock:
        body = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    assert re.match(r"HTTP/1\.[01] 426 ", head.decode())
    assert "microweb serve" in body and "microweb.server.gunicorn.Worker" in body
    assert "cannot upgrade" in caplog.text
    assert _get(wsgiref_port, "/page") == "plain page"  # ordinary pages are unaffected


def test_gunicorn_sync_worker_answers_426() -> None:
    port = support.free_port()
    with support.spawn(_gunicorn(port, "-k", "sync"), port=port):
        _assert_426(port)


@pytest.mark.slow
def test_gunicorn_worker_serves_http_and_websockets() -> None:
    port = support.free_port()
    with support.spawn(_gunicorn(port, "-k", "microweb.server.gunicorn.Worker",
                                 "--threads", "4", "-w", "2"), port=port) as sp:
        assert _get(port, "/page") == "plain page"
        with connect(f"ws://127.0.0.1:{port}/echo") as ws:
            for i in range(20):
                ws.send(f"m{i}")
            assert [ws.recv(timeout=10) for _ in range(20)] == [f"m{i}" for i in range(20)]
            with connect(f"ws://127.0.0.1:{port}/features",
                         subprotocols=["chat.v2"]) as ws2:
                assert ws2.recv(timeout=10) == "chat.v2"
            # TERM to the arbiter: a graceful stop that also ends the open socket.
            sp.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=20)
        assert sp.proc.wait(30) == 0
        assert "microweb worker serving with 4 threads" in sp.output()


@pytest.mark.slow
def test_gunicorn_worker_heartbeat_and_max_requests() -> None:
    port = support.free_port()
    with support.spawn(_gunicorn(port, "-k", "microweb.server.gunicorn.Worker", "-w", "1",
                                 "--timeout", "2", "--max-requests", "3"), port=port) as sp:
        first = _get(port, "/pid")
        time.sleep(4)  # idle for twice --timeout: the arbiter must not kill a live worker
        assert _get(port, "/pid") == first
        assert "WORKER TIMEOUT" not in sp.output()
        _get(port, "/pid")  # the third request: the worker restarts after it
        deadline = time.monotonic() + 20
        pids = set()
        while time.monotonic() < deadline and len(pids - {first}) == 0:
            try:
                pids.add(_get(port, "/pid"))
            except OSError:
                time.sleep(0.1)
        assert pids - {first}, "the worker was not replaced after --max-requests"
        assert re.search(r"Autorestarting worker", sp.output())
