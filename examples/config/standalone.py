"""The Tornado way: options from defaults < a settings file < MICROWEB_* variables < flags.

    python -m examples.config.standalone --config=examples/config/settings.py --port=8001
    MICROWEB_GREETING=Hola python -m examples.config.standalone --help
"""

from __future__ import annotations

from typing import Any

from microweb import Application
from microweb.options import define, options, parse_all
from middleware import compose
from middleware.sessions import SessionMiddleware

from .app import handlers

define("config", type=str, help="a settings file (.toml, or Python as in Tornado)")
define("port", default=8000, help="port to listen on", group="server")
define("host", default="127.0.0.1", help="address to bind", group="server")
define("template_path", type=str, group="application", help="folder of the templates")
define("xsrf_cookies", default=False, group="application", help="check XSRF tokens")
define("cookie_secret", default="demo-only-change-me-0123456789abcdef", group="application",
       help="key signing cookies (set MICROWEB_COOKIE_SECRET in production)")


def make_app() -> Any:
    """The application from the parsed options of the "application" group, with sessions."""
    settings = options.group_dict("application")
    return compose(Application(handlers, **settings),
                   SessionMiddleware.configure(secret=settings["cookie_secret"]))


def main() -> None:
    parse_all()  # exits with status 2 and a message on a bad option, 0 after --help
    from microweb.server import serve

    serve(make_app(), host=options.host, port=options.port)


if __name__ == "__main__":
    main()
