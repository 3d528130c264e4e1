"""werkzeug's interactive in-browser debugger, only when asked for and only on loopback.

The debugger runs arbitrary Python in the server process from a web page, so it is never a
side effect of ``debug=True``: enable it explicitly (the ``debugger=True`` setting, ``debugger =
true`` in a config file's ``[app.settings]`` or ``microweb serve --debugger``), and
:func:`debugged` refuses unless the server binds to a loopback address. werkzeug's PIN check
stays on; the PIN is logged at WARNING on ``microweb.application``.

The framework answers a handler's uncaught exception with a 500 page itself, so the debugger
would never see it: while the debugger is on, a ``got_request_exception`` receiver keeps the
exception in the request's environ and the layer just inside the debugger raises it again,
with its traceback, instead of sending that page.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from werkzeug.debug import DebuggedApplication

from microweb import signals
from microweb.log import app_log

__all__ = ["DebuggerRefused", "debugged", "is_loopback", "maybe_debugged"]


class DebuggerRefused(RuntimeError):
    """The interactive debugger was enabled for a server reachable from other machines."""


def _is_loopback_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback(host: str | None) -> bool:
    """True if ``host`` only ever means this machine (127.0.0.0/8, ::1, a name resolving there).

    An empty host, ``0.0.0.0`` and ``::`` bind every interface: not loopback. ``unix:`` socket
    paths are local too.
    """
    if not host:
        return False
    if host.startswith("unix:") or host.startswith("/"):
        return True
    if _is_loopback_ip(host):
        return True
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(_is_loopback_ip(str(info[4][0])) for info in infos)


def debugged(app: Any, host: str | None, *, evalex: bool = True, pin_security: bool = True,
             console_path: str = "/console") -> DebuggedApplication:
    """Wrap ``app`` in werkzeug's DebuggedApplication, or raise :class:`DebuggerRefused`.

    ``host`` is the address the server binds; anything but loopback is refused because the
    debugger is a remote Python shell. Needs a single-process server (``workers = 1``): the
    frames it inspects live in the process that raised.
    """
    if not is_loopback(host):
        raise DebuggerRefused(
            f"the interactive debugger executes Python sent by the browser, so it only runs on "
            f"a loopback address (127.0.0.1, ::1, localhost), not {host!r}: bind to "
            f"127.0.0.1 or turn the debugger off")
    signals.got_request_exception.connect(_remember_exception)  # idempotent
    wrapped = DebuggedApplication(_RaiseToDebugger(app), evalex=evalex,
                                  pin_security=pin_security, console_path=console_path)
    if pin_security and wrapped.pin is not None:
        app_log.warning("Interactive debugger active on %s; PIN: %s", host, wrapped.pin)
    elif not pin_security:
        app_log.warning("Interactive debugger active on %s WITHOUT a PIN", host)
    return wrapped


_ACTIVE = "microweb.debug.active"
_EXCEPTION = "microweb.debug.exception"


def _remember_exception(sender: Any, exception: BaseException | None = None,
                        **extra: Any) -> None:
    """got_request_exception receiver: keep a handler's exception in its request's environ."""
    environ = getattr(getattr(sender, "request", None), "environ", None)
    if isinstance(environ, dict) and environ.get(_ACTIVE) and exception is not None:
        environ[_EXCEPTION] = exception


class _Start:
    """Holds back ``start_response`` until we know whether the debugger should answer."""

    def __init__(self, start_response: Callable[..., Any]) -> None:
        self.start_response = start_response
        self.pending: tuple[Any, ...] | None = None
        self.write: Callable[[bytes], Any] | None = None

    def defer(self, status: str, headers: list[tuple[str, str]],
              exc_info: Any = None) -> Callable[[bytes], Any]:
        self.pending = (status, headers, exc_info)
        return self._write

    def flush(self) -> None:
        if self.pending is not None:
            self.write = self.start_response(*self.pending)
            self.pending = None

    def _write(self, data: bytes) -> None:
        self.flush()
        if self.write is not None:
            self.write(data)

    def stream(self, iterable: Iterable[bytes]) -> Iterator[bytes]:
        """The body of an app that starts its response while iterating."""
        try:
            for chunk in iterable:
                self.flush()
                yield chunk
            self.flush()
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()


class _RaiseToDebugger:
    """Re-raise a handler's uncaught exception so the debugger just outside shows its frames.

    The framework answers an uncaught exception with a 500 page itself; here that answer is
    held back and the exception (with its traceback) raised instead, for werkzeug to render.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[_ACTIVE] = True
        start = _Start(start_response)
        iterable = self.app(environ, start.defer)
        exception = environ.pop(_EXCEPTION, None)
        if exception is not None and start.write is None:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
            raise exception
        if start.pending is not None:
            start.flush()
            return iterable  # type: ignore[no-any-return]
        return start.stream(iterable)


def maybe_debugged(app: Any, settings: Mapping[str, Any], host: str | None) -> Any:
    """``debugged(app, host)`` when ``settings["debugger"]`` is true, else ``app`` unchanged."""
    if not settings.get("debugger"):
        return app
    return debugged(app, host)
