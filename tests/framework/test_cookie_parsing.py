"""Request cookies are parsed exactly as werkzeug's parse_cookie parses them.

microweb splits headers without quoted values itself (faster) and hands the rest to werkzeug;
a seeded corpus of awkward headers holds both paths to werkzeug's answer.
"""

from __future__ import annotations

import random

import pytest
from werkzeug.sansio.http import parse_cookie

from microweb.httputil import HTTPServerRequest

ALPHABET = ["a", "b", "=", ";", " ", "\t", '"', "\\", ",", "é", "\r", "x1", "%20", "-", "_"]
HEADERS = [
    "theme=dark; lang=en; tz=UTC; cart=3; visitor=abc123", "a=1;b=2;", ";;a=1", "a", "a=",
    "=v; b=2", "a b=c; d=e", "a=b c; d=e", " a = b ;\tc\t=\td ", "k=v=w", "a=1; a=2",
    'q="x y"; r=s', 'q="a\\"b"; z=1', 'q="\\303\\251"', "a=\"open; b=2", "é=ü; b=1",
    "a=1;;; ;b=2", "\ta=1", "a=1\r; b=2",
]


def _parsed(header: str) -> dict[str, str]:
    """What the request makes of ``header`` sent as UTF-8 (a WSGI environ holds latin-1)."""
    environ = {"REQUEST_METHOD": "GET", "HTTP_COOKIE": header.encode().decode("latin-1")}
    return HTTPServerRequest(environ).cookie_values


@pytest.mark.parametrize("header", HEADERS)
def test_known_headers(header: str) -> None:
    assert _parsed(header) == parse_cookie(header, cls=dict)


def test_seeded_random_headers() -> None:
    rng = random.Random(20261121)
    for _ in range(3000):
        header = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24)))
        assert _parsed(header) == parse_cookie(header, cls=dict), header
