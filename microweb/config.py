"""One TOML file describes a whole deployment: the app, its settings, middleware and server.

``microweb serve --config app.toml`` calls :func:`load`; so can any WSGI server's entry point::

    # wsgi.py (for gunicorn: gunicorn wsgi:app)
    from microweb.config import load
    app = load("app.toml").app

The schema (every table is optional except ``[app]``; see docs/configuration.md)::

    [app]
    handlers = "myapp.urls:handlers"   # or factory = "myapp:make_app" (called with the settings)
                                       # or module = "myapp:application" (a ready WSGI app)
    [app.settings]                     # Application settings, Tornado's names
    cookie_secret = { env = "APP_SECRET" }
    template_path = "templates"        # relative paths are relative to this file
    xsrf_cookies = true

    [[middleware]]                     # outermost first
    name = "proxy"
    trusted = ["127.0.0.1"]
    [[middleware]]
    name = "gzip"

    [sessions]                         # adds SessionMiddleware (store options + its options)
    store = "sqlite"
    path = "sessions.db"

    [server]                           # overrides for microweb.server (host, port, workers...)
    port = 8080

    [logging]                          # microweb.log.configure(...)
    level = "INFO"

    [options]                          # values for microweb.options defined by the app
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microweb import log
from microweb import options as _options
from microweb.application import Application
from microweb.debug import DebuggerRefused, debugged
from microweb.server import serve
from microweb.server.config import Config as ServerConfig
from middleware import MiddlewareOrderError, compose

__all__ = ["ConfigError", "LoadedConfig", "MIDDLEWARE", "SESSION_STORES", "load"]

#: short names usable in ``[[middleware]] name = ...`` (any "module:attr" works too).
MIDDLEWARE: dict[str, str] = {
    "proxy": "middleware.proxy:ProxyMiddleware",
    "access_log": "middleware.accesslog:AccessLogMiddleware",
    "ip_blacklist": "middleware.ipfilter:IPBlacklistMiddleware",
    "gzip": "middleware.gzip:GzipMiddleware",
    "signed_cookies": "middleware.signedcookies:SignedCookieMiddleware",
    "sessions": "middleware.sessions:SessionMiddleware",
    "xsrf": "middleware.xsrf:XSRFMiddleware",
}
_ALIASES = {"accesslog": "access_log", "ipfilter": "ip_blacklist", "ip_filter": "ip_blacklist",
            "signedcookies": "signed_cookies", "session": "sessions", "compress": "gzip"}

#: ``[sessions] store = ...`` names.
SESSION_STORES: dict[str, str] = {
    "memory": "middleware.sessions.stores.memory:MemoryStore",
    "sqlite": "middleware.sessions.stores.sqlite:SQLiteStore",
    "redis": "middleware.sessions.stores.redis:RedisStore",
    "cookie": "middleware.sessions.stores.cookie:CookieStore",
}

_APP_KEYS = ("handlers", "factory", "module")
_APP_TABLE_KEYS = frozenset({*_APP_KEYS, "settings", "pythonpath", "default_host", "hosts"})
_PATH_SETTINGS = ("template_path", "static_path")
_REF_SETTINGS = ("static_handler_class", "default_handler_class", "log_function",
                 "template_loader", "ui_methods", "ui_modules")
#: setting names the framework reads; others are allowed (apps read their own) but a near miss
#: of one of these is logged as a probable typo.
KNOWN_SETTINGS = frozenset({
    "autoescape", "autoreload", "compiled_template_cache", "compress_response", "cookie_secret",
    "debug", "debugger", "default_handler_args", "default_handler_class", "gzip", "key_version",
    "log_function", "login_url",
    "max_body_size", "max_form_memory_size", "max_form_parts", "secure_cookie_kwargs",
    "secure_cookie_resign", "serve_traceback", "static_handler_args", "static_handler_class",
    "static_hash_cache", "static_path", "static_url_prefix", "template_extensions",
    "template_globals", "template_loader", "template_path", "template_undefined", "ui_methods",
    "ui_modules", "websocket_hub", "websocket_ping_interval", "websocket_ping_timeout",
    "websocket_max_message_size", "xsrf_cookie_kwargs", "xsrf_cookie_name",
    "xsrf_cookie_version", "xsrf_cookies",
})
#: middleware options naming files, resolved relative to the config file
_FILE_OPTIONS = {"access_log": ("output",), "ip_blacklist": ("list_file",)}
_NOT_FILES = ("-", "stdout", "stderr")


class ConfigError(_options.Error, ValueError):
    """A config file that cannot work; the message names the file and the key."""


@dataclass
class LoadedConfig:
    """What :func:`load` built from one file."""

    #: the WSGI app to serve: the application wrapped in its middleware stack (and debugger)
    app: Any
    #: server option overrides for ``microweb.server.serve`` (validated against its table)
    server: dict[str, Any]
    #: the application before any middleware
    application: Any = None
    #: the Application settings as given (secrets resolved, paths made absolute; kept out of
    #: the repr so printing or logging a LoadedConfig never shows ``cookie_secret``)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the middleware stack (``middleware.Stack``) or None without middleware
    stack: Any = None
    #: True when ``debugger = true``: werkzeug's debugger wraps ``app`` (loopback hosts only)
    debugger: bool = False
    path: str = ""

    def describe(self) -> str:
        """The stack outermost first, for ``microweb serve --config`` to print at start-up."""
        return self.stack.describe() if self.stack is not None else repr(self.application)

    def serve(self, **overrides: Any) -> None:
        """Serve ``app`` with the bundled server, ``[server]`` updated by ``overrides``."""
        serve(self.app, **{**self.server, **overrides})


class _Loader:
    """Builds a :class:`LoadedConfig` from the parsed TOML of ``path``."""

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path = path
        self.base = Path(path).resolve().parent
        self.data = data

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    # -- values ----------------------------------------------------------------------------
    def resolve(self, where: str, value: Any) -> Any:
        """``{ env = "NAME", default = ... }`` and ``{ ref = "module:attr" }`` inline tables."""
        if isinstance(value, Mapping) and set(value) <= {"env", "default"} and "env" in value:
            if value["env"] in os.environ:
                return os.environ[value["env"]]
            if "default" in value:
                return value["default"]
            raise self.fail(where, f"environment variable {value['env']} is not set")
        if isinstance(value, Mapping) and set(value) == {"ref"}:
            return self.ref(where, value["ref"])
        if isinstance(value, list):
            return [self.resolve(where, item) for item in value]
        return value

    def ref(self, where: str, spec: Any) -> Any:
        """Import ``"package.module:attr.sub"``."""
        if not isinstance(spec, str) or ":" not in spec:
            raise self.fail(where, f"expected \"package.module:attribute\", got {spec!r}")
        module_name, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise self.fail(where, f"cannot import {module_name!r}: {exc}") from exc
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise self.fail(where, f"{module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        return obj

    def local_path(self, value: Any) -> Any:
        """A file name relative to the config file's folder ("-" and URLs stay as they are)."""
        if isinstance(value, str) and value and value not in _NOT_FILES and "://" not in value:
            return str(self.base / value)
        return value

    def table(self, name: str, value: Any = None) -> dict[str, Any]:
        value = self.data.get(name, {}) if value is None else value
        if not isinstance(value, Mapping):
            raise self.fail(f"[{name}]", f"must be a table, got {type(value).__name__}")
        return dict(value)

    # -- the application ----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        raw = self.table("app.settings", self.table("app").get("settings", {}))
        settings = {}
        for key, value in raw.items():
            where = f"[app.settings] {key}"
            self.warn_typo(where, key)
            value = self.resolve(where, value)
            if key in _PATH_SETTINGS:
                value = self.local_path(value)
            elif key in _REF_SETTINGS and isinstance(value, str):
                value = self.ref(where, value)
            settings[key] = value
        return settings

    def warn_typo(self, where: str, key: str) -> None:
        if key in KNOWN_SETTINGS:
            return
        close = difflib.get_close_matches(key, KNOWN_SETTINGS, n=1, cutoff=0.85)
        if close:
            log.app_log.warning("%s: %s: not a setting microweb reads; did you mean %r?",
                            self.path, where, close[0])

    def application(self, settings: dict[str, Any]) -> Any:
        """Import what ``[app]`` names, apply ``[options]``, then build the application."""
        kind, spec, target = self.app_target()
        self.options()  # after the import: the app's module define()s its options
        if kind == "handlers":
            return self.handlers_app(spec, target, settings)
        app_settings = {k: v for k, v in settings.items() if k != "debugger"}
        if kind == "factory":
            return self.call(f"[app] factory {spec}", target, app_settings)
        unused = sorted(set(app_settings) - {"cookie_secret"})
        if unused:
            raise self.fail(f"[app.settings] {unused[0]}", "settings need handlers = ... or "
                            "factory = ...: module = ... names an app that is already built "
                            "(only cookie_secret, for the middleware, and debugger apply)")
        if isinstance(target, list | tuple):
            return Application(list(target))
        if not callable(target):
            raise self.fail("[app] module", f"{spec!r} is not a WSGI application")
        return target

    def app_target(self) -> tuple[str, str, Any]:
        """(kind, "module:attr", the imported object) of the one handlers/factory/module key."""
        app_table = self.table("app")
        for entry in app_table.get("pythonpath", []):
            path = str(self.base / entry)
            if path not in sys.path:
                sys.path.insert(0, path)
        unknown = sorted(set(app_table) - _APP_TABLE_KEYS)
        if unknown:
            raise self.fail(f"[app] {unknown[0]}", "unknown key (expected: "
                            f"{', '.join(sorted(_APP_TABLE_KEYS))})")
        given = [k for k in _APP_KEYS if k in app_table]
        if len(given) != 1:
            raise self.fail("[app]", "give exactly one of handlers = \"mod:list\", "
                            "factory = \"mod:callable\" or module = \"mod:wsgi_app\"")
        kind = given[0]
        return kind, app_table[kind], self.ref(f"[app] {kind}", app_table[kind])

    def handlers_app(self, spec: str, handlers: Any, settings: dict[str, Any]) -> Application:
        if not isinstance(handlers, list | tuple):
            raise self.fail("[app] handlers", f"{spec!r} is not a list of routes")
        if "log_function" not in settings and any(
                name == "access_log" for name, _ in self.middleware_entries()):
            # AccessLogMiddleware writes the access line: the Application's would repeat it
            settings["log_function"] = _no_access_line
        app_table = self.table("app")
        # the Application sees ``debugger`` so it can let exceptions reach the debugger
        application = Application(list(handlers), app_table.get("default_host"), **settings)
        for pattern, host_spec in self.table("app.hosts", app_table.get("hosts", {})).items():
            host_handlers = self.ref(f"[app.hosts] {pattern}", host_spec)
            if not isinstance(host_handlers, list | tuple):
                raise self.fail(f"[app.hosts] {pattern}", f"{host_spec!r} is not a list of routes")
            application.add_handlers(pattern, list(host_handlers))
        return application

    def call(self, where: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """``factory(**kwargs)``, naming unknown keys before the call instead of a traceback."""
        self.check_keywords(where, factory, kwargs)
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as exc:
            raise self.fail(where, str(exc)) from exc

    def check_keywords(self, where: str, factory: Callable[..., Any], kwargs: Mapping[str, Any],
                       skip: int = 0) -> None:
        try:
            params = list(inspect.signature(factory).parameters.values())[skip:]
        except (TypeError, ValueError):
            return
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return
        named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        names = {p.name for p in named}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise self.fail(where, f"unknown option {unknown[0]!r} (accepted: "
                            f"{', '.join(sorted(names)) or 'none'})")
        missing = [p.name for p in named if p.default is p.empty and p.name not in kwargs]
        if missing and missing[0] == "secret":
            raise self.fail(where, "needs a secret: set cookie_secret in [app.settings] "
                            "(or secret = ... here)")
        if missing:
            raise self.fail(where, f"missing required option {missing[0]!r}")

    # -- middleware ----------------------------------------------------------------------------
    def middleware_entries(self) -> list[tuple[str, dict[str, Any]]]:
        raw = self.data.get("middleware", [])
        entries: list[tuple[str, dict[str, Any]]]
        if isinstance(raw, Mapping):  # [middleware.gzip] tables, in file order
            entries = [(name, self.table(f"middleware.{name}", opts or {}))
                       for name, opts in raw.items()]
        elif isinstance(raw, list):
            entries = []
            for i, item in enumerate(raw, 1):
                opts = self.table(f"[middleware] #{i}", item)
                name = opts.pop("name", None) or opts.pop("use", None)
                if not isinstance(name, str):
                    raise self.fail(f"[[middleware]] #{i}", "needs name = \"gzip\" (or a "
                                    "\"module:Class\")")
                entries.append((name, opts))
        else:
            raise self.fail("[middleware]", "must be [[middleware]] entries or tables")
        return [(_ALIASES.get(name, name), opts) for name, opts in entries
                if opts.pop("enabled", True)]

    def middleware_class(self, where: str, name: str) -> Any:
        spec = MIDDLEWARE.get(name, name)
        if ":" not in spec:
            raise self.fail(where, f"unknown middleware {name!r} (known: "
                            f"{', '.join(MIDDLEWARE)}, or \"package.module:Class\")")
        return self.ref(where, spec)

    def layers(self, settings: Mapping[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
        entries = self.middleware_entries()
        sessions = self.table("sessions")
        if sessions and not any(name == "sessions" for name, _ in entries):
            xsrf = [i for i, (name, _) in enumerate(entries) if name == "xsrf"]
            entries.insert(xsrf[0] if xsrf else len(entries), ("sessions", {}))
        layers = []
        for name, opts in entries:
            where = f"[middleware] {name}"
            if name == "sessions":
                where, opts = "[sessions]", {**sessions, **opts}
            cls = self.middleware_class(where, name)
            opts = {k: self.resolve(f"{where} {k}", v) for k, v in opts.items()}
            if name == "sessions":
                opts = self.session_options(cls, opts, settings)
            opts = self.with_secret(cls, opts, settings)
            opts = {k: self.local_path(v) if k in _FILE_OPTIONS.get(name, ()) else v
                    for k, v in opts.items()}
            if name == "access_log" and opts.get("output") not in (None, *_NOT_FILES):
                Path(opts["output"]).parent.mkdir(parents=True, exist_ok=True)
            self.check_keywords(where, cls, opts, skip=1 if inspect.isclass(cls) else 0)
            layers.append((cls, opts))
        return layers

    def with_secret(self, factory: Any, opts: dict[str, Any],
                    settings: Mapping[str, Any]) -> dict[str, Any]:
        """Pass ``cookie_secret`` as ``secret`` to layers that sign, unless given one."""
        secret = settings.get("cookie_secret")
        if secret is None or "secret" in opts:
            return opts
        try:
            accepts = "secret" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            accepts = False
        return {**opts, "secret": secret} if accepts else opts

    def session_options(self, cls: Any, opts: dict[str, Any],
                        settings: Mapping[str, Any]) -> dict[str, Any]:
        """Split ``[sessions]`` into the store's options and SessionMiddleware's.

        A key only the store accepts goes to the store, and so does ``path`` (the SQLite
        file); ``cookie_path`` is the middleware's cookie ``path``.
        """
        kind = opts.pop("store", "memory")
        if not isinstance(kind, str):
            return opts if kind is None else {**opts, "store": kind}
        spec = SESSION_STORES.get(kind, kind)
        if ":" not in spec:
            raise self.fail("[sessions] store", f"unknown store {kind!r} (known: "
                            f"{', '.join(SESSION_STORES)}, or \"package.module:Class\")")
        store_cls = self.ref("[sessions] store", spec)
        store_params = _parameters(store_cls)
        mw_params = _parameters(cls)
        store_opts = {k: v for k, v in opts.items()
                      if k in store_params and (k not in mw_params or k == "path")}
        mw_opts = {k: v for k, v in opts.items() if k not in store_opts}
        if "cookie_path" in mw_opts:
            mw_opts["path"] = mw_opts.pop("cookie_path")
        if "path" in store_opts:
            store_opts["path"] = self.local_path(store_opts["path"])
            Path(store_opts["path"]).parent.mkdir(parents=True, exist_ok=True)
        store_opts = self.with_secret(store_cls, store_opts, settings)
        store = self.call(f"[sessions] store {kind}", store_cls, store_opts)
        return {**mw_opts, "store": store}

    def build(self) -> LoadedConfig:
        settings = self.settings()
        application = self.application(settings)
        layers = self.layers(settings)
        stack = None
        app = application
        if layers:
            try:
                stack = compose(application, *layers)
            except MiddlewareOrderError as exc:
                raise self.fail("[middleware]", str(exc)) from exc
            except (TypeError, ValueError) as exc:
                raise self.fail("[middleware]", str(exc)) from exc
            app = stack
        server = self.server()
        if settings.get("autoreload", bool(settings.get("debug"))):
            server.setdefault("reload", True)  # Tornado: debug implies autoreload
        if settings.get("debugger"):
            if server.get("workers", 1) > 1:
                raise self.fail("[app.settings] debugger", "needs one worker process (the "
                                "frames it inspects live in the process that raised): set "
                                "workers = 1 in [server]")
            if server.get("fd") is not None:
                raise self.fail("[app.settings] debugger", "cannot tell whether an inherited "
                                "socket (fd) is loopback-only: bind host = \"127.0.0.1\" "
                                "instead, or turn the debugger off")
            try:
                app = debugged(app, server.get("host", "127.0.0.1"))
            except DebuggerRefused as exc:
                raise self.fail("[app.settings] debugger", str(exc)) from exc
        return LoadedConfig(app=app, server=server, application=application, settings=settings,
                            stack=stack, debugger=bool(settings.get("debugger")), path=self.path)

    # -- server, logging, options --------------------------------------------------------------
    def server(self) -> dict[str, Any]:
        table = {k.replace("-", "_"): self.resolve(f"[server] {k}", v)
                 for k, v in self.table("server").items()}
        for key in ("unix_socket", "certfile", "keyfile"):
            if key in table:
                table[key] = self.local_path(table[key])
        try:
            checked = ServerConfig(**table)
        except (TypeError, ValueError) as exc:
            raise self.fail("[server]", str(exc)) from exc
        return {k: getattr(checked, k) for k in table}

    def logging(self) -> None:
        table = {k: self.resolve(f"[logging] {k}", v) for k, v in self.table("logging").items()}
        if not table:
            return
        if "file" in table:
            table["file"] = self.local_path(table["file"])
        self.check_keywords("[logging]", log.configure, table)
        try:
            log.configure(**table)
        except (TypeError, ValueError, RuntimeError, OSError) as exc:
            raise self.fail("[logging]", str(exc)) from exc

    def options(self) -> None:
        """``[options]`` then ``MICROWEB_<NAME>`` variables: file < environment, as documented.

        An environment error raises :class:`microweb.options.OptionError` naming the variable.
        """
        table = self.table("options")
        try:
            _options.options.apply_mapping(table, f"config file {self.path}")
        except _options.OptionError as exc:
            raise self.fail("[options]", f"option {exc.option!r}: {exc.detail}") from None
        _options.options.parse_environment(final=False)


def _no_access_line(handler: Any) -> None:
    """``log_function`` when AccessLogMiddleware already logs every request."""


def _parameters(factory: Any) -> set[str]:
    try:
        return set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return set()


_TOP_LEVEL = {"app", "middleware", "sessions", "server", "logging", "options"}


def load(path: str | os.PathLike[str], *, configure_logging: bool = True) -> LoadedConfig:
    """Build the app, its middleware stack and the server overrides from one TOML file.

    Raises :class:`ConfigError` (a ``microweb.options.Error``) naming the file and the key for
    anything wrong: unknown tables or options, bad types, imports that fail.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{path}: unknown table or key {unknown[0]!r} (expected: "
                          f"{', '.join(sorted(_TOP_LEVEL))})")
    if "app" not in data:
        raise ConfigError(f"{path}: an [app] table is required")
    loader = _Loader(path, data)
    if configure_logging:
        loader.logging()
    return loader.build()


_SECRET_WORDS = ("secret", "password", "token", "key")


def _masked(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "***" if any(w in k.lower() for w in _SECRET_WORDS) else v
            for k, v in settings.items()}


def check(argv: list[str] | None = None) -> int:
    """``python -m microweb.config app.toml``: load the file, print what it builds, or the error.

    Exit status 0 when the file works, 2 (with a one-line message) when it does not: a check
    for deploy scripts that serves nothing.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m microweb.config FILE.toml", file=sys.stderr)
        return 2
    try:
        loaded = load(args[0], configure_logging=False)
    except _options.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{loaded.path}: ok")
    print("middleware (outermost first):\n" + loaded.describe())
    print(f"settings: {_masked(loaded.settings)}")
    print(f"server: {loaded.server}")
    print(f"debugger: {'on' if loaded.debugger else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(check())
