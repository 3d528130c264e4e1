"""XSRF protection: tokens, masking, the three ways to submit, attacks, opt-outs, Tornado tokens."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import tornado.httputil
import tornado.web
import webtest

import microweb as web
from middleware import keys
from middleware.sessions import MemoryStore, SessionMiddleware
from middleware.xsrf import (
    XSRFMiddleware,
    mask_xsrf_token,
    new_xsrf_token,
    unmask_xsrf_token,
)


class Form(web.RequestHandler):
    def get(self) -> None:
        first = self.xsrf_token
        self.write({"token": first.decode(), "again": self.xsrf_token.decode(),
                    "html": self.xsrf_form_html()})

    def post(self) -> None:
        self.write("posted")

    def put(self) -> None:
        self.write("put")

    def patch(self) -> None:
        self.write("patched")

    def delete(self) -> None:
        self.write("deleted")


class Exempt(web.RequestHandler):
    xsrf_exempt = True

    def post(self) -> None:
        self.write("exempt ok")


class Overridden(web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        if self.request.headers.get("X-Api-Key") != "k":
            raise web.HTTPError(403)

    def post(self) -> None:
        self.write("api ok")


prepared: list[str] = []


class Prepared(web.RequestHandler):
    def prepare(self) -> None:
        prepared.append(self.request.method)

    def post(self) -> None:
        self.write("ok")


def _app(**settings: Any) -> webtest.TestApp:
    settings.setdefault("xsrf_cookies", True)
    return webtest.TestApp(web.Application(
        [(r"/", Form), (r"/exempt", Exempt), (r"/api", Overridden), (r"/prep", Prepared)],
        **settings))


def _cookie_token(resp: webtest.TestResponse) -> str:
    header = resp.headers["Set-Cookie"]
    assert header.startswith("_xsrf=")
    return header.split(";")[0].split("=", 1)[1]


def test_get_sets_cookie_once_and_token_is_masked_and_cached() -> None:
    resp = _app().get("/")
    assert len(resp.headers.getall("Set-Cookie")) == 1
    cookie = _cookie_token(resp)
    data = resp.json
    assert data["token"] == data["again"] == cookie  # cached per request
    assert re.fullmatch(r"2\|[0-9a-f]{8}\|[0-9a-f]{32}\|\d+", data["token"])
    assert f'name="_xsrf" value="{data["token"]}"' in data["html"]
    assert data["html"].startswith('<input type="hidden"')


def test_each_request_gets_a_fresh_mask_of_the_same_token() -> None:
    app = _app()
    first = app.get("/").json["token"]
    second = app.get("/")  # the cookie jar now holds _xsrf: no new cookie
    assert "Set-Cookie" not in second.headers
    assert second.json["token"] != first
    assert unmask_xsrf_token(second.json["token"]) == unmask_xsrf_token(first)


def test_xsrf_cookie_attributes() -> None:
    resp = _app(xsrf_cookie_kwargs={"httponly": True, "secure": True}).get("/")
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "Secure" in header and "SameSite=Lax" in header


@pytest.mark.parametrize("how", ["field", "X-XSRFToken", "X-CSRFToken"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unsafe_methods_accept_the_token_three_ways(how: str, method: str) -> None:
    app = _app()
    token = app.get("/").json["token"]
    if how == "field" and method != "delete":
        resp = getattr(app, method)("/", {"_xsrf": token})
    elif how == "field":
        resp = app.delete(f"/?_xsrf={token.replace('|', '%7C')}")
    else:
        resp = getattr(app, method)("/", headers={how: token})
    assert resp.status_int == 200


def test_plain_unmasked_token_also_verifies() -> None:
    app = _app()
    raw = unmask_xsrf_token(app.get("/").json["token"])
    assert raw is not None
    assert app.post("/", {"_xsrf": raw.hex()}).text == "posted"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_missing_token_is_403(method: str, caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    app.get("/")
    with caplog.at_level(logging.WARNING):
        getattr(app, method)("/", status=403)
    assert "_xsrf" in caplog.text


def test_safe_methods_are_not_checked() -> None:
    app = _app()
    assert app.get("/").status_int == 200
    for method in ("get", "head", "options"):  # 405, not 403: these are never checked
        assert getattr(app, method)("/prep", status=405).status_int == 405


class EveryMethod(web.RequestHandler):
    SUPPORTED_METHODS = (*web.RequestHandler.SUPPORTED_METHODS, "TRACE")

    def _answer(self) -> None:
        self.write("answered")

    get = head = options = trace = post = put = patch = delete = _answer


@pytest.mark.parametrize("method", [*EveryMethod.SUPPORTED_METHODS])
def test_the_middleware_checks_exactly_the_methods_the_handler_checks(method: str) -> None:
    """With no token, each method gets the same answer from the handler's own check and
    from XSRFMiddleware in front of an unchecked application."""
    handler_checks = webtest.TestApp(web.Application([(r"/", EveryMethod)], xsrf_cookies=True))
    middleware_checks = webtest.TestApp(XSRFMiddleware(web.Application([(r"/", EveryMethod)])))
    statuses = {client.request("/", method=method, expect_errors=True).status_int
                for client in (handler_checks, middleware_checks)}
    assert statuses == {200 if method in ("GET", "HEAD", "OPTIONS") else 403}


def test_wrong_token_is_403() -> None:
    app = _app()
    app.get("/")
    other = mask_xsrf_token(new_xsrf_token())
    app.post("/", {"_xsrf": other}, status=403)
    app.post("/", headers={"X-XSRFToken": other}, status=403)


@pytest.mark.parametrize("bad", ["garbage", "2|zz|yy|1", "3|00|00|1", "2|0000|", "x" * 5000,
                                 "2|00000000|" + "0" * 32 + "|notatime"])
def test_malformed_tokens_are_403_not_500(bad: str) -> None:
    app = _app()
    app.get("/")
    app.post("/", {"_xsrf": bad}, status=403)


def test_token_without_cookie_is_403() -> None:
    """An attacker's own valid pair does not help: the victim's cookie is what counts."""
    attacker = _app()
    token = attacker.get("/").json["token"]
    victim = _app()
    victim.post("/", {"_xsrf": token}, status=403)


def test_token_not_matching_the_browsers_cookie_is_403() -> None:
    app = _app()
    app.get("/")  # the victim's browser holds an _xsrf cookie
    forged = mask_xsrf_token(new_xsrf_token())  # the attacker knows only their own token
    app.post("/", {"_xsrf": forged}, status=403)
    app.post("/", headers={"X-CSRFToken": forged}, status=403)


def test_check_runs_before_prepare() -> None:
    prepared.clear()
    _app().post("/prep", status=403)
    assert prepared == []


def test_opt_out_with_class_attribute_and_override() -> None:
    app = _app()
    assert app.post("/exempt").text == "exempt ok"
    assert app.post("/api", headers={"X-Api-Key": "k"}).text == "api ok"
    app.post("/api", status=403)


def test_disabled_setting_checks_nothing() -> None:
    assert _app(xsrf_cookies=False).post("/").text == "posted"


def test_tornado_cookie_and_token_verify() -> None:
    """A cookie and a form token made by the real tornado package pass the check."""
    tornado_token = _tornado_xsrf_token()
    app = _app()
    resp = app.post("/", {"_xsrf": tornado_token},
                    headers={"Cookie": f"_xsrf={tornado_token}"})
    assert resp.text == "posted"
    # and a fresh microweb mask of Tornado's cookie token verifies too
    page = app.get("/", headers={"Cookie": f"_xsrf={tornado_token}"})
    assert unmask_xsrf_token(page.json["token"]) == unmask_xsrf_token(tornado_token)
    assert "Set-Cookie" not in page.headers


def test_tornado_v1_hex_cookie_is_accepted() -> None:
    raw = new_xsrf_token()
    app = _app()
    resp = app.post("/", {"_xsrf": mask_xsrf_token(raw)}, headers={"Cookie": f"_xsrf={raw.hex()}"})
    assert resp.text == "posted"


def test_environ_token_is_the_one_used() -> None:
    """The contract: a token in environ["microweb.xsrf_token"] replaces the handler's own."""
    raw = new_xsrf_token()
    inner = web.Application([(r"/", Form)], xsrf_cookies=True)

    def with_token(environ: dict[str, Any], start_response: Any) -> Any:
        environ[keys.XSRF_TOKEN] = mask_xsrf_token(raw)
        return inner(environ, start_response)

    app = webtest.TestApp(with_token)
    page = app.get("/")
    assert "Set-Cookie" not in page.headers
    assert unmask_xsrf_token(page.json["token"]) == raw
    assert app.post("/", {"_xsrf": mask_xsrf_token(raw)}).text == "posted"
    app.post("/", {"_xsrf": mask_xsrf_token(new_xsrf_token())}, status=403)


