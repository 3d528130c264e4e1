"""Login (current_user, @authenticated, safe ``next`` redirects) and XSRF for RequestHandler.

XSRF follows Tornado: the ``_xsrf`` cookie holds a token; every form or header copy is the same
token under a fresh random mask (``middleware.xsrf`` primitives, shared with XSRFMiddleware), and
unsafe requests must echo it in the ``_xsrf`` field, ``X-XSRFToken`` or ``X-CSRFToken``.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from microweb._errors import HTTPError
from microweb.cookies import require_setting
from microweb.log import user_label
from middleware import keys
from middleware.xsrf import (
    mask_xsrf_token,
    new_xsrf_token,
    unmask_xsrf_token,
    xsrf_tokens_equal,
)

__all__ = ["AuthMixin", "authenticated", "safe_next_url"]

log = logging.getLogger("microweb.auth")

_F = TypeVar("_F", bound=Callable[..., Any])
# Browsers drop tabs/newlines inside URLs and read "\" as "/": "/\t/evil" is "//evil".
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next_url(url: str | None, default: str = "/") -> str:
    """``url`` if it is a same-site relative path (``/account?x=1``), otherwise ``default``.

    Refuses absolute and scheme-relative URLs (``https://evil``, ``//evil``, ``/\\evil``),
    other schemes (``javascript:``), relative paths without a leading slash and any
    whitespace or control character, so a ``next`` parameter cannot become an open redirect.
    """
    if not url or len(url) > 2048 or _UNSAFE_URL_CHARS.search(url):
        return default
    if not url.startswith("/") or url.startswith("//"):
        return default
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc:
        return default
    return url


def authenticated(method: _F) -> _F:
    """Require ``current_user``: GET/HEAD redirect to the login URL with ``next``, others 403.

    A login URL that already has a query string is used as is; an absolute login URL gets an
    absolute ``next`` (``request.full_url()``), as in Tornado.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.current_user:
            if self.request.method in ("GET", "HEAD"):
                url = self.get_login_url()
                if "?" not in url:
                    absolute = bool(urllib.parse.urlsplit(url).scheme)
                    next_url = self.request.full_url() if absolute else self.request.uri
                    url += "?" + urllib.parse.urlencode({"next": next_url})
                self.redirect(url)
                return None
            raise HTTPError(403)
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class AuthMixin:
    """current_user, get_current_user, get_login_url, xsrf_token, check_xsrf_cookie..."""

    request: Any
    application: Any
    settings: Any
    #: Set True on a handler class to skip the XSRF check (webhooks, token-authenticated APIs).
    xsrf_exempt: ClassVar[bool] = False
    _current_user: Any
    #: True while get_current_user() runs (handler.logger then names no user, not recurse)
    _resolving_user: bool = False
    _xsrf_token: bytes
    _raw_xsrf_token: tuple[bool, bytes, int]

    # -- login --------------------------------------------------------------------------
    @property
    def current_user(self) -> Any:
        """The authenticated user, from ``get_current_user()`` once per request (or assigned)."""
        try:
            return self._current_user
        except AttributeError:
            pass
        self._resolving_user = True
        try:
            user = self.get_current_user()
        finally:
            self._resolving_user = False
        self.current_user = user
        return self._current_user

    @current_user.setter
    def current_user(self, value: Any) -> None:
        self._current_user = value
        if value:  # AccessLogMiddleware names the request's user from the environ
            label = user_label(value)
            if label:
                self.request.environ[keys.USER] = label

    def get_current_user(self) -> Any:
        """Override to load the user, typically from a secure cookie; default None."""
        return None

    def get_login_url(self) -> str:
        """The ``login_url`` setting; override to choose per request."""
        require_setting(self, "login_url", "@microweb.authenticated")
        return str(self.application.settings["login_url"])

    def get_next_url(self, default: str = "/") -> str:
        """The ``next`` argument if it is a safe same-site path (see safe_next_url)."""
        value = self.get_argument("next", None)  # type: ignore[attr-defined]
        return safe_next_url(value, default)

    # -- XSRF ---------------------------------------------------------------------------
    @property
    def xsrf_token(self) -> bytes:
        """This request's XSRF token, masked afresh; sets the ``_xsrf`` cookie when absent."""
        try:
            return self._xsrf_token
        except AttributeError:
            pass
        present, token, stamp = self._get_raw_xsrf_token()
        if self.settings.get("xsrf_cookie_version", 2) == 1:
            self._xsrf_token = token.hex().encode("ascii")
        else:
            self._xsrf_token = mask_xsrf_token(token, stamp).encode("ascii")
        if not present:
            cookie_kwargs = dict(self.settings.get("xsrf_cookie_kwargs") or {})
            if self.current_user and "expires_days" not in cookie_kwargs:
                cookie_kwargs["expires_days"] = 30
            cookie_kwargs.setdefault("samesite", "Lax")
            self.set_cookie(self._xsrf_cookie_name(), self._xsrf_token,  # type: ignore[attr-defined]
                            **cookie_kwargs)
        return self._xsrf_token

    def _xsrf_cookie_name(self) -> str:
        return str(self.settings.get("xsrf_cookie_name", "_xsrf"))

    def _get_raw_xsrf_token(self) -> tuple[bool, bytes, int]:
        """(already stored, raw token, timestamp): from XSRFMiddleware, the cookie, or new."""
        try:
            return self._raw_xsrf_token
        except AttributeError:
            pass
        environ = getattr(self.request, "environ", None) or {}
        from_middleware = unmask_xsrf_token(environ.get(keys.XSRF_TOKEN))
        if from_middleware is not None:
            self._raw_xsrf_token = (True, from_middleware, int(time.time()))
            return self._raw_xsrf_token
        cookie = self.get_cookie(self._xsrf_cookie_name())  # type: ignore[attr-defined]
        token = unmask_xsrf_token(cookie)
        if token is None:
            self._raw_xsrf_token = (False, new_xsrf_token(), int(time.time()))
        else:
            self._raw_xsrf_token = (True, token, _token_timestamp(cookie))
        return self._raw_xsrf_token

    def check_xsrf_cookie(self) -> None:
        """403 unless the ``_xsrf`` field / X-XSRFToken / X-CSRFToken matches the cookie token.

        Masked (v2) and plain (v1) forms verify; the comparison is constant-time. Override it,
        or set ``xsrf_exempt = True`` on the handler class, to opt out.
        """
        if self.xsrf_exempt:
            return
        submitted = (
            self.get_argument("_xsrf", None)  # type: ignore[attr-defined]
            or self.request.headers.get("X-Xsrftoken")
            or self.request.headers.get("X-Csrftoken")
        )
        if not submitted:
            raise HTTPError(403, "'_xsrf' argument missing from %s", self.request.method)
        token = unmask_xsrf_token(submitted)
        if token is None:
            raise HTTPError(403, "'_xsrf' argument has invalid format")
        present, expected, _ = self._get_raw_xsrf_token()
        if not present or not xsrf_tokens_equal(token, expected):
            raise HTTPError(403, "XSRF cookie does not match %s argument", self.request.method)

    def xsrf_form_html(self) -> str:
        """A hidden ``<input name="_xsrf">`` to put inside every POST form."""
        token = html.escape(self.xsrf_token.decode("ascii"), quote=True)
        return f'<input type="hidden" name="_xsrf" value="{token}"/>'


def _token_timestamp(cookie: str | None) -> int:
    """The issue time recorded in a v2 token (Tornado keeps it across re-masking)."""
    try:
        return int((cookie or "").rsplit("|", 1)[1])
    except (IndexError, ValueError):
        return int(time.time())
