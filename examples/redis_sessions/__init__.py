"""Sessions on Redis with a node ring: the tutorials' consistent-hash ring, done by the store.

The tutorials hash each session id onto one of several Redis servers by hand. Here
``RedisStore(nodes=...)`` does it with a weighted consistent-hash ring (uhashring, ketama):
each session lives on exactly one node, and adding a node moves only about 1/n of them.

Nodes come from ``MICROWEB_REDIS_NODES`` (``name=url[*weight]`` separated by commas)::

    MICROWEB_REDIS_NODES="a=redis://127.0.0.1:6379/0,b=redis://127.0.0.1:6380/0*2" \\
        microweb serve examples.redis_sessions:application
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import microweb as web
import middleware
from middleware.sessions import RedisStore, SessionMiddleware

__all__ = ["application", "make_app", "parse_nodes"]

DEFAULT_NODES = "a=redis://127.0.0.1:6379/0"


class CartHandler(web.RequestHandler):
    """A shopping cart of house ids kept in the session; GET shows it and where it is stored."""

    def get(self) -> None:
        self.session["visits"] = int(self.session.get("visits", 0)) + 1
        self.write({"visits": self.session["visits"], "cart": self.session.get("cart", []),
                    "node": self.settings["store"].node_for(self.session.id or ""),
                    "xsrf": self.xsrf_token.decode()})  # for the X-XSRFToken header

    def post(self) -> None:
        house = self.get_argument("house")
        if not house.isdigit():
            raise web.HTTPError(400, reason="Bad Request: house must be a number")
        self.session["cart"] = [*self.session.get("cart", []), int(house)][-50:]
        self.write({"cart": self.session["cart"]})


def parse_nodes(spec: str) -> dict[str, tuple[str, int]]:
    """``"a=redis://h1:6379/0,b=redis://h2:6379/0*2"`` → ``{"a": (url, 1), "b": (url, 2)}``."""
    nodes = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"bad node {item!r}: expected name=redis://host:port/db[*weight]")
        url, _, weight = url.partition("*")
        nodes[name.strip()] = (url, int(weight or 1))
    if not nodes:
        raise ValueError("no Redis node given")
    return nodes


def make_app(nodes: Mapping[str, Any] | str | None = None, *,
             secret: str = "change me: redis sessions demo", prefix: str = "session:") -> Any:
    """The cart app inside SessionMiddleware(RedisStore over the ring of ``nodes``)."""
    if nodes is None or isinstance(nodes, str):
        nodes = parse_nodes(nodes or os.environ.get("MICROWEB_REDIS_NODES", DEFAULT_NODES))
    store = RedisStore(nodes=nodes, prefix=prefix)
    app = web.Application([(r"/", CartHandler)], cookie_secret=secret, xsrf_cookies=True,
                          store=store)
    return middleware.compose(app, SessionMiddleware.configure(secret=secret, store=store))


def __getattr__(name: str) -> Any:
    """Build ``application`` on first use (PEP 562): importing connects to nothing."""
    if name == "application":
        globals()["application"] = app = make_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
