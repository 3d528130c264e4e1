"""current_user, @authenticated, get_login_url and the safe ``next`` helper."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
import webtest

import microweb as web
from microweb.auth import safe_next_url

calls: list[str] = []


class Base(web.RequestHandler):
    def get_current_user(self) -> Any:
        calls.append("get_current_user")
        user = self.get_secure_cookie("user")
        return user.decode() if user else None


class Private(Base):
    @web.authenticated
    def get(self) -> None:
        self.write(f"hello {self.current_user} {self.current_user}")

    @web.authenticated
    def head(self) -> None:
        self.set_header("X-User", str(self.current_user))

    @web.authenticated
    def post(self) -> None:
        self.write("posted")

    @web.authenticated
    def delete(self) -> None:
        self.write("deleted")


class Login(Base):
    def get(self) -> None:
        self.write("next=" + self.get_next_url())

    def post(self) -> None:
        self.set_secure_cookie("user", self.get_argument("name"))
        self.redirect(self.get_next_url())


class Assigned(web.RequestHandler):
    def prepare(self) -> None:
        self.current_user = "set-in-prepare"

    @web.authenticated
    def get(self) -> None:
        self.write(str(self.current_user))


class AsyncPrivate(Base):
    @web.authenticated
    async def get(self) -> None:
        self.write(f"async {self.current_user}")


class CustomLogin(Base):
    def get_login_url(self) -> str:
        return "/custom-login"

    @web.authenticated
    def get(self) -> None:
        self.write("never")


def _app(**settings: Any) -> webtest.TestApp:
    settings.setdefault("cookie_secret", "login-test-secret")
    settings.setdefault("login_url", "/login")
    return webtest.TestApp(web.Application(
        [(r"/private", Private), (r"/login", Login), (r"/assigned", Assigned),
         (r"/custom", CustomLogin), (r"/async", AsyncPrivate)], **settings))


def _location(resp: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    parts = urllib.parse.urlsplit(resp.headers["Location"])
    return parts.path, urllib.parse.parse_qs(parts.query)


def test_get_redirects_to_login_with_encoded_next() -> None:
    resp = _app().get("/private?a=1&b=x%20y", status=302)
    path, query = _location(resp)
    assert path == "/login"
    assert query == {"next": ["/private?a=1&b=x%20y"]}
    assert "next=%2Fprivate%3Fa%3D1%26b%3Dx%2520y" in resp.headers["Location"]


def test_head_redirects_too() -> None:
    resp = _app().head("/private", status=302)
    assert _location(resp)[0] == "/login"


@pytest.mark.parametrize("method", ["post", "delete"])
def test_other_methods_get_403(method: str) -> None:
    resp = getattr(_app(), method)("/private", status=403)
    assert "Location" not in resp.headers


def test_login_then_back_to_next_and_current_user_cached() -> None:
    app = _app()
    login_page = app.get("/private?x=1").follow()
    assert login_page.text == "next=/private?x=1"
    resp = app.post("/login?next=%2Fprivate%3Fx%3D1", {"name": "alice"}, status=302)
    assert resp.headers["Location"].endswith("/private?x=1")
    calls.clear()
    assert resp.follow().text == "hello alice alice"
    assert calls == ["get_current_user"]  # cached for the request


def test_head_when_logged_in() -> None:
    app = _app()
    app.post("/login", {"name": "bob"})
    assert app.head("/private").headers["X-User"] == "bob"


def test_current_user_may_be_assigned_in_prepare() -> None:
    assert _app().get("/assigned").text == "set-in-prepare"


def test_absolute_login_url_gets_absolute_next() -> None:
    resp = _app(login_url="https://accounts.example.com/signin").get(
        "/private?q=1", headers={"Host": "app.example.com"}, status=302)
    parts = urllib.parse.urlsplit(resp.headers["Location"])
    assert parts.netloc == "accounts.example.com"
    assert urllib.parse.parse_qs(parts.query)["next"] == ["http://app.example.com/private?q=1"]


def test_login_url_with_query_is_kept_as_is() -> None:
    resp = _app(login_url="https://sso.example.com/auth?client=app").get("/private",
                                                                          status=302)
    assert resp.headers["Location"] == "https://sso.example.com/auth?client=app"


def test_get_login_url_override() -> None:
    resp = _app().get("/custom", status=302)
    assert _location(resp) == ("/custom-login", {"next": ["/custom"]})


def test_missing_login_url_is_a_500_naming_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    app = webtest.TestApp(web.Application([(r"/private", Private)], cookie_secret="s"))
    app.get("/private", status=500)
    assert "login_url" in caplog.text


def test_forged_user_cookie_is_not_a_login() -> None:
    app = _app()
    app.get("/private", headers={"Cookie": "user=alice"}, status=302)
    other = _app(cookie_secret="attacker-secret")
    other.post("/login", {"name": "admin"})
    forged = other.cookies["user"]
    app.get("/private", headers={"Cookie": f"user={forged}"}, status=302)


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "///evil.example", "/\\evil.example",
    "\\\\evil.example", "/\t/evil.example", "/\n/evil.example", "javascript:alert(1)",
    "http:/evil.example", "evil.example/path", "", " /x", "/x\x00y", "data:text/html,x",
])
def test_unsafe_next_values_fall_back(target: str) -> None:
    assert safe_next_url(target) == "/"
    assert safe_next_url(target, default="/home") == "/home"


@pytest.mark.parametrize("target", ["/", "/a/b?c=d&e=%2F%2Fx#frag", "/%2F%2Fevil.example",
                                    "/path;params"])
def test_safe_next_values_pass(target: str) -> None:
    assert safe_next_url(target) == target


def test_open_redirect_attempt_through_login_goes_home() -> None:
    app = _app()
    resp = app.post("/login?next=%2F%2Fevil.example%2F", {"name": "alice"}, status=302)
    assert urllib.parse.urlsplit(resp.headers["Location"]).path == "/"
    assert "evil" not in resp.headers["Location"]


def test_authenticated_async_method() -> None:
    app = _app()
    assert _location(app.get("/async", status=302)) == ("/login", {"next": ["/async"]})
    app.post("/login", {"name": "carol"})
    assert app.get("/async").text == "async carol"


def test_login_example_end_to_end() -> None:
    from examples.login.app import make_app

    app = webtest.TestApp(make_app(cookie_secret="example-test-secret"))
    form_page = app.get("/account").follow()
    form = form_page.forms["login"]
    assert form["next"].value == "/account"
    form["username"], form["password"] = "alice", "wrong"
    assert "Wrong user name" in form.submit(status=403).text
    form["password"] = "wonderland"
    landed = form.submit(status=302).follow()
    assert "Account of alice" in landed.text
    user_cookie = app.cookies["user"]
    assert user_cookie and "alice" not in user_cookie  # signed and encoded, not plain
    app.post("/logout", status=403)  # no XSRF token: refused, still logged in
    assert "Account of alice" in app.get("/account").text
    landed.forms["logout"].submit(status=302)
    app.get("/account", status=302)
