"""RequestHandler: Tornado's handler API and lifecycle, answering through PEP 3333.

Lifecycle (as ``tornado.web.RequestHandler._execute``): ``set_default_headers`` and
``initialize(**route kwargs)`` when constructed, then the XSRF check, ``prepare``, the HTTP
method, ``finish`` and ``on_finish``. Errors go through ``send_error`` -> ``write_error``,
which discard what was written and re-apply ``set_default_headers``.

The response is buffered and handed to the server when the handler finishes. ``flush()``
sends the headers and what was written so far through the ``write`` callable that
``start_response`` returns; a handler method that is a generator streams each chunk it yields
as the server iterates the response. Coroutine methods run on the thread's event loop.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import string
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from html import escape
from types import AsyncGeneratorType, CoroutineType, GeneratorType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from middleware.keys import REQUEST_ID, SESSION

from . import _async
from ._errors import RESPONSES, Finish, HTTPError, MissingArgumentError
from ._headers import UNSAFE_VALUE, convert_header_value, normalize_header
from ._streaming import StreamingBody
from .auth import AuthMixin
from .cookies import CookieMixin
from .httputil import HTTPServerRequest
from .log import ContextAdapter, user_label
from .signals import got_request_exception, request_finished, request_started
from .templating import TemplateMixin

if TYPE_CHECKING:
    from .application import Application

__all__ = ["ErrorHandler", "Finish", "HTTPError", "MissingArgumentError", "RedirectHandler",
           "RequestHandler", "addslash", "removeslash"]

app_log = logging.getLogger("microweb.application")

_ARG_DEFAULT: Any = object()
_UNSET: Any = object()
_DEFAULT_CONTENT_TYPE = "text/html; charset=UTF-8"
_XSRF_EXEMPT = frozenset(("GET", "HEAD", "OPTIONS"))
_ETAG_METHODS = frozenset(("GET", "HEAD"))
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")
_ETAG_LIST = re.compile(r'\*|(?:W/)?"[^"]*"')
_REPRESENTATION_HEADERS = ("Content-Encoding", "Content-Language", "Content-Type")
_sha1 = hashlib.sha1  # ETags are not a security feature
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
# Browsers (WHATWG URL) strip outer blanks and controls, drop tabs/newlines and read a
# backslash as "/": "/\\evil" and " //evil" name a host.
_BROWSER_DROPS = str.maketrans({"\t": None, "\n": None, "\r": None, "\\": "/"})
_OUTER_BLANKS = "".join(map(chr, range(0x21)))


def _browser_url(url: str) -> str:
    """``url`` cleaned up the way a browser does before parsing it."""
    return url.strip(_OUTER_BLANKS).translate(_BROWSER_DROPS)


def _protocol_relative(path: str) -> bool:
    """Whether a browser would read ``path`` as ``//host...`` (an open redirect if sent back)."""
    return _browser_url(path).startswith("//")


def _scheme_and_host(url: str) -> tuple[str, str]:
    """The scheme and netloc a browser would see in ``url`` (ValueError if unparsable)."""
    parts = urlsplit(_browser_url(url))
    return parts.scheme.lower(), parts.netloc.lower()


def _substitution_moves_host(template: str, url: str) -> bool:
    """Whether filling ``template`` produced ``url`` on another scheme or host than the
    template's own text before its first ``{}`` field says (Tornado 6.6's RedirectHandler)."""
    prefix, substituted = "", False
    for literal, field, _, _ in string.Formatter().parse(template):
        prefix += literal
        if field is not None:
            substituted = True
            break
    try:
        scheme, host = _scheme_and_host(prefix)
        if substituted and scheme in ("http", "https") and not host:
            return True  # the host would come entirely from the request
        return _scheme_and_host(url) != (scheme, host)
    except ValueError:
        return True


def _unimplemented_method(self: RequestHandler, *args: Any, **kwargs: Any) -> None:
    raise HTTPError(405)


# PERF: per handler class, the HTTP methods it implements (resolved once per class).
_IMPLEMENTED: dict[type, dict[str, str]] = {}


def _implemented_methods(cls: type[RequestHandler]) -> dict[str, str]:
    found = _IMPLEMENTED.get(cls)
    if found is None:
        found = {m: m.lower() for m in cls.SUPPORTED_METHODS
                 if getattr(cls, m.lower(), _unimplemented_method) is not _unimplemented_method}
        _IMPLEMENTED[cls] = found
    return found


