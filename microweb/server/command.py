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
from .reload import run_with_reload

__all__ = ["build_parser", "import_string", "main"]

ConfigLoader = Callable[[str], Any]


def import_string(spec: str) -> Any:
    """Resolve ``package.module:attribute`` (attribute defaults to ``app``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"expected module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the project dir is importable
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve a WSGI application with microweb's HTTP/1.1 server.")
    parser.add_argument("app", nargs="?", help="the WSGI app as module:attribute")
    parser.add_argument("--config", metavar="FILE",
                        help="a microweb config file (builds the app and server options)")
    _config.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m microweb.server",
         config_loader: ConfigLoader | None = None) -> int:
    """Parse ``argv`` and serve; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    ns = parser.parse_args(argv)
    overrides = _config.overrides_from_namespace(ns)
    if ns.config is None and not ns.app:
        parser.error("give the app as module:attribute (or --config FILE)")
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
    if settings.reload:  # asked for by the config file
        return run_with_reload([*argv, "--no-reload"])
    from .runner import run

    if ns.app:
        spec = ns.app
        return run(lambda: import_string(spec), settings)
    app = loaded.app  # type: ignore[union-attr]
    return run(lambda: app, settings)


def _load_config(path: str, loader: ConfigLoader | None) -> Any:
    if loader is None:
        loader = import_string("microweb.config:load")
    return loader(path)


def _setup_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("microweb.server").setLevel(level)
