"""No file descriptor or thread leaks over 10,000 requests (keep-alive, close, errors).

The check runs in a fresh interpreter so that threads and sockets of other tests in the same
pytest process (session fixtures, background purgers, closing clients) cannot blur the counts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from tests import support

from .conftest import Running, read_response, read_until_close, wait_until


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("expected")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _check() -> str:
    """Serve 10,000 requests in process; return a description of any leak ('' when none)."""
    srv = Running(_app, threads=4)
    try:
        with srv.connect(30) as warm:
            warm.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(warm)
        assert wait_until(lambda: srv.server.connections == 0, 30)
        # the first pool thread may serve the warm-up while the others are still starting:
        # count only once all four (plus the main and the server's run() thread) are up
        assert wait_until(lambda: threading.active_count() >= 6, 30)
        fds, threads = _fds(), threading.active_count()
        logging.getLogger("microweb.server").disabled = True
        total = 0
        for _ in range(20):  # 20 connections x 400 keep-alive requests
            with srv.connect(30) as s:
                buf = bytearray()
                batch = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50
                for _ in range(8):
                    s.sendall(batch)
                    for _ in range(50):
                        assert read_response(s, buf)[1] == b"ok"
                        total += 1
        for i in range(2000):  # Connection: close, some failing in the app
            path = b"/boom" if i % 10 == 0 else b"/"
            with srv.connect(30) as s:
                s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = read_until_close(s)
            assert data.startswith(b"HTTP/1.1 500" if i % 10 == 0 else b"HTTP/1.1 200"), data
            total += 1
        assert total == 10_000
        problems = []
        if not wait_until(lambda: srv.server.connections == 0, 30):
            problems.append(f"{srv.server.connections} connections still counted")
        if not wait_until(lambda: _fds() <= fds, 30):
            problems.append(f"fds {fds} -> {_fds()}")
        if not wait_until(lambda: threading.active_count() <= threads, 30):
            problems.append(f"threads {threads} -> {threading.active_count()}")
        return "; ".join(problems)
    finally:
        srv.stop()


def test_no_fd_or_thread_leak_over_10000_requests() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.server.test_leaks"], cwd=support.ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "no leak", proc.stdout + proc.stderr


if __name__ == "__main__":
    leak = _check()
    print(leak or "no leak")
    sys.exit(1 if leak else 0)
