"""Cookies and signed ("secure") cookies for RequestHandler (tornado.web names and meanings).

Outgoing cookies are rendered with werkzeug's ``dump_cookie``; one ``Set-Cookie`` header per
name, the last ``set_cookie`` for a name winning (as in Tornado). Signed cookies go through the
application's :class:`middleware.signing.KeyRing` (built once from ``cookie_secret``) with a salt
naming the cookie, so a value cannot be moved to another cookie. Tornado's version-2 signed
values are still accepted (and re-signed in the new format) so a ported app keeps its users.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime
import functools
import hashlib
import hmac
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, SignatureExpired
from werkzeug.http import dump_cookie, http_date

from middleware.signing import CLOCK_SKEW, KeyRing

from .httputil import legal_cookie_name as _legal_cookie_name

if TYPE_CHECKING:
    import http.cookies

__all__ = ["CookieMixin", "require_setting", "secure_cookie_salt"]

log = logging.getLogger("microweb.cookies")

#: Browsers drop cookies whose Set-Cookie header is larger than this (RFC 6265 section 6.1).
MAX_COOKIE_SIZE = 4093

# RFC 6265 cookie-name is an RFC 7230 token.
_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Control characters and ';' would split or forge attributes; werkzeug quotes the rest.
_BAD_VALUE_RE = re.compile(r"[\x00-\x1f\x7f;]")
_BAD_ATTR_RE = re.compile(r"[\x00-\x20;\x7f]")
_SET_COOKIE_ARGS = frozenset(
    {"domain", "expires", "path", "expires_days", "max_age", "httponly", "secure", "samesite",
     "partitioned"})
_TORNADO_V2_RE = re.compile(rb"^2\|\d+:")
# Values werkzeug's dump_cookie sends unquoted (a subset of its own unquoted set): base64url,
# our signed values' ``.`` and ``|`` and the usual punctuation of ids.
_PLAIN_VALUE = re.compile(r"[\w\-.|=:~/+!*]*", re.ASCII).fullmatch


def require_setting(handler: Any, name: str, feature: str = "this feature") -> None:
    """Raise a clear error if the application setting ``name`` is missing (as Tornado)."""
    if not handler.application.settings.get(name):
        raise RuntimeError(
            f"You must define the {name!r} setting in your application to use {feature}")


def secure_cookie_salt(name: str) -> str:
    """The signing salt of the secure cookie ``name``: a value signed for one name fails another."""
    return "microweb.secure_cookie:" + name


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"Invalid cookie name {name!r}")


def _check_value(name: str, value: str) -> None:
    if _BAD_VALUE_RE.search(value):
        raise ValueError(f"Invalid cookie {name!r}: {value!r}")


def _check_attr(name: str, attr: str, value: str | None) -> None:
    if value is not None and _BAD_ATTR_RE.search(value):
        raise ValueError(f"Invalid cookie attribute {attr}={value!r} for cookie {name!r}")


def _expires_timestamp(expires: Any, expires_days: float | None) -> float | None:
    """Normalise ``expires`` (datetime, timestamp or time tuple) or ``expires_days``."""
    if expires is None or expires == 0:
        if expires_days is None:
            return None
        return time.time() + expires_days * 86400
    if isinstance(expires, datetime.datetime):
        when: datetime.datetime = expires
        if when.tzinfo is None:  # naive datetimes are UTC, as in Tornado
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    if isinstance(expires, int | float):
        return float(expires)
    if isinstance(expires, tuple | time.struct_time):
        return float(calendar.timegm(expires))
    raise TypeError(f"unsupported expires value {expires!r}")


@functools.lru_cache(maxsize=256)
def _http_date(seconds: int) -> str:
    """The ``Expires`` date of a whole POSIX second (PERF: formatted once a second)."""
    return http_date(seconds)


@functools.lru_cache(maxsize=256)
def _cookie_attributes(expires: str | None, max_age: int | None, path: str | None,
                       domain: str | None, secure: bool, httponly: bool, samesite: str | None,
                       partitioned: bool) -> str:
    """The ``; Attr=...`` tail werkzeug's ``dump_cookie`` puts after ``name=value``.

    PERF: the attributes of a response's cookies repeat (same path, flags and, within a
    second, expiry); rendering them once saves ~4 µs per ``set_cookie``.
    """
    rendered = dump_cookie("n", "", max_age=max_age, expires=expires, path=path, domain=domain,
                           secure=secure, httponly=httponly, samesite=samesite, max_size=0,
                           partitioned=partitioned)
    return rendered[2:]


def _normalise_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Tornado accepted Morsel-style capitalised keywords (``HttpOnly``); map them, else refuse."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        lowered = key.lower().replace("-", "_")
        if lowered not in _SET_COOKIE_ARGS:
            raise TypeError(f"set_cookie() got an unexpected keyword argument {key!r}")
        out[lowered] = value
    return out


class _SecretCache:
    """Per-application KeyRing cache, rebuilt when ``cookie_secret``/``key_version`` change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rings: weakref.WeakKeyDictionary[Any, tuple[Any, Any, KeyRing]] = (
            weakref.WeakKeyDictionary())

    def get(self, application: Any) -> KeyRing:
        settings = application.settings
        secret, version = settings["cookie_secret"], settings.get("key_version")
        entry = self._rings.get(application)
        if entry is None or entry[0] is not secret or entry[1] != version:
            with self._lock:
                entry = (secret, version, KeyRing.coerce(secret, version))
                self._rings[application] = entry
        return entry[2]


