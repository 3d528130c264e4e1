"""Set-Cookie headers are exactly what werkzeug's dump_cookie renders, whatever path they take.

set_cookie renders a response's repeated attributes once and writes plain values directly;
these tests hold it to werkzeug's output for values that need quoting and every attribute.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest
from werkzeug.http import dump_cookie

import microweb as web
from tests.framework.conftest import lint_client

WHEN = datetime.datetime(2031, 5, 17, 8, 30, 12, 999999, tzinfo=datetime.UTC)

VALUES = ["abc", "", "a b", 'say "hi"', "café", "a,b", "back\\slash", "2|1:0|10:1|3:sid|4:YWJj|f0",
          "eyJ1Ijo0Mn0.ZmFrZQ.c2ln-_", "k=v", "~/:+!*", "x\x7fy"[0:1]]
ATTRIBUTES: list[dict[str, Any]] = [
    {}, {"domain": "example.com"}, {"domain": ".Example.COM:8080"}, {"path": "/a/ü,x"},
    {"path": None}, {"expires": WHEN}, {"max_age": 60, "expires": WHEN},
    {"httponly": True, "secure": True, "samesite": "lax"}, {"samesite": "None", "secure": True},
    {"partitioned": True}, {"domain": "", "path": "/x"},
]


def _rendered(value: str, **kwargs: Any) -> str:
    out: list[str] = []

    class Handler(web.RequestHandler):
        def get(self) -> None:
            self.set_cookie("c", value, **kwargs)
            out.extend(self._cookie_headers())

    lint_client(web.Application([(r"/", Handler)])).get("/")
    return out[0]


def _werkzeug(value: str, **kwargs: Any) -> str:
    kwargs.setdefault("path", "/")
    kwargs["domain"] = kwargs.get("domain") or None  # set_cookie(domain="") sends no Domain
    return dump_cookie("c", value, max_size=0, **kwargs)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=lambda a: ",".join(a) or "none")
def test_header_is_werkzeugs(value: str, attributes: dict[str, Any]) -> None:
    assert _rendered(value, **attributes) == _werkzeug(value, **attributes)


def test_the_same_attributes_in_one_response_stay_per_cookie() -> None:
    out: list[str] = []

    class Handler(web.RequestHandler):
        def get(self) -> None:
            self.set_cookie("a", "1", expires=WHEN, httponly=True)
            self.set_cookie("b", "2 3", expires=WHEN, httponly=True)
            self.set_cookie("c", "4", expires=WHEN, domain="example.com")
            out.extend(self._cookie_headers())

    lint_client(web.Application([(r"/", Handler)])).get("/")
    assert out == [dump_cookie("a", "1", expires=WHEN, httponly=True),
                   dump_cookie("b", "2 3", expires=WHEN, httponly=True),
                   dump_cookie("c", "4", expires=WHEN, domain="example.com")]


@pytest.mark.parametrize("kwargs", [{"max_age": 3600}, {"expires_days": 2}])
def test_relative_expiry_is_from_now(kwargs: dict[str, Any]) -> None:
    for _ in range(3):  # a second boundary between the two renderings: try again
        before = time.time()
        header = _rendered("v", **kwargs)
        seconds = kwargs.get("max_age") or kwargs["expires_days"] * 86400
        expected = _werkzeug("v", expires=int(before + seconds),
                             max_age=kwargs.get("max_age"))
        if int(time.time()) == int(before):
            break
    assert header == expected


def test_a_bad_samesite_is_still_refused_after_good_ones() -> None:
    assert "SameSite=Strict" in _rendered("v", samesite="strict")
    with pytest.raises(ValueError, match="SameSite"):
        dump_cookie("c", "v", samesite="sometimes")  # what set_cookie defers to

    class Handler(web.RequestHandler):
        def get(self) -> None:
            self.set_cookie("c", "v", samesite="sometimes")

    lint_client(web.Application([(r"/", Handler)])).get("/", status=500)
