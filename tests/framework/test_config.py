"""microweb.config.load (one TOML file → app, middleware stack, server) and microweb.debug."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.debug import DebuggedApplication
from werkzeug.test import Client

import microweb as web
from microweb import debug, options
from microweb.config import ConfigError, load
from tests.support import ROOT, free_port, spawn

options.define("config_test_greeting", default="hello", group="config-tests")

Environ = dict[str, Any]


def echo_app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A plain WSGI app reporting what the middleware stack gave it."""
    body = json.dumps({"remote": environ.get("REMOTE_ADDR"),
                       "scheme": environ.get("wsgi.url_scheme"),
                       "filler": "x" * 2000}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def make_app(**settings: Any) -> Callable[..., Iterable[bytes]]:
    """A factory taking Application-style settings."""
    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("kaboom")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(settings, default=str).encode()]
    return app


def strict_factory(*, debug: bool = False) -> Callable[..., Iterable[bytes]]:
    return echo_app


HERE = "tests.framework.test_config"


def write(tmp_path: Path, text: str, name: str = "app.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def config(tmp_path: Path) -> Callable[[str], str]:
    return lambda text: write(tmp_path, text)


# -- the application ---------------------------------------------------------------------------

def test_factory_gets_settings_with_secrets_and_paths(config: Callable[[str], str],
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_TEST_SECRET", "s3cret")
    loaded = load(config(f"""
        [app]
        factory = "{HERE}:make_app"
        [app.settings]
        debug = false
        xsrf_cookies = true
        cookie_secret = {{ env = "CONFIG_TEST_SECRET" }}
        login_url = {{ env = "CONFIG_TEST_UNSET", default = "/login" }}
        template_path = "templates"
        static_handler_class = "{HERE}:echo_app"
    """))
    settings = Client(loaded.app).get("/").json
    assert settings["cookie_secret"] == "s3cret" and settings["xsrf_cookies"] is True
    assert "s3cret" not in repr(loaded)  # printing or logging the config leaks no secret
    assert settings["login_url"] == "/login"
    assert settings["template_path"] == str(tmp_path / "templates")
    assert loaded.settings["static_handler_class"] is echo_app
    assert loaded.server == {} and loaded.stack is None and loaded.application is loaded.app


def test_probable_typo_in_settings_is_logged(config: Callable[[str], str],
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="microweb.application"):
        loaded = load(config(f"""
            [app]
            factory = "{HERE}:make_app"
            [app.settings]
            xsrf_cookie = true
            database_url = "sqlite:///app.db"
        """))
    assert "[app.settings] xsrf_cookie: not a setting microweb reads; did you mean " \
        "'xsrf_cookies'?" in caplog.text
    assert "database_url" not in caplog.text  # an app's own setting is fine
    assert loaded.settings["database_url"] == "sqlite:///app.db"


def test_typo_of_compress_response_is_logged(config: Callable[[str], str],
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="microweb.application"):
        load(config(f"""
            [app]
            factory = "{HERE}:make_app"
            [app.settings]
            compress_respons = true
        """))
    assert "compress_respons: not a setting microweb reads; did you mean " \
        "'compress_response'?" in caplog.text


class _HostHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(f"{self.request.host} via {type(self).__name__}")


class _ApiHandler(_HostHandler):
    pass


MAIN_ROUTES = [(r"/", _HostHandler)]
API_ROUTES = [(r"/", _ApiHandler)]


def test_handlers_with_hosts_and_default_host(config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        handlers = "{HERE}:MAIN_ROUTES"
        default_host = "www.example.com"
        [app.hosts]
        'api\\.example\\.com$' = "{HERE}:API_ROUTES"
    """))
    client = Client(loaded.app)
    assert client.get("/", headers={"Host": "api.example.com"}).get_data() == \
        b"api.example.com via _ApiHandler"
    assert client.get("/", headers={"Host": "www.example.com"}).get_data() == \
        b"www.example.com via _HostHandler"
    assert loaded.application.default_host == "www.example.com"


def test_module_names_a_ready_wsgi_app(config: Callable[[str], str]) -> None:
    loaded = load(config(f'[app]\nmodule = "{HERE}:echo_app"\n'))
    assert loaded.app is echo_app


@pytest.mark.parametrize(("body", "message"), [
    ("[app]\n", "give exactly one of handlers"),
    (f'[app]\nmodule = "{HERE}:echo_app"\nfactory = "{HERE}:make_app"', "exactly one of"),
    ('[app]\nmodule = "no_such_module_xyz:app"',
     "[app] module: cannot import 'no_such_module_xyz'"),
    (f'[app]\nmodule = "{HERE}:nothing_here"', "has no attribute 'nothing_here'"),
    ('[app]\nmodule = "just_a_name"', "expected \"package.module:attribute\""),
    (f'[app]\nmodule = "{HERE}:HERE"', "is not a WSGI application"),
    (f'[app]\nhandlers = "{HERE}:echo_app"', "[app] handlers: "),
    (f'[app]\nmodule = "{HERE}:echo_app"\n[app.settings]\ndebug = true',
     "settings need handlers = ... or factory = ..."),
    (f'[app]\nfactory = "{HERE}:strict_factory"\n[app.settings]\ndbug = true',
     "[app] factory tests.framework.test_config:strict_factory: unknown option 'dbug' "
     "(accepted: debug)"),
    (f'[app]\nfactory = "{HERE}:make_app"\n[app.settings]\ncookie_secret = {{ env = "NOPE_X" }}',
     "[app.settings] cookie_secret: environment variable NOPE_X is not set"),
    ('[ap]\nmodule = "x:y"', "unknown table or key 'ap'"),
    (f'[app]\nmodule = "{HERE}:echo_app"\npythonpth = ["."]', "[app] pythonpth: unknown key"),
    ('[server]\nport = 1', "an [app] table is required"),
    ("[app\n", "invalid TOML"),
])
def test_errors_name_the_file_and_key(config: Callable[[str], str], body: str,
                                      message: str) -> None:
    path = config(body)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert isinstance(info.value, options.Error)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")


# -- middleware -----------------------------------------------------------------------------------

def test_middleware_array_builds_the_stack_in_order(config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [[middleware]]
        name = "proxy"
        trusted = ["127.0.0.1"]
        [[middleware]]
        name = "gzip"
        min_size = 100
        [[middleware]]
        name = "access_log"
        enabled = false
    """))
    names = [line.split("(")[0] for line in loaded.describe().splitlines()[:-1]]
    assert names == ["1. ProxyMiddleware", "2. GzipMiddleware"]
    client = Client(loaded.app)
    response = client.get("/", headers={"X-Forwarded-For": "203.0.113.9",
                                        "X-Forwarded-Proto": "https",
                                        "Accept-Encoding": "gzip"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.headers["Content-Encoding"] == "gzip"
    seen = json.loads(gzip.decompress(response.data))
    assert seen["remote"] == "203.0.113.9" and seen["scheme"] == "https"
    untrusted = client.get("/", headers={"X-Forwarded-For": "203.0.113.9"},
                           environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert untrusted.json["remote"] == "198.51.100.1"


def test_middleware_tables_keep_file_order_and_accept_class_refs(
        config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [middleware.proxy]
        trusted = ["10.0.0.0/8"]
        [middleware.accesslog]
        [middleware."middleware.gzip:GzipMiddleware"]
        level = 9
    """))
    assert [type(layer.factory).__name__ for layer in loaded.stack.layers]
    assert [layer.name for layer in loaded.stack.layers] == [
        "ProxyMiddleware", "AccessLogMiddleware", "GzipMiddleware"]


@pytest.mark.parametrize(("body", "message"), [
    ('[[middleware]]\nname = "teleport"', "[middleware] teleport: unknown middleware 'teleport'"),
    ('[[middleware]]\nname = "gzip"\nlevle = 3', "[middleware] gzip: unknown option 'levle'"),
    ('[[middleware]]\nname = "gzip"\nlevel = 42', "gzip level must be within 0..9"),
    ('[[middleware]]\nmin_size = 3', "[[middleware]] #1: needs name = "),
    ('[[middleware]]\nname = "access_log"\n[[middleware]]\nname = "proxy"',
     "middleware order cannot work"),
])
def test_middleware_errors(config: Callable[[str], str], body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(config(f'[app]\nmodule = "{HERE}:echo_app"\n{body}\n'))
    assert message in str(info.value)


# -- sessions --------------------------------------------------------------------------------------

def counter_app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Counts visits in ``environ["microweb.session"]``."""
    session = environ["microweb.session"]
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session["visits"]).encode()]


def test_sqlite_sessions_from_the_sessions_table(config: Callable[[str], str],
                                                 tmp_path: Path) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:counter_app"
        [sessions]
        store = "sqlite"
        path = "var/sessions.db"
        secret = "a-long-enough-secret-for-tests-0123456789"
        cookie_name = "sid"
        cookie_path = "/"
        max_age = 3600
    """))
    layer = loaded.stack.layers[0]
    assert layer.name == "SessionMiddleware"
    assert type(layer.options["store"]).__name__ == "SQLiteStore"
    assert layer.options["store"].path == str(tmp_path / "var" / "sessions.db")
    assert layer.options["cookie_name"] == "sid" and layer.options["path"] == "/"
    client = Client(loaded.app)
    assert [client.get("/").get_data(as_text=True) for _ in range(3)] == ["1", "2", "3"]
    assert (tmp_path / "var" / "sessions.db").exists()
    assert client.get_cookie("sid") is not None


def test_sessions_use_the_cookie_secret_and_sit_before_xsrf(config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        factory = "{HERE}:make_app"
        [app.settings]
        cookie_secret = "the-application-secret-0123456789abcdef"
        [[middleware]]
        name = "proxy"
        [[middleware]]
        name = "xsrf"
        [sessions]
        store = "memory"
        max_entries = 50
    """))
    assert [layer.name for layer in loaded.stack.layers] == [
        "ProxyMiddleware", "SessionMiddleware", "XSRFMiddleware"]
    sessions = loaded.stack.layers[1]
    assert sessions.options["secret"] == "the-application-secret-0123456789abcdef"
    assert sessions.options["store"].max_entries == 50


def test_signing_layers_get_the_cookie_secret(config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [app.settings]
        cookie_secret = ["new-key-0123456789abcdef0123", "old-key-0123456789abcdef0123"]
        [[middleware]]
        name = "signed_cookies"
        names = ["prefs"]
        [[middleware]]
        name = "gzip"
    """))
    signed, gzip_layer = loaded.stack.layers
    assert signed.options == {"names": ["prefs"], "secret": [
        "new-key-0123456789abcdef0123", "old-key-0123456789abcdef0123"]}
    assert "secret" not in gzip_layer.options  # gzip signs nothing
    assert "secret=***" in loaded.describe()


@pytest.mark.parametrize(("body", "message"), [
    ('store = "memory"', "[sessions]: needs a secret: set cookie_secret in [app.settings]"),
    ('store = "floppy"\nsecret = "x"', "[sessions] store: unknown store 'floppy'"),
    ('store = "sqlite"\nsecret = "x"', "[sessions] store sqlite: missing required option 'path'"),
    ('store = "memory"\nsecret = "x"\ncolour = 1', "[sessions]: unknown option 'colour'"),
])
def test_session_errors(config: Callable[[str], str], body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(config(f'[app]\nmodule = "{HERE}:counter_app"\n[sessions]\n{body}\n'))
    assert message in str(info.value)


def test_middleware_file_options_are_relative_to_the_config(config: Callable[[str], str],
                                                             tmp_path: Path) -> None:
    (tmp_path / "blocklist.txt").write_text("deny 203.0.113.0/24\n")
    loaded = load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [[middleware]]
        name = "access_log"
        output = "logs/access.log"
        [[middleware]]
        name = "ip_blacklist"
        list_file = "blocklist.txt"
    """))
    access, ipfilter = loaded.stack.layers
    assert access.options["output"] == str(tmp_path / "logs" / "access.log")
    assert ipfilter.options["list_file"] == str(tmp_path / "blocklist.txt")
    client = Client(loaded.app)
    try:
        assert client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 403
        assert client.get("/", environ_base={"REMOTE_ADDR": "198.51.100.7"},
                          buffered=True).status_code == 200
    finally:
        loaded.stack.wsgi.close()  # detach the access log's file handler
    assert "198.51.100.7" in (tmp_path / "logs" / "access.log").read_text()
    stdout = load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[[middleware]]\n'
                         'name = "access_log"\noutput = "-"\n'))
    stdout.stack.wsgi.close()
    assert stdout.stack.layers[0].options["output"] == "-"


