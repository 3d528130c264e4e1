"""Application: the WSGI callable that routes a request to a RequestHandler (or a mounted app).

Settings keep Tornado's names (``debug``, ``serve_traceback``, ``static_path``,
``default_handler_class``, ``log_function``, ``xsrf_cookies``, ``compress_response``...) plus
the body limits ``max_body_size``, ``max_form_memory_size`` and ``max_form_parts`` (exceeding
one answers 413).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from middleware.keys import REQUEST_ID

from .handler import ErrorHandler, RequestHandler
from .httputil import HTTPServerRequest, RequestLimits
from .routing import Router, URLSpec
from .signals import got_request_exception
from .static import StaticFileHandler

__all__ = ["Application"]

access_log = logging.getLogger("microweb.access")
app_log = logging.getLogger("microweb.application")

StartResponse = Callable[..., Any]
_UNSET_LIMIT: Any = object()


class Application:
    """A collection of routes and settings; call it as a WSGI application.

    ``handlers`` are ``(pattern, Handler[, kwargs[, name]])`` tuples or ``url()`` rules; a
    target may also be a list of rules or any WSGI application, mounted under the pattern.
    """

    def __init__(self, handlers: Sequence[Any] | None = None, default_host: str | None = None,
                 **settings: Any) -> None:
        if settings.get("debug"):
            for name, value in (("autoreload", True), ("compiled_template_cache", False),
                                ("static_hash_cache", False), ("serve_traceback", True)):
                settings.setdefault(name, value)
        settings.setdefault("static_handler_class", StaticFileHandler)
        self.settings: dict[str, Any] = settings
        self.default_host = default_host
        handlers = list(handlers or [])
        if settings.get("static_path"):
            handlers = self._static_rules() + handlers
        self.router = Router(handlers, default_host)
        self._limits = RequestLimits(
            max_body_size=settings.get("max_body_size", 100 * 1024 * 1024),
            max_form_memory_size=settings.get("max_form_memory_size", 500 * 1024),
            max_form_parts=settings.get("max_form_parts", 1000),
        )
        self._compressed: Callable[..., Iterable[bytes]] | None = None
        if settings.get("compress_response") or settings.get("gzip"):
            from middleware.gzip import GzipMiddleware
            self._compressed = GzipMiddleware(self._route)
        default_class = settings.get("default_handler_class")
        if default_class is not None:
            self._fallback = (default_class, dict(settings.get("default_handler_args", {})))
        else:
            self._fallback = (ErrorHandler, {"status_code": 404})

    def _static_rules(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """Tornado's static routes: the URL prefix, /favicon.ico and /robots.txt."""
        settings = self.settings
        prefix = settings.get("static_url_prefix", "/static/")
        handler_class = settings["static_handler_class"]
        handler_args = dict(settings.get("static_handler_args", {}))
        handler_args["path"] = settings["static_path"]
        patterns = [re.escape(prefix) + r"(.*)", r"/(favicon\.ico)", r"/(robots\.txt)"]
        return [(p, handler_class, handler_args) for p in patterns]

    # -- configuration --------------------------------------------------------------------
    def add_handlers(self, host_pattern: str, host_handlers: Sequence[Any]) -> None:
        """Add rules for hosts matching ``host_pattern``; tried in the order added.

        A host whose rules lack a path falls through to the default rules.
        """
        if host_pattern in (".*$", ".*"):
            self.router.add_default(host_handlers)
        else:
            self.router.add_host(host_pattern, host_handlers)

    def reverse_url(self, name: str, *args: Any) -> str:
        """The path of the rule called ``name``, arguments quoted into its groups."""
        return self.router.reverse(name, *args)

    @property
    def handlers(self) -> list[URLSpec]:
        """The default rules, flattened (for introspection)."""
        return list(self.router.default.rules)

    # -- logging --------------------------------------------------------------------------
    def log_request(self, handler: RequestHandler) -> None:
        """Log a finished request: ``log_function`` if set, else one line on microweb.access.

        The line is skipped when AccessLogMiddleware wraps the application (it set
        ``microweb.request_id``): that middleware already writes the request's access line.
        """
        log_function = self.settings.get("log_function")
        if log_function is not None:
            log_function(handler)
            return
        if REQUEST_ID in handler.request.environ:
            return
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        # PERF: build the line only when somebody listens.
        if access_log.isEnabledFor(level):
            access_log.log(level, "%d %s %.2fms", status, handler._request_summary(),
                           1000.0 * handler.request.request_time())

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._compressed is not None:
            return self._compressed(environ, start_response)
        return self._route(environ, start_response)

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if not path.isascii():  # PERF: the usual ASCII path needs no decoding
            try:
                path = path.encode("latin-1").decode("utf-8")
            except UnicodeError:
                return self._error(environ, start_response, 400, "Invalid UTF-8 in the path")
        router = self.router
        if router.hosts:
            found = router.find(path, lambda: _host_name(environ),
                                lambda: "HTTP_X_REAL_IP" in environ)
        else:
            found = router.default.find(path)
        if found is None:
            handler_class, kwargs = self._fallback
            args: list[Any] = []
            path_kwargs: dict[str, Any] = {}
        else:
            spec, match = found
            if spec.is_mount:
                return _call_mounted(spec, match, environ, start_response)
            handler_class, kwargs = spec.handler_class, spec.kwargs
            if match is None:
                args, path_kwargs = [], {}
            elif spec.named:
                args, path_kwargs = [], match.groupdict()
            else:
                args, path_kwargs = list(match.groups()), {}
        request = HTTPServerRequest(environ, self._limits)
        try:
            handler = handler_class(self, request, **kwargs)
        except Exception as exc:
            return self._construction_failed(exc, request, start_response)
        body = handler._execute(start_response, args, path_kwargs)
        if request._files and body is handler._body:
            request._close()
        return body  # type: ignore[no-any-return]

    def _error(self, environ: dict[str, Any], start_response: StartResponse, status: int,
               message: str | None = None) -> Iterable[bytes]:
        request = HTTPServerRequest(environ, self._limits)
        handler = ErrorHandler(self, request, status_code=status, log_message=message)
        return handler._execute(start_response, [], {})  # type: ignore[no-any-return]

    def _construction_failed(self, exc: Exception, request: HTTPServerRequest,
                             start_response: StartResponse) -> Iterable[bytes]:
        """initialize() or set_default_headers() raised: log it and answer a plain 500."""
        app_log.error("Uncaught exception %s %s (%s)", request.method, request.uri,
                      request.remote_ip, exc_info=exc)
        if got_request_exception.receivers:
            got_request_exception.send(self, exception=exc)
        return self._error(request.environ, start_response, 500)


def _call_mounted(spec: URLSpec, match: Any, environ: dict[str, Any],
                  start_response: StartResponse) -> Iterable[bytes]:
    """Call a mounted WSGI app with the matched prefix moved from PATH_INFO to SCRIPT_NAME."""
    matched: str = match.group(0)
    raw = matched if matched.isascii() else matched.encode("utf-8").decode("latin-1")
    env = dict(environ)
    env["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + raw
    env["PATH_INFO"] = environ.get("PATH_INFO", "")[len(raw):]
    if match.re.groups:
        env["wsgiorg.routing_args"] = (list(match.groups()), match.groupdict())
    return spec.target(env, start_response)  # type: ignore[no-any-return]


def _host_name(environ: dict[str, Any]) -> str:
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")).lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host
