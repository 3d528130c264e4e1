"""The Tornado-shaped request (``handler.request``) over a WSGI environ, parsed with werkzeug.

Everything but the method is computed on first use, so a handler that never reads the body,
the cookies or the headers never pays for parsing them. Values follow Tornado: ``body``, the
values of ``arguments`` and file bodies are ``bytes``; argument names are ``str``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.cookies import Morsel, SimpleCookie
from io import BytesIO
from typing import IO, Any, Generic, TypeVar, overload
from urllib.parse import quote, unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, FileStorage, Headers
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header
from werkzeug.sansio.http import parse_cookie
from werkzeug.wsgi import get_input_stream

from ._errors import HTTPError

__all__ = ["HTTPFile", "HTTPHeaders", "HTTPServerRequest", "RequestCookies", "RequestLimits",
           "legal_cookie_name", "parse_qs_bytes"]

T = TypeVar("T")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SAFE_PATH = "/:@!$&'()*+,;=~-._"
_URLENCODED_TOO_LARGE = "urlencoded form body (max_form_memory_size)"
# http.cookies' legal key characters, minus its reserved attribute names (checked below).
_LEGAL_KEY = re.compile(r"[\w!#$%&'*+\-.^`|~:]+", re.ASCII).fullmatch
_RESERVED_NAMES = frozenset(Morsel._reserved)  # type: ignore[attr-defined]


def legal_cookie_name(name: str) -> bool:
    """Whether an ``http.cookies.Morsel`` can hold a cookie named ``name`` (Tornado's view)."""
    known = _LEGAL_NAMES.get(name)
    if known is None:
        known = _LEGAL_KEY(name) is not None and name.lower() not in _RESERVED_NAMES
        if len(_LEGAL_NAMES) < 1024:  # PERF: names repeat; bounded, attackers choose some
            _LEGAL_NAMES[name] = known
    return known


_LEGAL_NAMES: dict[str, bool] = {}


class lazy_property(Generic[T]):  # noqa: N801 - used like functools.cached_property
    """Compute an attribute on first access and store it on the instance.

    PERF: ``functools.cached_property`` takes a lock on every first access in Python 3.11;
    a request object belongs to one thread, so the lock only costs time.
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> lazy_property[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class RequestLimits:
    """Body limits from the application settings (bytes); exceeding one answers 413."""

    __slots__ = ("max_body_size", "max_form_memory_size", "max_form_parts")

    def __init__(self, max_body_size: int | None = 100 * 1024 * 1024,
                 max_form_memory_size: int | None = 500 * 1024,
                 max_form_parts: int | None = 1000) -> None:
        self.max_body_size = max_body_size
        self.max_form_memory_size = max_form_memory_size
        self.max_form_parts = max_form_parts


DEFAULT_LIMITS = RequestLimits()


class HTTPHeaders(EnvironHeaders):
    """Case-insensitive, read-only request headers; ``get_list`` as in Tornado."""

    def get_list(self, name: str) -> list[str]:
        return self.getlist(name)


class HTTPFile:
    """One uploaded file: ``filename``, ``content_type``, ``body`` (bytes), also as ``f["body"]``.

    Big uploads stay in a temporary file until ``body`` is read; ``stream`` and ``save()`` let
    a handler copy them without loading them into memory.
    """

    __slots__ = ("_storage", "_body", "filename", "content_type", "headers")

    def __init__(self, storage: FileStorage) -> None:
        self._storage = storage
        self._body: bytes | None = None
        self.filename: str = storage.filename or ""
        self.content_type: str = storage.content_type or "application/unknown"
        self.headers: Headers = storage.headers

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._storage.stream.seek(0)
            self._body = self._storage.stream.read()
        return self._body

    @property
    def stream(self) -> IO[bytes]:
        """The file object holding the upload (rewound)."""
        self._storage.stream.seek(0)
        return self._storage.stream

    def save(self, dst: str | IO[bytes], buffer_size: int = 16384) -> None:
        """Copy the upload to a path or file object without reading it all into memory."""
        self._storage.stream.seek(0)
        self._storage.save(dst, buffer_size)

    def close(self) -> None:
        self._storage.close()

    def __getitem__(self, key: str) -> Any:
        if key in ("filename", "body", "content_type"):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return ["filename", "body", "content_type"]

    def __contains__(self, key: object) -> bool:
        return key in ("filename", "body", "content_type")

    def __repr__(self) -> str:
        return f"HTTPFile(filename={self.filename!r}, content_type={self.content_type!r})"


class _BytesMultiPartParser(MultiPartParser):
    """werkzeug's streaming multipart parser, keeping field values as the bytes sent.

    Decoding as latin-1 is lossless, so the caller re-encodes to get the original bytes back
    (Tornado gives bytes; decoding happens in ``get_argument`` where bad UTF-8 answers 400).
    """

    def get_part_charset(self, headers: Headers) -> str:
        return "latin-1"


def _add(target: dict[str, list[bytes]], name: str, value: bytes) -> None:
    values = target.get(name)
    if values is None:
        target[name] = [value]
    else:
        values.append(value)


def parse_qs_bytes(qs: str, what: str = "query string") -> dict[str, list[bytes]]:
    """Parse a latin-1 query string into ``{name: [bytes, ...]}``, keeping blank values.

    Malformed percent-encoding or a name that is not UTF-8 raises ``HTTPError(400)``.
    """
    result: dict[str, list[bytes]] = {}
    for part in qs.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        # PERF: most names and values need no unquoting; skip the slow path for them.
        if "%" in part or "+" in part:
            if _BAD_PERCENT.search(part):
                raise HTTPError(400, "Malformed percent-encoding in %s", what,
                                reason="Bad Request: malformed percent-encoding")
            key = _decode_name(unquote_to_bytes(name.replace("+", " ")), what)
            _add(result, key, unquote_to_bytes(value.replace("+", " ")))
        else:
            key = name if name.isascii() else _decode_name(name.encode("latin-1"), what)
            _add(result, key, value.encode("latin-1"))
    return result


def _decode_name(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "Invalid UTF-8 in an argument name of the %s", what,
                        reason="Bad Request: invalid UTF-8") from None


class RequestCookies(Mapping[str, Morsel]):  # type: ignore[type-arg]
    """Read-only ``{name: Morsel}`` of the request cookies, a Morsel built on first access.

    PERF: building a Morsel costs more than parsing the whole header; most handlers read one
    cookie, so only the cookies actually read get one. Names a Morsel cannot hold are skipped.
    """

    __slots__ = ("_values", "_jar")

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self._jar: SimpleCookie = SimpleCookie()

    def __getitem__(self, name: str) -> Morsel:  # type: ignore[type-arg]
        jar = self._jar
        if name not in jar:
            if not legal_cookie_name(name):
                raise KeyError(name)
            jar[name] = self._values[name]
        return jar[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values and legal_cookie_name(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._values if legal_cookie_name(name))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"RequestCookies({sorted(self)!r})"


_NO_BODY_ARGUMENTS: dict[str, list[bytes]] = {}  # never written: see HTTPServerRequest
_NO_FILES: dict[str, list[HTTPFile]] = {}


class HTTPServerRequest:
    """A single HTTP request as Tornado presents it, read lazily from the WSGI ``environ``."""

    # PERF: shared empty defaults until _parse_form gives the request its own (most requests
    # never read a form; an open WebSocket keeps its request for its whole life)
    _body_arguments: dict[str, list[bytes]] = _NO_BODY_ARGUMENTS
    _files: dict[str, list[HTTPFile]] = _NO_FILES

    def __init__(self, environ: dict[str, Any], limits: RequestLimits = DEFAULT_LIMITS) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        self._limits = limits
        self._start_time = time.time()
        self._form_parsed = False

    # -- the request line and connection ------------------------------------------------------
    @lazy_property
    def path(self) -> str:
        """The percent-encoded path (``SCRIPT_NAME + PATH_INFO``), as Tornado's ``path``."""
        env = self.environ
        raw = env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", "")
        return quote(raw.encode("latin-1"), safe=_SAFE_PATH) or "/"

    @lazy_property
    def query(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    @lazy_property
    def uri(self) -> str:
        """Path and query as the client would have sent them."""
        return self.path + "?" + self.query if self.query else self.path

    @lazy_property
    def version(self) -> str:
        return str(self.environ.get("SERVER_PROTOCOL", "HTTP/1.0"))

    @lazy_property
    def protocol(self) -> str:
        return str(self.environ.get("wsgi.url_scheme", "http"))

    @lazy_property
    def remote_ip(self) -> str:
        return str(self.environ.get("REMOTE_ADDR", ""))

    @lazy_property
    def host(self) -> str:
        """The Host header, or the server's name and non-default port."""
        env = self.environ
        host = env.get("HTTP_HOST")
        if host:
            return str(host)
        name, port = env.get("SERVER_NAME", "127.0.0.1"), str(env.get("SERVER_PORT", ""))
        default = "443" if self.protocol == "https" else "80"
        return f"{name}:{port}" if port and port != default else str(name)

    @lazy_property
    def host_name(self) -> str:
        """``host`` without the port, lower-cased (what host patterns match)."""
        host = self.host.lower()
        if host.startswith("["):
            return host.partition("]")[0] + "]"
        return host.rpartition(":")[0] if ":" in host else host

    def full_url(self) -> str:
        """The whole URL: ``protocol://host/path?query``."""
        return self.protocol + "://" + self.host + self.uri

    def request_time(self) -> float:
        """Seconds since the request object was created."""
        return time.time() - self._start_time

    # -- headers and cookies ------------------------------------------------------------------
    @lazy_property
    def headers(self) -> HTTPHeaders:
        return HTTPHeaders(self.environ)

    @lazy_property
    def cookie_values(self) -> dict[str, str]:
        """``{name: value}`` of the request cookies (the last of duplicate names wins)."""
        header = self.environ.get("HTTP_COOKIE")
        if not header:
            return {}
        if not header.isascii():  # bytes that are not UTF-8 must not fail the request
            header = header.encode("latin-1").decode("utf-8", "replace")
        if '"' in header:  # quoted values (backslash escapes): werkzeug's parser
            return parse_cookie(header, cls=dict)  # type: ignore[arg-type]
        return _parse_plain_cookie(header)

    @lazy_property
    def cookies(self) -> RequestCookies:
        """The request cookies as ``http.cookies.Morsel`` objects by name (as Tornado)."""
        return RequestCookies(self.cookie_values)

    # -- body, arguments and files ------------------------------------------------------------
    @lazy_property
    def body(self) -> bytes:
        """The raw request body, at most ``max_body_size`` bytes (else 413)."""
        return self._read_body(self._limits.max_body_size, "body")

    def _read_body(self, limit: int | None, what: str) -> bytes:
        """The whole body, refused with a 413 naming ``what`` when it is over ``limit``."""
        environ = self.environ
        length = _content_length(environ)
        if length is not None and "wsgi.input_terminated" not in environ:
            # PERF: a Content-Length body is read directly, never past its length (PEP 3333).
            if limit is not None and length > limit:
                raise _too_large(what)
            return environ["wsgi.input"].read(length) if length else b""
        try:
            # A streamed body (no Content-Length) may stop exactly at the limit: allow one byte
            # more, since werkzeug's bounded stream returns the first ``limit`` bytes silently.
            data = get_input_stream(
                environ, max_content_length=None if limit is None else limit + 1).read()
        except RequestEntityTooLarge:
            raise _too_large(what) from None
        if limit is not None and len(data) > limit:
            raise _too_large(what)
        return data

    def _urlencoded_body(self) -> bytes:
        """The body of a urlencoded form, held in memory whole and parsed at once: at most
        ``max_form_memory_size`` bytes, the limit of one multipart field (else 413)."""
        memory, limit = self._limits.max_form_memory_size, self._limits.max_body_size
        if "body" in self.__dict__ or memory is None or (limit is not None and limit <= memory):
            body = self.body
        else:  # read no more than the form may hold; the body stays readable as ``body``
            body = self.__dict__["body"] = self._read_body(memory, _URLENCODED_TOO_LARGE)
        if memory is not None and len(body) > memory:
            raise _too_large(_URLENCODED_TOO_LARGE)
        return body

    @lazy_property
    def stream(self) -> IO[bytes]:
        """The body as a file object to read in pieces (instead of ``body``) for big uploads.

        Reads stop at ``Content-Length``; reading past ``max_body_size`` answers 413.
        """
        try:
            return get_input_stream(self.environ, max_content_length=self._limits.max_body_size)
        except RequestEntityTooLarge:
            raise _too_large("body") from None

    @lazy_property
    def query_arguments(self) -> dict[str, list[bytes]]:
        qs = self.query
        return parse_qs_bytes(qs) if qs else {}

    @property
    def body_arguments(self) -> dict[str, list[bytes]]:
        if not self._form_parsed:
            self._parse_form()
        return self._body_arguments

    @property
    def files(self) -> dict[str, list[HTTPFile]]:
        if not self._form_parsed:
            self._parse_form()
        return self._files

    @lazy_property
    def arguments(self) -> dict[str, list[bytes]]:
        """Query then body arguments: ``get_argument`` takes the last, so the body wins."""
        query, body = self.query_arguments, self.body_arguments
        if not body:
            return query
        if not query:
            return body
        merged = {k: list(v) for k, v in query.items()}
        for name, values in body.items():
            merged.setdefault(name, []).extend(values)
        return merged

    def _parse_form(self) -> None:
        self._form_parsed = True
        self._body_arguments, self._files = {}, {}
        ctype = self.environ.get("CONTENT_TYPE", "")
        kind = ctype.partition(";")[0].strip().lower()  # media types are case-insensitive
        if kind == "application/x-www-form-urlencoded":
            self._body_arguments = parse_qs_bytes(self._urlencoded_body().decode("latin-1"),
                                                  "request body")
        elif kind == "multipart/form-data":
            self._parse_multipart(ctype)

    def _parse_multipart(self, ctype: str) -> None:
        boundary = parse_options_header(ctype)[1].get("boundary", "")
        if not boundary:
            raise HTTPError(400, "multipart body without a boundary",
                            reason="Bad Request: multipart boundary missing")
        limits = self._limits
        memory = limits.max_form_memory_size
        # werkzeug checks the field limit against each chunk it reads: read smaller chunks
        # when the limit is small so only a field over the limit is refused.
        chunk = 64 * 1024 if memory is None else max(512, min(64 * 1024, memory // 2))
        parser = _BytesMultiPartParser(max_form_memory_size=memory, buffer_size=chunk,
                                       max_form_parts=limits.max_form_parts)
        try:
            if "body" in self.__dict__:  # already read: parse the bytes we hold
                stream: IO[bytes] = BytesIO(self.body)
                length: int | None = len(self.body)
            else:
                stream = get_input_stream(self.environ, max_content_length=limits.max_body_size)
                length = _content_length(self.environ)
            fields, files = parser.parse(stream, boundary.encode("latin-1"), length)
        except RequestEntityTooLarge:
            raise _too_large("multipart body or one of its fields") from None
        except (ValueError, UnicodeError) as exc:
            raise HTTPError(400, "Malformed multipart body: %s", exc,
                            reason="Bad Request: malformed multipart body") from None
        for name, value in fields.items(multi=True):
            _add(self._body_arguments, name, value.encode("latin-1"))
        for name, storage in files.items(multi=True):
            self._files.setdefault(name, []).append(HTTPFile(storage))

    def _close(self) -> None:
        """Release temporary files of uploads (called once the response is done)."""
        for uploads in self._files.values():
            for upload in uploads:
                upload.close()

    def __repr__(self) -> str:
        return f"HTTPServerRequest(method={self.method!r}, uri={self.uri!r})"


def _parse_plain_cookie(header: str) -> dict[str, str]:
    """werkzeug's ``parse_cookie(header, cls=dict)`` for a header without quoted values.

    PERF: without quotes a ``;`` always ends a pair, so splitting replaces werkzeug's regex
    scan (~2 µs saved on a five-cookie header); the same pairs are kept and skipped (a pair
    with blanks inside its name or value, or no name, is dropped), which a test checks
    against werkzeug on a seeded corpus.
    """
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, _, value = pair.partition("=")
        name = name.strip(" \t")
        value = value.strip(" \t")
        if name and not (" " in name or "\t" in name or " " in value or "\t" in value):
            cookies[name] = value
    return cookies


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or ""))
    except ValueError:
        return None


def _too_large(what: str) -> HTTPError:
    return HTTPError(413, "Request %s exceeds the configured limit", what)


def url_concat(url: str, query: str | Iterable[tuple[str, str]]) -> str:
    """Append a query string (or name/value pairs) to ``url``."""
    if not isinstance(query, str):
        from urllib.parse import urlencode
        query = urlencode(list(query))
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query
