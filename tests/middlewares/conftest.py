"""Apps the middleware tests wrap: the same routes as a bare WSGI function and a Flask app.

Routes: ``/text`` (2,000 bytes of text), ``/env`` (JSON of what the app sees: client address,
scheme, host, request id, cookies), ``/set-cookie?name=&value=`` (a cookie with attributes),
``/admin/...``, ``/boom`` (raises), anything else: ``hello``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

import flask
import pytest
import webtest
from werkzeug.http import dump_cookie, parse_cookie

from middleware import keys

TEXT = ("The quick brown fox jumps over the lazy dog. " * 45).encode()
APP_KINDS = ["bare", "flask", "microweb"]


def _view(remote_addr: str, scheme: str, host: str, cookies: dict[str, str],
          environ: dict[str, Any]) -> bytes:
    return json.dumps({
        "remote_addr": remote_addr, "scheme": scheme, "host": host, "cookies": cookies,
        "request_id": environ.get(keys.REQUEST_ID),
        "signed": environ.get(keys.SIGNED_COOKIES),
        "original_remote_addr": environ.get(keys.ORIGINAL_REMOTE_ADDR),
    }).encode()


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A plain WSGI function serving the test routes."""
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if path == "/env":
        cookies = dict(parse_cookie(environ.get("HTTP_COOKIE", "")))
        body = _view(environ.get("REMOTE_ADDR", ""), environ["wsgi.url_scheme"],
                     environ.get("HTTP_HOST", ""), cookies, environ)
        headers = [("Content-Type", "application/json")]
    elif path == "/text":
        body = TEXT
    elif path == "/boom":
        raise RuntimeError("boom")
    elif path == "/set-cookie":
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        headers.append(("Set-Cookie", dump_cookie(query["name"], query.get("value", ""),
                                                  max_age=3600, httponly=True, samesite="Lax")))
        body = b"cookie set"
    elif path.startswith("/admin"):
        body = b"admin area"
    else:
        body = b"hello"
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]


def flask_app() -> flask.Flask:
    """The same routes in Flask."""
    app = flask.Flask("mwtest")

    @app.route("/env")
    def env() -> flask.Response:
        request = flask.request
        body = _view(request.remote_addr or "", request.scheme, request.host,
                     dict(request.cookies), request.environ)
        return flask.Response(body, content_type="application/json")

    @app.route("/text")
    def text() -> flask.Response:
        return flask.Response(TEXT, content_type="text/plain; charset=utf-8")

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.route("/set-cookie")
    def set_cookie() -> flask.Response:
        response = flask.Response("cookie set", content_type="text/plain; charset=utf-8")
        response.set_cookie(flask.request.args["name"], flask.request.args.get("value", ""),
                            max_age=3600, httponly=True, samesite="Lax")
        return response

    @app.route("/admin/")
    @app.route("/admin/<path:rest>")
    def admin(rest: str = "") -> str:
        return "admin area"

    @app.route("/")
    @app.route("/<path:rest>")
    def hello(rest: str = "") -> flask.Response:
        return flask.Response("hello", content_type="text/plain; charset=utf-8")

    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app


def microweb_app() -> Callable[..., Iterable[bytes]]:
    """The same routes as microweb handlers."""
    import microweb as web

    class Env(web.RequestHandler):
        def get(self) -> None:
            request = self.request
            cookies = {name: morsel.value for name, morsel in request.cookies.items()}
            self.set_header("Content-Type", "application/json")
            self.write(_view(request.remote_ip or "", request.protocol, request.host, cookies,
                             request.environ))

    class Text(web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.write(TEXT)

        head = get

    class Boom(web.RequestHandler):
        def get(self) -> None:
            raise RuntimeError("boom")

    class SetCookie(web.RequestHandler):
        def get(self) -> None:
            self.set_cookie(self.get_argument("name"), self.get_argument("value", ""),
                            max_age=3600, httponly=True, samesite="Lax")
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.write("cookie set")

    class Plain(web.RequestHandler):
        def get(self, rest: str = "") -> None:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.write("admin area" if self.request.path.startswith("/admin") else "hello")

        head = get

    return web.Application([(r"/env", Env), (r"/text", Text), (r"/boom", Boom),
                            (r"/set-cookie", SetCookie), (r"/(.*)", Plain)])


def make_app(kind: str) -> Callable[..., Iterable[bytes]]:
    """The test app of the given flavour."""
    if kind == "bare":
        return bare_app
    if kind == "flask":
        return flask_app()
    if kind == "microweb":
        return microweb_app()
    raise ValueError(kind)


def client(app: Callable[..., Iterable[bytes]], remote_addr: str = "127.0.0.1",
           **environ: Any) -> webtest.TestApp:
    """A webtest client around ``app`` checked by ``wsgiref.validate``."""
    return webtest.TestApp(validator(app), extra_environ={"REMOTE_ADDR": remote_addr, **environ})


@pytest.fixture(params=APP_KINDS)
def app_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Fetched:
    """A response read whole and closed: status code, headers, raw (undecoded) body."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(app: Callable[..., Iterable[bytes]], path: str = "/", method: str = "GET",
          headers: dict[str, str] | None = None, **environ: Any) -> Fetched:
    """One request through ``wsgiref.validate`` with werkzeug's client, body left encoded
    (webtest would transparently gunzip it)."""
    from werkzeug.test import Client

    environ.setdefault("REMOTE_ADDR", "127.0.0.1")
    response = Client(validator(app)).open(path, method=method, headers=headers or {},
                                           environ_overrides=environ)
    try:
        return Fetched(response.status_code, response.headers, response.get_data())
    finally:
        response.close()