@pytest.mark.parametrize("store", ["cookie", "session"])
def test_behind_the_real_xsrf_middleware(store: str) -> None:
    """One token: forms rendered by the handler pass both the middleware and the handler."""
    inner = web.Application([(r"/", Form)], xsrf_cookies=True)
    wsgi: Any = XSRFMiddleware(inner, token_store=store)
    if store == "session":
        wsgi = SessionMiddleware(wsgi, "session-secret", MemoryStore())
    app = webtest.TestApp(wsgi)
    page = app.get("/")
    cookies = [h.split("=")[0] for h in page.headers.getall("Set-Cookie")]
    assert cookies.count("_xsrf") == (1 if store == "cookie" else 0)  # set once, by the middleware
    token = page.json["token"]
    assert app.post("/", {"_xsrf": token}).text == "posted"
    assert app.post("/", headers={"X-XSRFToken": app.get("/").json["token"]}).text == "posted"
    app.post("/", {"_xsrf": mask_xsrf_token(new_xsrf_token())}, status=403)


def _tornado_xsrf_token() -> str:
    """Ask a real tornado RequestHandler for its xsrf_token (no server needed)."""
    class _Connection:  # the handler only registers a close callback on it
        def set_close_callback(self, callback: Any) -> None:
            pass

    app = tornado.web.Application(xsrf_cookies=True)
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("GET", "/", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "localhost"}), connection=_Connection())
    handler = tornado.web.RequestHandler(app, request)
    return handler.xsrf_token.decode()


def test_cookie_name_and_version_1_settings() -> None:
    app = _app(xsrf_cookie_name="csrftoken", xsrf_cookie_version=1)
    page = app.get("/")
    assert page.headers["Set-Cookie"].startswith("csrftoken=")
    token = page.json["token"]
    assert re.fullmatch(r"[0-9a-f]{32}", token)  # version 1: plain hex, as Tornado
    assert app.post("/", {"_xsrf": token}).text == "posted"
    app.post("/", {"_xsrf": token}, headers={"Cookie": "_xsrf=" + token}, status=403)


def test_logged_in_users_get_a_persistent_xsrf_cookie() -> None:
    class User(Form):
        def get_current_user(self) -> str:
            return "alice"

    app = webtest.TestApp(web.Application([(r"/", User)], xsrf_cookies=True))
    assert "Expires=" in app.get("/").headers["Set-Cookie"]
    assert "Expires=" not in _app().get("/").headers["Set-Cookie"]
