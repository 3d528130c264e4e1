"""WebSocketHandler through the WSGI interface in-process: the handshake's answers, the
upgrade call, cookies on the 101, signals, and the socket driven over an in-memory transport."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri
from werkzeug.test import Client

import microweb as web
from microweb import signals
from microweb.pubsub import LocalHub
from microweb.websocket import WebSocketHandler

from .memory import MemoryTransport

HUB = LocalHub()


class RoomHandler(WebSocketHandler):
    def open(self, room: str) -> None:
        self.room = room
        if self.get_argument("refuse", None):
            self.join(room)
            raise web.HTTPError(403)
        self.set_cookie("seen", "yes")
        self.join(room)
        self.write_message({"joined": room})

    def on_message(self, message: str | bytes) -> None:
        self.broadcast(self.room, message)


class AsyncHandler(WebSocketHandler):
    async def open(self) -> None:
        await asyncio.sleep(0)
        self.write_message("async open")

    async def on_message(self, message: str | bytes) -> None:
        await asyncio.sleep(0)
        self.write_message(f"async {message}")


class RequestReportHandler(WebSocketHandler):
    """Reports what it sees of the request in open() and again in on_message()."""

    def get_current_user(self) -> Any:
        return self.get_cookie("user")

    def open(self, room: str) -> None:
        self.request.environ["test.seen_in_open"] = room
        self.opened = self.report()

    def on_message(self, message: str | bytes) -> None:
        self.write_message(self.report())

    def report(self) -> dict[str, Any]:
        r = self.request
        return {"path": r.path, "uri": r.uri, "query": r.query, "host": r.host,
                "full_url": r.full_url(), "remote_ip": r.remote_ip, "protocol": r.protocol,
                "version": r.version, "method": r.method, "body": r.body.decode(),
                "arguments": {k: [v.decode() for v in vs] for k, vs in r.arguments.items()},
                "name": self.get_argument("name"), "names": self.get_arguments("name"),
                "cookie": self.get_cookie("flavour"), "cookies": sorted(r.cookies),
                "user": self.current_user, "header": r.headers.get("X-Custom"),
                "origin": r.headers.get("Origin"), "route": self.path_args,
                "seen": r.environ.get("test.seen_in_open"),
                "session": r.environ.get("test.session")}


def _app() -> web.Application:
    return web.Application([(r"/room/(\w+)", RoomHandler), (r"/async", AsyncHandler),
                            (r"/report/(\w+)", RequestReportHandler)],
                           websocket_hub=HUB)


def _handshake_headers() -> dict[str, str]:
    return {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13", "Host": "localhost"}


def _upgrading_get(path: str, environ: dict[str, Any] | None = None,
                   cookies: dict[str, str] | None = None,
                   **headers: str) -> tuple[Any, list[Any]]:
    protocols: list[Any] = []
    client = Client(_app())
    for name, value in (cookies or {}).items():
        client.set_cookie(name, value)
    response = client.get(path, headers={**_handshake_headers(), **headers},
                          environ_base={"microweb.upgrade": protocols.append, **(environ or {})})
    return response, protocols


def test_101_carries_accept_key_and_cookies_but_no_body_headers() -> None:
    response, protocols = _upgrading_get("/room/a")
    assert response.status_code == 101 and len(protocols) == 1
    assert response.headers["Upgrade"] == "websocket"
    assert "Sec-WebSocket-Accept" in response.headers
    assert "seen=yes" in response.headers["Set-Cookie"]
    assert "Content-Type" not in response.headers
    assert "Content-Length" not in response.headers
    assert response.get_data() == b""


def test_refusal_in_open_undoes_its_subscriptions() -> None:
    before = HUB.subscriber_count("b")
    response, protocols = _upgrading_get("/room/b?refuse=1")
    assert response.status_code == 403 and protocols == []
    assert HUB.subscriber_count("b") == before


def test_without_the_upgrade_key_the_answer_is_426(caplog: pytest.LogCaptureFixture) -> None:
    response = Client(_app()).get("/room/c", headers=_handshake_headers())
    assert response.status_code == 426
    assert "gunicorn -k microweb.server.gunicorn.Worker" in response.get_data(as_text=True)
    assert "cannot upgrade" in caplog.text


@pytest.mark.parametrize(("headers", "status"), [
    ({"Upgrade": "h2c"}, 400),
    ({"Connection": "keep-alive"}, 400),
    ({"Sec-WebSocket-Key": "short"}, 400),
    ({"Origin": "http://elsewhere.example"}, 403),
])
def test_bad_handshakes(headers: dict[str, str], status: int) -> None:
    response, protocols = _upgrading_get("/room/d", **headers)
    assert response.status_code == status and protocols == []


def test_post_is_not_a_handshake() -> None:
    response = Client(_app()).post("/room/e", headers=_handshake_headers(),
                                   environ_base={"microweb.upgrade": lambda p: None})
    assert response.status_code == 405


def test_socket_lifecycle_with_signals() -> None:
    events: list[str] = []

    def opened(sender: Any) -> None:
        events.append(f"opened {sender.room}")

    def closed(sender: Any) -> None:
        events.append(f"closed {sender.close_code}")

    with signals.websocket_opened.connected_to(opened), \
            signals.websocket_closed.connected_to(closed):
        response, (proto,) = _upgrading_get("/room/f")
        _, (other,) = _upgrading_get("/room/f")
        transport, other_transport = MemoryTransport(), MemoryTransport()
        proto.connection_made(transport)
        other.connection_made(other_transport)
        # the handshake already happened over WSGI: the client starts at frames
        client = ClientProtocol(parse_uri("ws://localhost/room/f"), state=OPEN)
        client.receive_data(bytes(transport.out))
        assert [f.data for f in client.events_received()] == [b'{"joined": "f"}']
        client.send_text(b"to the room")
        proto.data_received(b"".join(client.data_to_send()))
        assert b"to the room" in other_transport.out  # the other socket got the broadcast
        client.send_close(1000, "bye")
        proto.data_received(b"".join(client.data_to_send()))
        assert transport.closed
        proto.connection_lost(None)
        other.connection_lost(ConnectionResetError())
    assert events == ["opened f", "opened f", "closed 1000", "closed None"]
    assert HUB.subscriber_count("f") == 0
    client.receive_data(bytes(transport.out))
    assert [f.opcode for f in client.events_received()][-1] is Opcode.CLOSE


def test_async_hooks_run_to_completion() -> None:
    response, (proto,) = _upgrading_get("/async")
    assert response.status_code == 101
    transport = MemoryTransport()
    proto.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://localhost/async"), state=OPEN)
    client.send_text(b"hi")
    proto.data_received(b"".join(client.data_to_send()))
    client.receive_data(bytes(transport.out))
    assert [f.data for f in client.events_received()] == [b"async open", b"async hi"]


def test_request_stays_whole_in_on_message_after_the_environ_is_compacted() -> None:
    session = {"user": "ann"}
    response, (proto,) = _upgrading_get("/report/lobby?name=a&name=b",
                                        {"REMOTE_ADDR": "192.0.2.7"},
                                        {"flavour": "mint", "user": "bob"},
                                        X_Custom="yes", Origin="http://localhost")
    assert response.status_code == 101
    handler = proto.handler
    full = handler.request.environ
    full["test.session"] = session  # a middleware's key, set during the handshake
    request = handler.request
    proto.connection_made(MemoryTransport())
    compact = handler.request.environ
    assert handler.request is request and compact is not full
    assert "microweb.upgrade" not in compact and "wsgi.errors" not in compact
    assert compact["wsgi.input"].read() == b"" and compact["test.session"] is session
    assert compact["HTTP_UPGRADE"] is sys.intern("websocket")  # shared by every socket
    client = ClientProtocol(parse_uri("ws://localhost/report/lobby"), state=OPEN)
    client.send_text(b"report")
    transport = proto.transport
    proto.data_received(b"".join(client.data_to_send()))
    client.receive_data(bytes(transport.out))
    (frame,) = client.events_received()
    expected = {**handler.opened, "seen": "lobby", "session": {"user": "ann"}}
    assert json.loads(frame.data) == expected
    assert expected["names"] == ["a", "b"] and expected["user"] == "bob"
    assert expected["cookie"] == "mint" and expected["header"] == "yes"
    assert expected["route"] == ["lobby"] and expected["remote_ip"] == "192.0.2.7"


def test_a_connected_handler_refuses_http_output() -> None:
    # After the 101 the HTTP response is history: write() refuses (as in Tornado), and the
    # output buffer every connected handler shares stays empty.
    from microweb import websocket

    response, (proto,) = _upgrading_get("/room/lobby")
    assert response.status_code == 101
    proto.connection_made(MemoryTransport())
    with pytest.raises(RuntimeError, match="after finish"):
        proto.handler.write("late")
    with pytest.raises(RuntimeError, match="after finish"):
        proto.handler.write({"late": True})
    assert websocket._NO_OUTPUT == []
