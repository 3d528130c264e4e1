"""The fast cookie helpers give werkzeug's own answers, on generated and awkward headers."""

from __future__ import annotations

import random
import warnings

import pytest
from werkzeug.http import dump_cookie, parse_cookie

from middleware._cookies import cookie_pair, cookie_value

_PIECES = ["a", "b", "sid", "x_y", "=", "==", ";", "; ", " ", "\t", "\"", "\\", "é", "%20",
           "abc123", "Zz-_.", "\x00", "\r", ",", "2|ab|cd|1"]


def _headers(count: int) -> list[str]:
    rng = random.Random(1234)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
            for _ in range(count)]


AWKWARD = ["", ";", ";;", "a", "a=", "=a", " a = b ", "a=b c", "a=1; a=2", "a b=c; a=d",
           'a="q\\"uote"; b=2', "a=1;b=2;", "\tsid\t=\tv\t", "a=b=c", "x=é", "a=1; =2; b"]


def test_values_match_werkzeug() -> None:
    compared = 0
    for header in AWKWARD + _headers(3000):
        try:
            expected = parse_cookie(header)
        except UnicodeDecodeError:
            continue  # werkzeug refuses the header outright; nothing to compare
        for name in {"a", "b", "sid", "x_y", "é", *expected.keys()}:
            assert cookie_value(header, name) == expected.get(name), (header, name)
            compared += 1
    assert compared > 10_000


@pytest.mark.parametrize("value", ["plain", "2|ab|cd|1", "with space", 'q"uote', "semi;colon",
                                   "é", "", "back\\slash", "x" * 5000])
def test_pair_quotes_like_dump_cookie(value: str) -> None:
    with warnings.catch_warnings(record=True) as expected_warnings:
        warnings.simplefilter("always")
        expected = dump_cookie("name", value, path=None)
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        assert cookie_pair("name", value) == expected
    assert len(got_warnings) == len(expected_warnings)  # the too-large warning survives
