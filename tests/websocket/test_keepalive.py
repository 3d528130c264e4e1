"""Keepalive pings on the real server: live peers stay, silent peers are dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from websockets.frames import Opcode
from websockets.sync.client import connect

from tests import support

from . import raw
from .conftest import serve_argv


@pytest.fixture(scope="module")
def fast_ping_server() -> Iterator[support.Spawned]:
    port = support.free_port()
    env = {"WS_PING_INTERVAL": "0.5", "WS_PING_TIMEOUT": "0.5"}
    with support.spawn(serve_argv("tests.websocket.apps:application", port), port=port,
                       env=env) as sp:
        yield sp


def test_silent_peer_is_dropped(fast_ping_server: support.Spawned) -> None:
    port = fast_ping_server.port
    with connect(f"ws://127.0.0.1:{port}/observe") as observer:
        assert observer.recv(timeout=10) == "observing"
        sock, head = raw.handshake(port, "/echo")
        with sock:
            assert head.startswith(b"HTTP/1.1 101")
            ping = raw.read_frame(sock)  # the server pings; this peer never answers
            assert ping.opcode is Opcode.PING
            assert raw.at_eof(sock)
        assert observer.recv(timeout=10) == "closed:None:None"


def test_answering_peer_stays_connected(fast_ping_server: support.Spawned) -> None:
    with connect(f"ws://127.0.0.1:{fast_ping_server.port}/echo") as ws:
        time.sleep(2.5)  # several ping intervals; the client library answers each ping
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
