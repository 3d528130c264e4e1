"""AccessLogMiddleware: one log record per request, with a request id echoed to the client.

Reads ``REMOTE_ADDR`` (as resolved by an outer ProxyMiddleware), the request line and headers,
``keys.USER`` (set by a login layer or handler, read when the response ends); writes
``keys.REQUEST_ID``. Records go to the ``microweb.access`` logger, at INFO below 400, WARNING
below 500, ERROR otherwise; the duration runs until the body iterable is closed, so streamed
responses are timed whole. Security caveat: user agent, referer and path are client-controlled;
they are escaped (no quote or control character reaches a text log line).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from . import keys
from ._wsgi import (
    ExcInfo,
    Headers,
    StartResponse,
    WSGIApp,
    WSGIEnvironment,
    close_iterable,
    plain_response,
    set_header,
    status_code,
)
from .base import Middleware

__all__ = ["COMBINED", "AccessLogMiddleware", "LOGGER_NAME"]

LOGGER_NAME = "microweb.access"
#: Apache/nginx "combined" format, understood by every log analyser.
COMBINED = ('{remote_addr} - {user} [{time}] "{request_line}" {status} {bytes_or_dash} '
            '"{referer}" "{user_agent}"')
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\xff"\\]')
_SAMPLE = dict.fromkeys(
    ("remote_addr", "user", "time", "request_line", "method", "path", "protocol", "status",
     "bytes", "bytes_or_dash", "duration_ms", "referer", "user_agent", "request_id", "host"), 0)
ENV_OUTPUT, ENV_FORMAT = "MICROWEB_ACCESS_LOG", "MICROWEB_ACCESS_LOG_FORMAT"
ENV_MAX_BYTES, ENV_BACKUPS = "MICROWEB_ACCESS_LOG_MAX_BYTES", "MICROWEB_ACCESS_LOG_BACKUPS"


def _escape(value: str) -> str:
    """Escape like Apache does: quotes, backslashes and control characters as ``\\xhh``."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _request_path(environ: WSGIEnvironment) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(path.encode("latin-1", "replace"), safe="/;=,:@!$&'()*+~%-._")
    query = environ.get("QUERY_STRING")
    return f"{path}?{_escape(query)}" if query else path


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` (random, version 4, RFC 4122 variant) without the UUID object."""
    # PERF: the UUID object and its checks cost twice the random bytes themselves.
    n = int.from_bytes(os.urandom(16), "big")
    n = (n & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    return f"{n:032x}"


_CLF_TIME: list[tuple[int, str]] = [(-1, "")]


def _clf_time(wall: float) -> str:
    """``wall`` in the combined log format's local time, e.g. ``10/Oct/2000:13:55:36 -0700``."""
    second = int(wall)
    cached = _CLF_TIME[0]
    if cached[0] != second:  # PERF: one strftime per second, not per request
        cached = (second, time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second)))
        _CLF_TIME[0] = cached
    return cached[1]


class _Line:
    """The text of a record, formatted only if a handler asks for it (``getMessage()``)."""

    __slots__ = ("fields", "template")

    def __init__(self, template: str, fields: dict[str, Any]) -> None:
        self.template, self.fields = template, fields

    def __str__(self) -> str:
        return self.template.format(**self.fields)


def _discarded(logger: logging.Logger) -> bool:
    """True when only NullHandlers would see this logger's records (output switched off)."""
    # PERF: then building a record is pointless; a filter or any other handler on the way,
    # or no handler at all (logging's last resort prints), means the record is made.
    found = 0
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return False
        for handler in current.handlers:
            if type(handler) is not logging.NullHandler:
                return False
            found += 1
        if not current.propagate:
            break
        current = current.parent
    return found > 0


def level_for(status: int) -> int:
    """The tutorials' log_function levels: <400 info, <500 warning, else error."""
    if status < 400:
        return logging.INFO
    return logging.WARNING if status < 500 else logging.ERROR


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter  # optional extra: microweb[log]

    return JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)


class _Request:
    """Per-request measurements, turned into exactly one log record.

    PERF: it is also the ``start_response`` wrapper and the body iterator (``close()`` once),
    one small object instead of two closures, a generator and a ClosingIterator per request.
    """

    __slots__ = ("bytes", "environ", "exc_info", "iterator", "logged", "mw", "started",
                 "started_response", "status", "upstream", "upstream_write", "wall",
                 "iterable", "closed")

    def __init__(self, mw: AccessLogMiddleware, environ: WSGIEnvironment,
                 start_response: StartResponse) -> None:
        self.mw, self.environ, self.upstream = mw, environ, start_response
        self.started, self.wall = time.perf_counter(), time.time()
        self.status = 0
        self.bytes = 0
        self.exc_info: ExcInfo | None = None
        self.started_response = False
        self.logged = False
        self.closed = False
        self.upstream_write: Callable[[bytes], object] | None = None
        self.iterable: Iterable[bytes] = ()
        self.iterator: Iterator[bytes] | None = None  # set by body()

    def start_response(self, status: str, headers: Headers,
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
        name, lowered = self.mw.request_id_header, self.mw._request_id_lower
        headers = list(headers)
        for key, _ in headers:
            if key.lower() == lowered:  # the app set its own: ours replaces it
                set_header(headers, name, self.environ[keys.REQUEST_ID])
                break
        else:
            headers.append((name, self.environ[keys.REQUEST_ID]))
        self.status = status_code(status)
        self.upstream_write = (self.upstream(status, headers, exc_info) if exc_info is not None
                               else self.upstream(status, headers))
        self.started_response = True
        return self.write

    def write(self, data: bytes) -> object:
        """The counting ``write`` callable handed to the app."""
        self.bytes += len(data)
        assert self.upstream_write is not None
        return self.upstream_write(data)

    def body(self, iterable: Iterable[bytes]) -> _Request:
        self.iterable, self.iterator = iterable, iter(iterable)
        return self

    def __iter__(self) -> _Request:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self.iterator)  # type: ignore[arg-type]
        except StopIteration:
            raise
        except Exception:
            self.exc_info = sys.exc_info()
            self.status = self.status if self.started_response else 500
            self.mw._emit(self)
            raise
        self.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        """Close the app's iterable, then log; once, and the record is written even if the
        app's ``close()`` raises (that error is re-raised afterwards)."""
        if self.closed:
            return
        self.closed = True
        try:
            close_iterable(self.iterable)
        except BaseException:
            with contextlib.suppress(Exception):
                self.mw._emit(self)
            raise
        self.mw._emit(self)


class AccessLogMiddleware(Middleware):
    """Log every request once; see the module docstring for the fields.

    ``format``: ``"combined"`` (default), ``"json"`` (python-json-logger, every field a key) or
    a ``str.format`` string over the fields. ``output``: None (only the logger; configure
    handlers yourself), ``"-"`` (stdout) or a file path (rotated at ``max_bytes``, keeping
    ``backup_count`` files). Unset options come from ``MICROWEB_ACCESS_LOG``,
    ``MICROWEB_ACCESS_LOG_FORMAT``, ``MICROWEB_ACCESS_LOG_MAX_BYTES``,
    ``MICROWEB_ACCESS_LOG_BACKUPS``. ``catch_errors`` answers 500 for an app that raises before
    its response starts (the error is logged once, in the access record). Successful (<400)
    requests to ``skip_paths`` (health checks...) are not logged.
    """

    provides = (keys.REQUEST_ID,)
    uses = (keys.PROXY_RESOLVED,)

    def __init__(self, app: WSGIApp, *, format: str | None = None, output: str | None = None,
                 max_bytes: int | None = None, backup_count: int | None = None,
                 logger: str | logging.Logger = LOGGER_NAME,
                 request_id_header: str = "X-Request-ID", trust_request_id: bool = True,
                 catch_errors: bool = True, skip_paths: Iterable[str] = ()) -> None:
        super().__init__(app)
        self.skip_paths = frozenset(skip_paths)
        self.format = format or os.environ.get(ENV_FORMAT) or "combined"
        self._template = COMBINED if self.format == "combined" else self.format
        if self.format != "json":
            try:
                self._template.format(**_SAMPLE)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"bad access log format {self.format!r}: {exc!r}; fields: "
                                 f"{', '.join(sorted(_SAMPLE))}") from exc
        self.logger = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
        self.request_id_header = request_id_header
        self._request_id_lower = request_id_header.lower()
        self._environ_header = "HTTP_" + request_id_header.upper().replace("-", "_")
        self.trust_request_id = trust_request_id
        self.catch_errors = catch_errors
        self.handler = self._make_handler(
            output if output is not None else os.environ.get(ENV_OUTPUT),
            max_bytes if max_bytes is not None else int(os.environ.get(ENV_MAX_BYTES, 10 << 20)),
            backup_count if backup_count is not None else int(os.environ.get(ENV_BACKUPS, 5)))

    def _make_handler(self, output: str | None, max_bytes: int,
                      backup_count: int) -> logging.Handler | None:
        """Attach this instance's own handler (filtered to its records) when asked to."""
        if not output:
            return None
        handler: logging.Handler
        if output in ("-", "stdout"):
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.handlers.RotatingFileHandler(
                output, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        handler.setFormatter(_json_formatter() if self.format == "json"
                             else logging.Formatter("%(message)s"))
        owner = id(self)
        handler.addFilter(lambda record: getattr(record, "access_log", None) == owner)
        self.logger.addHandler(handler)
        if self.logger.level == logging.NOTSET or self.logger.level > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return handler

    def close(self) -> None:
        """Detach and close the handler this middleware attached, if any."""
        if self.handler is not None:
            self.logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None

    def request_id(self, environ: WSGIEnvironment) -> str:
        """The incoming request id if trusted and well-formed, else a fresh one."""
        incoming = environ.get(self._environ_header, "")
        if self.trust_request_id and _REQUEST_ID_RE.fullmatch(incoming):
            return str(incoming)
        return _uuid4_hex()

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        state = _Request(self, environ, start_response)
        environ[keys.REQUEST_ID] = self.request_id(environ)
        try:
            iterable = self.app(environ, state.start_response)
        except Exception:
            return self._failed(state, start_response, sys.exc_info())
        return state.body(iterable)

    def _failed(self, state: _Request, start_response: StartResponse,
                exc_info: ExcInfo) -> list[bytes]:
        """The app raised before returning: log once; answer 500 unless told to re-raise.

        The 500 goes out with ``exc_info``, so a server that already sent the app's headers
        re-raises (PEP 3333) and cuts the connection instead.
        """
        state.exc_info = exc_info
        state.status = 500 if self.catch_errors else (state.status or 500)
        if self.catch_errors:
            state.bytes = len(b"Internal Server Error")
        self._emit(state)
        if not self.catch_errors:
            raise exc_info[1].with_traceback(exc_info[2])  # type: ignore[union-attr]
        rid = state.environ[keys.REQUEST_ID]
        return plain_response(start_response, "500 Internal Server Error",
                              "Internal Server Error", [(self.request_id_header, rid)],
                              exc_info=exc_info)

    def fields(self, state: _Request) -> dict[str, Any]:
        """Every field of the record (also the keys of a custom format string)."""
        environ = state.environ
        method = _escape(environ.get("REQUEST_METHOD", "-"))
        path = _request_path(environ)
        protocol = _escape(environ.get("SERVER_PROTOCOL", "HTTP/1.0"))
        user = environ.get(keys.USER)
        return {
            "remote_addr": _escape(environ.get("REMOTE_ADDR") or "-"),
            "user": _escape(str(user)) if user not in (None, "") else "-",
            "time": _clf_time(state.wall),
            "request_line": f"{method} {path} {protocol}",
            "method": method, "path": path, "protocol": protocol,
            "host": _escape(environ.get("HTTP_HOST", "")),
            "status": state.status,
            "bytes": state.bytes, "bytes_or_dash": state.bytes or "-",
            "duration_ms": round((time.perf_counter() - state.started) * 1000, 3),
            "referer": _escape(environ.get("HTTP_REFERER", "-")),
            "user_agent": _escape(environ.get("HTTP_USER_AGENT", "-")),
            "request_id": environ.get(keys.REQUEST_ID, "-"),
        }

    def _emit(self, state: _Request) -> None:
        """Emit the record, once (close() and an error path may both get here)."""
        if state.logged:
            return
        state.logged = True
        level = level_for(state.status or 500)
        logger = self.logger
        if not logger.isEnabledFor(level) or (
                self.skip_paths and level == logging.INFO
                and state.environ.get("PATH_INFO") in self.skip_paths):
            return
        if _discarded(logger):
            return
        fields = self.fields(state)
        message: object
        if self.format == "json":
            message = f"{fields['method']} {fields['path']} {fields['status']}"
        else:
            message = _Line(self._template, fields)
        # PERF: the record is made directly, as logging does with caller lookup switched off
        # (logging._srcfile = None): walking the stack for the caller of this method would
        # cost more than the record, and names this module's line anyway. The fields become
        # attributes in one update instead of makeRecord's checked loop (their names are fixed
        # and clash with no LogRecord attribute).
        record = logger.makeRecord(logger.name, level, "(unknown file)", 0, "%s", (message,),
                                   state.exc_info, "(unknown function)")
        record.__dict__.update(fields)
        record.access_log = id(self)
        logger.handle(record)
