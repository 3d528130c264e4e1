"""The recommended stack end to end: Proxy -> AccessLog -> IPBlacklist -> Gzip -> SignedCookies."""

from __future__ import annotations

import gzip
import logging
from http.cookies import SimpleCookie
from typing import Any

import pytest

from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    ProxyMiddleware,
    SignedCookieMiddleware,
    compose,
)
from middleware.accesslog import LOGGER_NAME

from .conftest import client, fetch, make_app


def full_stack(app_kind: str) -> Any:
    return compose(
        make_app(app_kind),
        ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
        AccessLogMiddleware.configure(format="{remote_addr} {path} {status} {request_id}"),
        IPBlacklistMiddleware.configure(deny=["6.6.6.0/24"], paths={"/admin": ["192.168.0.0/16"]}),
        GzipMiddleware,
        SignedCookieMiddleware.configure(secret="k" * 32, names=["prefs"]),
    )


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER_NAME and hasattr(r, "access_log")]


def test_allowed_request_through_every_layer(app_kind: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    response = fetch(full_stack(app_kind), "/text", REMOTE_ADDR="10.0.0.1",
                     headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.5",
                              "Accept-Encoding": "gzip", "X-Request-ID": "r1"})
    assert response.status == 200 and response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.body).startswith(b"The quick brown fox")
    assert response.headers["X-Request-ID"] == "r1"
    assert lines(caplog) == ["203.0.113.5 /text 200 r1"]


def test_blocked_client_behind_proxy_is_logged_with_its_real_address(
        app_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    stack = full_stack(app_kind)
    response = fetch(stack, "/admin/", REMOTE_ADDR="10.0.0.1",
                     headers={"X-Forwarded-For": "192.168.1.1, 6.6.6.6", "X-Request-ID": "r2"})
    assert response.status == 403
    response = fetch(stack, "/admin/", REMOTE_ADDR="10.0.0.1",
                     headers={"X-Forwarded-For": "198.51.100.2", "X-Request-ID": "r3"})
    assert response.status == 403
    assert lines(caplog) == ["6.6.6.6 /admin/ 403 r2", "198.51.100.2 /admin/ 403 r3"]


def test_signed_cookie_round_trip_through_the_stack(app_kind: str) -> None:
    app = client(full_stack(app_kind), remote_addr="10.0.0.1")
    set_cookie = app.get("/set-cookie?name=prefs&value=wide").headers["Set-Cookie"]
    assert SimpleCookie(set_cookie)["prefs"].value != "wide"
    view = app.get("/env", headers={"X-Forwarded-For": "203.0.113.9"}).json
    assert view["signed"] == {"prefs": "wide"} and view["remote_addr"] == "203.0.113.9"
    assert view["request_id"]


@pytest.mark.parametrize("headers", [
    {"Accept-Encoding": "gzip;q=abc, br;q=, ;;;, *;q=-1, identity;q=2"},
    {"Accept-Encoding": "\x00\x01gzip"},
    {"X-Forwarded-For": ",,, ,[::1, 999.1.1.1, 10.0.0.1:99999, \x7f"},
    {"X-Forwarded-For": "1.1.1.1", "X-Forwarded-Proto": ",,,", "X-Forwarded-Host": ",:,"},
    {"Forwarded": 'for="unterminated, for=;;;, proto=https"'},
    {"Cookie": 'prefs="\\"; prefs=; =; ;;; prefs=a.b.c; \x7f=\x00'},
    {"X-Request-ID": "x" * 5000},
    {"Range": "bytes=garbage", "Accept-Encoding": "gzip"},
])
def test_garbage_headers_never_crash_the_stack(app_kind: str, headers: dict[str, str]) -> None:
    response = fetch(full_stack(app_kind), "/env", REMOTE_ADDR="10.0.0.1", headers=headers)
    assert response.status in (200, 400, 416)
    assert response.headers["X-Request-ID"]
