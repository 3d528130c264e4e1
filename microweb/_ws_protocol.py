"""One upgraded WebSocket connection: the server's upgrade protocol over websockets' Sans-I/O.

Theory of operation. The bundled server (or the gunicorn worker) calls ``connection_made``,
``data_received`` and ``connection_lost`` on a worker thread, never concurrently for one
connection. ``websockets.server.ServerProtocol`` parses and validates frames (masking, opcodes,
control-frame rules, sizes, permessage-deflate) and answers pings and close frames; this module
assembles fragmented messages, validates UTF-8, feeds the transport, runs the keepalive and
close timers and hands complete messages to the handler. Sends may come from any thread
(``write_message`` from a pub/sub thread), so every touch of the Sans-I/O object and the
transport happens under one lock; handler callbacks always run outside it.
"""

from __future__ import annotations

import codecs
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, OPEN, SEND_EOF
from websockets.protocol import Protocol as _SansIOProtocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

log = logging.getLogger("microweb.websocket")


class _ProtocolLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every open and close at INFO; one line per socket is DEBUG here."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


_ws_logger = _ProtocolLogger(logging.getLogger("microweb.websocket.protocol"), {})

_UTF8 = codecs.getincrementaldecoder("utf-8")


class WebSocketClosedError(Exception):
    """Raised when sending on a WebSocket that is closing or closed (Tornado's name)."""


