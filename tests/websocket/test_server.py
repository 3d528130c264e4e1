"""WebSocketHandler on the real bundled server: websockets' sync client and raw frames."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode, Opcode
from websockets.sync.client import ClientConnection, connect

from tests import support

from . import raw
from .conftest import serve_argv


@pytest.fixture
def url(ws_server: support.Spawned) -> str:
    return f"ws://127.0.0.1:{ws_server.port}"


@pytest.fixture
def observer(url: str) -> Iterator[ClientConnection]:
    """A socket that receives the close events other sockets report."""
    with connect(url + "/observe", open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "observing"
        yield ws


def _closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    rcvd = info.value.rcvd
    return None if rcvd is None else rcvd.code


def test_echo_text_binary_and_json(url: str) -> None:
    with connect(url + "/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=10) == "héllo"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=10) == b"\x00\x01"
        ws.send("json")
        assert json.loads(ws.recv(timeout=10)) == {"kind": "dict", "n": 1}


def test_messages_are_handled_in_order(url: str) -> None:
    with connect(url + "/echo") as ws:
        for i in range(200):
            ws.send(str(i))
        assert [ws.recv(timeout=10) for _ in range(200)] == [str(i) for i in range(200)]


def test_open_sees_route_groups_arguments_cookies(url: str) -> None:
    with connect(url + "/args/lobby?name=ann", additional_headers={"Cookie": "user=bob"}) as ws:
        got = json.loads(ws.recv(timeout=10))
        assert got == {"room": "lobby", "name": "ann", "user": "bob", "ip": "127.0.0.1"}
        ws.send("which thread?")
        assert json.loads(ws.recv(timeout=10))["thread"] != "MainThread"
        ws.send("request?")
        assert json.loads(ws.recv(timeout=10)) == {
            "room": "lobby", "name": "ann", "user": "bob", "ip": "127.0.0.1", "cookie": "bob",
            "path": "/args/lobby"}


def test_fragmented_message_from_the_client(url: str) -> None:
    with connect(url + "/echo") as ws:
        ws.send(["frag", "men", "ted"])
        assert ws.recv(timeout=10) == "fragmented"
        ws.send([b"ab", b"cd"])
        assert ws.recv(timeout=10) == b"abcd"


def test_fragmented_frames_by_hand(url: str, ws_server: support.Spawned) -> None:
    sock, head = raw.handshake(ws_server.port, "/echo")
    with sock:
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(raw.frame(Opcode.TEXT, b"one ", fin=False))
        sock.sendall(raw.frame(Opcode.PING, b"mid"))  # control frames may interleave
        sock.sendall(raw.frame(Opcode.CONT, b"two", fin=True))
        pong = raw.read_frame(sock)
        assert (pong.opcode, pong.data) == (Opcode.PONG, b"mid")
        echo = raw.read_frame(sock)
        assert (echo.opcode, echo.data) == (Opcode.TEXT, b"one two")


def test_client_ping_and_server_ping(url: str) -> None:
    with connect(url + "/ping") as ws:
        ws.ping(b"cli").wait(10)
        assert ws.recv(timeout=10) == b"ping:cli"  # on_ping saw it
        ws.send("ping me")  # the handler pings; the client answers; on_pong reports
        assert ws.recv(timeout=10) == b"pong:srv"


def test_invalid_utf8_closes_1007(ws_server: support.Spawned) -> None:
    sock, _ = raw.handshake(ws_server.port, "/echo")
    with sock:
        sock.sendall(raw.frame(Opcode.TEXT, b"caf\xe9"))
        _, close = raw.read_until_close(sock)
        assert close.code == CloseCode.INVALID_DATA
        assert raw.at_eof(sock)


def test_unmasked_client_frame_closes_1002(ws_server: support.Spawned) -> None:
    sock, _ = raw.handshake(ws_server.port, "/echo")
    with sock:
        sock.sendall(raw.frame(Opcode.TEXT, b"hello", mask=False))
        frames, close = raw.read_until_close(sock)
        assert frames == [] and close.code == CloseCode.PROTOCOL_ERROR
        assert raw.at_eof(sock)


def test_oversized_message_closes_1009(url: str) -> None:
    with connect(url + "/echo") as ws:
        ws.send(b"x" * (64 * 1024 + 1))
        assert _closed_code(ws) == CloseCode.MESSAGE_TOO_BIG


def test_client_close_handshake_reaches_on_close(url: str, observer: ClientConnection) -> None:
    with connect(url + "/echo") as ws:
        ws.close(CloseCode.GOING_AWAY, "bye")
        assert ws.close_code == 1001  # the server echoed the close frame
    assert observer.recv(timeout=10) == "closed:1001:bye"


def test_server_close_with_code(url: str, observer: ClientConnection) -> None:
    with connect(url + "/echo") as ws:
        ws.send("close:4001:done")
        assert _closed_code(ws) == 4001
    assert observer.recv(timeout=10) == "closed:4001:done"


def test_dropped_tcp_connection_reaches_on_close(ws_server: support.Spawned,
                                                 observer: ClientConnection) -> None:
    sock, _ = raw.handshake(ws_server.port, "/echo")
    sock.close()
    assert observer.recv(timeout=10) == "closed:None:None"


def test_foreign_origin_is_refused(url: str, ws_server: support.Spawned) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(url + "/echo", origin="http://evil.example")
    assert info.value.response.status_code == 403
    own = f"http://127.0.0.1:{ws_server.port}"
    with connect(url + "/echo", origin=own) as ws:
        ws.send("same origin")
        assert ws.recv(timeout=10) == "same origin"
    with connect(url + "/any-origin", origin="http://evil.example") as ws:
        ws.send("allowed by check_origin")
        assert ws.recv(timeout=10) == "allowed by check_origin"


def test_plain_get_to_a_socket_is_400(ws_server: support.Spawned) -> None:
    with socket.create_connection(("127.0.0.1", ws_server.port), timeout=10) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"WebSocket" in reply


def test_bad_version_is_400(ws_server: support.Spawned) -> None:
    with socket.create_connection(("127.0.0.1", ws_server.port), timeout=10) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 8\r\n\r\n")
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 400")
    assert b"sec-websocket-version: 13" in head.lower()


def test_open_can_refuse_with_http_error(url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(url + "/refuse")
    assert info.value.response.status_code == 403


def test_authenticated_open(url: str, ws_server: support.Spawned) -> None:
    sock, head = raw.handshake(ws_server.port, "/auth")
    sock.close()
    assert head.startswith(b"HTTP/1.1 302")
    assert b"Location: /login?next=%2Fauth" in head
    with connect(url + "/auth", additional_headers={"Cookie": "user=ann"}) as ws:
        assert ws.recv(timeout=10) == "hello ann"


def test_handler_exception_closes_1011(url: str) -> None:
    with connect(url + "/broken") as ws:
        ws.send("boom")
        assert _closed_code(ws) == CloseCode.INTERNAL_ERROR


def test_subprotocol_and_compression(url: str) -> None:
    with connect(url + "/features", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.recv(timeout=10) == "chat.v2"
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        ws.send("z" * 10000)
        assert ws.recv(timeout=10) == "z" * 10000
    with connect(url + "/echo", subprotocols=["chat.v2"]) as ws:
        assert ws.subprotocol is None  # select_subprotocol returned None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers  # compression off


def test_slow_reader_is_closed_1008(ws_server: support.Spawned) -> None:
    sock, _ = raw.handshake(ws_server.port, "/flood")
    with sock:
        sock.sendall(raw.frame(Opcode.TEXT, b"flood:500"))  # 32 MB nobody reads
        time.sleep(1.0)
        frames, close = raw.read_until_close(sock)
    assert close.code == CloseCode.POLICY_VIOLATION
    assert len(frames) < 500


def test_idle_sockets_hold_no_thread(url: str, ws_server: support.Spawned) -> None:
    with connect(url + "/features") as probe:
        probe.recv(timeout=10)
        probe.send("threads")
        before = int(probe.recv(timeout=10))
        socks = []
        try:
            for _ in range(300):
                sock, head = raw.handshake(ws_server.port, "/echo")
                assert head.startswith(b"HTTP/1.1 101")
                socks.append(sock)
            socks[-1].sendall(raw.frame(Opcode.TEXT, b"still alive"))
            assert raw.read_frame(socks[-1]).data == b"still alive"
            probe.send("threads")
            during = int(probe.recv(timeout=10))
        finally:
            for s in socks:
                s.close()
    assert during - before < 10, (before, during)


def test_clients_see_going_away_when_the_server_stops(port: int) -> None:
    """SIGTERM: every open WebSocket gets a close frame with 1001, not a dropped TCP (1006)."""
    with support.spawn(serve_argv("tests.websocket.apps:application", port), port=port) as sp, \
            contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10))
                   for _ in range(3)]
        for ws in sockets:
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here"
        sp.proc.send_signal(signal.SIGTERM)
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == CloseCode.GOING_AWAY
        assert sp.proc.wait(timeout=20) == 0  # the closing handshake let it exit early
