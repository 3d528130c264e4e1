"""Handlers of the config example: everything else (settings, stack, server) is in app.toml."""

from __future__ import annotations

from microweb import RequestHandler
from microweb.options import define, options

define("greeting", default="Hello", group="example", help="what the home page says")


class HomeHandler(RequestHandler):
    """Counts visits in the session and greets with the configured greeting."""

    def get(self) -> None:
        visits = int(self.session.get("visits", 0)) + 1
        self.session["visits"] = visits
        self.logger.info("home page, visit %d", visits)
        self.render("index.html", greeting=options.greeting, visits=visits)


class SettingsHandler(RequestHandler):
    """Shows which (non-secret) settings the file gave the application."""

    def get(self) -> None:
        shown = ("debug", "xsrf_cookies", "login_url", "template_path")
        self.write({name: self.settings.get(name) for name in shown})


class GreetHandler(RequestHandler):
    """A form post: the XSRF check and the session both come from the config file."""

    def post(self) -> None:
        name = self.get_argument("name", "stranger")[:40]
        self.session["name"] = name
        self.write({"greeting": f"{options.greeting}, {name}!"})


handlers = [
    (r"/", HomeHandler),
    (r"/settings", SettingsHandler),
    (r"/greet", GreetHandler),
]
