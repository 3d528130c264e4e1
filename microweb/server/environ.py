"""PEP 3333 environ construction from a parsed request head.

Rules applied here (each one a common source of bugs in servers):
- PATH_INFO is the percent-decoded path, bytes decoded as latin-1 ("bytes as str");
  QUERY_STRING is passed untouched; SCRIPT_NAME is the configured mount prefix, split off
  only when the path lies under it at a segment boundary (``/app`` takes ``/app`` and
  ``/app/x``, never ``/apple``); any other path keeps SCRIPT_NAME empty and PATH_INFO whole.
- Header names containing ``_`` are dropped: otherwise ``X_Forwarded_For`` would masquerade
  as ``X-Forwarded-For`` behind a proxy that only sanitises the dashed spelling.
- An absolute-form target (``GET http://host/path``) sets HTTP_HOST to its authority.
- Repeated headers are joined with ``,`` (``;`` for Cookie); CONTENT_TYPE and CONTENT_LENGTH
  have no ``HTTP_`` prefix; a chunked request has no CONTENT_LENGTH.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from .http11 import ProtocolError, Request

__all__ = ["base_environ", "build_environ", "split_target"]

# PERF: header name bytes -> environ key (None = drop); bounded so clients cannot grow it
_KEYS: dict[bytes, str | None] = {}
_KEYS_MAX = 2048


def _environ_key(name: bytes) -> str | None:
    key = _KEYS.get(name)
    if key is not None or name in _KEYS:
        return key
    text = name.decode("latin-1").upper()
    if "_" in text:
        key = None
    elif text == "CONTENT-TYPE" or text == "CONTENT-LENGTH":
        key = text.replace("-", "_")
    else:
        key = "HTTP_" + text.replace("-", "_")
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[name] = key
    return key


def split_target(target: bytes, method: str) -> tuple[str, str]:
    """Return (PATH_INFO before SCRIPT_NAME stripping, QUERY_STRING) from a request target."""
    if target[:1] == b"/":
        path, _, query = target.partition(b"?")
    elif target == b"*" and method == "OPTIONS":
        return "*", ""
    elif method == "CONNECT":
        return target.decode("latin-1"), ""
    else:  # absolute-form (RFC 9112 3.2.2): keep only path and query
        parts = urlsplit(target.decode("latin-1"))
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ProtocolError(400, "invalid request target")
        path = (parts.path or "/").encode("latin-1")
        query = parts.query.encode("latin-1")
    path = path.partition(b"#")[0]
    if b"%" in path:  # PERF: most paths need no decoding
        return unquote_to_bytes(path).decode("latin-1"), query.decode("latin-1")
    return path.decode("latin-1"), query.decode("latin-1")


def base_environ(server_name: str, server_port: str, scheme: str, multiprocess: bool,
                 file_wrapper: Any) -> dict[str, Any]:
    """The keys that are the same for every request on one listener."""
    return {
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": file_wrapper,
    }


def build_environ(base: dict[str, Any], req: Request, script_name: str,
                  remote: tuple[str, str]) -> dict[str, Any]:
    """A fresh environ for ``req`` (the caller adds wsgi.input and microweb.upgrade)."""
    environ = base.copy()
    target = req.target
    path, query = split_target(target, req.method)
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        environ["SCRIPT_NAME"] = script_name  # a path outside the mount keeps base's ""
        path = path[len(script_name):]
    environ["REQUEST_METHOD"] = req.method
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = target.decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/1.0" if req.version == "1.0" else "HTTP/1.1"
    environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = remote
    keys = _KEYS
    for name, value in req.headers:
        key = keys.get(name)
        if key is None:
            key = _environ_key(name)  # first sighting of this spelling, or a dropped name
            if key is None:
                continue
        if key in environ:  # a repeated field (HTTP_* and CONTENT_* never clash with base)
            sep = "; " if key == "HTTP_COOKIE" else ","
            environ[key] = environ[key] + sep + value.decode("latin-1")
        else:
            environ[key] = value.decode("latin-1")
    if target[:1] != b"/" and path != "*" and req.method != "CONNECT":
        # RFC 9112 3.2.2: the authority of an absolute-form target replaces Host, so the
        # app builds its URLs from the host the request was routed by
        netloc = urlsplit(target.decode("latin-1")).netloc
        environ["HTTP_HOST"] = netloc.rpartition("@")[2]
    return environ
