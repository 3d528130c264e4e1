"""The upgrade extension: a connection taken over by a protocol after ``101 Switching Protocols``.

After the switch, the event loop does the socket I/O (non-blocking reads and flushes) and the
protocol's callbacks run on pool threads, one at a time and in order per connection, through a
small per-connection queue: ``connection_made`` once, ``data_received`` per chunk,
``connection_lost`` exactly once. An idle upgraded connection is only an epoll registration
and this object: it holds no thread. Reading pauses while too much received data waits for
the protocol (backpressure), and ``get_write_buffer_size`` lets the protocol bound slow readers.
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .poller import ERR, HUP, IN, ONESHOT, OUT

if TYPE_CHECKING:
    from .loop import Server

__all__ = ["ProtocolTimer", "TimerWheel", "Transport", "UpgradedConnection"]

log = logging.getLogger("microweb.server")

_READ_HIGH_WATER = 1 << 20  # received bytes not yet handed to the protocol: stop reading
_RECV_SIZE = 65536
_IN, _OUT, _ONESHOT = IN, OUT, ONESHOT
_GONE = HUP | ERR


class Transport:
    """What the protocol gets in ``connection_made``; every method is thread-safe.

    The connection itself is the transport (PERF: no second object per socket); this base
    class is the part of it a protocol may use.
    """

    __slots__ = ()

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending; never blocks."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush what is queued, then close."""
        raise NotImplementedError

    def abort(self, exc: BaseException | None = None) -> None:
        """Close at once, dropping queued data."""
        raise NotImplementedError

    def is_closing(self) -> bool:
        raise NotImplementedError

    def get_write_buffer_size(self) -> int:
        """Bytes queued but not yet accepted by the kernel."""
        raise NotImplementedError

    def call_later(self, delay: float, callback: Callable[[], Any]) -> ProtocolTimer:
        """Run ``callback`` after ``delay`` seconds (at most ``_TICK`` late), serialized with
        data_received; the handle's ``cancel()`` prevents it."""
        raise NotImplementedError

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        raise NotImplementedError


class ProtocolTimer:
    """A protocol's timer: when due, its callback is queued behind the connection's other
    callbacks (PERF: a slotted handle, no closure, no heap entry of its own)."""

    __slots__ = ("conn", "callback", "cancelled")

    def __init__(self, conn: UpgradedConnection, callback: Callable[[], Any]) -> None:
        self.conn = conn
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        conn = self.conn
        with conn.lock:
            if not self.cancelled and not conn.lost:
                conn._enqueue(conn._run_timer, self, self.callback)


class TimerWheel:
    """The protocol timers of one server in buckets of ``_TICK`` seconds: the loop holds one
    timer per non-empty bucket instead of a heap entry per socket (PERF: ~120 bytes less per
    idle WebSocket, whose keepalive always has a timer pending)."""

    __slots__ = ("buckets", "lock")

    def __init__(self) -> None:
        self.buckets: dict[int, list[ProtocolTimer]] = {}
        self.lock = threading.Lock()

    def add(self, server: Server, handle: ProtocolTimer, delay: float) -> None:
        now = time.monotonic()
        tick = math.ceil((now + max(0.0, delay)) / _TICK)
        with self.lock:
            bucket = self.buckets.get(tick)
            if bucket is not None:
                bucket.append(handle)
                return
            self.buckets[tick] = [handle]
        server.call_later(tick * _TICK - now, functools.partial(self.fire, tick))

    def fire(self, tick: int) -> None:
        """The loop's timer for ``tick`` is due (coordinating thread)."""
        with self.lock:
            bucket = self.buckets.pop(tick, ())
        for handle in bucket:
            handle.fire()


_TICK = 0.05


