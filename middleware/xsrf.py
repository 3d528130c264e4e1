"""XSRF tokens (Tornado's masked format) and the XSRF middleware for any WSGI app.

A raw token is 16 random bytes. What goes into cookies, forms and headers is Tornado's
version-2 masked form ``2|<mask hex>|<masked token hex>|<timestamp>``: a fresh 4-byte mask per
use XORs the token, so the value on a page changes every time (BREACH-style compression attacks
cannot recover it) while any masked copy unmasks to the same raw token. Tokens made by
``tornado.web.RequestHandler.xsrf_token`` verify here and the other way round.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import io
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

import werkzeug.urls  # noqa: F401  (registers the werkzeug.url_quote error handler)
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.http import dump_cookie
from werkzeug.wsgi import get_content_length

from . import keys
from ._cookies import cookie_value
from ._wsgi import (
    ClosingIterator,
    ExcInfo,
    Headers,
    StartResponse,
    WSGIApp,
    WSGIEnvironment,
    bounded_input,
    plain_response,
    read_exactly,
)
from .base import Middleware

__all__ = [
    "XSRFMiddleware",
    "mask_xsrf_token",
    "new_xsrf_token",
    "unmask_xsrf_token",
    "xsrf_tokens_equal",
]

#: Longest submitted token worth decoding (a v2 token of 16 bytes is ~60 chars).
_MAX_TOKEN_CHARS = 512
_VERSION_RE = re.compile(rb"^([1-9][0-9]*)\|")


def new_xsrf_token() -> bytes:
    """16 random bytes from :mod:`secrets`: the raw token a cookie or a session keeps."""
    return secrets.token_bytes(16)


def _xor(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (Tornado's ``_websocket_mask``)."""
    size = len(data)
    repeated = mask * (size >> 2) if size & 3 == 0 else (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


def mask_xsrf_token(token: bytes, timestamp: int | None = None) -> str:
    """Tornado's version-2 form of ``token`` with a fresh random mask on every call."""
    mask = os.urandom(4)  # what secrets.token_bytes(4) returns, one call less
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return "|".join(("2", mask.hex(), _xor(mask, token).hex(), str(stamp)))


def unmask_xsrf_token(value: str | bytes | None) -> bytes | None:
    """The raw token inside a v2 masked or v1 (plain hex) token; None if absent or malformed."""
    if not value:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if len(raw) > _MAX_TOKEN_CHARS:
        return None
    try:
        if raw[:2] == b"2|":  # PERF: the usual version 2, no regex
            return _unmask_v2(raw)
        match = _VERSION_RE.match(raw)
        if match is None:  # version 1: the token in hex, unmasked
            return binascii.a2b_hex(raw) or None
        if match.group(1) != b"2":  # unknown future version: treat as absent, like Tornado
            return None
        return _unmask_v2(raw)
    except (ValueError, binascii.Error):
        return None


def _unmask_v2(raw: bytes) -> bytes | None:
    """``2|mask|masked|timestamp`` unmasked; raises ValueError when malformed."""
    _, mask_hex, masked_hex, stamp = raw.split(b"|")
    mask = binascii.a2b_hex(mask_hex)
    int(stamp)
    if len(mask) != 4 or not masked_hex:
        return None
    return _xor(mask, binascii.a2b_hex(masked_hex))


def xsrf_tokens_equal(a: bytes | None, b: bytes | None) -> bool:
    """Constant-time comparison of two raw tokens; missing or empty tokens never match."""
    if not a or not b:
        return False
    return hmac.compare_digest(a, b)


# -- the middleware ----------------------------------------------------------------------------

log = logging.getLogger("middleware.xsrf")

#: methods never checked: those RequestHandler.check_xsrf_cookie skips too (as Tornado); TRACE
#: is checked, so the middleware and the framework agree on every method
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_URLENCODED = "application/x-www-form-urlencoded"
_FORM_TYPES = frozenset({_URLENCODED, "multipart/form-data"})
#: field names that urlencoding leaves unchanged ("+" and "%" would be decoded)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~-]+")
#: werkzeug's decoding error handler for form fields (registered by werkzeug.urls)
_URL_ERRORS = "werkzeug.url_quote"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: where the raw token lives in a session (hex), when the session keeps it
SESSION_KEY = "_xsrf"
#: private environ key: the spooled copy of a form body this layer read (closed at the end)
_SPOOL = "middleware.xsrf.body"


class XSRFRejected(Exception):
    """An unsafe request failed the XSRF checks (answered 403 with the reason)."""


class _Discard(io.BytesIO):
    """A file sink for uploads while looking for the ``_xsrf`` field: keeps nothing."""

    def write(self, data: Any) -> int:
        return len(data)


def _discard_stream(*args: Any, **kwargs: Any) -> IO[bytes]:
    return _Discard()


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL with default ports dropped; None if not http(s)."""
    # PERF: a site sees few distinct Origin / Referer / Host values; short ones are cached.
    return _cached_origin(url) if len(url) <= 256 else _parse_origin(url)


@functools.lru_cache(maxsize=1024)
def _cached_origin(url: str) -> str | None:
    return _parse_origin(url)


def _parse_origin(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def _trusted_origin(url: str) -> str:
    """A ``trusted_origins`` entry as an origin; ValueError if it is not an http(s) origin."""
    origin = _origin_of(url)
    if origin is None:
        raise ValueError(f"trusted_origins entry {url!r} is not an origin such as "
                         "'https://app.example.com'")
    return origin


def request_origin(environ: WSGIEnvironment) -> str | None:
    """This request's own origin from ``wsgi.url_scheme`` and ``Host`` (as ProxyMiddleware
    resolved them behind a trusted proxy)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or (
        f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}")
    return _origin_of(f"{scheme}://{host}")


