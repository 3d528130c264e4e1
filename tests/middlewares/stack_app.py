"""A WSGI app behind the recommended middleware stack, served by gunicorn in the tests.

``/stream`` yields a first chunk, then waits (up to 20 s) for the file named by the
``STACK_APP_RELEASE`` environment variable before yielding the second one, so a test can prove
the first chunk reached the client while the app was still producing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    ProxyMiddleware,
    compose,
)

from .conftest import bare_app

FIRST, SECOND = b"first chunk " * 200, b"second chunk " * 200


def _stream() -> Iterator[bytes]:
    yield FIRST
    release = os.environ.get("STACK_APP_RELEASE", "")
    deadline = time.monotonic() + 20
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield SECOND


def routes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    return bare_app(environ, start_response)


app = compose(
    routes,
    ProxyMiddleware.configure(trusted=["127.0.0.1"]),
    AccessLogMiddleware.configure(output="-",
                                  format="ACCESS {remote_addr} {path} {status} {request_id}"),
    IPBlacklistMiddleware.configure(deny=["127.0.0.3"]),
    GzipMiddleware,
)
