"""GzipMiddleware: compress responses on the fly (gzip, or brotli when installed and wanted).

Reads ``HTTP_ACCEPT_ENCODING``, ``HTTP_RANGE``, ``REQUEST_METHOD``; writes no environ key.
Streams: every chunk the app yields (or passes to ``write``) is compressed and flushed at once
(``Z_SYNC_FLUSH``), so memory stays bounded and server-sent events still arrive one by one.
HEAD gets the headers GET would get (the same decision) and no body; its Content-Length is
dropped when compressing, since only compressing would tell the length.
Security caveat: compressing a response that mixes a secret (e.g. a CSRF token) with
attacker-reflected input enables BREACH-style length oracles; mask such tokens per response
(microweb's XSRF tokens are masked) or exclude those content types.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable
from functools import partial

from werkzeug.http import parse_accept_header

from ._wsgi import (
    ClosingIterator,
    ExcInfo,
    Headers,
    StartResponse,
    WSGIApp,
    WSGIEnvironment,
    add_vary,
    close_iterable,
    remove_header,
    set_header,
    status_code,
)
from .base import Middleware

try:  # optional extra: pip install microweb[brotli]
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the installation
    _brotli = None

__all__ = ["DEFAULT_COMPRESSIBLE_TYPES", "GzipMiddleware"]

#: exact types, ``major/*`` wildcards and ``+suffix`` structured-syntax suffixes.
DEFAULT_COMPRESSIBLE_TYPES = (
    "text/*", "application/json", "application/javascript", "application/x-javascript",
    "application/xml", "application/xhtml+xml", "application/wasm", "application/graphql",
    "application/x-www-form-urlencoded", "image/svg+xml", "image/x-icon", "font/ttf", "font/otf",
    "+json", "+xml",
)
_SKIP_STATUSES = frozenset({204, 206, 304})
#: bodies already in memory (a tuple: ``list | tuple`` would build a union object per call)
_IN_MEMORY = (list, tuple)


class _Encoder:
    """Incremental compressor: ``chunk()`` returns bytes decodable so far (flushed)."""

    def __init__(self, coding: str, level: int, brotli_quality: int) -> None:
        if coding == "br":
            compressor = _brotli.Compressor(quality=brotli_quality)
            self._process: Callable[[bytes], bytes] = compressor.process
            self._flush: Callable[[], bytes] = compressor.flush
            self._finish: Callable[[], bytes] = compressor.finish
        else:
            deflate = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip container
            self._process = deflate.compress
            self._flush = partial(deflate.flush, zlib.Z_SYNC_FLUSH)
            self._finish = deflate.flush

    def chunk(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._process(data) + self._flush()

    def finish(self) -> bytes:
        return self._finish()

    def whole(self, data: bytes) -> bytes:
        """Compress a complete body in one go (no per-chunk flush: the best ratio)."""
        return self._process(data) + self._finish()


def _weaken(etag: str) -> str:
    return etag if etag.startswith("W/") else f"W/{etag}"


def _index(headers: Headers) -> dict[str, str]:
    """The first value of every header, by lower-case name (one pass instead of one per name)."""
    found: dict[str, str] = {}
    for key, value in headers:
        found.setdefault(key.lower(), value)
    return found


class _Response:
    """Per-request state: defers the upstream ``start_response`` until the first body bytes,
    so the decision to compress can use the body length when the app returns a list."""

    __slots__ = ("coding", "compressed", "decided", "encoder", "environ", "exc_info", "head",
                 "headers", "mw", "status", "upstream", "upstream_write")

    def __init__(self, middleware: GzipMiddleware, environ: WSGIEnvironment,
                 start_response: StartResponse, coding: str | None, head: bool = False) -> None:
        self.mw, self.environ, self.upstream = middleware, environ, start_response
        self.coding, self.head = coding, head
        self.status: str | None = None
        self.headers: Headers = []
        self.exc_info: ExcInfo | None = None
        self.upstream_write: Callable[[bytes], object] | None = None
        self.encoder: _Encoder | None = None
        self.decided = self.compressed = False

    def start_response(self, status: str, headers: Headers,
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
        if exc_info is not None and self.upstream_write is not None:
            # Headers already went out: let the server re-raise (PEP 3333).
            self.upstream(status, headers, exc_info)
        if exc_info is None and self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write`` callable handed to the app: compressed and forwarded immediately."""
        send = self.begin(None)
        if data and not self.head:  # a HEAD response has no body: what the app writes is dropped
            send(self.encoder.chunk(data) if self.encoder else data)

    def begin(self, length: int | None) -> Callable[[bytes], object]:
        """Decide once, then call the upstream ``start_response``."""
        if self.upstream_write is None:
            if self.status is None:
                raise AssertionError("the app sent body bytes before calling start_response")
            if not self.decided:
                self.decide(length)
            args = (self.status, self.headers)
            if self.exc_info is not None:
                self.upstream_write = self.upstream(*args, self.exc_info)
            else:
                self.upstream_write = self.upstream(*args)
        return self.upstream_write

    def decide(self, length: int | None) -> None:
        """Compress or not, once per response; edits the pending headers accordingly."""
        if self.decided:
            return
        self.decided = True
        headers = self.headers
        found = _index(headers)
        if not self.mw._eligible(status_code(self.status or ""), found):
            return
        if "vary" in found:
            add_vary(headers, "Accept-Encoding", found["vary"])
        else:
            headers.append(("Vary", "Accept-Encoding"))
        declared = found.get("content-length")
        if declared is not None and declared.strip().isdigit():
            length = int(declared)
        if self.coding is None or (length is not None and length < self.mw.min_size):
            return
        if "HTTP_RANGE" in self.environ:
            return
        self.compressed = True
        if not self.head:  # HEAD: the same headers as GET, but nothing to compress
            self.encoder = _Encoder(self.coding, self.mw.level, self.mw.brotli_quality)
        remove_header(headers, "Content-Length")
        set_header(headers, "Content-Encoding", self.coding)
        etag = found.get("etag")
        if etag is not None:
            set_header(headers, "ETag", _weaken(etag))

    def small_declared_body(self) -> bool:
        """True when a compressible body declares a length within ``buffer_max``: then it is
        read whole and compressed in one go, keeping an exact Content-Length."""
        if (self.coding is None or self.status is None or self.upstream_write is not None
                or "HTTP_RANGE" in self.environ):
            return False
        found = _index(self.headers)
        declared = (found.get("content-length") or "").strip()
        return (declared.isdigit() and self.mw.min_size <= int(declared) <= self.mw.buffer_max
                and self.mw._eligible(status_code(self.status), found))

    def whole(self, chunks: list[bytes] | tuple[bytes, ...]) -> list[bytes] | None:
        """For a body already in memory: compress it whole and send an exact Content-Length.

        Returns None when this response is not compressed (then the app's list goes out as is).
        """
        if self.upstream_write is not None:  # the app used write(): already streaming
            return None
        length = sum(map(len, chunks))
        self.decide(length)
        if self.encoder is None:  # PERF: nothing to compress: the chunks are never joined
            self.begin(length)
            return None
        data = self.encoder.whole(b"".join(chunks))
        set_header(self.headers, "Content-Length", str(len(data)))
        self.begin(len(data))
        return [data]

    def finish_head(self, length: int | None) -> None:
        """Send the headers of a HEAD response; ``length`` is the uncompressed body's length
        when the app handed the body over in memory (None when it sent none or streamed)."""
        if self.upstream_write is not None:  # the app used write(): already sent
            return
        if self.status is not None:
            self.decide(length)
            code = status_code(self.status)
            if (length is not None and not self.compressed and code >= 200
                    and code not in (204, 304) and "content-length" not in _index(self.headers)):
                # no body goes out for the server to measure: declare the one the app gave
                self.headers.append(("Content-Length", str(length)))
        self.begin(length)

    def body(self, iterable: Iterable[bytes]) -> Iterable[bytes]:
        for chunk in iterable:
            self.begin(None)
            yield self.encoder.chunk(chunk) if self.encoder else chunk
        self.begin(0)
        if self.encoder is not None:
            yield self.encoder.finish()