class XSRFMiddleware(Middleware):
    """The framework's ``xsrf_cookies`` protection for any WSGI app (Flask, Django, bare WSGI).

    Writes ``environ["microweb.xsrf_token"]`` (a masked token for this request's forms and
    headers) and ``environ["microweb.xsrf_token_factory"]`` (a fresh masked token per call).
    Unsafe methods must send the token in the ``_xsrf`` form field or an ``X-XSRFToken`` /
    ``X-CSRFToken`` header. The raw token lives in the ``_xsrf`` cookie (masked, as Tornado) or
    in the session when ``token_store`` says so (``"auto"``: the session if a SessionMiddleware
    sits outside). Checks, cheapest first: ``Sec-Fetch-Site: cross-site`` refused; the
    ``Origin`` (else ``Referer``) must be this site's origin or in ``trusted_origins``; the
    token must match. Failures answer 403 and log the reason. ``exempt``: paths (exact, or a
    prefix when ending in ``/``) or compiled regexes that skip the checks (webhooks), matched
    against ``SCRIPT_NAME`` + ``PATH_INFO`` with ``//``, ``.`` and ``..`` resolved.

    Security caveat: the double-submit cookie trusts that sibling subdomains cannot set cookies
    for this host; keep the Origin check on (default) or use the session as the token store.
    """

    provides: ClassVar[tuple[str, ...]] = (keys.XSRF_TOKEN, keys.XSRF_TOKEN_FACTORY)
    uses: ClassVar[tuple[str, ...]] = (keys.SESSION, keys.PROXY_RESOLVED)

    def __init__(self, app: WSGIApp, *, token_store: Literal["auto", "cookie", "session"] = "auto",
                 cookie_name: str = "_xsrf", cookie_max_age: int | None = 30 * 86400,
                 secure: bool | None = None, samesite: str | None = "Lax",
                 domain: str | None = None, path: str = "/", field_name: str = "_xsrf",
                 check_origin: bool = True, trusted_origins: Iterable[str] = (),
                 exempt: Iterable[str | re.Pattern[str]] = (),
                 max_body_size: int = 16 * 1024 * 1024,
                 spool_size: int = 512 * 1024) -> None:
        super().__init__(app)
        if token_store not in ("auto", "cookie", "session"):
            raise ValueError("token_store must be 'auto', 'cookie' or 'session'")
        self.token_store = token_store
        self.cookie_name = cookie_name
        self.cookie_max_age = cookie_max_age
        self.secure = secure
        self.samesite = samesite
        self.domain = domain
        self.path = path
        self.field_name = field_name
        self.check_origin = check_origin
        self.trusted_origins = frozenset(_trusted_origin(x) for x in trusted_origins)
        paths = [_normalised_path(p) for p in exempt if isinstance(p, str)]
        self._exact = frozenset(p for p in paths if not p.endswith("/"))
        self._prefixes = tuple(p for p in paths if p.endswith("/"))
        self._patterns = tuple(p for p in exempt if not isinstance(p, str))
        self._exempts = bool(self._exact or self._prefixes or self._patterns)
        self.max_body_size = max_body_size
        self.spool_size = spool_size
        # a name that stands for itself in a urlencoded body can be found without werkzeug
        self._plain_field = bool(_PLAIN_NAME.fullmatch(field_name))

    def __repr__(self) -> str:
        return (f"XSRFMiddleware(token_store={self.token_store!r}, "
                f"check_origin={self.check_origin})")

    def is_exempt(self, path: str) -> bool:
        """True when ``path`` skips the XSRF checks, compared once ``//``, ``/./`` and ``/../``
        are resolved: a path only looking like an exempt one is still checked."""
        path = _normalised_path(path)
        return (path in self._exact or path.startswith(self._prefixes)
                or any(p.fullmatch(path) for p in self._patterns))

    # -- the token ---------------------------------------------------------------------------

    def _session(self, environ: WSGIEnvironment) -> Any:
        if self.token_store == "cookie":
            return None
        session = environ.get(keys.SESSION)
        if session is None and self.token_store == "session":
            raise RuntimeError("XSRFMiddleware(token_store='session') needs a SessionMiddleware "
                               "outside it")
        return session

    def _stored_token(self, environ: WSGIEnvironment, session: Any) -> bytes | None:
        if session is not None:
            value = session.get(SESSION_KEY)
            try:
                return bytes.fromhex(value) if isinstance(value, str) and value else None
            except ValueError:
                return None
        cookie = cookie_value(environ.get("HTTP_COOKIE"), self.cookie_name)
        return unmask_xsrf_token(cookie)

    def _cookie(self, environ: WSGIEnvironment, token: bytes) -> str:
        secure = self.secure
        if secure is None:
            secure = environ.get("wsgi.url_scheme") == "https"
        # Not HttpOnly on purpose: scripts read it to send the X-XSRFToken header (as Tornado).
        return dump_cookie(self.cookie_name, mask_xsrf_token(token), max_age=self.cookie_max_age,
                           path=self.path, domain=self.domain, secure=secure,
                           samesite=self.samesite, max_size=0)

    # -- the checks --------------------------------------------------------------------------

    def _check_fetch_metadata(self, environ: WSGIEnvironment) -> None:
        if environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower() == "cross-site":
            raise XSRFRejected("cross-site request refused (Sec-Fetch-Site: cross-site)")

    def _check_origin(self, environ: WSGIEnvironment) -> None:
        own = request_origin(environ)
        claimed = environ.get("HTTP_ORIGIN")
        source = "Origin"
        if not claimed or claimed == "null":
            claimed, source = environ.get("HTTP_REFERER"), "Referer"
        if not claimed:
            return  # non-browser clients send neither; the token check still applies
        origin = _origin_of(claimed)
        if origin is not None and (origin == own or origin in self.trusted_origins):
            return
        hint = ""
        if origin and own and origin.split("://")[1] == own.split("://")[1]:
            hint = (" (same host, other scheme: behind a TLS-terminating proxy? put "
                    "ProxyMiddleware outside XSRFMiddleware)")
        raise XSRFRejected(f"{source} {claimed[:100]!r} does not match this site {own!r}{hint}")

    def _submitted(self, environ: WSGIEnvironment) -> str | None:
        token = environ.get("HTTP_X_XSRFTOKEN") or environ.get("HTTP_X_CSRFTOKEN")
        if token:
            return str(token)
        return self._form_field(environ)

    def _form_field(self, environ: WSGIEnvironment) -> str | None:
        """Find the ``_xsrf`` field in a form body, then give the app an equivalent input."""
        # what werkzeug's parse_options_header answers as the mimetype, without the options
        mimetype = (environ.get("CONTENT_TYPE") or "").partition(";")[0].strip(" \t")
        if mimetype.lower() not in _FORM_TYPES:
            return None
        body, data = self._buffer_body(environ)
        if mimetype == _URLENCODED and self._plain_field:
            # PERF: werkzeug's parser builds a MultiDict of every field; one scan finds ours.
            if data is None:  # a body too big for memory sits in a temporary file
                data = body.read()
                body.seek(0)
            return _urlencoded_field(data, self.field_name)
        _, form, _ = parse_form_data(dict(environ, **{"wsgi.input": body}),
                                     stream_factory=_discard_stream, silent=True)
        body.seek(0)
        value = form.get(self.field_name)
        return value if isinstance(value, str) else None

    def _buffer_body(self, environ: WSGIEnvironment) -> tuple[IO[bytes], bytes | None]:
        """Copy the body (at most ``max_body_size``) to memory, or to a temporary file past
        ``spool_size``; that copy becomes wsgi.input. Returns it and the bytes when in memory."""
        length = _declared_length(environ)
        if length is not None and length <= min(self.spool_size, self.max_body_size):
            # PERF: a small body of known length: one read, no stream wrapper, no temp file.
            data = read_exactly(environ["wsgi.input"], length)
            return self._replace_input(environ, io.BytesIO(data), length), data
        stream = bounded_input(environ, self.max_body_size)  # 413 on a declared oversize
        chunks: list[bytes] = []
        spool: IO[bytes] | None = None
        size = 0
        try:
            while chunk := stream.read(64 * 1024):
                size += len(chunk)
                if size > self.max_body_size:
                    raise RequestEntityTooLarge()
                if spool is not None:
                    spool.write(chunk)
                    continue
                chunks.append(chunk)
                if size > self.spool_size:
                    spool = tempfile.TemporaryFile()
                    spool.write(b"".join(chunks))
                    chunks.clear()
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        if spool is None:  # a small body stays in memory (nothing to close)
            data = b"".join(chunks)
            return self._replace_input(environ, io.BytesIO(data), size), data
        spool.seek(0)
        environ[_SPOOL] = spool
        return self._replace_input(environ, spool, size), None

    @staticmethod
    def _replace_input(environ: WSGIEnvironment, body: IO[bytes], size: int) -> IO[bytes]:
        """The buffered copy becomes wsgi.input, a plain body of known length (even if the
        client sent it chunked)."""
        environ["wsgi.input"] = body
        environ["CONTENT_LENGTH"] = str(size)
        if "wsgi.input_terminated" in environ:
            del environ["wsgi.input_terminated"]
        if "HTTP_TRANSFER_ENCODING" in environ:
            del environ["HTTP_TRANSFER_ENCODING"]
        return body

    def _verify(self, environ: WSGIEnvironment, token: bytes | None) -> None:
        self._check_fetch_metadata(environ)
        if self.check_origin:
            self._check_origin(environ)
        submitted = self._submitted(environ)
        if not submitted:
            raise XSRFRejected(f"'{self.field_name}' argument missing from "
                               f"{environ.get('REQUEST_METHOD')} (form field, or the "
                               "X-XSRFToken header)")
        if token is None:
            raise XSRFRejected("no XSRF token cookie: load a page carrying the form first")
        if not xsrf_tokens_equal(unmask_xsrf_token(submitted), token):
            raise XSRFRejected("XSRF token does not match")

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        session = self._session(environ)
        token = self._stored_token(environ, session)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in SAFE_METHODS and not (
                self._exempts and self.is_exempt(_app_path(environ))):
            refusal = self._refusal(environ, token)
            if refusal is not None:
                _close_spool(environ)
                return refusal(start_response)
        if token is None:
            token = new_xsrf_token()
            if session is not None:
                session[SESSION_KEY] = token.hex()
            else:
                start_response = self._with_cookie(environ, start_response, token)
        raw = token
        environ[keys.XSRF_TOKEN] = mask_xsrf_token(raw)
        environ[keys.XSRF_TOKEN_FACTORY] = lambda: mask_xsrf_token(raw)
        spool = environ.get(_SPOOL)
        if spool is None:
            return self.app(environ, start_response)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            _close_spool(environ)
            raise
        return ClosingIterator(body, [lambda: _close_spool(environ)])  # the buffered form

    def _refusal(self, environ: WSGIEnvironment, token: bytes | None
                 ) -> Callable[[StartResponse], list[bytes]] | None:
        """None when the unsafe request passes, else the 403 (or 400, 413) answer to send."""
        try:
            self._verify(environ, token)
        except XSRFRejected as exc:
            reason = str(exc)
            return lambda sr: self._forbidden(environ, sr, reason)
        except ClientDisconnected:  # the body ended before its Content-Length
            log.warning("XSRF check refused %s %r: the request body ended early",
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return lambda sr: plain_response(
                sr, "400 Bad Request", "400 Bad Request: the request body ended early.\n")
        except RequestEntityTooLarge:
            log.warning("XSRF check refused %s %r: form body over %d bytes",
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                        self.max_body_size)
            return lambda sr: plain_response(
                sr, "413 Request Entity Too Large", "413 Request Entity Too Large: the form "
                "is larger than the XSRF check buffers; send the token in the X-XSRFToken "
                "header instead.\n")
        return None

    def _with_cookie(self, environ: WSGIEnvironment, start_response: StartResponse,
                     token: bytes) -> StartResponse:
        def xsrf_start_response(status: str, headers: Headers,
                                exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            headers = [*headers, ("Set-Cookie", self._cookie(environ, token))]
            return start_response(status, headers, exc_info) if exc_info else \
                start_response(status, headers)
        return xsrf_start_response

    def _forbidden(self, environ: WSGIEnvironment, start_response: StartResponse,
                   reason: str) -> list[bytes]:
        # %r: the path is client-controlled; a decoded %0A must not forge a log line
        log.warning("XSRF check failed for %s %r from %s: %s", environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"), environ.get("REMOTE_ADDR"), reason)
        return plain_response(start_response, "403 Forbidden",
                              f"403 Forbidden: XSRF check failed: {reason}.\n",
                              headers=[("Cache-Control", "no-store")])


def _app_path(environ: WSGIEnvironment) -> str:
    """The request path as the app sees it: ``SCRIPT_NAME`` + ``PATH_INFO`` (already
    percent-decoded by the server, so decoding again would be wrong)."""
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def _normalised_path(path: str) -> str:
    """``path`` with empty, ``.`` and ``..`` segments resolved (RFC 3986 section 5.2.4, and
    ``//`` as ``/``); a trailing slash is kept, ``..`` never climbs above the root."""
    if "//" not in path and "/." not in path and path.startswith("/"):
        return path  # PERF: the usual clean path
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = path.endswith(("/", "/.", "/..")) and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def _declared_length(environ: WSGIEnvironment) -> int | None:
    """The body length werkzeug's ``get_content_length`` reads; None for a streamed body."""
    if "wsgi.input_terminated" in environ:
        return None
    value = environ.get("CONTENT_LENGTH")
    if value and value.isdigit() and value.isascii() and "HTTP_TRANSFER_ENCODING" not in environ:
        return int(value)  # PERF: the usual plain length
    return get_content_length(environ)


def _urlencoded_field(data: bytes, name: str) -> str | None:
    """The first value of field ``name`` in a urlencoded body, exactly as werkzeug's form parser
    (``parse_qsl(data.decode(), keep_blank_values=True)``) reads it; ``name`` must be plain."""
    if name.encode() not in data and b"%" not in data:  # PERF: absent field, nothing encoded
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:  # werkzeug answers an empty form
        return None
    for pair in text.split("&"):
        key, _, value = pair.partition("=")
        if key == name or ("%" in key and unquote(key.replace("+", " "), errors=_URL_ERRORS)
                           == name):
            return unquote(value.replace("+", " "), errors=_URL_ERRORS)
    return None


def _close_spool(environ: WSGIEnvironment) -> None:
    spool = environ.pop(_SPOOL, None)
    if spool is not None:
        spool.close()