_SECRETS = _SecretCache()


def _tornado_keys(secret: Any, key_version: int) -> list[bytes]:
    """The keys that may have signed a Tornado v2 value carrying ``key_version``."""
    if isinstance(secret, KeyRing):
        return list(secret._keys)  # noqa: SLF001 - same project, read-only
    if isinstance(secret, str | bytes):
        keys: Sequence[Any] = [secret]
    elif isinstance(secret, Mapping):
        keys = [secret[key_version]] if key_version in secret else []
    else:
        keys = list(secret)
    return [k.encode("utf-8") if isinstance(k, str) else k for k in keys]


def _split_tornado_v2(value: bytes) -> tuple[int, int, bytes, bytes, bytes, bytes]:
    """Parse Tornado's ``2|len:keyver|len:ts|len:name|len:value|sig``; ValueError if malformed."""
    rest = value[2:]
    fields = []
    for _ in range(4):
        length, _, rest = rest.partition(b":")
        n = int(length)
        if rest[n:n + 1] != b"|":
            raise ValueError("malformed Tornado signed value")
        fields.append(rest[:n])
        rest = rest[n + 1:]
    signed = value[:len(value) - len(rest)]
    return int(fields[0]), int(fields[1]), fields[2], fields[3], signed, rest


def decode_tornado_signed_value(secret: Any, name: str, value: bytes,
                                max_age_days: float) -> bytes | None:
    """Verify a value made by Tornado's ``create_signed_value`` (version 2, HMAC-SHA256)."""
    try:
        key_version, stamp, name_field, payload, signed, sig = _split_tornado_v2(value)
    except ValueError:
        log.warning("Malformed signed cookie %r", name)
        return None
    for key in _tornado_keys(secret, key_version):
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest().encode("ascii")
        if hmac.compare_digest(sig, expected):
            break
    else:
        log.warning("Invalid signature on cookie %r", name)
        return None
    now = time.time()
    if name_field != name.encode("utf-8"):
        log.warning("Signed cookie %r was issued for another name", name)
        return None
    if stamp < now - max_age_days * 86400 or stamp > now + CLOCK_SKEW:
        log.warning("Expired or future-dated cookie %r", name)
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error:
        return None


def create_tornado_signed_value(secret: Any, key_version: int | None, name: str,
                                value: str | bytes) -> bytes:
    """Produce Tornado's version-2 format (for apps still sharing cookies with Tornado)."""
    if isinstance(secret, Mapping):
        version = key_version if key_version is not None else max(secret)
        key = secret[version]
    else:
        version = 0
        key = secret if isinstance(secret, str | bytes) else list(secret)[0]
    key = key.encode("utf-8") if isinstance(key, str) else key

    def field(s: bytes) -> bytes:
        return b"%d:%s" % (len(s), s)

    payload = base64.b64encode(value.encode("utf-8") if isinstance(value, str) else value)
    signed = b"|".join([b"2", field(str(version).encode()), field(str(int(time.time())).encode()),
                        field(name.encode("utf-8")), field(payload), b""])
    return signed + hmac.new(key, signed, hashlib.sha256).hexdigest().encode("ascii")


