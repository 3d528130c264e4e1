"""Running one request through the WSGI application and writing its response.

Everything PEP 3333 asks of a server for the response side lives here: ``start_response``
(with the ``exc_info`` rules), the ``write`` callable, headers withheld until the first
non-empty body chunk, framing (Content-Length, chunked on 1.1, close-delimited on 1.0),
``wsgi.file_wrapper`` over ``os.sendfile``, HEAD, and ``close()`` on the result exactly once.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from .body import InputStream
from .environ import build_environ
from .http11 import ProtocolError, Request
from .writer import ClientDisconnected, http_date, send_file

if TYPE_CHECKING:
    from .connection import HTTPConnection

__all__ = ["UPGRADED", "FileWrapper", "Response", "run"]

log = logging.getLogger("microweb.server")
access_log = logging.getLogger("microweb.server.access")

UPGRADED = "upgraded"  # run()'s answer when the connection was handed to a protocol

# Hop-by-hop headers a WSGI app must not set (PEP 3333); Connection is honoured instead.
_HOP_BY_HOP = frozenset({"keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "trailers", "transfer-encoding", "upgrade"})
_NO_BODY_STATUS = frozenset({204, 304})
# RFC 9110 5.1/5.6.2: a field name is a token (no space, colon, control or non-ASCII byte)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 field values: visible characters, obs-text, space and tab; no other controls
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKENS_SEEN: set[str] = set()  # header names already found valid (bounded)


class InvalidHeader(ValueError):
    """A response header from the application that cannot be put on the wire as given."""


class FileWrapper:
    """``wsgi.file_wrapper``: the server sends it with ``os.sendfile`` when it can."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read, size = self.filelike.read, self.blksize
        while data := read(size):
            yield data