# The mixins of the cookies/templates room are filled in over time; until a hook exists the
# core behaves as if there were no cookies to emit / no XSRF check to make.
_HAS_COOKIE_HEADERS = hasattr(CookieMixin, "_cookie_headers")
_HAS_XSRF_CHECK = hasattr(AuthMixin, "check_xsrf_cookie")


class RequestHandler(CookieMixin, AuthMixin, TemplateMixin):
    """Subclass and define ``get()``, ``post()``... (Tornado's names and meanings)."""

    SUPPORTED_METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT",
                                          "OPTIONS")
    application: Application
    request: HTTPServerRequest

    # PERF: per-request state that rarely changes lives on the class until it is assigned.
    path_args: list[Any] = []  # replaced per request, never mutated
    path_kwargs: dict[str, Any] = {}
    _finished = False
    _headers_written = False
    _auto_finish = True
    _multi: list[tuple[str, str]] | None = None
    _pending: deque[bytes] | None = None
    _wsgi_write: Callable[[bytes], object] | None = None
    _start_response: Callable[..., Any] | None = None
    _body: Any = []  # the WSGI iterable handed to the server (a list unless send_wsgi_body)
    _wsgi_body: Any = None
    _defer_on_finish = False
    _on_finish_pending = False
    _json: Any = _UNSET

    def __init__(self, application: Application, request: HTTPServerRequest,
                 **kwargs: Any) -> None:
        self.application = application
        self.request = request
        self.clear()
        self.initialize(**kwargs)

    # -- hooks to override ----------------------------------------------------------------
    def initialize(self, **kwargs: Any) -> None:
        """Receives the route's kwargs dict; override to keep what the handler needs."""

    def prepare(self) -> Any:
        """Runs before the method; may finish the request (redirect, error). May be async."""

    def on_finish(self) -> Any:
        """Runs after the response is finished, also after errors (clean-up, metrics)."""

    def set_default_headers(self) -> None:
        """Set headers every response of this handler carries, error pages included."""

    get = head = post = delete = patch = put = options = _unimplemented_method

    # -- settings and helpers -------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """The application's settings dict."""
        return self.application.settings

    def reverse_url(self, name: str, *args: Any) -> str:
        """The path of the rule called ``name`` with ``args`` filled in (and quoted)."""
        return self.application.reverse_url(name, *args)

    def require_setting(self, name: str, feature: str = "this feature") -> None:
        """Raise a clear error when the application lacks a setting a feature needs."""
        if not self.application.settings.get(name):
            raise RuntimeError(f"You must define the '{name}' setting in your application "
                               f"to use {feature}")

    @property
    def session(self) -> Any:
        """The session from ``SessionMiddleware`` (``environ["microweb.session"]``)."""
        try:
            return self.request.environ[SESSION]
        except KeyError:
            raise RuntimeError("handler.session needs middleware.SessionMiddleware around "
                               "the application (environ['microweb.session'] is missing)"
                               ) from None

    @cached_property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger on ``microweb.application`` whose records carry ``user``, ``request_id``.

        Both are read when a line is logged: ``user`` is ``current_user``'s name (None when
        nobody is logged in, and in lines ``get_current_user`` itself logs), ``request_id``
        the id the access-log middleware assigned.
        """
        return ContextAdapter(app_log, self._log_context)

    def _log_context(self) -> dict[str, Any]:
        user = None
        if not self._resolving_user:  # get_current_user itself may log
            try:
                user = user_label(self.current_user)
            except Exception:  # a broken get_current_user must not break logging
                user = None
        return {"user": user, "request_id": self.request.environ.get(REQUEST_ID)}

    def run_in_executor(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From an ``async`` method: ``await self.run_in_executor(blocking_call, arg)``."""
        return _async.run_in_executor(fn, *args)

    # -- status and headers ---------------------------------------------------------------
    def get_status(self) -> int:
        return self._status_code

    def set_status(self, status_code: int, reason: str | None = None) -> None:
        """Set the status; a code outside the standard list needs a ``reason``."""
        if not isinstance(status_code, int) or not 100 <= status_code <= 999:
            raise ValueError(f"invalid status code {status_code!r}")
        if reason is None:
            reason = RESPONSES.get(status_code)
            if reason is None:
                raise ValueError(f"unknown status code {status_code}: give a reason")
        elif UNSAFE_VALUE(reason):
            raise ValueError(f"unsafe reason phrase {reason!r}")
        self._status_code = status_code
        self._reason = reason

    def set_header(self, name: str, value: Any) -> None:
        """Set a response header, replacing any value (ints and datetimes are converted)."""
        name = normalize_header(name)
        self._headers[name] = convert_header_value(value)
        if self._multi:
            self._multi = [item for item in self._multi if item[0] != name]

    def add_header(self, name: str, value: Any) -> None:
        """Add a response header, keeping earlier values of the same name."""
        name = normalize_header(name)
        value = convert_header_value(value)
        if name not in self._headers:
            self._headers[name] = value
        elif self._multi is None:
            self._multi = [(name, value)]
        else:
            self._multi.append((name, value))

    def clear_header(self, name: str) -> None:
        """Remove every value of a response header."""
        name = normalize_header(name)
        self._headers.pop(name, None)
        if self._multi:
            self._multi = [item for item in self._multi if item[0] != name]

    def clear(self) -> None:
        """Reset headers (re-applying ``set_default_headers``), the body and the status."""
        self._headers: dict[str, str] = {"Content-Type": _DEFAULT_CONTENT_TYPE}
        self._multi = None
        self.set_default_headers()
        self._write_buffer: list[bytes] = []
        self._status_code = 200
        self._reason = "OK"

    # -- input ----------------------------------------------------------------------------
    def get_argument(self, name: str, default: Any = _ARG_DEFAULT, strip: bool = True) -> Any:
        """The last value of a query or body argument; 400 if missing and no default."""
        return self._get_argument(name, default, self.request.arguments, strip)

    def get_arguments(self, name: str, strip: bool = True) -> list[str]:
        """Every value of an argument: query values first, then body values."""
        return self._get_arguments(name, self.request.arguments, strip)

    def get_query_argument(self, name: str, default: Any = _ARG_DEFAULT,
                           strip: bool = True) -> Any:
        return self._get_argument(name, default, self.request.query_arguments, strip)

    def get_query_arguments(self, name: str, strip: bool = True) -> list[str]:
        return self._get_arguments(name, self.request.query_arguments, strip)

    def get_body_argument(self, name: str, default: Any = _ARG_DEFAULT,
                          strip: bool = True) -> Any:
        return self._get_argument(name, default, self.request.body_arguments, strip)

    def get_body_arguments(self, name: str, strip: bool = True) -> list[str]:
        return self._get_arguments(name, self.request.body_arguments, strip)

    def _get_argument(self, name: str, default: Any, source: dict[str, list[bytes]],
                      strip: bool) -> Any:
        values = source.get(name)
        if not values:
            if default is _ARG_DEFAULT:
                raise MissingArgumentError(name)
            return default
        return self._clean(values[-1], name, strip)

    def _get_arguments(self, name: str, source: dict[str, list[bytes]],
                       strip: bool) -> list[str]:
        return [self._clean(v, name, strip) for v in source.get(name, ())]

    def _clean(self, raw: bytes, name: str, strip: bool) -> Any:
        value = self.decode_argument(raw, name)
        if isinstance(value, str):
            if not value.isprintable():
                value = _CONTROL_CHARS.sub(" ", value)
            if strip:
                value = value.strip()
        return value

    def decode_argument(self, value: bytes, name: str | None = None) -> Any:
        """Decode an argument's bytes (UTF-8); override for another encoding. 400 if invalid."""
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "Invalid unicode in %s: %r", name or "url", value[:40],
                            reason="Bad Request: invalid UTF-8") from None

    def get_json(self) -> Any:
        """The request body parsed as JSON (cached); 400 with a clear message if invalid."""
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.request.body)
            except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nesting
                raise HTTPError(400, "Invalid JSON body: %s", exc,
                                reason="Bad Request: invalid JSON body") from None
        return self._json

    # -- output ---------------------------------------------------------------------------
    def write(self, chunk: str | bytes | dict[str, Any]) -> None:
        """Buffer output; a dict is sent as JSON with ``application/json; charset=UTF-8``."""
        if self._finished:
            raise RuntimeError("Cannot write() after finish()")
        if isinstance(chunk, str):
            self._write_buffer.append(chunk.encode("utf-8"))
        elif isinstance(chunk, bytes):
            self._write_buffer.append(chunk)
        elif isinstance(chunk, dict):
            self._headers["Content-Type"] = "application/json; charset=UTF-8"
            text = json.dumps(chunk).replace("</", "<\\/")
            self._write_buffer.append(text.encode("utf-8"))
        else:
            message = "write() only accepts bytes, str and dict objects"
            if isinstance(chunk, list):
                message += ("; lists are not accepted for security reasons, see "
                            "https://www.tornadoweb.org/en/stable/web.html#tornado.web.RequestHandler.write")
            raise TypeError(message)

    def flush(self, include_footers: bool = False) -> None:
        """Send the headers (first time) and the buffered output to the client now."""
        chunk = b"".join(self._write_buffer)
        self._write_buffer = []
        if not self._headers_written:
            self._emit_headers()
        if not chunk or self.request.method == "HEAD":
            return
        if self._pending is not None:
            self._pending.append(chunk)
        elif self._wsgi_write is not None:
            self._wsgi_write(chunk)

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> None:
        """Finish the response, then log it and run ``on_finish``."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        if chunk is not None:
            self.write(chunk)
        if self._headers_written:
            self.flush()
        else:
            if len(self._write_buffer) > 1:  # PERF: hash, measure and send one chunk
                self._write_buffer = [b"".join(self._write_buffer)]
            if self._wsgi_body is None:
                self._finalize_headers()
            self._emit_headers()
            if self.request.method != "HEAD":
                if self._pending is not None:  # a streaming method: the server iterates
                    self._pending.extend(chunk for chunk in self._write_buffer if chunk)
                elif self._wsgi_body is not None:
                    self._body = self._wsgi_body
                else:
                    self._body = self._write_buffer
            self._write_buffer = []
        self._finished = True
        self._log_request()
        if self._defer_on_finish:  # _execute hands on_finish to the body's close()
            self._on_finish_pending = True
        else:
            self._run_on_finish()

    def send_wsgi_body(self, body: Iterable[bytes]) -> None:
        """Finish with ``body``, a WSGI iterable the server sends unread (and closes).

        For a file, pass ``environ["wsgi.file_wrapper"](file)`` (or werkzeug's ``wrap_file``)
        so the server can use sendfile. Set the status and headers first, ``Content-Length``
        included: nothing is buffered, so no ETag or length is computed. A HEAD request (or a
        304/204 status) sends no body and ``body`` is closed at once.
        """
        if self._headers_written or self._finished or any(self._write_buffer):
            _close_iterable(body)
            raise RuntimeError("send_wsgi_body() needs an unsent, empty response")
        if self._pending is not None:
            _close_iterable(body)
            raise RuntimeError("send_wsgi_body() cannot answer from a generator method")
        code = self._status_code
        if code in (204, 304) or code < 200:
            _close_iterable(body)
            self.finish()  # the usual finish drops the body headers
            return
        if self.request.method == "HEAD":
            _close_iterable(body)
            body = []
        self._wsgi_body = body
        try:
            self.finish()
        except BaseException:
            _close_iterable(body)
            raise

    def _finalize_headers(self) -> None:
        """ETag/304, then Content-Length or the removal of body headers (204, 304, 1xx)."""
        headers = self._headers
        if (self._status_code == 200 and "Etag" not in headers
                and self.request.method in _ETAG_METHODS):
            if type(self).set_etag_header is RequestHandler.set_etag_header:
                etag = self.compute_etag()  # PERF: the inlined default set_etag_header
                if etag is not None:
                    headers["Etag"] = convert_header_value(etag)
            else:
                self.set_etag_header()
            if ("Etag" in headers and "HTTP_IF_NONE_MATCH" in self.request.environ
                    and self.check_etag_header()):
                self._write_buffer = []
                self.set_status(304)
        code = self._status_code
        if code in (204, 304) or code < 200:
            if any(self._write_buffer):
                raise RuntimeError(f"Cannot send a body with status {code}")
            for name in _REPRESENTATION_HEADERS:
                headers.pop(name, None)
        elif "Content-Length" not in headers:
            buffer = self._write_buffer
            headers["Content-Length"] = str(len(buffer[0]) if len(buffer) == 1
                                            else sum(map(len, buffer)))

    def _emit_headers(self) -> None:
        headers = list(self._headers.items())
        if self._multi:
            headers.extend(self._multi)
        if _HAS_COOKIE_HEADERS:
            cookies = self._cookie_headers()
            if cookies:
                headers.extend([("Set-Cookie", value) for value in cookies])
        status = f"{self._status_code} {self._reason}"
        self._wsgi_write = self._start_response(status, headers)  # type: ignore[misc]
        self._headers_written = True

    def _log_request(self) -> None:
        """Log the request and signal it; a failure in either is logged only."""
        try:
            self.application.log_request(self)
            if request_finished.receivers:
                request_finished.send(self)
        except Exception:
            app_log.error("Exception logging or signalling %s", self._request_summary(),
                          exc_info=True)

    def _run_on_finish(self) -> None:
        """Run on_finish (a coroutine to completion); a failure is logged only."""
        try:
            result = self.on_finish()
            if result is not None:
                _async.run(result)
        except Exception:
            app_log.error("Exception in on_finish of %s", self._request_summary(),
                          exc_info=True)

    def redirect(self, url: str, permanent: bool = False, status: int | None = None) -> None:
        """Answer 302 (301 if ``permanent``, or ``status``) with ``Location: url``."""
        if self._headers_written:
            raise RuntimeError("Cannot redirect after headers have been written")
        if status is None:
            status = 301 if permanent else 302
        elif not 300 <= status <= 399:
            raise ValueError(f"redirect status must be 3xx, not {status}")
        if not url.isascii():  # an IRI: percent-encode it as a browser would
            url = quote(url, safe=_URL_SAFE)
        self.set_status(status)
        self.set_header("Location", url)
        self.finish()

    # -- ETag -----------------------------------------------------------------------------
    def compute_etag(self) -> str | None:
        """The ETag of the buffered body (SHA-1); return None to send no ETag."""
        buffer = self._write_buffer
        if len(buffer) == 1:  # PERF: finish() joined the body into one chunk
            return '"' + _sha1(buffer[0]).hexdigest() + '"'
        hasher = _sha1()
        for part in buffer:
            hasher.update(part)
        return '"' + hasher.hexdigest() + '"'

    def set_etag_header(self) -> None:
        etag = self.compute_etag()
        if etag is not None:
            self.set_header("Etag", etag)

    def check_etag_header(self) -> bool:
        """Whether the request's If-None-Match matches the response ETag (weak comparison)."""
        computed = self._headers.get("Etag", "")
        etags = _ETAG_LIST.findall(self.request.environ.get("HTTP_IF_NONE_MATCH", ""))
        if not computed or not etags:
            return False
        if etags[0] == "*":
            return True
        plain = computed[2:] if computed.startswith("W/") else computed
        return any((e[2:] if e.startswith("W/") else e) == plain for e in etags)

    # -- errors ---------------------------------------------------------------------------
    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Discard the response so far and answer ``status_code`` via ``write_error``."""
        if self._headers_written:
            app_log.error("Cannot send error response after headers written")
            if not self._finished:
                try:
                    self.finish()
                except Exception:
                    app_log.error("Failed to flush partial response", exc_info=True)
            return
        self.clear()
        reason = kwargs.get("reason")
        exc = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if isinstance(exc, HTTPError) and exc.reason:
            reason = exc.reason
        if reason is not None and not _safe_reason(reason):  # often built from user input
            app_log.warning("Unsafe reason phrase %r replaced by the standard one", reason)
            reason = None
        if reason is None and status_code not in RESPONSES:
            reason = "Unknown"
        self.set_status(status_code, reason=reason)
        if status_code == 405:
            self.set_header("Allow", ", ".join(_implemented_methods(type(self))))
        try:
            self.write_error(status_code, **kwargs)
        except Exception:
            app_log.error("Uncaught exception in write_error", exc_info=True)
        if not self._finished:
            self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Write the error page; ``kwargs["exc_info"]`` holds the exception if there is one.

        The default page shows only the status. With ``serve_traceback`` (or ``debug``) a
        server error shows the traceback instead.
        """
        exc_info = kwargs.get("exc_info")
        if exc_info and self.settings.get("serve_traceback") and not (
                isinstance(exc_info[1], HTTPError) and exc_info[1].status_code < 500):
            from ._errorpage import traceback_page  # loaded only when a traceback is shown
            self.finish(traceback_page(exc_info[1], status_code, self._reason))
            return
        self.finish(_error_page(status_code, self._reason))

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        """Log an exception: HTTPErrors with a log_message as warnings, others with traceback."""
        if isinstance(value, HTTPError):
            if value.log_message:
                app_log.warning("%d %s: " + value.log_message, value.status_code,
                                self._request_summary(), *value.args)
        else:
            app_log.error("Uncaught exception %s", self._request_summary(),
                          exc_info=(typ, value, tb))  # type: ignore[arg-type]

    def _request_summary(self) -> str:
        request = self.request
        return f"{request.method} {request.uri} ({request.remote_ip})"

    def _handle_request_exception(self, exc: BaseException) -> None:
        if isinstance(exc, Finish):
            if not self._finished:
                self.finish(*exc.args)
            return
        exc_info: Any = sys.exc_info()
        if isinstance(exc, WerkzeugHTTPException) and exc.code is not None:
            # werkzeug's helpers (limited streams, headers[...]) speak HTTP errors too
            exc = HTTPError(exc.code, "%s", exc.description)
            exc_info = (HTTPError, exc, exc_info[2])
        try:
            self.log_exception(*exc_info)
        except Exception:
            app_log.error("Error in exception logger", exc_info=True)
        if not isinstance(exc, HTTPError) and got_request_exception.receivers:
            got_request_exception.send(self, exception=exc)
        if self._finished:
            return
        status = exc.status_code if isinstance(exc, HTTPError) else 500
        self.send_error(status, exc_info=exc_info)

    # -- the lifecycle --------------------------------------------------------------------
    def _execute(self, start_response: Callable[..., Any], args: list[Any],
                 kwargs: dict[str, Any]) -> Any:
        """Run the request; returns the WSGI response iterable (start_response is called).

        As in Tornado, ``on_finish`` runs once the response is sent: a buffered response of a
        handler that overrides it comes back as an iterable whose ``close()`` runs it.
        """
        # PERF: a handler without on_finish returns the plain list servers send in one write.
        if type(self).on_finish is _BASE_ON_FINISH:
            return self._run(start_response, args, kwargs)
        self._defer_on_finish = True
        try:
            body = self._run(start_response, args, kwargs)
        finally:
            self._defer_on_finish = False
        if self._on_finish_pending:
            return _FinishOnClose(body, self)
        return body

    def _run(self, start_response: Callable[..., Any], args: list[Any],
             kwargs: dict[str, Any]) -> Any:
        """The lifecycle proper (see ``_execute``)."""
        self._start_response = start_response
        try:
            method = self.request.method
            if method not in self.SUPPORTED_METHODS:
                raise HTTPError(405)
            self.path_args, self.path_kwargs = args, kwargs
            if (method not in _XSRF_EXEMPT and _HAS_XSRF_CHECK
                    and self.application.settings.get("xsrf_cookies")):
                self.check_xsrf_cookie()
            if request_started.receivers:
                request_started.send(self)
            result = self.prepare()
            if result is not None:
                _async.run(result)
            if self._finished:
                return self._body
            cls = type(self)
            implemented = _IMPLEMENTED.get(cls)
            if implemented is None:
                implemented = _implemented_methods(cls)
            name = implemented.get(method)
            if name is None:
                raise HTTPError(405)
            result = getattr(self, name)(*args, **kwargs)
            if result is not None:
                result_type = type(result)
                if result_type is GeneratorType or result_type is AsyncGeneratorType:
                    return StreamingBody(self, result)
                if result_type is not CoroutineType and not hasattr(result, "__await__"):
                    raise TypeError(f"{cls.__name__}.{name}() returned a "
                                    f"{result_type.__name__}: use self.write() or yield")
                _async.run(result)
            if self._auto_finish and not self._finished:
                self.finish()
        except Exception as exc:
            self._handle_request_exception(exc)
        return self._body

    def _abandon(self) -> None:
        """The client went away mid-stream: finish our side so on_finish still runs."""
        if not self._finished:
            self._finished = True
            self._log_request()
            self._run_on_finish()


_BASE_ON_FINISH = RequestHandler.on_finish


def _close_iterable(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _FinishOnClose:
    """A finished response whose ``close()`` (the server calls it once the response is sent)
    closes the body, runs the handler's ``on_finish`` and releases uploaded files."""

    __slots__ = ("_body", "_handler")

    def __init__(self, body: Iterable[bytes], handler: RequestHandler) -> None:
        self._body = body
        self._handler: RequestHandler | None = handler

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        handler, self._handler = self._handler, None
        if handler is None:
            return
        try:
            _close_iterable(self._body)
        finally:
            handler._on_finish_pending = False
            handler._run_on_finish()
            handler.request._close()


def _safe_reason(reason: str) -> bool:
    """Whether ``reason`` can go in a status line (no control characters, latin-1)."""
    return not UNSAFE_VALUE(reason) and (reason.isascii() or reason.isprintable()
                                         and max(reason) <= "\xff")


def _error_page(status_code: int, reason: str) -> str:
    message = escape(reason)
    return (f"<html><title>{status_code}: {message}</title>"
            f"<body>{status_code}: {message}</body></html>")


_Method = TypeVar("_Method", bound=Callable[..., Any])


def removeslash(method: _Method) -> _Method:
    """Redirect ``/path/`` to ``/path`` (GET/HEAD; 404 for other methods), as Tornado."""
    @functools.wraps(method)
    def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
        path = self.request.path
        if path.endswith("/"):
            if self.request.method not in _ETAG_METHODS:
                raise HTTPError(404)
            target = path.rstrip("/")
            if _protocol_relative(target):  # "//evil.example/" must not go to another host
                raise HTTPError(403, "cannot redirect path with two initial slashes")
            if target:  # never redirect "/" to ""
                query = self.request.query
                self.redirect(target + ("?" + query if query else ""), permanent=True)
                return None
        return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


def addslash(method: _Method) -> _Method:
    """Redirect ``/path`` to ``/path/`` (GET/HEAD; 404 for other methods), as Tornado."""
    @functools.wraps(method)
    def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
        path = self.request.path
        if not path.endswith("/"):
            if self.request.method not in _ETAG_METHODS:
                raise HTTPError(404)
            if _protocol_relative(path):  # "//evil.example" must not go to another host
                raise HTTPError(403, "cannot redirect path with two initial slashes")
            query = self.request.query
            self.redirect(path + "/" + ("?" + query if query else ""), permanent=True)
            return None
        return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class RedirectHandler(RequestHandler):
    """Redirect every GET to ``url`` (permanent by default), keeping the query string.

    ``url`` may use ``str.format`` fields filled from the route's groups:
    ``(r"/pictures/(.*)", RedirectHandler, {"url": "/photos/{0}"})``. A request whose
    substitution would change the scheme or host (``//evil.example``) answers 400.
    """

    def initialize(self, url: str, permanent: bool = True) -> None:  # type: ignore[override]
        self._url = url
        self._permanent = permanent

    def get(self, *args: Any, **kwargs: Any) -> None:
        to_url = self._url.format(*args, **kwargs)
        query = self.request.query
        if query:
            to_url += ("&" if "?" in to_url else "?") + query
        if _substitution_moves_host(self._url, to_url):  # "/{0}/b" with "/evil.example"
            raise HTTPError(400, "Redirect URL cannot change the scheme or host")
        if UNSAFE_VALUE(to_url):
            raise HTTPError(400, "Redirect URL contains control characters")
        self.redirect(to_url, permanent=self._permanent)


class ErrorHandler(RequestHandler):
    """Answers every request with ``status_code`` (the 404 of unknown paths, 400 of bad ones)."""

    def initialize(self, status_code: int, log_message: str | None = None,  # type: ignore[override]
                   reason: str | None = None) -> None:
        self._error = HTTPError(status_code, log_message, reason=reason)

    def prepare(self) -> NoReturn:
        raise self._error

    def check_xsrf_cookie(self) -> None:
        """Unknown paths answer 404, not an XSRF 403."""
