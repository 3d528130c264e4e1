"""The recommended stack leaves no reference cycles behind: every request's objects are freed
by reference counting alone, so a busy server never waits for the cyclic garbage collector."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    ProxyMiddleware,
    SessionMiddleware,
    SignedCookieMiddleware,
    SQLiteStore,
    XSRFMiddleware,
    compose,
    keys,
)


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ[keys.SESSION]
    session["visits"] = session.get("visits", 0) + 1
    body = f"{session['visits']} {environ[keys.XSRF_TOKEN]}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("Set-Cookie", "prefs=wide; Path=/")])
    return [body]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Any]:
    store = SQLiteStore(tmp_path / "s.db")
    logging.getLogger("tests.no_cycles").addHandler(logging.NullHandler())
    built = compose(_app, ProxyMiddleware.configure(trusted=["127.0.0.1"]),
                    AccessLogMiddleware.configure(logger="tests.no_cycles"),
                    IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]), GzipMiddleware,
                    SignedCookieMiddleware.configure(secret="k", names=["prefs"]),
                    SessionMiddleware.configure(secret="k", store=store), XSRFMiddleware)
    yield built
    store.close()


def test_requests_through_the_stack_create_no_cyclic_garbage(stack: Any) -> None:
    client = TestApp(stack, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    client.get("/")  # first visit: new session, cookies set
    gc.collect()
    gc.disable()
    try:
        for visits in range(2, 12):
            assert client.get("/").text.startswith(f"{visits} 2|")
        assert gc.collect() == 0
    finally:
        gc.enable()
