"""The one table of server settings: it drives the command line, config files and the docs.

Every limit and timeout lives here with a safe default, a unit and a one-line description
(the idea of waitress' ``adjustments.py``). ``Config`` is the validated, attribute-style view
the rest of the server reads; ``add_arguments`` and ``markdown_table`` are generated from it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SETTINGS", "Config", "Setting", "add_arguments", "markdown_table"]


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _level(value: Any) -> str:
    level = str(value).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"unknown log level {value!r}")
    return level


@dataclass(frozen=True)
class Setting:
    """One server setting: its name, default, converter, unit and documentation."""

    name: str
    default: Any
    convert: Callable[[Any], Any]
    unit: str
    doc: str
    flag: str | None = None  # a short CLI flag, e.g. "-w"


SETTINGS: tuple[Setting, ...] = (
    # where to listen
    Setting("host", "127.0.0.1", str, "", "Address to bind (IPv4 or IPv6; `::` for all)."),
    Setting("port", 8000, int, "", "TCP port to bind (0 picks a free one)."),
    Setting("unix_socket", None, _opt_str, "path",
            "Listen on this unix socket instead of TCP (a stale socket file is replaced; one a "
            "server still accepts on, or a file that is not a socket, is refused)."),
    Setting("fd", None, lambda v: None if v is None else int(v), "",
            "Serve on an inherited, already listening socket file descriptor."),
    Setting("backlog", 2048, int, "connections", "Listen backlog of the socket."),
    Setting("certfile", None, _opt_str, "path", "TLS certificate chain (PEM); enables HTTPS."),
    Setting("keyfile", None, _opt_str, "path", "TLS private key (PEM)."),
    # processes and threads
    Setting("workers", 1, int, "processes",
            "Worker processes; more than 1 starts a master that pre-forks and supervises them.",
            "-w"),
    Setting("threads", 8, int, "threads", "Threads per worker that run the WSGI application.",
            "-t"),
    Setting("graceful_timeout", 30.0, float, "seconds",
            "On SIGTERM/SIGINT/SIGHUP, how long in-flight requests may take to finish."),
    Setting("reload", False, _bool, "", "Restart when Python files change (development only)."),
    # limits
    Setting("max_connections", 15000, int, "connections",
            "Open connections per worker; above it the worker stops accepting (backpressure)."),
    Setting("max_request_line", 8190, int, "bytes", "Longest request line (else 414)."),
    Setting("max_header_size", 65536, int, "bytes", "Largest request head in total (else 431)."),
    Setting("max_header_field_size", 65536, int, "bytes",
            "Largest single request header field, name and value (else 431)."),
    Setting("max_header_count", 100, int, "headers", "Most request header fields (else 431)."),
    Setting("max_body_size", 100 * 1024 * 1024, int, "bytes",
            "Largest request body (else 413)."),
    Setting("drain_limit", 1024 * 1024, int, "bytes",
            "Unread request body the server reads and discards to keep a connection alive; "
            "a larger remainder closes the connection."),
    # timeouts
    Setting("header_timeout", 10.0, float, "seconds",
            "Time a client has to send a complete request head (slow-client defence)."),
    Setting("keepalive_timeout", 5.0, float, "seconds",
            "How long an idle keep-alive connection is kept open (0 disables keep-alive)."),
    Setting("body_timeout", 30.0, float, "seconds",
            "Longest wait for the next piece of a request body."),
    Setting("write_timeout", 30.0, float, "seconds",
            "Longest wait for a client to accept more response bytes."),
    # behaviour
    Setting("script_name", "", str, "",
            "SCRIPT_NAME prefix the app is mounted under (split off only from paths under it)."),
    Setting("server_header", "microweb", str, "",
            "Value of the Server response header (empty: no header)."),
    Setting("access_log", False, _bool, "",
            "Log one line per request to the `microweb.server.access` logger."),
    Setting("log_level", "INFO", _level, "", "Level of the `microweb.server` loggers."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class Config:
    """Validated settings, read as attributes (``config.keepalive_timeout``)."""

    def __init__(self, **options: Any) -> None:
        for setting in SETTINGS:
            object.__setattr__(self, setting.name, setting.default)
        self.update(options)

    def update(self, options: Mapping[str, Any]) -> None:
        """Apply overrides; names may use dashes; unknown names are an error."""
        for raw_name, value in options.items():
            name = raw_name.replace("-", "_")
            setting = _BY_NAME.get(name)
            if setting is None:
                raise TypeError(f"unknown server option {raw_name!r}")
            try:
                converted = setting.convert(value) if value is not None else None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bad value for server option {name!r}: {exc}") from exc
            object.__setattr__(self, name, converted)
        self._validate()

    def _validate(self) -> None:
        if self.workers < 1 or self.threads < 1:
            raise ValueError("workers and threads must be at least 1")
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile given without certfile")
        for name in ("max_request_line", "max_header_size", "max_header_field_size",
                     "max_header_count", "max_body_size", "max_connections"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def as_dict(self) -> dict[str, Any]:
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    def __repr__(self) -> str:
        return f"Config({self.as_dict()!r})"

    def __getattr__(self, name: str) -> Any:  # only reached for unknown names
        raise AttributeError(name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--name`` option per setting; unset options stay ``None`` (not overrides)."""
    for s in SETTINGS:
        flags = [f"--{s.name.replace('_', '-')}"] + ([s.flag] if s.flag else [])
        help_text = s.doc + (f" [{s.unit}]" if s.unit else "") + f" (default: {s.default})"
        if s.convert is _bool:
            parser.add_argument(*flags, dest=s.name, default=None,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(*flags, dest=s.name, default=None, help=help_text,
                                type=str if s.convert in (_opt_str, _level) else s.convert)


def overrides_from_namespace(ns: argparse.Namespace) -> dict[str, Any]:
    """The settings the user actually gave on the command line."""
    return {s.name: getattr(ns, s.name) for s in SETTINGS if getattr(ns, s.name, None) is not None}


def markdown_table(settings: Iterable[Setting] = SETTINGS) -> str:
    """The settings as a Markdown table (docs/server.md is generated from this)."""
    rows = ["| setting | CLI flag | default | unit | meaning |", "|---|---|---|---|---|"]
    for s in settings:
        flag = f"`--{s.name.replace('_', '-')}`" + (f", `{s.flag}`" if s.flag else "")
        default = "—" if s.default is None else f"`{s.default!r}`" if s.default == "" else \
            f"`{s.default}`"
        rows.append(f"| `{s.name}` | {flag} | {default} | {s.unit} | {s.doc} |")
    return "\n".join(rows) + "\n"
