"""Every environ key the middlewares read or write, in one place.

Handlers and third-party apps (Flask, Django, a bare WSGI function) reach what a middleware
provides only through these documented keys: there are no hidden globals.
"""

from __future__ import annotations

# ProxyMiddleware: the values it replaced, kept for auditing.
ORIGINAL_REMOTE_ADDR = "microweb.proxy.original_remote_addr"
ORIGINAL_URL_SCHEME = "microweb.proxy.original_url_scheme"
ORIGINAL_HOST = "microweb.proxy.original_host"
# True once a ProxyMiddleware has resolved the client: REMOTE_ADDR / HTTP_HOST are trustworthy.
PROXY_RESOLVED = "microweb.proxy.resolved"

# AccessLogMiddleware: the request id (incoming X-Request-ID if valid, otherwise generated).
REQUEST_ID = "microweb.request_id"
# Set by a login layer (or a handler) so the access log can name the user.
USER = "microweb.user"

# SignedCookieMiddleware: {name: verified value (str)} for the configured cookie names.
SIGNED_COOKIES = "microweb.signed_cookies"

# SessionMiddleware: the lazily loaded, dict-like session object.
SESSION = "microweb.session"

# XSRFMiddleware: the masked token to embed in forms / headers for this request (str),
# and a callable returning a fresh masked token each call.
XSRF_TOKEN = "microweb.xsrf_token"
XSRF_TOKEN_FACTORY = "microweb.xsrf_token_factory"

# Bundled server upgrade extension (see microweb.server): a callable taking a protocol object.
UPGRADE = "microweb.upgrade"

__all__ = [
    "ORIGINAL_HOST",
    "ORIGINAL_REMOTE_ADDR",
    "ORIGINAL_URL_SCHEME",
    "PROXY_RESOLVED",
    "REQUEST_ID",
    "SESSION",
    "SIGNED_COOKIES",
    "UPGRADE",
    "USER",
    "XSRF_TOKEN",
    "XSRF_TOKEN_FACTORY",
]