def new_server_protocol(*, compression: dict[str, Any] | None = None,
                        max_size: int | None = 10 * 2**20,
                        select_subprotocol: Callable[[list[str]], str | None] | None = None,
                        ) -> ServerProtocol:
    """A Sans-I/O server protocol already past the HTTP layer (the WSGI server parsed it).

    ``compression`` follows Tornado's ``get_compression_options()``: None disables
    permessage-deflate, a dict enables it (keys ``compression_level``, ``mem_level``).
    """
    extensions: Sequence[ServerExtensionFactory] | None = None
    if compression is not None:
        settings = {"memLevel": compression.get("mem_level", 5)}
        if "compression_level" in compression:
            settings["level"] = compression["compression_level"]
        extensions = [ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12, compress_settings=settings)]
    chooser = None
    if select_subprotocol is not None:
        def chooser(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            chosen = select_subprotocol([str(p) for p in offered])
            if chosen is None or chosen not in offered:
                return None
            return Subprotocol(chosen)
    # state=OPEN: the parser starts at frames, the HTTP request was parsed by the server.
    ws = ServerProtocol(state=OPEN, extensions=extensions, select_subprotocol=chooser,
                        max_size=max_size, logger=_ws_logger)
    # ServerProtocol.parse() would read the handshake the server already parsed: the frame
    # parser is started when the first bytes arrive (see _park_parser).
    _unset(ws)
    return ws


_FRAME_PARSER = _SansIOProtocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


def _park_parser(ws: ServerProtocol) -> None:
    """PERF: drop websockets' frame parser and its empty stream reader while they wait for
    the next frame (~550 bytes of suspended generators and buffers per idle socket).

    Between frames, with nothing buffered, ``Protocol.parse()`` sits in
    ``yield from reader.at_eof()`` at the top of its loop and holds no state of its own
    (the size of a fragmented message lives on ``ws``), so a fresh reader and parser started
    by ``_unpark_parser`` continue exactly where these stood. Any other point (inside a
    frame, ``discard()`` after a close) keeps both.
    """
    parser: Any = ws.parser
    if parser is None or parser.gi_code is not _FRAME_PARSER or ws.reader.buffer:
        return
    waiting = parser.gi_yieldfrom
    if waiting is not None and getattr(waiting, "gi_code", None) is _AT_EOF:
        _unset(ws)


def _unset(ws: Any) -> None:
    """Parked: no reader, no parser (only this module's code ever steps them)."""
    ws.parser = ws.reader = None


def _unpark_parser(ws: ServerProtocol) -> None:
    """Start the reader and frame parser again before anything in websockets uses them
    (``receive_data``, ``receive_eof``, ``fail``)."""
    if ws.parser is None:
        ws.reader = StreamReader()
        ws.parser = _SansIOProtocol.parse(ws)
        next(ws.parser)


def accept_handshake(ws: ServerProtocol, request: Request) -> Response:
    """Validate the handshake request and negotiate extensions and subprotocol.

    Returns websockets' response: 101 with the headers to send, or an error status and body.
    """
    response = ws.accept(request)
    state: Any = ws
    if not ws.extensions:
        # PERF: websockets only iterates the negotiated extensions; none is one shared tuple
        # instead of an empty list per socket.
        state.extensions = ()
    # PERF: websockets' per-connection UUID only names connections in its own log lines,
    # which microweb does not emit; a shared one saves ~100 bytes per open socket.
    state.id = _NO_ID
    return response


_NO_ID = uuid.UUID(int=0)


class _Handler(Protocol):
    """What the connection calls back (WebSocketHandler implements it)."""

    def _ws_message(self, message: str | bytes) -> None: ...
    def _ws_ping(self, data: bytes) -> None: ...
    def _ws_pong(self, data: bytes) -> None: ...
    def _ws_closed(self, code: int | None, reason: str | None) -> None: ...


class _Timer(Protocol):
    def cancel(self) -> None: ...


class Limits(NamedTuple):
    """The timing and buffer settings of a connection (one shared object per combination)."""

    ping_interval: float | None
    ping_timeout: float | None
    max_write_buffer: int | None
    close_timeout: float


@functools.lru_cache(maxsize=64)
def _limits(ping_interval: float | None, ping_timeout: float | None,
            max_write_buffer: int | None, close_timeout: float) -> Limits:
    return Limits(ping_interval or None, ping_timeout or ping_interval or None,
                  max_write_buffer, close_timeout)


class WebSocketProtocol:
    """Implements the server's upgrade protocol (connection_made/data_received/connection_lost).

    Timers: at most one is pending, so the protocol itself is the callback (``__call__``)
    and what it does follows from the state: the closing handshake's deadline while a close
    is expected, else the keepalive (send a ping every ``ping_interval``; a peer silent for
    ``ping_timeout`` after one is dead).
    """

    # PERF: one per open socket; 12 slots keep it in a 128-byte block, the settings are one
    # shared tuple and the timer needs no bound method
    __slots__ = ("ws", "handler", "limits", "transport", "_lock", "_lost", "_backlog",
                 "_message", "_text_decoder", "_timer", "_ping_sent_at", "_last_received")

    def __init__(self, ws: ServerProtocol, handler: _Handler, *,
                 ping_interval: float | None = None, ping_timeout: float | None = None,
                 max_write_buffer: int | None = None, close_timeout: float = 5.0) -> None:
        self.ws = ws
        self.handler = handler
        self.limits = _limits(ping_interval, ping_timeout, max_write_buffer, close_timeout)
        self.transport: Any = None
        self._lock = threading.Lock()
        self._lost = False
        self._backlog = 0  # bytes sent before connection_made
        self._message: list[bytes] | None = None  # fragments of the message being received
        self._text_decoder: codecs.IncrementalDecoder | None = None
        self._timer: _Timer | None = None
        self._ping_sent_at = 0.0  # while a keepalive ping waits for its answer
        self._last_received = 0.0  # PERF: a float per socket only once bytes arrived

    @property
    def ping_interval(self) -> float | None:
        return self.limits.ping_interval

    @property
    def ping_timeout(self) -> float | None:
        return self.limits.ping_timeout

    @property
    def max_write_buffer(self) -> int | None:
        return self.limits.max_write_buffer

    @property
    def close_timeout(self) -> float:
        return self.limits.close_timeout

    # -- the upgrade protocol (called by the server) -----------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Attach the transport, send what ``open()`` queued and start the keepalive pings."""
        with self._lock:
            self.transport = transport
            dropped = self._lost  # the backlog overflowed before the server took the socket
            if not dropped:
                self._flush()
                interval = self.limits.ping_interval
                if interval and self.ws.state is OPEN and self._timer is None:
                    self._timer = transport.call_later(interval, self)
        if dropped:  # on_close already ran: the socket must not stay open behind it
            transport.abort()
            return
        connected = getattr(self.handler, "_ws_connected", None)
        if connected is not None:
            connected()

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the parser, answer control frames, deliver complete messages in order."""
        self._last_received = time.monotonic()
        with self._lock:
            if self._lost:
                return
            _unpark_parser(self.ws)
            self.ws.receive_data(data)
            _park_parser(self.ws)
            events = [e for e in self.ws.events_received() if isinstance(e, Frame)]
            deliveries = self._assemble(events)
            self._flush()
        for kind, payload in deliveries:
            if not self._deliver(kind, payload):
                break

    def connection_lost(self, exc: BaseException | None) -> None:
        """The socket is gone: stop the timers and call ``on_close`` exactly once."""
        with self._lock:
            if self._lost:
                return
            self._lost = True
            self._cancel_timer()
            _unpark_parser(self.ws)
            self.ws.receive_eof()
            self.ws.data_to_send()  # nothing can be sent any more
            rcvd = self.ws.close_rcvd
        if exc is not None:
            log.debug("websocket connection lost: %r", exc)
        code = reason = None
        if rcvd is not None and rcvd.code != CloseCode.NO_STATUS_RCVD:
            code, reason = rcvd.code, rcvd.reason
        self.handler._ws_closed(code, reason)

    # -- sending (any thread) ----------------------------------------------------------------

    def send(self, data: str | bytes, binary: bool) -> None:
        """Send one message; raise WebSocketClosedError once closing; bound slow readers."""
        payload = data.encode() if isinstance(data, str) else data
        with self._lock:
            self._check_open()
            if binary:
                self.ws.send_binary(payload)
            else:
                self.ws.send_text(payload)
            self._flush()
            dropped = self._check_write_buffer(len(payload))
        if dropped:  # the server never took the socket over and the backlog overflowed
            self.handler._ws_closed(None, None)
            raise WebSocketClosedError("the WebSocket was never connected")

    def ping(self, data: bytes = b"") -> None:
        """Send a ping frame (the answer arrives in ``on_pong``)."""
        with self._lock:
            self._check_open()
            self.ws.send_ping(data)
            self._flush()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake; the TCP connection is dropped after ``close_timeout``."""
        if code is None and reason:
            code = CloseCode.NORMAL_CLOSURE
        with self._lock:
            if self._lost or self.ws.state is not OPEN:
                return
            self.ws.send_close(code, reason or "")
            self._flush()

    def shutdown(self) -> None:
        """The server is stopping: close with 1001 (going away) so clients can reconnect."""
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def discard(self) -> None:
        """The connection will never be made (handshake refused): drop what is queued."""
        with self._lock:
            self._lost = True
            self.ws.data_to_send()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: close frame, then close the TCP connection (no handshake)."""
        with self._lock:
            self._fail(code, reason)

    @property
    def is_open(self) -> bool:
        return not self._lost and self.ws.state is OPEN

    @property
    def close_sent(self) -> Close | None:
        return self.ws.close_sent

    # -- internals (called with the lock held) -----------------------------------------------

    def _check_open(self) -> None:
        if self._lost or self.ws.state is not OPEN:
            raise WebSocketClosedError("the WebSocket is closed")

    def _fail(self, code: int, reason: str) -> None:
        if self._lost or self.ws.state is CLOSED:
            return
        _unpark_parser(self.ws)  # fail() switches to discard(), which reads
        self.ws.fail(code, reason)
        self._flush()

    def _flush(self) -> None:
        """Write what the Sans-I/O object produced; SEND_EOF means close the TCP connection."""
        transport = self.transport
        if transport is None:
            return  # before connection_made: the writes stay queued in self.ws
        for chunk in self.ws.data_to_send():
            if chunk is SEND_EOF or chunk == SEND_EOF:
                transport.close()
            else:
                transport.write(chunk)
        if self.ws.close_expected() and self._ping_sent_at >= 0 and not self._lost:
            # A peer that never completes the closing handshake (or never reads what is
            # queued before the close frame) must not hold the connection forever. The
            # keepalive stops: the closing deadline is shorter than its answer would be.
            self._cancel_timer()
            self._ping_sent_at = -1.0  # marks the closing deadline as started
            self._timer = transport.call_later(self.limits.close_timeout, self)

    def _check_write_buffer(self, sent: int) -> bool:
        """Bound unsent bytes; True when a never-connected socket was dropped."""
        limit = self.limits.max_write_buffer
        if not limit:
            return False
        if self.transport is None:
            # Before connection_made (messages sent during open() or by other threads): if
            # the server never takes the socket over, this backlog must not grow forever.
            self._backlog += sent
            if self._backlog > limit:
                log.warning("websocket never connected, %d bytes waiting: dropping it", limit)
                self._lost = True
                self.ws.data_to_send()
                return True
        elif self.transport.get_write_buffer_size() > limit:
            log.warning("websocket client too slow: more than %d bytes unsent, closing", limit)
            self._fail(CloseCode.POLICY_VIOLATION, "client too slow")
        return False

    def _assemble(self, frames: list[Frame]) -> list[tuple[str, Any]]:
        """Turn frames into (kind, payload) deliveries; invalid UTF-8 fails with 1007."""
        out: list[tuple[str, Any]] = []
        for frame in frames:
            op = frame.opcode
            if op is Opcode.PING:
                out.append(("ping", bytes(frame.data)))
            elif op is Opcode.PONG:
                out.append(("pong", bytes(frame.data)))
            elif op is Opcode.TEXT or op is Opcode.BINARY or op is Opcode.CONT:
                try:
                    message = self._add_fragment(frame)
                except UnicodeDecodeError as exc:
                    # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection
                    # (checked per fragment, so a bad stream is refused early).
                    self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                    break
                if message is not None:
                    out.append(("message", message))
        return out

    def _add_fragment(self, frame: Frame) -> str | bytes | None:
        if frame.opcode is not Opcode.CONT:  # first frame of a message
            self._message = []
            self._text_decoder = _UTF8() if frame.opcode is Opcode.TEXT else None
        assert self._message is not None  # websockets refuses a stray continuation frame
        data = bytes(frame.data)
        self._message.append(data)
        if self._text_decoder is not None:
            self._text_decoder.decode(data, final=frame.fin)
        if not frame.fin:
            return None
        payload = b"".join(self._message)
        text = self._text_decoder is not None
        self._message, self._text_decoder = None, None
        return payload.decode() if text else payload

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- callbacks to the handler (no lock held) ---------------------------------------------

    def _deliver(self, kind: str, payload: Any) -> bool:
        """Run one handler callback; an exception is logged and closes with 1011."""
        try:
            if kind == "message":
                self.handler._ws_message(payload)
            elif kind == "ping":
                self.handler._ws_ping(payload)
            else:
                self.handler._ws_pong(payload)
        except Exception:
            log.exception("Uncaught exception in the WebSocket %s callback", kind)
            self.fail(CloseCode.INTERNAL_ERROR, "server error")
            return False
        return True

    # -- the timer (runs on a worker thread, serialized with data_received) -----------------

    def __call__(self) -> None:
        """The one pending timer is due: the closing deadline, a ping, or its answer's."""
        with self._lock:
            self._timer = None
            transport = self.transport
            if self._lost or transport is None:
                return
            if self._ping_sent_at < 0:
                log.debug("websocket closing handshake timed out, dropping the connection")
                transport.abort()
            elif self._ping_sent_at:
                self._check_alive(transport)
            elif self.ws.state is OPEN:
                self._ping_sent_at = time.monotonic()
                self.ws.send_ping(os.urandom(4))
                self._flush()
                if self._ping_sent_at > 0 and not self._lost:  # _flush may start the close
                    self._timer = transport.call_later(self.limits.ping_timeout or 0, self)

    def _check_alive(self, transport: Any) -> None:
        """A ping's answer time is up: drop a silent peer, else plan the next ping."""
        limits, sent = self.limits, self._ping_sent_at
        if self._last_received < sent:
            log.info("websocket peer did not answer a ping in %ss, closing", limits.ping_timeout)
            transport.abort()
            return
        self._ping_sent_at = 0.0
        delay = max(0.0, sent + (limits.ping_interval or 0) - time.monotonic())
        self._timer = transport.call_later(delay, self)


__all__ = ["WebSocketClosedError", "WebSocketProtocol"]
