"""An in-memory transport implementing the server's upgrade transport, driven by a real
websockets ClientProtocol: protocol tests without sockets (timers fire when the test says)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from microweb._ws_protocol import WebSocketProtocol, accept_handshake, new_server_protocol


@dataclass
class Timer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class MemoryTransport:
    """Collects written bytes; ``buffered`` is what get_write_buffer_size() reports."""

    out: bytearray = field(default_factory=bytearray)
    closed: bool = False
    aborted: bool = False
    buffered: int = 0
    timers: list[Timer] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(delay, callback)
        self.timers.append(timer)
        return timer

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 80)}.get(name)

    def fire(self) -> int:
        """Run every pending, uncancelled timer once; returns how many ran."""
        due, self.timers = [t for t in self.timers if not t.cancelled], []
        for t in due:
            t.callback()
        return len(due)


class Recorder:
    """A handler recording what the connection reports."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.closed: list[tuple[int | None, str | None]] = []
        self.on_message: Callable[[str | bytes], None] | None = None

    def _ws_message(self, message: str | bytes) -> None:
        self.messages.append(message)
        if self.on_message:
            self.on_message(message)

    def _ws_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def _ws_pong(self, data: bytes) -> None:
        self.pongs.append(data)

    def _ws_closed(self, code: int | None, reason: str | None) -> None:
        self.closed.append((code, reason))


class Pair:
    """A client protocol and a server connection joined by a MemoryTransport."""

    def __init__(self, compress: bool = False, max_size: int | None = 2**20,
                 **options: Any) -> None:
        exts = [ClientPerMessageDeflateFactory()] if compress else None
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1/ws"), extensions=exts,
                                     max_size=None)
        request = self.client.connect()
        ws = new_server_protocol(compression={} if compress else None, max_size=max_size)
        self.response = accept_handshake(ws, _as_request(request))
        assert self.response.status_code == 101, self.response.body
        self.client.receive_data(self.response.serialize())
        assert self.client.state is OPEN
        self.client.events_received()  # drop the handshake response event
        self.handler = Recorder()
        self.proto = WebSocketProtocol(ws, self.handler, **options)
        self.transport = MemoryTransport()
        self._sent = 0

    def start(self) -> Pair:
        self.proto.connection_made(self.transport)
        return self

    def client_send(self, *raw: bytes) -> None:
        """Deliver what the client produced (plus optional raw bytes) to the server."""
        data = b"".join(self.client.data_to_send()) + b"".join(raw)
        if data:
            self.proto.data_received(data)

    def client_events(self) -> list[Frame]:
        """Feed what the server wrote to the client and return the frames it parsed."""
        new = bytes(self.transport.out[self._sent:])
        self._sent = len(self.transport.out)
        if new:
            self.client.receive_data(new)
        if self.transport.closed:
            self.client.receive_eof()
        return list(self.client.events_received())


def _as_request(request: Request) -> Request:
    """Round-trip through bytes, as the server would see it."""
    return Request(request.path, Headers(request.headers.raw_items()))


__all__ = ["MemoryTransport", "Pair", "Recorder", "Response"]
