"""No file descriptor or thread leaks over 10,000 requests (keep-alive, close, errors)."""

from __future__ import annotations

import os
import threading

from .conftest import read_response, wait_until


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_or_thread_leak_over_10000_requests(serve):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("expected")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    srv = serve(app, threads=4)
    warm = srv.connect()
    warm.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(warm)
    warm.close()
    assert wait_until(lambda: srv.server.connections == 0)
    fds, threads = _fds(), threading.active_count()

    import logging
    logging.getLogger("microweb.server").disabled = True
    try:
        total = 0
        for _ in range(20):  # 20 connections x 400 keep-alive requests
            with srv.connect() as s:
                buf = bytearray()
                batch = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50
                for _ in range(8):
                    s.sendall(batch)
                    for _ in range(50):
                        assert read_response(s, buf)[1] == b"ok"
                        total += 1
        for i in range(2000):  # Connection: close, some failing in the app
            path = b"/boom" if i % 10 == 0 else b"/"
            data = srv.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 500" if i % 10 == 0 else b"HTTP/1.1 200")
            total += 1
    finally:
        logging.getLogger("microweb.server").disabled = False
    assert total == 10_000
    assert wait_until(lambda: srv.server.connections == 0)
    assert wait_until(lambda: _fds() <= fds)
    assert wait_until(lambda: threading.active_count() <= threads)
