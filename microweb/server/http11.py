"""HTTP/1.1 request parsing: httptools (llhttp) callbacks that turn bytes into ``Request`` heads.

Theory of operation: the connection pushes every received chunk into ``RequestParser.feed``.
llhttp calls us back; each request becomes a ``Request`` appended to ``parser.requests`` as soon
as its head is complete (so the body can be streamed to the app), and receives its body pieces
and ``complete`` flag as they arrive. Pipelined requests simply queue up behind it. Any protocol
violation raises ``ProtocolError`` carrying the status to answer before closing the connection.

llhttp runs in strict mode (no "dangerous leniencies"): it already rejects obs-fold, bare LF,
whitespace before the colon, NUL and CR in values, Content-Length together with
Transfer-Encoding, duplicate or non-numeric Content-Length, bad chunk sizes and a
Transfer-Encoding whose last coding is not ``chunked``; ``_inspect_headers`` refuses the other
codings it lets through (``gzip, chunked``) with 501. That is what keeps requests from being
smuggled past a front proxy.
"""

from __future__ import annotations

from collections import deque

import httptools

__all__ = ["ProtocolError", "Request", "RequestParser"]

# PERF: llhttp knows a fixed set of methods; decode each spelling once
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                    "OPTIONS", "CONNECT", "TRACE")}
# Slack on top of the configured head limits for the raw-bytes memory guard (one recv).
_RAW_SLACK = 65536


