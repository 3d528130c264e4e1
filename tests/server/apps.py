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
