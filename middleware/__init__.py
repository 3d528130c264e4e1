"""Framework-agnostic WSGI middlewares: wrap microweb, Flask, Django or a bare WSGI function.

Build a stack with :func:`compose`, outermost first::

    app = compose(wsgi_app,
                  ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
                  AccessLogMiddleware,
                  IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]),
                  GzipMiddleware,
                  SessionMiddleware.configure(store=SQLiteStore("sessions.sqlite3"), secret=key),
                  XSRFMiddleware)

``RedisStore`` needs the ``redis`` extra and is imported on first use.
"""

from __future__ import annotations

from . import keys
from ._wsgi import ClosingIterator, bounded_input
from .accesslog import AccessLogMiddleware
from .base import Layer, Middleware
from .compose import MiddlewareOrderError, Stack, compose
from .gzip import GzipMiddleware
from .ipfilter import IPBlacklistMiddleware
from .proxy import ProxyMiddleware
from .sessions import (
    CookieStore,
    MemoryStore,
    Session,
    SessionMiddleware,
    SQLiteStore,
    Store,
    StoreUnavailable,
)
from .signedcookies import SignedCookieMiddleware
from .signing import KeyRing
from .xsrf import XSRFMiddleware

__all__ = [
    "AccessLogMiddleware",
    "ClosingIterator",
    "CookieStore",
    "GzipMiddleware",
    "IPBlacklistMiddleware",
    "KeyRing",
    "Layer",
    "MemoryStore",
    "Middleware",
    "MiddlewareOrderError",
    "ProxyMiddleware",
    "RedisStore",
    "SQLiteStore",
    "Session",
    "SessionMiddleware",
    "SignedCookieMiddleware",
    "Stack",
    "Store",
    "StoreUnavailable",
    "XSRFMiddleware",
    "bounded_input",
    "compose",
    "keys",
]


def __getattr__(name: str) -> object:
    # RedisStore needs the optional ``redis`` and ``uhashring`` packages: import it on demand.
    if name == "RedisStore":
        from .sessions.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
