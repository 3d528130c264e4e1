"""SignedCookieMiddleware: transparent signatures for chosen cookies.

Incoming: for each configured cookie (``names`` or ``prefix``), the signature and age are checked
with the key ring; a verified cookie reaches the app with its *plain* value (in ``HTTP_COOKIE``,
so ``request.cookies`` of any framework just works) and in ``environ[keys.SIGNED_COOKIES]``
(``{name: value}``); a tampered, expired or unsigned one is removed from ``HTTP_COOKIE`` and
logged on ``microweb.signedcookies``. Outgoing: the app's ``Set-Cookie`` values for those names
are signed, attributes (Path, Max-Age, HttpOnly, SameSite...) untouched.
Security caveat: signing is not encryption; the value stays readable by the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from . import keys
from ._cookies import cookie_pair, cookie_value
from ._wsgi import Headers, WSGIApp, WSGIEnvironment
from .base import Middleware
from .signing import BadSignature, KeyRing, SecretSpec

__all__ = ["SALT_PREFIX", "SignedCookieMiddleware"]

log = logging.getLogger("microweb.signedcookies")
#: each cookie signs with its own salt, so a value cannot be replayed under another name
SALT_PREFIX = "microweb.signed_cookie:"


class SignedCookieMiddleware(Middleware):
    """Verify and sign the cookies named in ``names`` (or starting with ``prefix``).

    ``secret``: one key, a list (newest first), Tornado's ``{version: key}`` or a KeyRing;
    ``max_age``: seconds a signature stays valid (None: no limit).
    """

    provides = (keys.SIGNED_COOKIES,)

    def __init__(self, app: WSGIApp, secret: SecretSpec, *, names: Iterable[str] = (),
                 prefix: str | None = None, max_age: float | None = None) -> None:
        super().__init__(app)
        self.keyring = KeyRing.coerce(secret)
        self.names = frozenset([names] if isinstance(names, str) else names)
        self.prefix = prefix or None
        if not self.names and not self.prefix:
            raise ValueError("SignedCookieMiddleware needs cookie names or a prefix")
        self.max_age = max_age
        self._needles = tuple(self.names) + ((self.prefix,) if self.prefix else ())

    def __repr__(self) -> str:
        return f"SignedCookieMiddleware(names={sorted(self.names)!r}, prefix={self.prefix!r})"

    def covers(self, name: str) -> bool:
        """Whether cookie ``name`` is signed by this middleware."""
        return name in self.names or (self.prefix is not None and name.startswith(self.prefix))

    def verify(self, name: str, signed: str) -> str | None:
        """The plain value of a signed cookie, or None if tampered, expired or unsigned."""
        try:
            value, _old_key = self.keyring.unsign(signed, salt=SALT_PREFIX + name,
                                                  max_age=self.max_age)
            return value.decode("utf-8")
        except (BadSignature, UnicodeDecodeError) as exc:
            log.warning("dropped cookie %r: %s", name, type(exc).__name__)
            return None

    def sign(self, name: str, value: str) -> str:
        """The signed form of ``value`` for cookie ``name``."""
        return self.keyring.sign(value, salt=SALT_PREFIX + name)

    def process_request(self, environ: WSGIEnvironment) -> WSGIApp | None:
        verified: dict[str, str] = {}
        header = environ.get("HTTP_COOKIE")
        if header:
            environ["HTTP_COOKIE"] = self._rewrite(header, verified)
        environ[keys.SIGNED_COOKIES] = verified
        return None

    def _rewrite(self, header: str, verified: dict[str, str]) -> str:
        """The Cookie header with signed values replaced by verified plain ones (bad ones
        dropped), segments trimmed and joined by ``"; "``; ``verified`` gets the values."""
        kept: list[str] = []
        needles = self._needles
        for segment in header.split(";"):
            text = segment.strip()
            if not text:
                continue
            # PERF: a substring test skips parsing the names of cookies we do not sign
            for needle in needles:
                if needle in text:
                    break
            else:
                kept.append(text)
                continue
            name = text.partition("=")[0].strip()
            if not name or not self.covers(name):
                kept.append(text)
                continue
            value = self.verify(name, cookie_value(text, name) or "")
            if value is not None:
                verified.setdefault(name, value)
                kept.append(cookie_pair(name, value))
        return "; ".join(kept)

    def process_response(self, environ: WSGIEnvironment, status: str,
                         headers: Headers) -> str | None:
        for index, (key, value) in enumerate(headers):
            if key.lower() == "set-cookie":
                signed = self._sign_header(value)
                if signed is not None:
                    headers[index] = (key, signed)
        return None

    def _sign_header(self, header_value: str) -> str | None:
        first, sep, attributes = header_value.partition(";")
        name = first.partition("=")[0].strip()
        if not name or not self.covers(name):
            return None
        value = cookie_value(first, name)
        if not value:  # a deletion (empty value, expired): nothing worth signing
            return None
        return cookie_pair(name, self.sign(name, value)) + sep + attributes
