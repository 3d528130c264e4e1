"""IP blacklist and rate limit around a microweb app (the tutorials' IP filter, done safely).

The tutorial's filter reads the client from the Host header, which the client writes. Here the
client is ``REMOTE_ADDR`` as resolved by ProxyMiddleware from *trusted* proxy hops only, so a
forged ``X-Forwarded-For`` cannot dodge the list. ``blocklist.txt`` is re-read when it changes
(no restart); ``/admin`` is open only to loopback and the office range; every address gets
``rate`` requests per second with bursts of ``burst`` (then 429 with Retry-After).

    microweb serve examples.ipfilter:application
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import microweb as web
import middleware

__all__ = ["application", "make_app"]

BLOCKLIST = Path(__file__).with_name("blocklist.txt")
OFFICE = ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]  # who may open /admin


class HomeHandler(web.RequestHandler):
    def get(self) -> None:
        self.write({"hello": self.request.remote_ip})


class AdminHandler(web.RequestHandler):
    def get(self) -> None:
        self.write({"admin": True, "you": self.request.remote_ip})


def make_app(*, list_file: str | Path = BLOCKLIST, rate: float = 10, burst: float = 20,
             trusted_proxies: Iterable[str] = ("127.0.0.1", "::1"),
             reload_interval: float = 2.0) -> Any:
    """The app inside Proxy → IPBlacklist (deny list file, /admin rule, rate limit)."""
    app = web.Application([(r"/", HomeHandler), (r"/admin(?:/.*)?", AdminHandler)])
    return middleware.compose(
        app,
        middleware.ProxyMiddleware.configure(trusted=list(trusted_proxies)),
        middleware.IPBlacklistMiddleware.configure(
            list_file=list_file, reload_interval=reload_interval,
            paths={"/admin": OFFICE}, rate=rate, burst=burst,
            body="Your address is blocked.\n"),
    )


application = make_app()
