"""``microweb.server.serve()`` from Python, with a callable and with a module:attr string."""

from __future__ import annotations

import http.client

from tests.support import PYTHON, spawn


def _get(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def test_serve_a_callable(port):
    code = ("from microweb.server import serve\n"
            "def app(e, s):\n    s('200 OK', [])\n    return [b'from serve']\n"
            f"serve(app, port={port}, threads=2, log_level='WARNING')\n")
    with spawn([PYTHON, "-c", code], port=port) as sp:
        assert _get(port) == b"from serve"
        assert sp.stop() == 0


def test_serve_a_string_with_two_workers(port):
    code = ("from microweb.server import serve\n"
            f"serve('tests.server.apps:app', port={port}, workers=2)\n")
    with spawn([PYTHON, "-c", code], port=port) as sp:
        assert _get(port) == b"hello v1"
        assert sp.stop() == 0