class GzipMiddleware(Middleware):
    """Compress eligible responses with the best encoding the client accepts.

    ``level`` (gzip 1-9), ``brotli_quality`` (0-11), ``min_size`` (bytes; smaller known-length
    bodies pass untouched), ``compressible_types``, ``use_brotli`` (when installed),
    ``buffer_max`` (bodies declaring a Content-Length up to this are compressed whole, with an
    exact Content-Length; anything else streams).
    """

    def __init__(self, app: WSGIApp, *, level: int = 6, min_size: int = 500,
                 compressible_types: Iterable[str] = DEFAULT_COMPRESSIBLE_TYPES,
                 use_brotli: bool = True, brotli_quality: int = 4,
                 buffer_max: int = 256 * 1024) -> None:
        super().__init__(app)
        if not 0 <= level <= 9:
            raise ValueError("gzip level must be within 0..9")
        self.level, self.min_size, self.brotli_quality = level, min_size, brotli_quality
        self.buffer_max = buffer_max
        types = {t.lower() for t in compressible_types}
        self._exact = frozenset(t for t in types if "/" in t and not t.endswith("/*"))
        self._majors = frozenset(t[:-2] for t in types if t.endswith("/*"))
        self._suffixes = tuple(t for t in types if t.startswith("+"))
        self.codings = ("br", "gzip") if (use_brotli and _brotli is not None) else ("gzip",)
        # PERF: browsers send a handful of distinct Accept-Encoding and Content-Type values;
        # parsing each once (bounded caches) saves ~8 µs a request.
        self._negotiate = functools.lru_cache(maxsize=512)(self.negotiate)
        self._compressible = functools.lru_cache(maxsize=512)(self.compressible)

    def negotiate(self, accept_encoding: str) -> str | None:
        """The coding to use for this Accept-Encoding header, or None for identity.

        The most specific entry wins (``gzip;q=0`` refuses gzip even with ``*``); an identity
        ranked above every coding is honoured; ties go to brotli, then gzip.
        """
        if not accept_encoding:
            return None
        quality: dict[str, float] = {}
        for value, q in parse_accept_header(accept_encoding):
            quality.setdefault(value.lower(), q)
        if "x-gzip" in quality:
            quality.setdefault("gzip", quality["x-gzip"])
        star = quality.get("*")
        identity = quality.get("identity", star if star is not None else 0.0)
        best, best_q = None, 0.0
        for coding in self.codings:
            q = quality.get(coding, star or 0.0)
            if q > best_q:
                best, best_q = coding, q
        return best if best is not None and best_q >= identity else None

    def compressible(self, content_type: str) -> bool:
        mimetype = content_type.partition(";")[0].strip().lower()
        if mimetype in self._exact or mimetype.partition("/")[0] in self._majors:
            return True
        return mimetype.endswith(self._suffixes) if self._suffixes else False

    def eligible(self, status: int, headers: Headers) -> bool:
        """Whether this response may be compressed at all (then it varies on the request)."""
        return self._eligible(status, _index(headers))

    def _eligible(self, status: int, found: dict[str, str]) -> bool:
        if status < 200 or status in _SKIP_STATUSES:
            return False
        encoding = found.get("content-encoding")
        if (encoding and encoding.strip().lower() != "identity") or found.get("content-range"):
            return False
        if "no-transform" in (found.get("cache-control") or "").lower():
            return False
        return self._compressible(found.get("content-type") or "")

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        coding = self._negotiate(environ.get("HTTP_ACCEPT_ENCODING", ""))
        if environ.get("REQUEST_METHOD") == "HEAD":
            return self._head(environ, start_response, coding)
        response = _Response(self, environ, start_response, coding)
        iterable = self.app(environ, response.start_response)
        if not isinstance(iterable, _IN_MEMORY) and response.small_declared_body():
            try:
                chunks = list(iterable)
            finally:
                close_iterable(iterable)
            iterable = chunks
        if isinstance(iterable, _IN_MEMORY) and response.status is not None:
            compressed = response.whole(iterable)
            if compressed is not None:
                close_iterable(iterable)
                return compressed
            if response.encoder is None:
                return iterable
        return ClosingIterator(response.body(iterable), [partial(close_iterable, iterable)])

    def _head(self, environ: WSGIEnvironment, start_response: StartResponse,
              coding: str | None) -> list[bytes]:
        """HEAD: decide as for GET (RFC 9110: the same header fields), send no body."""
        response = _Response(self, environ, start_response, coding, head=True)
        iterable = self.app(environ, response.start_response)
        try:
            if isinstance(iterable, _IN_MEMORY):
                # a body given in memory is the GET body; none at all means the app left it out
                length: int | None = sum(map(len, iterable)) or None
            else:  # streamed: the length is unknown, as for GET; read only until it starts
                length = None
                for _ in iterable:
                    if response.status is not None:
                        break
        finally:
            close_iterable(iterable)
        response.finish_head(length)
        return []
