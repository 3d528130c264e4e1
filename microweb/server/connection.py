"""One HTTP/1.1 connection: read, parse, run requests in order, park when idle.

Ownership rule (this is what makes the server thread-safe without a lock per connection):
a connection is owned either by the event loop (parked: registered one-shot in epoll, no thread
holds it) or by exactly one pool thread (from the readable event until it parks or closes it).
The owning thread reads, runs the app and writes; pipelined requests are served in order by
the same thread; the connection then goes back to the loop with a deadline (header or idle
keep-alive timeout) that the loop enforces.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from . import task
from .http11 import ProtocolError, Request, RequestParser
from .writer import ClientDisconnected, send_all, wait_readable

if TYPE_CHECKING:
    from .loop import Server

__all__ = ["HTTPConnection"]

log = logging.getLogger("microweb.server")

RECV_SIZE = 65536
_LINGER = 2.0  # seconds a closing connection discards an unwanted body (Apache's lingering close)
_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
            414: "URI Too Long", 417: "Expectation Failed",
            431: "Request Header Fields Too Large", 501: "Not Implemented",
            505: "HTTP Version Not Supported"}


class HTTPConnection:
    """State of one client connection speaking HTTP/1.x."""

    __slots__ = ("server", "sock", "fd", "remote", "base", "parser", "parked", "deadline",
                 "head_deadline", "closed", "tls", "handshaken", "error", "broken", "served",
                 "registered", "lingering")

    def __init__(self, server: Server, sock: socket.socket, remote: tuple[str, str],
                 base: dict[str, Any], tls: bool) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.remote = remote
        self.base = base
        config = server.config
        self.parser = RequestParser(config.max_request_line, config.max_header_size,
                                    config.max_header_count, config.max_body_size,
                                    config.max_header_field_size)
        self.parked = True
        self.deadline = 0.0
        self.head_deadline: float | None = None
        self.closed = False
        self.tls = tls
        self.handshaken = not tls
        self.error: ProtocolError | None = None  # a parse error waiting for earlier answers
        self.broken = False  # the body stream failed: the connection cannot be reused
        self.served = 0  # requests answered on this connection
        self.registered = False  # with the server's epoll: only once it has waited
        self.lingering = False  # closing: our FIN is sent, what arrives is discarded

    # -- entry point from the loop (pool thread) -----------------------------------------

    def on_readable(self) -> None:
        """Handle a readable event: receive, parse, serve what is complete, park again."""
        if self.lingering:
            return self._discard()
        sock = self.sock
        while True:
            try:
                if not self.handshaken:
                    sock.do_handshake()  # type: ignore[attr-defined]
                    self.handshaken = True
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return self._park()
            except (OSError, ssl.SSLError) as exc:
                log.debug("connection from %s failed: %s", self.remote[0], exc)
                return self.close()
            if not data:
                return self.close()
            try:
                self.parser.feed(data)
            except ProtocolError as exc:
                self.error = exc
            if not self._serve():
                return None
            # TLS may hold decrypted bytes epoll cannot see; plain sockets go back to the loop
            if not self.tls or not sock.pending():  # type: ignore[attr-defined]
                return self._park()

    def _serve(self) -> bool:
        """Serve every queued request in order; False once the connection is gone."""
        requests = self.parser.requests
        server = self.server
        while requests:
            req = requests[0]
            outcome = task.run(self, req)
            del requests[0]
            self.served += 1
            if outcome is task.UPGRADED:
                return False
            if not outcome or self.broken or not self._finish_body(req) or server.draining:
                if req.complete or self.broken:
                    self.close()
                else:
                    self._close_lingering()
                return False
            self.head_deadline = None
        if self.error is not None:
            self._reject(self.error)
            return False
        return True

    def drainable(self, req: Request) -> bool:
        """False when what ``req``'s app has left unread is already known to be too large
        (or too uncertain) to drain, so the connection must close after the response."""
        if req.complete:
            return True
        if req.expect_continue:  # we never asked for the body: its arrival is uncertain
            return False
        limit: int = self.server.config.drain_limit
        if req.content_length is not None:
            return req.content_length - req.consumed <= limit
        return req.received - req.consumed <= limit  # chunked: only a lower bound is known

    def _finish_body(self, req: Request) -> bool:
        """Discard what the app left unread so the next request can be parsed."""
        if req.complete:
            req.body.clear()
            return True
        if not self.drainable(req):
            return False
        limit = self.server.config.drain_limit
        drained = 0
        try:
            while not req.complete:
                while req.body:
                    drained += len(req.body.popleft())
                if drained > limit or not self.read_body(req):
                    return False
        except (ProtocolError, ClientDisconnected):
            return False
        req.body.clear()
        return True

    # -- services for the request task ---------------------------------------------------

    def read_body(self, req: Request) -> bool:
        """Receive more of ``req``'s body into the parser (waits at most body_timeout)."""
        if self.error is not None:
            self.broken = True
            raise self.error
        if req.expect_continue:
            req.expect_continue = False
            if not req.responded:
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock = self.sock
        timeout = self.server.config.body_timeout
        while True:
            try:
                data = sock.recv(RECV_SIZE)
                break
            except (BlockingIOError, ssl.SSLWantReadError):
                try:
                    wait_readable(sock, timeout)
                except ClientDisconnected:
                    self.broken = True
                    raise
            except OSError as exc:
                self.broken = True
                raise ClientDisconnected(str(exc)) from exc
        if not data:
            self.broken = True
            raise ClientDisconnected("client closed the connection during the request body")
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.broken = True
            self.error = exc
            raise
        return not req.complete or bool(req.body)

    def send(self, data: bytes) -> None:
        """Write ``data`` completely (waits at most write_timeout for a slow reader)."""
        send_all(self.sock, data, self.server.config.write_timeout)

    def switch_protocol(self, protocol: Any) -> None:
        """Hand the socket to an upgrade protocol (after the 101 head went out)."""
        self.server.upgrade_connection(self, protocol, self.parser.leftover)

    # -- ending and parking --------------------------------------------------------------

    def _reject(self, exc: ProtocolError) -> None:
        """Answer a protocol error with its status and close (no smuggling past a bad head)."""
        log.info("bad request from %s: %s %s", self.remote[0], exc.status, exc.reason)
        reason = _REASONS.get(exc.status, "Bad Request")
        body = f"{exc.status} {reason}: {exc.reason}\n".encode("latin-1", "replace")
        head = (f"HTTP/1.1 {exc.status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            self.send(head.encode("latin-1") + body)
        except ClientDisconnected:
            pass
        self.close()

    def timed_out(self) -> None:
        """Called by the loop when a parked connection passed its deadline: a client in the
        middle of a request head gets a 408; an idle or lingering one is just closed."""
        if self.parser.in_head() and not self.lingering:
            log.info("closing slow client %s: request head not complete in time", self.remote[0])
            body = b"408 Request Timeout: request head not complete in time\n"
            head = ("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            try:  # one non-blocking attempt: the loop thread must never wait on a client
                self.sock.send(head.encode("latin-1") + body)
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.recv(RECV_SIZE)  # unread bytes would turn the close into a reset
            except (OSError, ValueError):
                pass
        self.close()

    def _close_lingering(self) -> None:
        """Close while the client may still be sending a body we will not read: send our FIN
        first and discard what arrives for up to ``_LINGER`` seconds, because closing with
        unread bytes makes the kernel answer with a reset that can destroy the response
        before it is read. The connection waits parked meanwhile: no thread is held."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            return self.close()
        self.lingering = True
        self.deadline = time.monotonic() + _LINGER
        self._discard()

    def _discard(self) -> None:
        """Read and drop what a lingering connection received; closed at EOF or its deadline."""
        sock = self.sock
        while True:
            try:
                if not sock.recv(RECV_SIZE):
                    return self.close()  # the client closed too
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return self.server.park(self, self.deadline)
            except (OSError, ValueError):  # a reset or a closed fd
                return self.close()

    def wait_for_request(self) -> None:
        """Give a connection no thread is serving to the pollers (a new one, say)."""
        self._park()

    def _park(self) -> None:
        server = self.server
        if server.draining and not self.parser.in_head():
            return self.close()
        if self.parser.in_head() or not self.served:  # a head, or a TLS handshake, under way
            if self.head_deadline is None:
                self.head_deadline = time.monotonic() + server.config.header_timeout
            deadline = self.head_deadline
        else:
            deadline = time.monotonic() + server.config.keepalive_timeout
        server.park(self, deadline)

    def close(self) -> None:
        """Close the socket and forget the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.server.forget(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
