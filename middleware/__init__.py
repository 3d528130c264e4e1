"""Framework-agnostic WSGI middlewares: wrap microweb, Flask, Django or a bare WSGI function.

Build a stack with :func:`compose`, outermost first::

    app = compose(wsgi_app,
                  ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
                  AccessLogMiddleware,
                  IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]),
                  GzipMiddleware)
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
from .signedcookies import SignedCookieMiddleware

__all__ = [
    "AccessLogMiddleware",
    "ClosingIterator",
    "GzipMiddleware",
    "IPBlacklistMiddleware",
    "Layer",
    "Middleware",
    "MiddlewareOrderError",
    "ProxyMiddleware",
    "SignedCookieMiddleware",
    "Stack",
    "bounded_input",
    "compose",
    "keys",
]