def test_pythonpath_makes_modules_next_to_the_file_importable(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "config_test_pkg_app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'from src']\n")
    path = write(tmp_path, '[app]\npythonpath = ["src"]\n'
                 'module = "config_test_pkg_app:application"\n')
    try:
        assert Client(load(path).app).get("/").get_data() == b"from src"
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("config_test_pkg_app", None)


@pytest.mark.redis
def test_redis_sessions(config: Callable[[str], str], redis_port: int) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:counter_app"
        [app.settings]
        cookie_secret = "redis-config-test-secret-0123456789"
        [sessions]
        store = "redis"
        url = "redis://127.0.0.1:{redis_port}/0"
        prefix = "config-test:"
    """))
    store = loaded.stack.layers[0].options["store"]
    assert type(store).__name__ == "RedisStore"
    client = Client(loaded.app)
    assert [client.get("/").get_data() for _ in range(2)] == [b"1", b"2"]
    import redis

    keys = redis.Redis(port=redis_port).keys("config-test:*")
    assert len(keys) == 1


# -- server, logging, options -------------------------------------------------------------------

def test_server_values_from_the_environment(config: Callable[[str], str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    body = (f'[app]\nmodule = "{HERE}:echo_app"\n[server]\n'
            'port = { env = "CONFIG_TEST_PORT", default = 8000 }\n')
    assert load(config(body)).server == {"port": 8000}
    monkeypatch.setenv("CONFIG_TEST_PORT", "9123")
    assert load(config(body)).server == {"port": 9123}
    monkeypatch.setenv("CONFIG_TEST_PORT", "ninety")
    with pytest.raises(ConfigError, match=r"\[server\]: bad value for server option 'port'"):
        load(config(body))


def test_server_overrides_are_validated(config: Callable[[str], str]) -> None:
    loaded = load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [server]
        host = "127.0.0.1"
        port = 8123
        workers = 2
        keepalive-timeout = 3
    """))
    assert loaded.server == {"host": "127.0.0.1", "port": 8123, "workers": 2,
                             "keepalive_timeout": 3.0}
    with pytest.raises(ConfigError, match=r"\[server\]: bad value for server option 'port'"):
        load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[server]\nport = "eighty"\n'))
    with pytest.raises(ConfigError, match=r"\[server\]: unknown server option 'prot'"):
        load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[server]\nprot = 1\n'))


