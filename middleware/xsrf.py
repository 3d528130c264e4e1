"""XSRF tokens (Tornado's masked format) and the XSRF middleware for any WSGI app.

A raw token is 16 random bytes. What goes into cookies, forms and headers is Tornado's
version-2 masked form ``2|<mask hex>|<masked token hex>|<timestamp>``: a fresh 4-byte mask per
use XORs the token, so the value on a page changes every time (BREACH-style compression attacks
cannot recover it) while any masked copy unmasks to the same raw token. Tokens made by
``tornado.web.RequestHandler.xsrf_token`` verify here and the other way round.
"""

from __future__ import annotations

import binascii
import hmac
import re
import secrets
import time

__all__ = [
    "mask_xsrf_token",
    "new_xsrf_token",
    "unmask_xsrf_token",
    "xsrf_tokens_equal",
]

#: Longest submitted token worth decoding (a v2 token of 16 bytes is ~60 chars).
_MAX_TOKEN_CHARS = 512
_VERSION_RE = re.compile(rb"^([1-9][0-9]*)\|")


def new_xsrf_token() -> bytes:
    """16 random bytes from :mod:`secrets`: the raw token a cookie or a session keeps."""
    return secrets.token_bytes(16)


def _xor(mask: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (Tornado's ``_websocket_mask``)."""
    repeated = (mask * (len(data) // len(mask) + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big")


def mask_xsrf_token(token: bytes, timestamp: int | None = None) -> str:
    """Tornado's version-2 form of ``token`` with a fresh random mask on every call."""
    mask = secrets.token_bytes(4)
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return "|".join(("2", mask.hex(), _xor(mask, token).hex(), str(stamp)))


def unmask_xsrf_token(value: str | bytes | None) -> bytes | None:
    """The raw token inside a v2 masked or v1 (plain hex) token; None if absent or malformed."""
    if not value:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if len(raw) > _MAX_TOKEN_CHARS:
        return None
    try:
        match = _VERSION_RE.match(raw)
        if match is None:  # version 1: the token in hex, unmasked
            return binascii.a2b_hex(raw) or None
        if match.group(1) != b"2":  # unknown future version: treat as absent, like Tornado
            return None
        _, mask_hex, masked_hex, stamp = raw.split(b"|")
        mask = binascii.a2b_hex(mask_hex)
        int(stamp)
        if len(mask) != 4 or not masked_hex:
            return None
        return _xor(mask, binascii.a2b_hex(masked_hex))
    except (ValueError, binascii.Error):
        return None


def xsrf_tokens_equal(a: bytes | None, b: bytes | None) -> bool:
    """Constant-time comparison of two raw tokens; missing or empty tokens never match."""
    if not a or not b:
        return False
    return hmac.compare_digest(a, b)
