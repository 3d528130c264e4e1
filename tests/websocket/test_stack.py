"""A WebSocket behind the full middleware stack (proxy, access log, IP filter, gzip, sessions,
XSRF) on the bundled server: the handshake goes through every layer, the socket still opens."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests import support

from .conftest import serve_argv


@pytest.fixture(scope="module")
def stacked() -> Iterator[support.Spawned]:
    port = support.free_port()
    with support.spawn(serve_argv("tests.websocket.apps:stacked_application", port),
                       port=port) as sp:
        yield sp


def _session_cookie(port: int, user: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/session/set?user={user}",
                                 headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as r:
        cookies = r.headers.get_all("Set-Cookie")
    return "; ".join(c.split(";", 1)[0] for c in cookies)


def _check_session_socket(port: int, xsrf: bool) -> None:
    cookie = _session_cookie(port, "ann")
    headers = {"Cookie": cookie, "Accept-Encoding": "gzip, br"}
    with connect(f"ws://127.0.0.1:{port}/session/socket", additional_headers=headers) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"user": "ann", "xsrf": xsrf}
        ws.send("again")
        assert json.loads(ws.recv(timeout=10)) == {"user": "ann", "echo": "again"}


def test_session_in_open_and_on_message(port: int) -> None:
    with support.spawn(serve_argv("tests.websocket.apps:session_application", port), port=port):
        _check_session_socket(port, xsrf=False)


def test_session_behind_the_full_stack(stacked: support.Spawned) -> None:
    _check_session_socket(stacked.port, xsrf=True)


def test_forwarded_origin_check_behind_a_trusted_proxy(stacked: support.Spawned) -> None:
    """Behind nginx the browser's Origin names the public host, which ProxyMiddleware
    restores from X-Forwarded-Host before check_origin compares them."""
    url = f"ws://127.0.0.1:{stacked.port}/echo"
    public = {"X-Forwarded-Host": "chat.example", "X-Forwarded-Proto": "https",
              "X-Forwarded-For": "198.51.100.7"}
    with connect(url, origin="https://chat.example", additional_headers=public) as ws:
        ws.send("via proxy")
        assert ws.recv(timeout=10) == "via proxy"
    with pytest.raises(InvalidStatus) as info:
        with connect(url, origin="https://evil.example", additional_headers=public):
            pass
    assert info.value.response.status_code == 403


def test_blacklisted_client_never_opens_a_socket(stacked: support.Spawned) -> None:
    with pytest.raises(InvalidStatus) as info:
        with connect(f"ws://127.0.0.1:{stacked.port}/echo",
                     additional_headers={"X-Forwarded-For": "203.0.113.9"}):
            pass
    assert info.value.response.status_code == 403


def test_middleware_calling_start_response_lazily(port: int) -> None:
    """PEP 3333 lets a middleware call start_response on the first next(): the server looks
    at the response status only after that, so the 101 still upgrades the socket."""
    with support.spawn(serve_argv("tests.websocket.apps:lazy_application", port), port=port), \
            connect(f"ws://127.0.0.1:{port}/echo") as ws:
        ws.send("through a lazy middleware")
        assert ws.recv(timeout=10) == "through a lazy middleware"
