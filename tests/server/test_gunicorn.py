"""The gunicorn worker class: gunicorn's request limits become the server's own."""

from __future__ import annotations

import socket

from gunicorn.config import Config as GunicornConfig

from microweb.server.gunicorn import server_config
from tests.support import free_port, spawn, which

from .conftest import read_response, read_until_close

APP = "tests.server.apps:app"


def _gunicorn_config(**settings: object) -> GunicornConfig:
    cfg = GunicornConfig()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_limits_follow_gunicorns_reading_of_its_settings():
    config = server_config(_gunicorn_config(limit_request_line=100, limit_request_fields=7,
                                            limit_request_field_size=300))
    assert (config.max_request_line, config.max_header_count,
            config.max_header_field_size) == (100, 7, 300)
    defaults = server_config(_gunicorn_config())  # gunicorn's defaults: 4094, 100, 8190
    assert (defaults.max_request_line, defaults.max_header_count,
            defaults.max_header_field_size) == (4094, 100, 8190)
    zeros = server_config(_gunicorn_config(limit_request_line=0, limit_request_fields=0,
                                           limit_request_field_size=0))
    assert (zeros.max_request_line, zeros.max_header_count,
            zeros.max_header_field_size) == (1024 * 1024, 32768, 8190)
    big = server_config(_gunicorn_config(limit_request_line=100000,
                                         limit_request_field_size=200000))
    assert big.max_request_line == 8190  # gunicorn's ceiling
    assert big.max_header_field_size == 200000 and big.max_header_size >= 200000


def _ask(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        if b"Connection: close" in request:
            return read_until_close(s)
        return read_response(s)[0]


def test_gunicorn_worker_enforces_gunicorns_request_limits():
    port = free_port()
    argv = [which("gunicorn") or "gunicorn", "-b", f"127.0.0.1:{port}", "--no-control-socket",
            "-k", "microweb.server.gunicorn.Worker", "-w", "1",
            "--limit-request-field_size", "200", "--limit-request-fields", "5",
            "--limit-request-line", "100", APP]
    with spawn(argv, port=port) as sp:
        ok = b"GET / HTTP/1.1\r\nHost: x\r\nX-Fits: " + b"v" * 150 + b"\r\n\r\n"
        assert _ask(port, ok).startswith(b"HTTP/1.1 200"), sp.output()
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 250 + b"\r\n\r\n"
        assert _ask(port, big).startswith(b"HTTP/1.1 431"), sp.output()
        many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-%d: v\r\n" % i for i in range(6)) + b"\r\n"
        assert _ask(port, many).startswith(b"HTTP/1.1 431")
        long_line = b"GET /" + b"a" * 150 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert _ask(port, long_line).startswith(b"HTTP/1.1 414")