class UpgradedConnection(Transport):
    """A socket driven by a protocol object instead of the HTTP parser; it is also the
    protocol's transport."""

    # PERF: one per open socket; 12 slots keep it in a 128-byte block
    __slots__ = ("server", "sock", "fd", "protocol", "lock", "out", "closing", "closed",
                 "queue", "running", "lost", "pending_in")

    def __init__(self, server: Server, sock: socket.socket, remote: tuple[str, str],
                 protocol: Any) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol = protocol
        self.lock = threading.RLock()
        self.out: bytes | bytearray = b""  # PERF: a bytearray only while bytes wait
        self.closing = False
        self.closed = False
        # PERF: a list only while callbacks wait (an idle socket holds neither buffer)
        self.queue: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self.running = False
        self.lost = False
        self.pending_in = 0  # ``remote``: the socket knows its peer (get_extra_info)

    # -- start ---------------------------------------------------------------------------

    def start(self, leftover: bytes) -> None:
        """Deliver connection_made (and bytes read past the 101 request), then listen."""
        with self.lock:
            self._enqueue(self.protocol.connection_made, self)
            if leftover:
                self.pending_in += len(leftover)
                self._enqueue(self._deliver, leftover)
            self._rearm()

    # -- loop thread: readiness ----------------------------------------------------------

    def on_event(self, mask: int) -> None:
        """epoll said the socket is readable and/or writable (runs on the loop thread)."""
        with self.lock:
            if self.closed:
                return
            if mask & _OUT or (mask & _GONE and self.out):
                self._flush()
            if not self.closed and mask & (_IN | _GONE) and not self.closing:
                self._read()
            if not self.closed:
                self._rearm()

    def _read(self) -> None:
        sock = self.sock
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                return self._finish(exc)
            if not data:
                return self._finish(None)
            self.pending_in += len(data)
            self._enqueue(self._deliver, data)
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return

    def _flush(self) -> None:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError as exc:
                return self._finish(exc)
            del self.out[:sent]  # type: ignore[union-attr]  # a bytearray when non-empty
            if not self.out:
                self.out = b""
        if not self.out and self.closing:
            self._finish(None)

    def _rearm(self) -> None:
        mask = _ONESHOT
        if not self.closing and self.pending_in < _READ_HIGH_WATER:
            mask |= _IN
        if self.out:
            mask |= _OUT
        try:
            self.server.epoll.modify(self.fd, mask)
        except OSError:  # already closed
            pass

    # -- any thread: the transport -------------------------------------------------------

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.closing or self.closed or not data:
                return
            if not self.out:  # PERF: usually the kernel takes it all at once, no loop trip
                try:
                    sent = self.sock.send(data)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    sent = 0
                except OSError as exc:
                    return self._finish(exc)
                if sent == len(data):
                    return
                data = data[sent:]
            if self.out:
                self.out += data
            else:
                self.out = bytearray(data)
            self._rearm()

    def close(self) -> None:
        with self.lock:
            if self.closing or self.closed:
                return
            self.closing = True
            if self.out:
                self._rearm()  # the loop flushes, then finishes
            else:
                self._finish(None)

    def shutdown(self) -> None:
        """The server is stopping: the protocol's ``shutdown()`` says goodbye (a WebSocket
        closes with 1001) in order with its other callbacks; without one, just close."""
        stop = getattr(self.protocol, "shutdown", None)
        if stop is None:
            return self.close()
        with self.lock:
            if not self.closing and not self.closed:
                self._enqueue(stop)

    def abort(self, exc: BaseException | None = None) -> None:
        with self.lock:
            self.closing = True
            self.out = b""
            self._finish(exc)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return len(self.out)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> ProtocolTimer:
        handle = ProtocolTimer(self, callback)
        self.server.protocol_timers.add(self.server, handle, delay)
        return handle

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        try:
            if name == "peername":
                return self.sock.getpeername()
            if name == "sockname":
                return self.sock.getsockname()
            if name == "socket":
                return self.sock
            if name == "ssl_object" and isinstance(self.sock, ssl.SSLSocket):
                return self.sock
        except OSError:
            return default
        return default

    # -- ending --------------------------------------------------------------------------

    def _finish(self, exc: BaseException | None) -> None:
        """Close the socket and schedule connection_lost exactly once (lock held)."""
        if self.closed:
            return
        self.closed = self.closing = True
        self.server.forget(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
        self._enqueue(self._lose, exc)

    # -- pool threads: the protocol callbacks, serialized ---------------------------------

    def _enqueue(self, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            if self.queue is None:
                self.queue = []
            self.queue.append((fn, args))
            if not self.running:
                self.running = True
                self.server.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.queue:
                    self.queue = None
                    self.running = False
                    return
                fn, args = self.queue.pop(0)
                if self.lost:
                    continue
            try:
                fn(*args)
            except Exception as exc:
                log.exception("error in upgraded protocol %r", self.protocol)
                self.abort(exc)

    def _deliver(self, data: bytes) -> None:
        self.protocol.data_received(data)
        with self.lock:
            paused = self.pending_in >= _READ_HIGH_WATER
            self.pending_in -= len(data)
            if paused and self.pending_in < _READ_HIGH_WATER and not self.closed:
                self._rearm()

    def _run_timer(self, handle: ProtocolTimer, callback: Callable[[], Any]) -> None:
        if not handle.cancelled:
            callback()

    def _lose(self, exc: BaseException | None) -> None:
        self.lost = True
        with self.lock:
            self.queue = None
        self.protocol.connection_lost(exc)
