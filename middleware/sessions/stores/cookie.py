"""``CookieStore``: the whole session, signed with the key ring, travels in the cookie.

No server state at all (any backend can answer), at a price: the data is readable by the user
(signed, not encrypted), must fit the browser's 4 KB cookie limit, and ``invalidate()`` cannot
revoke a copy an attacker already holds before it expires (keep ``max_age`` short).
"""

from __future__ import annotations

import zlib

from itsdangerous import BadData, BadSignature
from itsdangerous.encoding import base64_decode, bytes_to_int

from ...signing import KeyRing
from .base import Store

__all__ = ["CookieStore", "SessionTooLarge"]

#: Browsers keep at most 4096 bytes of ``name=value`` plus attributes per cookie.
BROWSER_COOKIE_LIMIT = 4093


class SessionTooLarge(ValueError):
    """The signed session does not fit in one cookie: store less, or use a server-side store."""


class CookieStore(Store):
    """Client-side sessions; ``max_size`` bounds the whole ``Set-Cookie`` value in bytes."""

    client_side = True

    def __init__(self, max_size: int = BROWSER_COOKIE_LIMIT) -> None:
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"CookieStore(max_size={self.max_size})"

    def encode(self, data: bytes, ring: KeyRing, salt: str) -> str:
        """The signed cookie value for ``data`` (zlib-compressed when that is shorter)."""
        compressed = zlib.compress(data, 9)
        payload = b"z" + compressed if len(compressed) < len(data) else b"r" + data
        return ring.sign(payload, salt=salt)

    def decode(self, value: str, ring: KeyRing, salt: str, max_age: float) -> bytes | None:
        """The data inside a cookie value, or None if it is forged, expired or future-dated."""
        try:
            payload = ring.unsign(value, salt=salt, max_age=max_age)[0]
        except BadSignature:
            return None
        if payload[:1] == b"z":  # only ever reached for data this server signed
            try:
                return zlib.decompress(payload[1:])
            except zlib.error:
                return None
        return payload[1:] if payload[:1] == b"r" else None

    @staticmethod
    def signed_at(value: str) -> float | None:
        """When a cookie value that :meth:`decode` accepted was signed (epoch seconds)."""
        stamp = value.rpartition(".")[0].rpartition(".")[2]
        try:
            return float(bytes_to_int(base64_decode(stamp)))
        except (BadData, ValueError):
            return None

    def check_size(self, set_cookie: str, name: str) -> None:
        """Raise :class:`SessionTooLarge` if the ``Set-Cookie`` value exceeds the limit."""
        size = len(set_cookie.encode("latin-1", "replace"))
        if size > self.max_size:
            raise SessionTooLarge(
                f"the session cookie {name!r} would be {size} bytes, over the {self.max_size}"
                "-byte browser limit: store less in the session or use a server-side store "
                "(SQLiteStore, RedisStore)")

    # A cookie store has no server side: these are never called by SessionMiddleware.
    def load(self, sid: str) -> tuple[bytes, float] | None:
        return None

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        raise NotImplementedError("CookieStore keeps sessions in the cookie")

    def delete(self, sid: str) -> None:
        """Nothing to delete on the server: the middleware expires the cookie."""

    def touch(self, sid: str, ttl: int) -> None:
        """Nothing to refresh on the server: the middleware re-signs the cookie."""
