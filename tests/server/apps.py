"""WSGI apps the subprocess tests serve (importable as tests.server.apps:<name>)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

VERSION = "v1"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """/ -> hello; /pid -> worker pid; /sleep?s -> sleeps; /crash -> the worker dies;
    /file -> this file through wsgi.file_wrapper."""
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or 1))
    elif path == "/crash":
        os._exit(17)
    elif path == "/file":  # wsgi.file_wrapper: sendfile on TCP, plain iteration under TLS
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"), 4096)  # noqa: SIM115
    body = (f"{os.getpid()}" if path in ("/pid", "/sleep") else f"hello {VERSION}").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


_served_by: dict[int, int] = {}


def threads(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """/ -> hello, counting which thread ran it; /threads -> the counts, largest first."""
    import threading

    if environ["PATH_INFO"] == "/threads":
        body = " ".join(str(n) for n in sorted(_served_by.values(), reverse=True)).encode()
    else:
        ident = threading.get_ident()
        _served_by[ident] = _served_by.get(ident, 0) + 1
        body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