@pytest.fixture
def private_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("microweb.test-config")
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)


def test_logging_table_configures_logging(config: Callable[[str], str], tmp_path: Path,
                                          private_logger: logging.Logger) -> None:
    load(config(f"""
        [app]
        module = "{HERE}:echo_app"
        [logging]
        level = "WARNING"
        json = true
        file = "logs/app.jsonl"
        logger = "microweb.test-config"
    """))
    private_logger.info("hidden")
    private_logger.warning("kept", extra={"user": "alice"})
    for handler in private_logger.handlers:
        handler.flush()
    lines = (tmp_path / "logs" / "app.jsonl").read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["kept"]
    with pytest.raises(ConfigError, match=r"\[logging\]: unknown option 'colour'"):
        load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[logging]\ncolour = true\n'))


def test_environment_overrides_the_options_table(config: Callable[[str], str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    body = (f'[app]\nmodule = "{HERE}:echo_app"\n[options]\n'
            'config_test_greeting = "bonjour"\n')
    try:
        monkeypatch.setenv("MICROWEB_CONFIG_TEST_GREETING", "hola")
        load(config(body))
        assert options.options.config_test_greeting == "hola"
        assert options.options.source_of("config_test_greeting") == (
            "environment variable MICROWEB_CONFIG_TEST_GREETING")
    finally:
        options.options.config_test_greeting = "hello"


def test_options_table_sets_defined_options(config: Callable[[str], str]) -> None:
    try:
        load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[options]\n'
                    'config_test_greeting = "bonjour"\n'))
        assert options.options.config_test_greeting == "bonjour"
        with pytest.raises(ConfigError, match=r"\[options\]: option 'nope': unknown option"):
            load(config(f'[app]\nmodule = "{HERE}:echo_app"\n[options]\nnope = 1\n'))
    finally:
        options.options.config_test_greeting = "hello"


