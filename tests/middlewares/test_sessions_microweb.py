"""SessionMiddleware and XSRFMiddleware around a microweb Application (Tornado-style handlers)."""

from __future__ import annotations

import logging
from pathlib import Path
from wsgiref.validate import validator

import pytest
import webtest

import microweb as web
from middleware.compose import compose
from middleware.sessions import SessionMiddleware, SQLiteStore
from middleware.xsrf import XSRFMiddleware, unmask_xsrf_token


class Login(web.RequestHandler):
    def post(self) -> None:
        self.session.regenerate()  # at login: no session fixation
        self.session["user"] = self.get_argument("user")
        self.write("welcome")


class Me(web.RequestHandler):
    def get(self) -> None:
        self.write({"user": self.session.get("user"), "id": self.session.id})


class Logout(web.RequestHandler):
    def post(self) -> None:
        self.session.invalidate()
        self.write("bye")


class Form(web.RequestHandler):
    def get(self) -> None:
        self.write({"middleware": self.request.environ["microweb.xsrf_token"],
                    "handler": self.xsrf_token.decode()})

    def post(self) -> None:
        self.write({"ok": True, "name": self.get_argument("name")})


def application() -> web.Application:
    return web.Application([(r"/login", Login), (r"/me", Me), (r"/logout", Logout),
                            (r"/form", Form)], cookie_secret="cookie-secret")


def test_login_regenerate_logout_with_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    client = webtest.TestApp(validator(SessionMiddleware(application(), "s3cret", store)))
    assert client.get("/me").json == {"user": None, "id": None}
    client.post("/login", {"user": "alice"})
    me = client.get("/me").json
    assert me["user"] == "alice" and len(me["id"]) == 43
    client.post("/logout")
    assert client.get("/me").json == {"user": None, "id": None}
    assert store.load(me["id"]) is None


def test_store_down_under_microweb_is_503_not_500(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    good = webtest.TestApp(SessionMiddleware(application(), "s3cret",
                                             SQLiteStore(tmp_path / "s.db")))
    good.post("/login", {"user": "alice"})
    down = SQLiteStore(tmp_path / "gone" / "s.db")
    client = webtest.TestApp(validator(SessionMiddleware(application(), "s3cret", down)))
    client.cookiejar = good.cookiejar
    with caplog.at_level(logging.ERROR):
        response = client.get("/me", status=503)
    assert b"session store is unavailable" in response.body
    assert any("SQLiteStore" in r.getMessage() for r in caplog.records
               if r.name == "middleware.sessions")


def test_handler_without_the_middleware_names_it(caplog: pytest.LogCaptureFixture) -> None:
    client = webtest.TestApp(application())
    with caplog.at_level(logging.ERROR):
        client.get("/me", status=500)
    assert any("SessionMiddleware" in (r.exc_text or "") + r.getMessage()
               for r in caplog.records)


def test_xsrf_middleware_and_handler_share_one_token(tmp_path: Path) -> None:
    app = compose(application(), SessionMiddleware.configure(
        secret="s3cret", store=SQLiteStore(tmp_path / "s.db")), XSRFMiddleware)
    client = webtest.TestApp(validator(app), extra_environ={"HTTP_HOST": "example.com"})
    tokens = client.get("/form").json
    assert unmask_xsrf_token(tokens["middleware"]) == unmask_xsrf_token(tokens["handler"])
    client.post("/form", {"name": "x"}, status=403)
    assert client.post("/form", {"name": "x", "_xsrf": tokens["handler"]}).json == {
        "ok": True, "name": "x"}
