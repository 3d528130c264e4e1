"""The tutorials' Tornado app: cookie counter, login with ``next``, XSRF, templates.

``tornado_app.py`` is the app as written for Tornado; ``app.py`` is the same file ported to
microweb by changing the imports, the template folder and the start-up lines (README.md).

    python -m examples.tornado_port.tornado_app --port=8000   # on Tornado
    python -m examples.tornado_port.app --port=8000           # on microweb
"""

import os

from microweb import Application, HTTPError, RequestHandler, authenticated
from microweb.options import define, options, parse_command_line
from microweb.server import serve

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
HOUSES = [
    {"title": "Kuanzhai Alley loft", "position": "Liuliqiao station", "price": 398, "score": 5},
    {"title": "Independent little villa", "position": "Wenjin Street", "price": 280, "score": 5},
]

define("port", default=8000, type=int, help="port to listen on")


def safe_next(url, default="/"):
    """Follow ``next`` only to a path on this site (an open redirect is a classic hole)."""
    if url and url.startswith("/") and not url.startswith(("//", "/\\")):
        return url
    return default


class BaseHandler(RequestHandler):
    def get_current_user(self):
        return self.get_secure_cookie("user")


class CounterHandler(BaseHandler):
    def get(self):
        cookie = self.get_secure_cookie("count")
        count = int(cookie) + 1 if cookie else 1
        self.set_secure_cookie("count", str(count))
        self.write(f"<h1>You have seen this page {count} times.</h1>")


class LoginHandler(BaseHandler):
    def get(self):
        self.render("login.html", next=safe_next(self.get_argument("next", None)), error="")

    def post(self):
        name = self.get_argument("name")
        if self.get_argument("password") != "tornado":
            self.set_status(401)
            self.render("login.html", next=safe_next(self.get_argument("next", None)),
                        error="Wrong password.")
            return
        self.set_secure_cookie("user", name)
        self.redirect(safe_next(self.get_argument("next", None)))


class LogoutHandler(BaseHandler):
    def post(self):
        self.clear_cookie("user")
        self.redirect("/")


class ProfileHandler(BaseHandler):
    @authenticated
    def get(self):
        self.write({"user": self.current_user.decode(), "houses": len(HOUSES)})


class HousesHandler(BaseHandler):
    def get(self):
        self.render("houses.html", houses=HOUSES)


class HouseHandler(BaseHandler):
    def get(self, index):
        if int(index) >= len(HOUSES):
            raise HTTPError(404)
        self.write(HOUSES[int(index)])


def make_app(**settings):
    return Application(
        [
            (r"/", CounterHandler),
            (r"/login", LoginHandler),
            (r"/logout", LogoutHandler),
            (r"/profile", ProfileHandler),
            (r"/houses", HousesHandler),
            (r"/houses/(\d+)", HouseHandler),
        ],
        template_path=TEMPLATES,
        cookie_secret=settings.pop("cookie_secret", "change me: tornado_port demo secret"),
        xsrf_cookies=True,
        login_url="/login",
        **settings,
    )


application = make_app()

if __name__ == "__main__":
    parse_command_line()
    serve(application, host="127.0.0.1", port=options.port)
