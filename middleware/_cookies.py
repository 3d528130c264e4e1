"""Cookie header reading and ``name=value`` writing, exactly as werkzeug does it, but faster.

Several layers read one or two cookies per request. werkzeug's ``parse_cookie`` builds a
MultiDict of every cookie with a regex per pair; these helpers split the plain ASCII header
most browsers send and hand anything unusual (quoted values, non-ASCII bytes) to werkzeug, so
the results are werkzeug's own (a test compares both on generated headers).
"""

from __future__ import annotations

import re

from werkzeug.http import dump_cookie, parse_cookie

__all__ = ["cookie_pair", "cookie_value"]

# werkzeug's set of characters a cookie value may hold without quoting (RFC 6265 plus a few).
_NO_QUOTE = re.compile(r"[\w!#$%&'()*+\-./:<=>?@\[\]^`{|}~]*", re.ASCII)
_BLANKS = " \t"
#: dump_cookie warns above its default 4093 bytes; longer pairs go through it for that warning.
_FAST_PAIR_MAX = 4000


def _split(segment: str) -> tuple[str, str] | None:
    """One ``name=value`` segment of a plain header as werkzeug's regex reads it, or None when
    werkzeug would skip it (no name, or a blank inside the name or the value)."""
    text = segment.strip(_BLANKS)
    if not text:
        return None
    name, _, value = text.partition("=")
    name, value = name.rstrip(_BLANKS), value.lstrip(_BLANKS)
    if not name or " " in name or "\t" in name or " " in value or "\t" in value:
        return None
    return name, value


def cookie_value(header: str | None, name: str) -> str | None:
    """The first value of cookie ``name`` (``parse_cookie(header).get(name)``), or None."""
    if not header or (name.isascii() and name not in header):  # PERF: absent cookies
        return None
    # PERF: plain ASCII without quotes (what browsers send) is split with str methods, ~5x
    # faster than werkzeug's regex walk over every cookie; the rest goes to werkzeug itself.
    if '"' in header or not header.isascii():
        return parse_cookie(header).get(name)
    for segment in header.split(";"):
        if name in segment:
            pair = _split(segment)
            if pair is not None and pair[0] == name:
                return pair[1]
    return None


def cookie_pair(name: str, value: str) -> str:
    """``name=value`` quoted the way werkzeug's ``dump_cookie`` quotes it (no attributes)."""
    if name.isascii() and len(name) + len(value) < _FAST_PAIR_MAX and _NO_QUOTE.fullmatch(value):
        return f"{name}={value}"
    return dump_cookie(name, value, path=None)