class CookieMixin:
    """get/set/clear_cookie, clear_all_cookies, set/get_secure_cookie; mixed into RequestHandler."""

    request: Any
    application: Any
    settings: Any
    # PERF: no dict per request until a cookie is set (the core asks on every response).
    _new_cookies: dict[str, str] | None = None

    # -- plain cookies -------------------------------------------------------------------
    @property
    def cookies(self) -> dict[str, http.cookies.Morsel[str]]:
        """The request's cookies (name -> Morsel), an alias of ``self.request.cookies``."""
        return self.request.cookies  # type: ignore[no-any-return]

    def get_cookie(self, name: str, default: str | None = None) -> str | None:
        """The value of the request cookie ``name``, or ``default`` (outgoing ones are unseen)."""
        # PERF: read the parsed header directly; a Morsel is built only for the rare quoted
        # value (SimpleCookie unquotes it once more, and Tornado's answer is what we keep).
        value: str | None = self.request.cookie_values.get(name)
        if value is None or not _legal_cookie_name(name):
            return default
        if value[:1] == '"':
            return self.request.cookies[name].value  # type: ignore[no-any-return]
        return value

    def set_cookie(self, name: str, value: str | bytes, domain: str | None = None,
                   expires: float | tuple[int, ...] | datetime.datetime | None = None,
                   path: str | None = "/", expires_days: float | None = None, *,
                   max_age: int | None = None, httponly: bool = False, secure: bool = False,
                   samesite: str | None = None, **kwargs: Any) -> None:
        """Queue a ``Set-Cookie`` header; setting the same name again replaces it.

        ``expires`` may be a datetime (naive = UTC), a POSIX timestamp or a time tuple;
        ``expires_days`` is a shortcut used when ``expires`` is not given. Control characters
        or ``;`` in the name, value or attributes raise ValueError.
        """
        if kwargs:
            extra = _normalise_kwargs(kwargs)
            domain, path = extra.get("domain", domain), extra.get("path", path)
            expires = extra.get("expires", expires)
            expires_days = extra.get("expires_days", expires_days)
            max_age = extra.get("max_age", max_age)
            httponly, secure = extra.get("httponly", httponly), extra.get("secure", secure)
            samesite = extra.get("samesite", samesite)
            partitioned = bool(extra.get("partitioned", False))
        else:
            partitioned = False
        name, text = _text(name), _text(value)
        _check_name(name)
        _check_value(name, text)
        if domain is not None or path != "/" or samesite is not None:
            for attr, attr_value in (("domain", domain), ("path", path), ("samesite", samesite)):
                _check_attr(name, attr, attr_value)
        if max_age is not None:
            max_age = int(max_age)
        when = _expires_timestamp(expires, expires_days)
        if when is None and max_age is not None:  # dump_cookie's sync_expires
            when = time.time() + max_age
        attributes = _cookie_attributes(
            None if when is None else _http_date(math.floor(when)), max_age, path,
            domain or None, bool(secure), bool(httponly), samesite, partitioned)
        if _PLAIN_VALUE(text):
            header = f"{name}={text}{attributes}"
        else:  # werkzeug quotes and escapes the value
            header = dump_cookie(name, text, path=None, max_size=0) + attributes
        if len(header) > MAX_COOKIE_SIZE:
            log.warning("Cookie %r is %d bytes; browsers ignore cookies over %d bytes",
                        name, len(header), MAX_COOKIE_SIZE)
        cookies = self._new_cookies
        if cookies is None:
            cookies = self._new_cookies = {}
        cookies[name] = header

    def clear_cookie(self, name: str, **kwargs: Any) -> None:
        """Expire the cookie ``name``; pass the same ``path``/``domain`` used to set it."""
        for excluded in ("expires", "max_age", "expires_days"):
            if excluded in kwargs:
                raise TypeError(f"clear_cookie() got an unexpected keyword argument {excluded!r}")
        self.set_cookie(name, "", expires=time.time() - 365 * 86400, max_age=0, **kwargs)

    def clear_all_cookies(self, **kwargs: Any) -> None:
        """Expire every cookie the request carried (same keyword arguments as clear_cookie)."""
        for name in list(self.request.cookies or ()):
            self.clear_cookie(name, **kwargs)

    def _cookie_headers(self) -> list[str]:
        """The Set-Cookie header values to emit, one per cookie name (the core sends them)."""
        cookies = self._new_cookies
        return [] if cookies is None else list(cookies.values())

    # -- signed cookies -----------------------------------------------------------------
    def _key_ring(self) -> KeyRing:
        require_setting(self, "cookie_secret", "secure cookies")
        return _SECRETS.get(self.application)

    def create_signed_value(self, name: str, value: str | bytes,
                            version: int | None = None) -> bytes:
        """Sign and timestamp ``value`` for the cookie ``name`` (also for non-cookie uses).

        ``version=2`` produces Tornado's format instead (for apps sharing cookies with Tornado).
        """
        ring = self._key_ring()
        if version == 2:
            settings = self.application.settings
            return create_tornado_signed_value(
                settings["cookie_secret"], settings.get("key_version"), name, value)
        if version not in (None, 3):
            raise ValueError(f"Unsupported signed value version {version!r}")
        # The key ring base64-encodes the value: any bytes give cookie-safe ASCII.
        return ring.sign(value, salt=secure_cookie_salt(name)).encode("ascii")

    def set_signed_cookie(self, name: str, value: str | bytes, expires_days: float | None = 30,
                          version: int | None = None, **kwargs: Any) -> None:
        """Set a signed, timestamped cookie that cannot be forged (needs ``cookie_secret``)."""
        signed = self.create_signed_value(name, value, version=version)
        self.set_cookie(name, signed, expires_days=expires_days, **kwargs)

    set_secure_cookie = set_signed_cookie

    def get_signed_cookie(self, name: str, value: str | None = None, max_age_days: float = 31,
                          min_version: int | None = None) -> bytes | None:
        """The verified value (bytes) of a signed cookie, or None if missing or invalid.

        Tampered, expired or future-dated values give None and a warning log line. A cookie
        read from the request that was signed with an older key (or by Tornado) is re-set,
        signed with the newest key, so rotation completes as users come back.
        """
        ring = self._key_ring()
        from_request = value is None
        if value is None:
            value = self.get_cookie(name)
        if not value:
            return None
        raw = value.encode("utf-8") if isinstance(value, str) else value
        if _TORNADO_V2_RE.match(raw):
            if min_version is not None and min_version > 2:
                return None
            result = decode_tornado_signed_value(
                self.application.settings["cookie_secret"], name, raw, max_age_days)
            stale = result is not None
        else:
            result, stale = self._unsign(ring, name, raw, max_age_days)
        if stale and from_request and result is not None:
            self._resign_cookie(name, result)
        return result

    get_secure_cookie = get_signed_cookie

    def _unsign(self, ring: KeyRing, name: str, raw: bytes,
                max_age_days: float) -> tuple[bytes | None, bool]:
        try:
            return ring.unsign(raw, salt=secure_cookie_salt(name), max_age=max_age_days * 86400)
        except SignatureExpired:
            log.warning("Expired signed cookie %r", name)
        except BadSignature as exc:
            log.warning("Invalid signed cookie %r: %s", name, exc)
        return None, False

    def _resign_cookie(self, name: str, value: bytes) -> None:
        """Re-issue a cookie verified with an old key; ``secure_cookie_kwargs`` sets attributes."""
        if not self.application.settings.get("secure_cookie_resign", True):
            return
        if self._new_cookies and name in self._new_cookies:
            return  # the handler already chose what to send
        # The original attributes are unknown: default to the safe ones a login cookie has.
        kwargs: dict[str, Any] = {"httponly": True, "samesite": "Lax",
                                  "secure": self.request.protocol == "https"}
        kwargs.update(self.application.settings.get("secure_cookie_kwargs") or {})
        self.set_signed_cookie(name, value, **kwargs)

    def get_signed_cookie_key_version(self, name: str, value: str | None = None) -> int | None:
        """The key version of a Tornado-format signed cookie (None for other formats)."""
        require_setting(self, "cookie_secret", "secure cookies")
        value = self.get_cookie(name) if value is None else value
        if not value:
            return None
        raw = value.encode("utf-8")
        if not _TORNADO_V2_RE.match(raw):
            return None
        try:
            return _split_tornado_v2(raw)[0]
        except ValueError:
            return None

    get_secure_cookie_key_version = get_signed_cookie_key_version
