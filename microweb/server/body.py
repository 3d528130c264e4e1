"""``wsgi.input``: a stream over the request body that never reads past it.

Bytes come from the parser's queue of body pieces; when it runs dry the stream asks the
connection for more (which waits at most ``body_timeout``). A client that sent
``Expect: 100-continue`` gets its ``100 Continue`` on the first read, not before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .http11 import Request

__all__ = ["InputStream"]


class InputStream:
    """A file-like, read-only view of one request body (PEP 3333 ``wsgi.input``)."""

    __slots__ = ("_req", "_more", "_buf")

    def __init__(self, req: Request, more: Callable[[Request], bool]) -> None:
        self._req = req
        self._more = more  # reads from the socket; False once the body is complete
        self._buf = b""

    def _next_piece(self) -> bytes:
        req = self._req
        while not req.body:
            if req.complete or not self._more(req):
                return b""
        piece = req.body.popleft()
        req.consumed += len(piece)
        return piece

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if ``size`` is negative or None)."""
        if size is None or size < 0:
            chunks = [self._buf]
            self._buf = b""
            while piece := self._next_piece():
                chunks.append(piece)
            return b"".join(chunks)
        if len(self._buf) < size:
            chunks, have = [self._buf], len(self._buf)
            while have < size:  # collect, then join once: no quadratic copying
                piece = self._next_piece()
                if not piece:
                    break
                chunks.append(piece)
                have += len(piece)
            self._buf = b"".join(chunks)
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def read1(self, size: int = -1) -> bytes:
        """Return what is available (at least one byte unless the body ended)."""
        data = self._buf or self._next_piece()
        if size is None or size < 0:
            size = len(data)
        self._buf = data[size:]
        return data[:size]

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (through ``\\n``), at most ``size`` bytes."""
        limit = -1 if size is None else size
        buf = self._buf
        end = buf.find(b"\n")
        if end >= 0 and (limit < 0 or end < limit):  # PERF: the common case, no copying
            self._buf = buf[end + 1:]
            return buf[:end + 1]
        # Each piece is scanned once and appended once: a very long line costs O(n), not O(n²).
        line = bytearray()
        while True:
            room = limit - len(line) if limit >= 0 else -1
            end = buf.find(b"\n", 0, room if room >= 0 else len(buf))
            if end >= 0:
                line += buf[:end + 1]
                self._buf = buf[end + 1:]
                return bytes(line)
            if 0 <= room <= len(buf):
                line += buf[:room]
                self._buf = buf[room:]
                return bytes(line)
            line += buf
            buf = self._next_piece()
            if not buf:
                self._buf = b""
                return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def detach(self) -> None:
        """The connection was handed to an upgrade protocol: whatever keeps this environ
        (the handler, for ``self.request``) must not keep the HTTP connection and its parser
        alive, so the stream lets go of them and reads as ended."""
        self._req, self._more, self._buf = _ENDED, _no_more, b""

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Closing is the server's job; apps (and werkzeug) may call this harmlessly."""


def _no_more(req: Request) -> bool:
    return False


_ENDED = Request()  # a complete, empty body (shared: reading it changes nothing)
_ENDED.complete = True
