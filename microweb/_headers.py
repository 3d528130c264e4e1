"""Response header names and values: normalized once, converted, and checked for injection."""

from __future__ import annotations

import datetime
import re
from typing import Any

from werkzeug.http import http_date

__all__ = ["UNSAFE_VALUE", "convert_header_value", "normalize_header"]

#: Control characters (CR and LF included) are refused in header values and reason phrases.
UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]").search
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch

# PERF: header names are normalized once and remembered (bounded, like Tornado's cache).
_NORMALIZED: dict[str, str] = {}


def normalize_header(name: str) -> str:
    """``content-type`` -> ``Content-Type``; a name that is not an HTTP token is refused."""
    norm = _NORMALIZED.get(name)
    if norm is None:
        if not isinstance(name, str) or not _TOKEN(name):
            raise ValueError(f"invalid header name {name!r}")
        norm = "-".join(w.capitalize() for w in name.split("-"))
        if len(_NORMALIZED) < 2000:
            _NORMALIZED[name] = norm
    return norm


def convert_header_value(value: Any) -> str:
    """str / bytes / int / datetime to a header value; CR, LF and other controls are refused."""
    if type(value) is str and value.isascii() and value.isprintable():
        return value  # PERF: the common case, checked by two C calls
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, datetime.datetime):
        return http_date(value)
    else:
        raise TypeError(f"unsupported header value {value!r}")
    if UNSAFE_VALUE(text):
        raise ValueError(f"unsafe header value {text!r}: control characters are not allowed")
    if not text.isascii():
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header value {text!r} is not latin-1; encode it (RFC 8187)"
                             ) from None
    return text