class ProtocolError(Exception):
    """The request cannot be served: answer ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Request:
    """One request head plus its body pieces as they arrive (filled in by the parser)."""

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "content_length",
                 "chunked", "expect_continue", "responded", "upgrade", "body", "received",
                 "complete", "consumed")

    def __init__(self) -> None:
        self.method = "GET"
        self.target = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False  # a 100 Continue is owed before the body is read
        self.responded = False  # the response head went out
        self.upgrade = False
        self.body: deque[bytes] = deque()
        self.received = 0  # body bytes parsed so far
        self.consumed = 0  # body bytes handed to the app so far
        self.complete = False


class RequestParser:
    """The httptools protocol object: enforces limits and queues parsed requests."""

    __slots__ = ("_parser", "requests", "_current", "_url", "_head_size", "_head_count",
                 "_raw", "_limits", "error", "leftover", "_resumed")

    def __init__(self, max_request_line: int, max_header_size: int, max_header_count: int,
                 max_body_size: int, max_header_field_size: int | None = None) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self.requests: list[Request] = []  # PERF: an empty deque costs ~600 bytes per idle conn
        self._current: Request | None = None
        self._url = b""
        self._head_size = 0
        self._head_count = 0
        self._raw = 0
        self._limits = (max_request_line, max_header_size, max_header_count, max_body_size,
                        max_header_size if max_header_field_size is None
                        else max_header_field_size)
        self.error: ProtocolError | None = None
        self.leftover = b""  # bytes after a head that asked for an Upgrade (not HTTP)
        self._resumed: Request | None = None  # an Upgrade request whose body is parsed next

    # -- feeding -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises ``ProtocolError`` on any violation of the protocol."""
        current = self._current
        in_head = current is not None and not current.target
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            rest = bytes(data[int(exc.args[0]):])
            upgrading = self.requests[-1] if self.requests else None
            if upgrading is not None and (upgrading.chunked or upgrading.content_length):
                return self._parse_upgrade_body(upgrading, rest)
            self.leftover = rest
            return
        except httptools.HttpParserError as exc:
            raise self._translate(exc) from None
        current = self._current
        if current is not None and not current.target:
            # memory guard for one huge header still being received (llhttp has no limit)
            self._raw = self._raw + len(data) if in_head else len(data)
            max_line, max_head = self._limits[0], self._limits[1]
            if self._raw > max_line + max_head + _RAW_SLACK:
                raise ProtocolError(414 if not self._head_count and not self._url else 431,
                                    "request head too large")

    def _parse_upgrade_body(self, req: Request, rest: bytes) -> None:
        """httptools skips the body of every Upgrade request (``curl --http2`` sends
        ``Upgrade: h2c`` on a POST): parse it as ``req``'s body with a head of the same
        framing, so the app reads it and no body byte is taken for a request."""
        framing = b"transfer-encoding: chunked" if req.chunked else (
            b"content-length: %d" % (req.content_length or 0))
        req.complete = False
        self._resumed = req
        self.feed(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n" + rest)

    def in_head(self) -> bool:
        """True while a request head has begun but is not complete yet."""
        current = self._current
        return current is not None and not current.target

    def _translate(self, exc: Exception) -> ProtocolError:
        if self.error is not None:
            return self.error
        message = str(exc) or type(exc).__name__
        if "HTTP version" in message or "PRI" in message:  # PRI: an HTTP/2 preface
            return ProtocolError(505, message)
        return ProtocolError(400, message)

    def _fail(self, status: int, reason: str) -> None:
        self.error = ProtocolError(status, reason)
        raise self.error

    # -- llhttp callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._resumed is not None:  # the stand-in head of an Upgrade request's body
            self._current = self._resumed
            self._head_size = self._raw = 0
            return
        self._current = Request()
        self._url = b""
        self._head_size = self._head_count = self._raw = 0

    def on_url(self, url: bytes) -> None:
        if self._resumed is not None:
            return
        self._url += url
        if len(self._url) > self._limits[0]:
            self._fail(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        current = self._current
        if current is None or self._resumed is not None:
            return
        if current.target:  # a chunked trailer field: counted, otherwise ignored
            self._head_size += len(name) + len(value)
            if self._head_size > self._limits[1]:
                self._fail(431, "trailer section too large")
            return
        self._head_count += 1
        size = len(name) + len(value) + 4  # "name: value\r\n"
        self._head_size += size
        if size > self._limits[4]:
            self._fail(431, "request header field too large")
        if self._head_count > self._limits[2]:
            self._fail(431, "too many header fields")
        if self._head_size > self._limits[1]:
            self._fail(431, "request header section too large")
        current.headers.append((name, value))

    def on_headers_complete(self) -> None:
        current = self._current
        assert current is not None
        if self._resumed is not None:  # the stand-in head: the request is already queued
            self._resumed = None
            return
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            self._fail(505, f"HTTP/{version} is not supported")
        current.version = version
        method = parser.get_method()
        current.method = _METHODS.get(method) or method.decode("ascii")
        current.target = self._url or b"/"
        current.keep_alive = parser.should_keep_alive()
        current.upgrade = parser.should_upgrade()
        self._inspect_headers(current)
        self.requests.append(current)

    def _inspect_headers(self, current: Request) -> None:
        hosts = 0
        for name, value in current.headers:
            lname = name.lower()
            if lname == b"content-length":
                current.content_length = int(value)  # llhttp validated digits and duplicates
                if current.content_length > self._limits[3]:
                    self._fail(413, "request body too large")
            elif lname == b"transfer-encoding":
                # llhttp refuses a coding list not ending in "chunked" but lets "gzip, chunked"
                # through: the app would get still-encoded bytes, so refuse what we cannot
                # decode (RFC 9112 6.1: 501 for a transfer coding the server does not know).
                if b"," in value:
                    self._fail(501, "unsupported transfer coding")
                current.chunked = True
            elif lname == b"expect":
                if value.lower() != b"100-continue":
                    self._fail(417, "unsupported expectation")
                current.expect_continue = current.version == "1.1"
            elif lname == b"host":
                hosts += 1
        # RFC 9112 3.2: a 1.1 request needs exactly one Host; several are a smuggling vector
        if hosts > 1 or (hosts == 0 and current.version == "1.1"):
            self._fail(400, "missing or repeated Host header")

    def on_body(self, body: bytes) -> None:
        current = self._current
        assert current is not None
        current.received += len(body)
        if current.received > self._limits[3]:
            self._fail(413, "request body too large")
        current.body.append(body)

    def on_message_complete(self) -> None:
        current = self._current
        if current is not None:
            current.complete = True
        self._current = None
