"""microweb's named loggers and a one-call logging setup (plain, JSON or rotating file).

Loggers: ``microweb.access`` (one line per request), ``microweb.application`` (handler errors
and ``handler.logger``), ``microweb.server`` (the bundled server) and ``microweb.websocket``.
They only emit records; nothing is printed until the application configures logging, either
itself or with :func:`configure`::

    from microweb import log
    log.configure(level="INFO", json=True, file="logs/app.log", max_bytes=10_000_000, backups=5)

Records may carry ``user`` and ``request_id`` (``handler.logger`` adds them, as the tutorials'
custom Logger did); both formatters print them when present.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

__all__ = [
    "ContextAdapter",
    "ContextFormatter",
    "access_log",
    "app_log",
    "configure",
    "json_formatter",
    "server_log",
    "user_label",
    "websocket_log",
]

access_log = logging.getLogger("microweb.access")
app_log = logging.getLogger("microweb.application")
server_log = logging.getLogger("microweb.server")
websocket_log = logging.getLogger("microweb.websocket")

#: the request context fields a record may carry (LogRecord attributes set through ``extra``).
CONTEXT_FIELDS = ("user", "request_id")
DEFAULT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s %(context)s%(message)s"
_MARK = "_microweb_configured"  # attribute on the handlers configure() installed
_ABSENT = (None, "", "-")  # a context field with one of these values is not shown
_COLORS = {logging.DEBUG: "\x1b[34m", logging.INFO: "\x1b[32m", logging.WARNING: "\x1b[33m",
           logging.ERROR: "\x1b[31m", logging.CRITICAL: "\x1b[1;31m"}
_RESET = "\x1b[0m"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ContextFormatter(logging.Formatter):
    """A plain-text formatter that shows ``user`` / ``request_id`` when a record carries them.

    With the default format they appear as ``[user=alice request_id=4f2a…] `` before the
    message; a custom ``fmt`` may also name ``%(user)s`` / ``%(request_id)s`` directly ("-" when
    a record has none) or ``%(context)s``.
    """

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 color: bool = False) -> None:
        super().__init__(fmt or DEFAULT_FORMAT, datefmt)
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (a JSON one, pytest's caplog) must not see our helper fields.
        record = copy.copy(record)
        present = [(f, _escape(getattr(record, f))) for f in CONTEXT_FIELDS
                   if getattr(record, f, None) not in _ABSENT]
        record.context = "[" + " ".join(f"{k}={v}" for k, v in present) + "] " if present else ""
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            setattr(record, field, "-" if value in _ABSENT else _escape(value))
        if self.color:  # padded before colouring, so columns stay aligned
            code = _COLORS.get(record.levelno, "")
            record.levelname = f"{code}{record.levelname:<7}{_RESET}"
        return super().format(record)


def _escape(value: object) -> str:
    """A context value with control characters as ``\\xhh``: a user named ``"a\\nERROR ..."``
    cannot start a forged line of a text log."""
    text = str(value)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def json_formatter(datefmt: str | None = None) -> logging.Formatter:
    """One JSON object per record (python-json-logger): time, level, logger, message + extras."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError as exc:  # the optional "log" extra
        raise RuntimeError("JSON logging needs python-json-logger: "
                           "pip install 'microweb[log]'") from exc
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}", style="{", datefmt=datefmt,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR, "
                         "CRITICAL)")
    return value


def _use_color(stream: TextIO, color: bool | None) -> bool:
    if color is not None:
        return color
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


def configure(level: int | str = "INFO", json: bool = False, file: str | os.PathLike[str] |
              None = None, max_bytes: int = 10 * 1024 * 1024, backups: int = 5,
              fmt: str | None = None, *, stream: TextIO | None = None,
              stderr: bool | None = None, color: bool | None = None,
              logger: str | None = None) -> list[logging.Handler]:
    """Send log records to stderr and/or a size-rotated ``file``, as text or JSON lines.

    Configures the root logger (or ``logger``). Idempotent: calling it again replaces the
    handlers an earlier call installed instead of adding duplicates; handlers installed by
    anyone else are left alone. ``stderr`` defaults to True without a file, False with one.
    ``color`` (level names in colour) defaults to on for a terminal unless ``NO_COLOR`` is set;
    files never get colour. Returns the installed handlers.
    """
    target = logging.getLogger(logger)
    new: list[logging.Handler] = []
    if stderr or (stderr is None and file is None) or stream is not None:
        out = stream or sys.stderr
        console = logging.StreamHandler(out)
        console.setFormatter(json_formatter() if json else ContextFormatter(
            fmt, color=_use_color(out, color)))
        new.append(console)
    if file is not None:
        path = os.fspath(file)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        rotating.setFormatter(json_formatter() if json else ContextFormatter(fmt))
        new.append(rotating)
    target.setLevel(_level(level))
    for handler in [h for h in target.handlers if getattr(h, _MARK, False)]:
        target.removeHandler(handler)
        handler.close()
    for handler in new:
        setattr(handler, _MARK, True)
        target.addHandler(handler)
    return new


def user_label(user: object) -> str | None:
    """A short printable name for ``current_user`` (str, ``.name``/``.username``/``.id``, dict)."""
    if user is None or isinstance(user, str):
        return user
    if isinstance(user, bytes):
        return user.decode("utf-8", "replace")
    if isinstance(user, Mapping):
        for key in ("name", "username", "id"):
            if user.get(key) is not None:
                return str(user[key])
        return None
    for attr in ("name", "username", "id"):
        value = getattr(user, attr, None)
        if value is not None:
            return str(value)
    return str(user)


class ContextAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A LoggerAdapter adding request context (``user``, ``request_id``...) to every record.

    ``context`` is a mapping or a zero-argument callable returning one, evaluated per record so
    the user is the one current when the line is logged. Keys the caller passes in ``extra=``
    win over the context.
    """

    def __init__(self, logger: logging.Logger,
                 context: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None
                 ) -> None:
        super().__init__(logger, {})
        self._context = context

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        context = self._context() if callable(self._context) else (self._context or {})
        kwargs["extra"] = {**context, **(kwargs.get("extra") or {})}
        return msg, kwargs