# -- the interactive debugger ---------------------------------------------------------------------

@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("::ffff:127.0.0.1", True), ("unix:/tmp/app.sock", True),
    ("0.0.0.0", False), ("::", False), ("", False), (None, False), ("192.0.2.10", False),
    ("10.1.2.3", False), ("no-such-host.invalid", False),
])
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert debug.is_loopback(host) is expected


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10"])
def test_debugger_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(debug.DebuggerRefused, match="loopback"):
        debug.debugged(echo_app, host)


def test_debugger_only_when_enabled() -> None:
    assert debug.maybe_debugged(echo_app, {"debug": True}, "0.0.0.0") is echo_app
    wrapped = debug.maybe_debugged(echo_app, {"debugger": True}, "127.0.0.1")
    assert isinstance(wrapped, DebuggedApplication) and wrapped.app.app is echo_app


def test_debugger_shows_an_interactive_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="microweb.application"):
        app = debug.debugged(make_app(), "127.0.0.1")
    assert "PIN:" in caplog.text
    response = Client(app).get("/boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "RuntimeError: kaboom" in page and "Werkzeug Debugger" in page
    # the console is there for a local Host, refused for any other (DNS rebinding)
    assert "Interactive Console" in Client(app).get("/console").get_data(as_text=True)
    foreign = Client(app).get("/console", headers={"Host": "evil.example"})
    assert foreign.status_code == 400
    assert "Interactive Console" not in foreign.get_data(as_text=True)


def test_config_debugger_requires_loopback_server(config: Callable[[str], str]) -> None:
    body = f'[app]\nfactory = "{HERE}:make_app"\n[app.settings]\ndebugger = true\n'
    loaded = load(config(body))
    assert loaded.debugger and isinstance(loaded.app, DebuggedApplication)
    assert "debugger" not in Client(loaded.app).get("/").json  # not an Application setting
    with pytest.raises(ConfigError, match=r"\[app.settings\] debugger: .*loopback.*'0.0.0.0'"):
        load(config(body + '[server]\nhost = "0.0.0.0"\n'))
    with pytest.raises(ConfigError, match=r"debugger: needs one worker process"):
        load(config(body + '[server]\nworkers = 3\n'))
    # an inherited socket may listen on any interface: its host setting says nothing
    with pytest.raises(ConfigError, match=r"\[app.settings\] debugger: .*inherited socket"):
        load(config(body + '[server]\nfd = 3\n'))


# -- debug=True and its implications (set by the Application) ------------------------------------

class _BrokenHandler(web.RequestHandler):
    def get(self) -> None:
        raise ZeroDivisionError("divided by nothing")


class _PageHandler(web.RequestHandler):
    def get(self) -> None:
        self.render("page.html", name="x")


class _StaticUrlHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(self.static_url("app.css"))


def debug_handlers() -> list[Any]:
    return [(r"/broken", _BrokenHandler), (r"/page", _PageHandler),
            (r"/static-url", _StaticUrlHandler)]


DEBUG_HANDLERS = debug_handlers()


def test_debug_implies_tornado_defaults() -> None:
    settings = web.Application([], debug=True).settings
    assert settings["autoreload"] is True and settings["serve_traceback"] is True
    assert settings["compiled_template_cache"] is False and settings["static_hash_cache"] is False
    explicit = web.Application([], debug=True, serve_traceback=False, autoreload=False).settings
    assert explicit["serve_traceback"] is False and explicit["autoreload"] is False
    plain = web.Application([]).settings
    assert not plain.get("serve_traceback") and not plain.get("autoreload")


def test_serve_traceback_only_in_debug() -> None:
    page = Client(web.Application(debug_handlers(), debug=True)).get("/broken")
    assert page.status_code == 500
    text = page.get_data(as_text=True)
    assert "ZeroDivisionError" in text and "divided by nothing" in text and "_BrokenHandler" in text
    quiet = Client(web.Application(debug_handlers())).get("/broken")
    assert quiet.status_code == 500
    assert "ZeroDivisionError" not in quiet.get_data(as_text=True)


def _touch_later(path: Path, text: str) -> None:
    before = path.stat().st_mtime
    path.write_text(text)
    os.utime(path, (before + 5, before + 5))  # a visibly newer mtime, whatever the clock


def test_debug_reloads_templates_and_rehashes_static_files(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("version one")
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body { color: red }")
    client = Client(web.Application(debug_handlers(), debug=True, template_path=str(tmp_path),
                                    static_path=str(static)))
    assert client.get("/page").get_data() == b"version one"
    first_url = client.get("/static-url").get_data(as_text=True)
    _touch_later(tmp_path / "page.html", "version two")
    _touch_later(static / "app.css", "body { color: blue }")
    assert client.get("/page").get_data() == b"version two"
    second_url = client.get("/static-url").get_data(as_text=True)
    assert first_url.startswith("/static/app.css?v=") and second_url != first_url


def test_without_debug_static_hashes_are_cached(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body { margin: 0 }")
    client = Client(web.Application(debug_handlers(), static_path=str(static)))
    first_url = client.get("/static-url").get_data(as_text=True)
    _touch_later(static / "app.css", "body { margin: 1px }")
    assert client.get("/static-url").get_data(as_text=True) == first_url


def test_config_debug_turns_on_server_reload(config: Callable[[str], str]) -> None:
    base = f'[app]\nhandlers = "{HERE}:DEBUG_HANDLERS"\n[app.settings]\n'
    assert load(config(base + "debug = true\n")).server == {"reload": True}
    assert load(config(base + "debug = true\nautoreload = false\n")).server == {}
    assert load(config(base + "debug = true\n[server]\nreload = false\n")).server == {
        "reload": False}
    assert load(config(base + "debug = false\n")).server == {}


def test_debugger_sees_handler_exceptions(config: Callable[[str], str]) -> None:
    loaded = load(config(f'[app]\nhandlers = "{HERE}:DEBUG_HANDLERS"\n[app.settings]\n'
                         "debugger = true\n"))
    client = Client(loaded.app)
    broken = client.get("/broken")
    page = broken.get_data(as_text=True)
    assert broken.status_code == 500
    assert "Werkzeug Debugger" in page and "divided by nothing" in page
    assert "_BrokenHandler" in page  # the handler's own frame, inspectable in the browser
    assert client.get("/static-url").status_code == 500  # no static_path: a real error too
    assert client.get("/nowhere").status_code == 404  # an HTTP error is not a crash
    assert "Werkzeug Debugger" not in client.get("/nowhere").get_data(as_text=True)


def _lazy_app(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # only once iterated
    yield b"lazy"


def test_debugger_passes_normal_and_lazy_responses_through() -> None:
    app = debug.debugged(web.Application([(r"/", _HostHandler)]), "127.0.0.1")
    assert Client(app).get("/", headers={"Host": "localhost"}).get_data() == \
        b"localhost via _HostHandler"
    lazy = debug.debugged(_lazy_app, "127.0.0.1")
    response = Client(lazy).get("/")
    assert response.status_code == 200 and response.get_data() == b"lazy"


# -- examples/config ---------------------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "config"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example folder, so its SQLite sessions land in a temporary folder."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("var", "__pycache__"))
    return target


def test_example_app_toml_in_process(example: Path, private_logger: logging.Logger,
                                     caplog: pytest.LogCaptureFixture) -> None:
    loaded = load(example / "app.toml", configure_logging=False)
    assert [layer.name for layer in loaded.stack.layers] == [
        "ProxyMiddleware", "AccessLogMiddleware", "GzipMiddleware", "SessionMiddleware"]
    assert loaded.server == {"host": "127.0.0.1", "port": 8000, "threads": 8}
    client = Client(loaded.app)
    with caplog.at_level(logging.INFO, logger="microweb.application"):
        first = client.get("/").get_data(as_text=True)
        second = client.get("/").get_data(as_text=True)
    assert "<h1>Bonjour, visitor!</h1>" in first and "here 1 time." in first
    assert "here 2 times." in second
    assert "home page, visit 2" in caplog.text
    assert (example / "var" / "sessions.db").exists()
    settings = client.get("/settings").json
    assert settings == {"debug": False, "xsrf_cookies": True, "login_url": "/login",
                        "template_path": str(example / "templates")}
    assert client.post("/greet", data={"name": "Ann"}).status_code == 403
    token = re.search(r'name="_xsrf" value="([^"]+)"', second)
    assert token is not None
    answer = client.post("/greet", data={"name": "Ann", "_xsrf": token.group(1)})
    assert answer.status_code == 200 and answer.json == {"greeting": "Bonjour, Ann!"}


@pytest.mark.slow
def test_loaded_config_serve(example: Path) -> None:
    import httpx

    port = free_port()
    script = ("import sys; from microweb.config import load; "
              "load(sys.argv[1]).serve(port=int(sys.argv[2]))")
    with spawn([sys.executable, "-c", script, str(example / "app.toml"), str(port)], port=port):
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    assert "<h1>Bonjour, visitor!</h1>" in page


def _wait_for(server: Any, text: str, times: int = 1) -> str:
    """The server's output once ``text`` appears ``times`` times (log lines follow responses)."""
    for _ in range(100):
        output = str(server.output())
        if output.count(text) >= times:
            break
        time.sleep(0.05)
    return output


@pytest.mark.slow
def test_example_served_by_microweb_serve_config(example: Path) -> None:
    import httpx

    port = free_port()
    argv = [sys.executable, "-m", "microweb.cli", "serve", "--config",
            str(example / "app.toml"), "--port", str(port)]
    with spawn(argv, port=port) as server, httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert "here 1 time." in client.get("/").text
        page = client.get("/", headers={"Accept-Encoding": "identity"}).text
        assert "here 2 times." in page and "Bonjour" in page
        output = _wait_for(server, '"GET / HTTP/1.1" 200', times=2)
    assert "home page, visit 2" in output  # [logging] level = "INFO" reached stderr
    # one access line per request, from AccessLogMiddleware (the Application's is turned off)
    assert output.count('"GET / HTTP/1.1" 200') == 2
    assert " 200 GET / (" not in output


@pytest.mark.slow
def test_example_under_gunicorn_through_wsgi_py(tmp_path: Path) -> None:
    """``gunicorn examples.config.wsgi:app``: two workers share the SQLite sessions."""
    import httpx

    shutil.copytree(EXAMPLE, tmp_path / "cfgexample",
                    ignore=shutil.ignore_patterns("var", "__pycache__"))
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--chdir", str(tmp_path), "-b",
            f"127.0.0.1:{port}", "-w", "2", "--timeout", "30", "--no-control-socket",
            "cfgexample.wsgi:app"]
    with spawn(argv, port=port):
        cookies: dict[str, str] = {}
        pages = []
        for _ in range(4):  # a new connection each time: either worker may answer
            response = httpx.get(f"http://127.0.0.1:{port}/", cookies=cookies, timeout=10)
            cookies.update(response.cookies)
            pages.append(response.text)
    assert "Bonjour" in pages[0] and "here 4 times." in pages[3]
    assert (tmp_path / "cfgexample" / "var" / "sessions.db").exists()


def test_microweb_serve_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    import subprocess

    path = write(tmp_path, f'[app]\nmodule = "{HERE}:echo_app"\n[server]\nprot = 1\n')
    done = subprocess.run([sys.executable, "-m", "microweb.cli", "serve", "--config", path],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "unknown server option 'prot'" in done.stderr and path in done.stderr
    assert "Traceback" not in done.stderr


def run_standalone(port: int, *args: str, env: dict[str, str] | None = None) -> Any:
    argv = [sys.executable, "-m", "examples.config.standalone", f"--port={port}", *args]
    return spawn(argv, port=port, env=env)


@pytest.mark.slow
def test_tornado_style_standalone_precedence(example: Path) -> None:
    import httpx

    settings = str(example / "settings.py")
    port = free_port()
    with run_standalone(port, f"--config={settings}"):
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    assert "<h1>Ciao, visitor!</h1>" in page  # settings.py beats the default
    port = free_port()
    with run_standalone(port, f"--config={settings}", env={"MICROWEB_GREETING": "Hola"}):
        assert "<h1>Hola" in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    port = free_port()
    with run_standalone(port, f"--config={settings}", "--greeting=Hi",
                        env={"MICROWEB_GREETING": "Hola"}):
        assert "<h1>Hi" in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text


def test_standalone_help_and_bad_flag() -> None:
    import subprocess

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "examples.config.standalone", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    shown = run("--help")
    assert shown.returncode == 0
    assert "example options:" in shown.stdout and "--greeting" in shown.stdout
    assert "server options:" in shown.stdout and "application options:" in shown.stdout
    bad = run("--port=eighty")
    assert bad.returncode == 2 and "option 'port': expected int, got 'eighty'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_every_toml_block_of_the_docs_parses() -> None:
    import tomllib

    docs = (ROOT / "docs" / "configuration.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", docs, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        data = tomllib.loads(block)
        if "app" in data:  # the full schema example: only tables load() knows
            assert set(data) <= {"app", "middleware", "sessions", "server", "logging", "options"}


def test_check_command_prints_the_stack_or_the_error(tmp_path: Path, example: Path) -> None:
    import subprocess

    def run(path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "microweb.config", path],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    good = run(str(example / "app.toml"))
    assert good.returncode == 0, good.stderr
    assert "1. ProxyMiddleware(trusted=['127.0.0.1'])" in good.stdout
    assert "SessionMiddleware(store=SQLiteStore(" in good.stdout
    assert "'cookie_secret': '***'" in good.stdout and "demo-only" not in good.stdout
    assert "server: {'host': '127.0.0.1', 'port': 8000, 'threads': 8}" in good.stdout
    bad = run(write(tmp_path, '[app]\nmodule = "nowhere_xyz:app"\n'))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "[app] module: cannot import 'nowhere_xyz'" in bad.stderr
