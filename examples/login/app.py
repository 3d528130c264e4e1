"""A login example: ``python -m examples.login.app --port 8000`` then open http://127.0.0.1:8000/.

Shows the secure-cookie login of the Tornado tutorials done safely: passwords hashed with
werkzeug, the user kept in a signed cookie (HttpOnly, SameSite=Lax), every form carrying the
XSRF token, logout by POST, and the ``next`` parameter checked so it cannot redirect off-site.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

import microweb as web
from microweb.auth import safe_next_url

HERE = Path(__file__).resolve().parent

#: Demo accounts (a real app reads a database); passwords are stored hashed only.
USERS = {
    "alice": generate_password_hash("wonderland", method="pbkdf2:sha256:60000"),
    "bob": generate_password_hash("builder", method="pbkdf2:sha256:60000"),
}
USER_COOKIE = "user"


class BaseHandler(web.RequestHandler):
    """Reads the signed ``user`` cookie; every page handler derives from this one."""

    def get_current_user(self) -> str | None:
        name = self.get_secure_cookie(USER_COOKIE, max_age_days=7)
        return name.decode("utf-8") if name and name.decode("utf-8") in USERS else None


class HomeHandler(BaseHandler):
    @web.authenticated
    def get(self) -> None:
        self.render("home.html")


class AccountHandler(BaseHandler):
    @web.authenticated
    def get(self) -> None:
        self.render("account.html")


class LoginHandler(BaseHandler):
    def get(self) -> None:
        self.render("login.html", error=None, next_url=self.get_next_url())

    def post(self) -> None:
        name = self.get_argument("username", "")
        password = self.get_argument("password", "")
        next_url = safe_next_url(self.get_argument("next", None), "/")
        hashed = USERS.get(name)
        if hashed is None or not check_password_hash(hashed, password):
            self.set_status(403)
            self.render("login.html", error="Wrong user name or password.", next_url=next_url)
            return
        self.set_secure_cookie(USER_COOKIE, name, expires_days=7, httponly=True,
                               samesite="Lax", secure=self.request.protocol == "https")
        self.redirect(next_url)


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.clear_cookie(USER_COOKIE)
        self.redirect(self.get_login_url())


def make_app(cookie_secret: Any = None, **settings: Any) -> web.Application:
    """Build the application; ``cookie_secret`` defaults to $LOGIN_COOKIE_SECRET or a random one."""
    secret = cookie_secret or os.environ.get("LOGIN_COOKIE_SECRET")
    if not secret:
        # Fine for one process; several workers (or a restart) need one shared secret.
        logging.getLogger("examples.login").warning(
            "LOGIN_COOKIE_SECRET is not set: using a random secret for this process")
        secret = secrets.token_hex(32)
    return web.Application(
        [
            web.url(r"/", HomeHandler, name="home"),
            web.url(r"/account", AccountHandler, name="account"),
            web.url(r"/login", LoginHandler, name="login"),
            web.url(r"/logout", LogoutHandler, name="logout"),
        ],
        cookie_secret=secret,
        login_url="/login",
        xsrf_cookies=True,
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        **settings,
    )


application = make_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    from wsgiref.simple_server import make_server

    with make_server(args.host, args.port, application) as server:
        print(f"login example on http://{args.host}:{args.port}/ (alice / wonderland)")
        server.serve_forever()


if __name__ == "__main__":
    main()
