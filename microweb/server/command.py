"""The command line: ``microweb serve module:attr`` and ``python -m microweb.server``.

Options come from the settings table (``config.SETTINGS``); precedence is
defaults < config file (``--config``) < command line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import config as _config
from .listeners import ListenError
from .reload import run_with_reload

__all__ = ["UsageError", "build_parser", "import_string", "main"]

ConfigLoader = Callable[[str], Any]


class UsageError(Exception):
    """Something the user must fix (a bad config file, a refused option): one line, exit 2."""


def import_string(spec: str) -> Any:
    """Resolve ``package.module:attribute`` (attribute defaults to ``app``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"expected module:attribute, got {spec!r}")
    _cwd_importable()
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def _cwd_importable() -> None:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the project dir is importable


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve a WSGI application with microweb's HTTP/1.1 server.")
    parser.add_argument("app", nargs="?", help="the WSGI app as module:attribute")
    parser.add_argument("--config", metavar="FILE",
                        help="a microweb config file (builds the app and server options)")
    parser.add_argument("--debugger", action="store_true", default=None,
                        help="wrap the app in werkzeug's interactive debugger (development "
                        "only: a loopback host and one worker are required)")
    _config.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m microweb.server",
         config_loader: ConfigLoader | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    ns = parser.parse_args(argv)
    if ns.config is None and not ns.app:
        parser.error("give the app as module:attribute (or --config FILE)")
    try:
        return _serve(ns, argv, parser, config_loader)
    except (UsageError, ListenError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def _serve(ns: argparse.Namespace, argv: list[str], parser: argparse.ArgumentParser,
           config_loader: ConfigLoader | None) -> int:
    overrides = _config.overrides_from_namespace(ns)
    if overrides.get("reload"):  # the child re-reads the config file itself
        return run_with_reload([a for a in argv if a != "--reload"] + ["--no-reload"])
    loaded = _load_config(ns.config, config_loader) if ns.config else None
    options = dict(getattr(loaded, "server", None) or {})
    options.update(overrides)
    try:
        settings = _config.Config(**options)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    _setup_logging(settings.log_level)
    if settings.reload:  # asked for by the config file (``reload`` or ``debug = true``)
        return run_with_reload([*argv, "--no-reload"])
    from .runner import run

    if ns.debugger or getattr(loaded, "debugger", False):
        _check_debugger(settings)  # a config file checked its own host; --host may differ
    if ns.app:
        spec = ns.app
        if ns.debugger:
            app = _debugged(import_string(spec), settings)
            return run(lambda: app, settings)
        return run(lambda: import_string(spec), settings)
    app = loaded.app  # type: ignore[union-attr]
    if ns.debugger and not getattr(loaded, "debugger", False):
        app = _debugged(app, settings)
    return run(lambda: app, settings)


def _debug_host(settings: _config.Config) -> str | None:
    """The address the debugger would be reachable on (None: unknown, an inherited fd)."""
    if settings.unix_socket:
        return f"unix:{settings.unix_socket}"
    if settings.fd is not None:
        return None
    return str(settings.host)


def _check_debugger(settings: _config.Config) -> None:
    """Refuse the interactive debugger unless one worker serves a loopback address."""
    if settings.workers > 1:
        raise UsageError("the debugger needs one worker process (the frames it inspects live "
                         "in the process that raised): drop --workers")
    host = _debug_host(settings)
    if not import_string("microweb.debug:is_loopback")(host):
        raise UsageError(f"the interactive debugger executes Python sent by the browser, so it "
                         f"only runs on a loopback host (127.0.0.1, ::1, localhost), not "
                         f"{host!r}")


def _debugged(app: Any, settings: _config.Config) -> Any:
    return import_string("microweb.debug:debugged")(app, _debug_host(settings))


def _load_config(path: str, loader: ConfigLoader | None) -> Any:
    if loader is None:
        loader = import_string("microweb.cli:load_config")
    _cwd_importable()  # the modules a config file names, as for module:attr
    return loader(path)


def _setup_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("microweb.server").setLevel(level)
