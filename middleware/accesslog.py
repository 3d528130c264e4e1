"""AccessLogMiddleware: one log record per request, with a request id echoed to the client.

Reads ``REMOTE_ADDR`` (as resolved by an outer ProxyMiddleware), the request line and headers,
``keys.USER`` (set by a login layer or handler, read when the response ends); writes
``keys.REQUEST_ID``. Records go to the ``microweb.access`` logger, at INFO below 400, WARNING
below 500, ERROR otherwise; the duration runs until the body iterable is closed, so streamed
responses are timed whole. Security caveat: user agent, referer and path are client-controlled;
they are escaped (no quote or control character reaches a text log line).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any
from urllib.parse import quote

from . import keys
from ._wsgi import (
    ClosingIterator,
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
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}$")
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


def level_for(status: int) -> int:
    """The tutorials' log_function levels: <400 info, <500 warning, else error."""
    if status < 400:
        return logging.INFO
    return logging.WARNING if status < 500 else logging.ERROR


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter  # optional extra: microweb[log]

    return JsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)


class _Request:
    """Per-request measurements, turned into exactly one log record."""

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ
        self.started, self.wall = time.perf_counter(), time.time()
        self.status = 0
        self.bytes = 0
        self.exc_info: ExcInfo | None = None
        self.started_response = False
        self.logged = False


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
        if self.trust_request_id and _REQUEST_ID_RE.match(incoming):
            return str(incoming)
        return uuid.uuid4().hex

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        state = _Request(environ)
        environ[keys.REQUEST_ID] = self.request_id(environ)

        def logged_start_response(status: str, headers: Headers,
                                  exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            headers = list(headers)
            set_header(headers, self.request_id_header, environ[keys.REQUEST_ID])
            state.status = status_code(status)
            write = (start_response(status, headers, exc_info) if exc_info is not None
                     else start_response(status, headers))
            state.started_response = True

            def counting_write(data: bytes) -> object:
                state.bytes += len(data)
                return write(data)
            return counting_write

        try:
            iterable = self.app(environ, logged_start_response)
        except Exception:
            return self._failed(state, start_response, sys.exc_info())
        return ClosingIterator(self._count(iterable, state),
                               [partial(close_iterable, iterable), partial(self._emit, state)])

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

    def _count(self, iterable: Iterable[bytes], state: _Request) -> Iterator[bytes]:
        try:
            for chunk in iterable:
                state.bytes += len(chunk)
                yield chunk
        except Exception:
            state.exc_info = sys.exc_info()
            state.status = state.status if state.started_response else 500
            self._emit(state)
            raise

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
            "time": time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(state.wall)),
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
        if not self.logger.isEnabledFor(level) or (
                level == logging.INFO and state.environ.get("PATH_INFO") in self.skip_paths):
            return
        fields = self.fields(state)
        if self.format == "json":
            message = f"{fields['method']} {fields['path']} {fields['status']}"
        else:
            message = self._template.format(**fields)
        self.logger.log(level, "%s", message, exc_info=state.exc_info,
                        extra={**fields, "access_log": id(self)})