class Response:
    """The response side of one request: start_response, write and framing state."""

    __slots__ = ("conn", "req", "status", "headers", "head_sent", "chunked", "length", "sent",
                 "keep_alive", "protocol", "head_only", "code")

    def __init__(self, conn: HTTPConnection, req: Request, keep_alive: bool) -> None:
        self.conn = conn
        self.req = req
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False
        self.length: int | None = None
        self.sent = 0
        self.keep_alive = keep_alive
        self.protocol: Any = None
        self.head_only = False
        self.code = 0

    # -- the WSGI callables --------------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:  # too late to change the response: re-raise (PEP 3333)
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called twice without exc_info")
        if (type(status) is not str or len(status) < 4 or status[3] != " "
                or not status[:3].isdigit() or "\n" in status or "\r" in status):
            raise ValueError(f"invalid WSGI status {status!r}")
        if type(headers) is not list:
            raise TypeError("WSGI response headers must be a list")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write`` callable: sends ``data`` at once."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if type(data) is not bytes:
            data = bytes(data)
        if not self.head_sent:
            self.conn.send(self._head(None) + self._frame(data))
        elif data:
            self.conn.send(self._frame(data))

    def upgrade(self, protocol: Any) -> None:
        """``environ["microweb.upgrade"]``: take the connection over after a 101 answer."""
        if protocol is None:
            raise TypeError("upgrade() needs a protocol object")
        self.protocol = protocol

    def release(self) -> None:
        """After the switch: drop the connection and request (``environ["microweb.upgrade"]``
        keeps this object alive as long as the environ lives)."""
        self.conn = self.req = self.protocol = None  # type: ignore[assignment]
        self.headers = []

    # -- framing -------------------------------------------------------------------------

    def _head(self, body_length: int | None) -> bytes:
        """Serialise the status line and headers, deciding the framing of the body."""
        status = self.status
        assert status is not None
        code = self.code = int(status[:3])
        req = self.req
        lines = ["HTTP/1.1 ", status, "\r\n"]
        length, has_date, has_server = self._app_headers(lines, code)
        if code < 200 or code in _NO_BODY_STATUS:
            self.head_only = True
        elif req.method == "HEAD":
            self.head_only = True
        elif length is None:
            if body_length is not None:
                length = body_length
                lines.append(f"Content-Length: {length}\r\n")
            elif req.version == "1.1":
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0 without a length: the close delimits it
        self.length = length
        conn = self.conn
        if conn.broken or conn.server.draining or not (req.complete or conn.drainable(req)):
            # a failed body, a stopping server, or an unread body too large (or too uncertain)
            # to drain: the connection ends after this response, so the head must say so
            self.keep_alive = False
        if code != 101:
            if not self.keep_alive:
                lines.append("Connection: close\r\n")
            elif req.version == "1.0":
                lines.append("Connection: keep-alive\r\n")
        if not has_date:
            lines += ("Date: ", http_date(), "\r\n")
        server = conn.server.server_header
        if server and not has_server:
            lines += ("Server: ", server, "\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")  # a non-latin-1 header fails here: 500 next
        self.head_sent = True
        req.responded = True  # an answer came first: a 100 Continue would be wrong now
        return head

    def _app_headers(self, lines: list[str], code: int) -> tuple[int | None, bool, bool]:
        length = None
        has_date = has_server = False
        for name, value in self.headers:
            if type(name) is not str or type(value) is not str:
                raise TypeError(f"WSGI header {name!r} must be (str, str)")
            if name not in _TOKENS_SEEN:  # PERF: an app sends the same few names each time
                if _TOKEN.fullmatch(name) is None:
                    raise InvalidHeader(
                        f"response header name {name!r} is not an RFC 9110 token")
                if len(_TOKENS_SEEN) < 1024:
                    _TOKENS_SEEN.add(name)
            # PERF: a printable value holds no control character; only others need the scan
            if not value.isprintable() and _BAD_VALUE_CHAR.search(value) is not None:
                raise InvalidHeader(f"control character in response header {name!r}")
            lname = name.lower()
            if lname == "content-length":
                length = int(value)
                if length < 0:
                    raise ValueError("negative Content-Length")
            elif lname == "connection":
                if "close" in value.lower():
                    self.keep_alive = False
                if code != 101:
                    continue  # the server writes its own Connection header
            elif lname == "date":
                has_date = True
            elif lname == "server":
                has_server = True
            elif lname in _HOP_BY_HOP and code != 101:
                raise InvalidHeader(f"hop-by-hop header {name!r} is not allowed from WSGI apps")
            lines += (name, ": ", value, "\r\n")
        return length, has_date, has_server

    def _frame(self, data: bytes) -> bytes:
        """The bytes to put on the wire for body ``data`` under the chosen framing."""
        if self.head_only or not data:
            return b""
        if self.chunked:
            self.sent += len(data)
            return b"%x\r\n%b\r\n" % (len(data), data)
        if self.length is not None:
            room = self.length - self.sent
            if len(data) > room:
                log.warning("response body longer than its Content-Length; truncated")
                data = data[:room]
                self.keep_alive = False
        self.sent += len(data)
        return data

    # -- sending the result --------------------------------------------------------------

    def send_result(self, result: Iterable[bytes]) -> None:
        """Send the app's iterable (lists in one syscall, file wrappers with sendfile)."""
        if type(result) is list and not self.head_sent and self.status is not None:
            # PERF: the common case (one buffered body) gets a Content-Length and one send
            body = b"".join(result)
            self.conn.send(self._head(len(body) if self.req.method != "HEAD" else None)
                           + self._frame(body))
        elif type(result) is FileWrapper and self._sendfile(result):
            return
        else:
            for data in result:
                if data:
                    self.write(data)
        self.finish()

    def finish(self) -> None:
        """Terminate the body: head if still unsent, last chunk, length check."""
        if self.status is None:
            raise AssertionError("the application returned without calling start_response()")
        if not self.head_sent:
            self.conn.send(self._head(0 if self.req.method != "HEAD" else None))
        elif self.chunked:
            self.conn.send(b"0\r\n\r\n")
        if self.length is not None and self.sent < self.length and not self.head_only:
            log.warning("response body shorter than its Content-Length; closing")
            self.keep_alive = False

    def _sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a real file with os.sendfile; False when the generic path must be used."""
        conn, filelike = self.conn, wrapper.filelike
        if conn.tls or self.head_sent or self.status is None or not hasattr(filelike, "fileno"):
            return False
        try:
            fd = filelike.fileno()
            offset = filelike.tell() if hasattr(filelike, "tell") else 0
            size = os.fstat(fd).st_size - offset
        except (OSError, ValueError):
            return False
        head = self._head(size)
        if self.head_only:
            conn.send(head)
            return True
        count = size if self.length is None else min(self.length, size)
        conn.send(head)
        self.sent = send_file(conn.sock, fd, offset, count, conn.server.config.write_timeout)
        if self.length is not None and self.sent < self.length:
            self.keep_alive = False
        return True

    def fail(self, status: int, reason: str, keep_alive: bool) -> None:
        """Answer an error the app could not (only possible before the head was sent)."""
        if self.head_sent:
            self.keep_alive = False
            return
        body = reason.encode("latin-1", "replace")
        self.status = f"{status} {reason}"
        self.headers = [("Content-Type", "text/plain; charset=utf-8")]
        self.keep_alive = self.keep_alive and keep_alive
        self.chunked = False
        self.conn.send(self._head(len(body)) + (b"" if self.req.method == "HEAD" else body))


def _close_result(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("error in the response iterable's close()")


def run(conn: HTTPConnection, req: Request) -> bool | str:
    """Run the app for ``req``; True to keep the connection, UPGRADED if it was taken over."""
    server = conn.server
    resp = Response(conn, req, req.keep_alive and server.keep_alive and not req.upgrade)
    start = time.monotonic() if server.access_log else 0.0
    result = None
    try:
        environ = build_environ(conn.base, req, server.script_name, conn.remote)
        environ["wsgi.input"] = stream = InputStream(req, conn.read_body)
        environ["microweb.upgrade"] = resp.upgrade
        result = server.app(environ, resp.start_response)
        body = result
        if resp.status is None and type(result) is not list:
            body = _until_started(result, resp)  # start_response may come on the first next()
        if resp.protocol is not None and resp.status is not None and resp.status[:3] == "101":
            _close_result(result)
            result = None
            outcome = _switch(conn, resp)
            stream.detach()  # PERF: a kept environ must not pin the HTTP connection (~2 KiB)
            resp.release()
            return outcome
        resp.send_result(body)
    except ClientDisconnected:
        resp.keep_alive = False
    except ProtocolError as exc:  # a bad body (413, bad chunk) seen while the app read it
        log.info("bad request body from %s: %s", conn.remote[0], exc.reason)
        _safe_fail(resp, exc.status, exc.reason, False)
    except InvalidHeader as exc:  # the app's bug, found by the server: no server traceback
        log.error("error handling %s %s: %s", req.method, req.target.decode("latin-1"), exc)
        _safe_fail(resp, 500, "Internal Server Error", True)
    except Exception:
        log.exception("error handling %s %s", req.method, req.target.decode("latin-1"))
        _safe_fail(resp, 500, "Internal Server Error", True)
    finally:
        if result is not None:
            _close_result(result)
    if server.access_log:
        _log_access(conn, req, resp, start)
    if req.upgrade:  # an Upgrade that was not accepted: what follows the head is not HTTP
        return False
    return resp.keep_alive


def _until_started(result: Iterable[bytes], resp: Response) -> Iterable[bytes]:
    """Iterate ``result`` until start_response was called (PEP 3333 lets a middleware call it
    on the first ``next()``); returns the whole body, the chunks already taken included."""
    iterator = iter(result)
    for chunk in iterator:
        if resp.status is not None:
            return itertools.chain((chunk,), iterator)
        if chunk:
            raise AssertionError("the application yielded body bytes before start_response()")
    return ()


def _switch(conn: HTTPConnection, resp: Response) -> str:
    """Send the 101 head and hand the socket to the protocol; if the client is already gone,
    the protocol still learns it (``connection_lost``) so it can release what it holds."""
    protocol = resp.protocol
    try:
        conn.send(resp._head(None))
    except ClientDisconnected as exc:
        try:
            protocol.connection_lost(exc)
        except Exception:
            log.exception("error in connection_lost of %r", protocol)
        raise
    conn.switch_protocol(protocol)
    return UPGRADED


def _safe_fail(resp: Response, status: int, reason: str, keep_alive: bool) -> None:
    try:
        resp.fail(status, reason, keep_alive)
    except ClientDisconnected:
        resp.keep_alive = False
    except Exception:
        log.exception("error while sending an error response")
        resp.keep_alive = False


def _log_access(conn: HTTPConnection, req: Request, resp: Response, start: float) -> None:
    access_log.info('%s - - [%s] "%s %s HTTP/%s" %s %d %.1fms', conn.remote[0],
                    time.strftime("%d/%b/%Y:%H:%M:%S %z"), req.method,
                    req.target.decode("latin-1"), req.version, resp.code or "-", resp.sent,
                    (time.monotonic() - start) * 1000.0)
