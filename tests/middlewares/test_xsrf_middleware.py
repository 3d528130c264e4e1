"""XSRFMiddleware around a bare WSGI function and Flask: tokens, checks, body preservation,
Fetch Metadata, proxy-aware Origin checks, exempt paths, session-kept tokens."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.validate import validator

import flask
import pytest
import webtest
from werkzeug.http import parse_cookie
from werkzeug.test import Client
from werkzeug.wrappers import Request

from middleware import keys
from middleware.compose import MiddlewareOrderError, compose
from middleware.proxy import ProxyMiddleware
from middleware.sessions import MemoryStore, SessionMiddleware
from middleware.xsrf import (
    XSRFMiddleware,
    mask_xsrf_token,
    new_xsrf_token,
    unmask_xsrf_token,
)


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers with the token it was given and the form/files it could still read."""
    with Request(environ) as request:  # closes uploaded files' temporary storage
        body = json.dumps({
            "token": environ.get(keys.XSRF_TOKEN),
            "fresh": environ[keys.XSRF_TOKEN_FACTORY](),
            "form": request.form.to_dict(),
            "files": {k: f.read().decode("latin-1") for k, f in request.files.items()},
            "raw": request.get_data(as_text=True) if not request.form else "",
        }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def flask_echo() -> flask.Flask:
    app = flask.Flask("xsrf")

    @app.route("/", methods=["GET", "POST", "PUT", "DELETE"])
    @app.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def index(rest: str = "") -> flask.Response:
        return flask.jsonify(token=flask.request.environ[keys.XSRF_TOKEN],
                             form=flask.request.form.to_dict(),
                             files={k: f.read().decode("latin-1")
                                    for k, f in flask.request.files.items()})

    return app


@pytest.fixture(params=["bare", "flask"])
def app(request: pytest.FixtureRequest) -> Callable[..., Iterable[bytes]]:
    return echo_app if request.param == "bare" else flask_echo()


def make(app: Any = echo_app, **options: Any) -> webtest.TestApp:
    return webtest.TestApp(validator(XSRFMiddleware(validator(app), **options)),
                           extra_environ={"HTTP_HOST": "example.com"})


def xsrf_cookie(response: webtest.TestResponse) -> str:
    for header in response.headers.getall("Set-Cookie"):
        parsed = parse_cookie(header.split(";")[0])
        if "_xsrf" in parsed:
            return header
    raise AssertionError("no _xsrf cookie")


def token_of(client: webtest.TestApp) -> str:
    return str(client.get("/").json["token"])


# -- the token -------------------------------------------------------------------------------------

def test_get_sets_a_masked_token_cookie_readable_by_scripts(app: Any) -> None:
    client = make(app)
    response = client.get("/")
    header = xsrf_cookie(response)
    assert "HttpOnly" not in header and "SameSite=Lax" in header and "Path=/" in header
    cookie = parse_cookie(header.split(";")[0])["_xsrf"]
    assert cookie.startswith("2|")
    token = response.json["token"]
    assert token != cookie and unmask_xsrf_token(token) == unmask_xsrf_token(cookie)
    again = client.get("/")
    assert "Set-Cookie" not in again.headers  # the cookie is set once
    assert again.json["token"] != token  # masked afresh per request
    assert unmask_xsrf_token(again.json["token"]) == unmask_xsrf_token(cookie)


def test_factory_gives_fresh_masks_of_one_token() -> None:
    response = make().get("/")
    assert response.json["fresh"] != response.json["token"]
    assert unmask_xsrf_token(response.json["fresh"]) == unmask_xsrf_token(response.json["token"])


# -- unsafe methods ------------------------------------------------------------------------------

def test_post_without_token_is_403_with_a_clear_body(app: Any,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    client = make(app)
    client.get("/")
    with caplog.at_level(logging.WARNING, "middleware.xsrf"):
        response = client.post("/", {"name": "x"}, status=403)
    assert b"XSRF check failed" in response.body and b"'_xsrf' argument missing" in response.body
    assert any("XSRF check failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("declared", ["100", "600000"])  # read in one go / spooled
def test_body_shorter_than_its_content_length_is_a_400(
        declared: str, caplog: pytest.LogCaptureFixture) -> None:
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "wsgi.url_scheme": "http",
               "HTTP_HOST": "example.com", "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": declared, "wsgi.input": io.BytesIO(b"_xsrf=abc")}
    with caplog.at_level(logging.WARNING, "middleware.xsrf"):
        body = XSRFMiddleware(echo_app)(environ, lambda status, headers, *a: statuses.append(
            status))
    assert statuses == ["400 Bad Request"] and b"ended early" in b"".join(body)
    assert any("ended early" in r.getMessage() for r in caplog.records)


def test_refusal_log_line_escapes_a_forged_path(caplog: pytest.LogCaptureFixture) -> None:
    client = make()
    client.get("/")
    with caplog.at_level(logging.WARNING, "middleware.xsrf"):
        client.post("/a%0A2026-01-01 INFO forged line", {"name": "x"}, status=403)
    messages = [r.getMessage() for r in caplog.records if r.name == "middleware.xsrf"]
    assert messages and all("\n" not in m for m in messages)
    assert any("forged line" in m for m in messages)


def test_post_with_form_field_passes_and_app_still_reads_the_body(app: Any) -> None:
    client = make(app)
    token = token_of(client)
    response = client.post("/", {"_xsrf": token, "name": "alice", "é": "ü"})
    assert response.json["form"] == {"_xsrf": token, "name": "alice", "é": "ü"}


@pytest.mark.parametrize("header", ["X-XSRFToken", "X-CSRFToken"])
def test_headers_carry_the_token(header: str) -> None:
    client = make()
    token = token_of(client)
    response = client.post("/", '{"json": true}', headers={header: token},
                           content_type="application/json")
    assert response.json["raw"] == '{"json": true}'


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE"])
def test_every_unsafe_method_is_checked(method: str) -> None:
    client = make()
    client.get("/")
    here = {"HTTP_HOST": "example.com"}  # request() keeps webtest's own host otherwise
    client.request("/", method=method, environ=here, status=403)
    client.request("/", method=method, environ=here, headers={"X-XSRFToken": token_of(client)},
                   status=200)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_only_get_head_and_options_are_safe(method: str) -> None:
    make().request("/", method=method, headers={"Sec-Fetch-Site": "cross-site"}, status=200)


def test_wrong_or_foreign_token_is_refused() -> None:
    client = make()
    client.get("/")
    client.post("/", {"_xsrf": mask_xsrf_token(new_xsrf_token())}, status=403)
    client.post("/", {"_xsrf": "garbage"}, status=403)
    other = make()
    client.post("/", {"_xsrf": token_of(other)}, status=403)


def test_no_cookie_at_all_is_refused() -> None:
    response = make().post("/", {"_xsrf": mask_xsrf_token(new_xsrf_token())}, status=403)
    assert b"no XSRF token cookie" in response.body


def test_tornado_v1_hex_tokens_still_verify() -> None:
    raw = new_xsrf_token()
    client = make()
    client.set_cookie("_xsrf", raw.hex())
    client.post("/", {"_xsrf": mask_xsrf_token(raw)}, status=200)


def test_two_backends_accept_each_others_tokens() -> None:
    """No per-process state: a token from one backend verifies on another."""
    first, second = make(), make()
    token = token_of(first)
    second.cookiejar = first.cookiejar
    second.post("/", {"_xsrf": token}, status=200)


# -- multipart, big and chunked bodies -----------------------------------------------------------

def test_multipart_upload_reaches_the_app_intact(app: Any) -> None:
    client = make(app)
    token = token_of(client)
    payload = bytes(range(256)) * 40
    response = client.post("/", {"_xsrf": token, "title": "t"},
                           upload_files=[("doc", "a.bin", payload)])
    assert response.json["form"]["title"] == "t"
    assert response.json["files"]["doc"].encode("latin-1") == payload


def test_body_over_the_cap_is_413_unless_the_header_carries_the_token() -> None:
    client = make(max_body_size=1000)
    token = token_of(client)
    response = client.post("/", {"_xsrf": token, "big": "x" * 2000}, status=413)
    assert b"X-XSRFToken" in response.body
    ok = client.post("/", {"big": "x" * 2000}, headers={"X-XSRFToken": token})
    assert ok.json["form"]["big"] == "x" * 2000


def test_chunked_body_without_length() -> None:
    inner = XSRFMiddleware(echo_app)
    client = Client(inner)
    first = client.get("/", headers={"Host": "example.com"})
    token = first.json["token"]  # type: ignore[index]
    body = f"_xsrf={token}&name=bob".encode()
    response = client.post("/", input_stream=io.BytesIO(body), headers={
        "Host": "example.com", "Content-Type": "application/x-www-form-urlencoded",
        "Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    try:
        assert response.status_code == 200
        assert response.json["form"] == {"_xsrf": token, "name": "bob"}  # type: ignore[index]
    finally:
        response.close()  # closes the spooled copy of the body
        first.close()


# -- Fetch Metadata and Origin -------------------------------------------------------------------

def test_cross_site_fetch_refused_before_any_token_work() -> None:
    client = make()
    token = token_of(client)
    response = client.post("/", {"_xsrf": token}, headers={"Sec-Fetch-Site": "cross-site"},
                           status=403)
    assert b"Sec-Fetch-Site" in response.body
    for site in ("same-origin", "same-site", "none"):
        client.post("/", {"_xsrf": token}, headers={"Sec-Fetch-Site": site}, status=200)
    client.get("/", headers={"Sec-Fetch-Site": "cross-site"}, status=200)  # safe: allowed


def test_origin_and_referer_checks() -> None:
    client = make()
    token = token_of(client)
    good = {"_xsrf": token}
    client.post("/", good, headers={"Origin": "http://example.com"}, status=200)
    client.post("/", good, headers={"Referer": "http://example.com/form?x=1"}, status=200)
    response = client.post("/", good, headers={"Origin": "http://evil.test"}, status=403)
    assert b"does not match this site" in response.body
    client.post("/", good, headers={"Referer": "http://evil.test/"}, status=403)
    client.post("/", good, headers={"Origin": "http://example.com:8080"}, status=403)
    client.post("/", good, headers={"Origin": "null", "Referer": "http://evil.test/"},
                status=403)


@pytest.mark.parametrize("origin", ["app.example.com", "ftp://app.example.com", "https://"])
def test_a_trusted_origin_that_is_not_an_origin_is_refused_at_construction(origin: str) -> None:
    # silently dropped, it would leave the real cross-origin form posts answered 403
    with pytest.raises(ValueError, match="trusted_origins"):
        XSRFMiddleware(echo_app, trusted_origins=[origin])


def test_trusted_origins_and_origin_check_off() -> None:
    client = make(trusted_origins=["https://app.example.com"])
    token = token_of(client)
    client.post("/", {"_xsrf": token}, headers={"Origin": "https://app.example.com"})
    relaxed = make(check_origin=False)
    relaxed.post("/", {"_xsrf": token_of(relaxed)}, headers={"Origin": "http://evil.test"})


def test_tls_terminating_proxy_needs_proxy_middleware_outside() -> None:
    """Behind nginx terminating TLS the app sees http; ProxyMiddleware restores https."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com",
                 "X-Forwarded-For": "203.0.113.9", "Origin": "https://example.com"}
    bare = make()
    token = token_of(bare)
    response = bare.post("/", {"_xsrf": token}, headers=forwarded, status=403)
    assert b"TLS-terminating proxy" in response.body
    stacked = webtest.TestApp(validator(compose(
        echo_app, ProxyMiddleware.configure(trusted=["127.0.0.1"]), XSRFMiddleware)),
        extra_environ={"HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1"})
    token = token_of(stacked)
    stacked.post("/", {"_xsrf": token}, headers=forwarded, status=200)


def test_exempt_paths_skip_every_check() -> None:
    client = make(exempt=["/hook", "/api/", re.compile(r"/cb/\d+")])
    for path in ("/hook", "/api/v1/x", "/cb/12"):
        client.post(path, {"a": "1"}, headers={"Sec-Fetch-Site": "cross-site"}, status=200)
    for path in ("/hook/x", "/apix", "/cb/x"):
        client.post(path, {"a": "1"}, status=403)


def _post_to(client: webtest.TestApp, path: str, status: int, script_name: str = "") -> None:
    """POST with no token to a PATH_INFO exactly as given (as a server decoded it)."""
    client.post("/", {"a": "1"}, status=status,
                extra_environ={"PATH_INFO": path, "SCRIPT_NAME": script_name})


@pytest.mark.parametrize("path", [
    "/api/../login", "/api/./../login", "/api/v1/../../admin", "/api/..", "/hook/..",
    "/hook/../hook2", "/cb/1/../../admin", "/hook/.", "/hookx/../api",
])
def test_a_path_disguised_as_exempt_is_still_checked(path: str) -> None:
    """The server decoded ``%2e%2e`` to ``..`` already; the app resolves it to a checked path."""
    client = make(exempt=["/hook", "/api/", re.compile(r"/cb/\d+")])
    _post_to(client, path, 403)


@pytest.mark.parametrize("path", [
    "//hook", "/./hook", "/x/../hook", "/api//v1", "//api/v1", "/api/v1/../v2", "/api/./v1",
    "/cb//7", "/../hook",
])
def test_an_exempt_path_written_differently_is_still_exempt(path: str) -> None:
    client = make(exempt=["/hook", "/api/", re.compile(r"/cb/\d+")])
    _post_to(client, path, 200)


def test_exempt_paths_include_the_mount_point_and_are_normalised_when_configured() -> None:
    client = make(exempt=["/app/hook", "/app//api/./"])
    _post_to(client, "/hook", 200, script_name="/app")
    _post_to(client, "/api/v1", 200, script_name="/app")
    _post_to(client, "/../other", 403, script_name="/app/hook")
    _post_to(client, "/app/hook", 403, script_name="/mount")


# -- the token kept in the session ---------------------------------------------------------------

def _session_stack(store: MemoryStore) -> webtest.TestApp:
    app = compose(echo_app, SessionMiddleware.configure(secret="s", store=store),
                  XSRFMiddleware)
    return webtest.TestApp(validator(app), extra_environ={"HTTP_HOST": "example.com"})


def test_token_lives_in_the_session_when_a_session_middleware_is_outside() -> None:
    store = MemoryStore()
    client = _session_stack(store)
    response = client.get("/")
    assert all("_xsrf=" not in h for h in response.headers.getall("Set-Cookie"))
    token = response.json["token"]
    client.post("/", {"_xsrf": token}, status=200)
    stranger = _session_stack(store)
    stranger.get("/")
    stranger.post("/", {"_xsrf": token}, status=403)


def test_session_mode_must_have_the_session_outside() -> None:
    with pytest.raises(MiddlewareOrderError):
        compose(echo_app, XSRFMiddleware, SessionMiddleware.configure(secret="s"))
    app = XSRFMiddleware(echo_app, token_store="session")
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        webtest.TestApp(app).get("/")


def test_cookie_mode_ignores_the_session() -> None:
    app = compose(echo_app, SessionMiddleware.configure(secret="s"),
                  XSRFMiddleware.configure(token_store="cookie"))
    client = webtest.TestApp(app)
    assert any("_xsrf=" in h for h in client.get("/").headers.getall("Set-Cookie"))


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        XSRFMiddleware(echo_app, token_store="database")  # type: ignore[arg-type]
    assert keys.XSRF_TOKEN in XSRFMiddleware.provides


# -- a real browser --------------------------------------------------------------------------------

_FORM_PAGE = """<!doctype html><title>form</title>
<form method="post" action="/transfer"><input type="hidden" name="_xsrf" value="{token}">
<input name="amount" value="10"><button id="send">send</button></form>"""
_EVIL_PAGE = """<!doctype html><title>evil</title>
<form id="f" method="post" action="http://127.0.0.1:{port}/transfer">
<input type="hidden" name="_xsrf" value="{token}"><input name="amount" value="9999"></form>
<script>document.getElementById("f").submit()</script>"""


def _browser_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "POST":
        with Request(environ) as request:
            body = f"transferred {request.form['amount']}"
    else:
        body = _FORM_PAGE.format(token=environ[keys.XSRF_TOKEN])
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]


def _serve(app: Callable[..., Iterable[bytes]]) -> tuple[Any, int]:
    """A threaded wsgiref server on 127.0.0.1 (browsers open spare connections in advance,
    which would block a one-connection-at-a-time server)."""
    import socketserver
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Threaded(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server("127.0.0.1", 0, app, server_class=Threaded, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_port)


@pytest.mark.browser
@pytest.mark.slow
def test_chromium_same_site_form_passes_cross_site_post_is_refused(browser: Any) -> None:
    site, port = _serve(XSRFMiddleware(_browser_app))
    token_holder: dict[str, str] = {}

    def evil(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [_EVIL_PAGE.format(port=port, token=token_holder["token"]).encode()]

    attacker, attacker_port = _serve(evil)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        token_holder["token"] = browser.find_element("name", "_xsrf").get_attribute("value")
        browser.find_element("id", "send").click()
        deadline = time.monotonic() + 10  # the click starts a navigation: wait for its page
        while "transferred 10" not in browser.page_source:
            assert time.monotonic() < deadline, browser.page_source
            time.sleep(0.1)
        # "localhost" is another site than "127.0.0.1": the browser says so in Sec-Fetch-Site
        browser.get(f"http://localhost:{attacker_port}/")
        deadline = time.monotonic() + 10
        while "XSRF check failed" not in browser.page_source:
            assert time.monotonic() < deadline, browser.page_source
            time.sleep(0.1)
        assert "Sec-Fetch-Site" in browser.page_source
        assert "transferred 9999" not in browser.page_source
    finally:
        site.shutdown()
        attacker.shutdown()
        site.server_close()
        attacker.server_close()
