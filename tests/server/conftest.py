"""Fixtures for the server tests: an in-process server on a free loopback port, raw clients."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from microweb.server import Config, Server


class Running:
    """A ``Server`` running in a background thread, bound to 127.0.0.1:<port>."""

    def __init__(self, app: Callable[..., Any], **options: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        options.setdefault("threads", 4)
        poller = options.pop("poller", None)
        self.server = Server(app, [self.sock], Config(**options), poller=poller)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        self.thread.join(timeout + 10)
        assert not self.thread.is_alive(), "server did not stop"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send ``data`` on a fresh connection and read until the server closes it."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_until_close(s)


def read_until_close(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(s: socket.socket, buf: bytearray | None = None) -> tuple[bytes, bytes]:
    """Read one Content-Length or chunked response from ``s``: (head, body)."""
    buf = bytearray() if buf is None else buf
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response head: {bytes(buf)!r}")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(buf) < length:
            buf += s.recv(65536)
        body = bytes(buf[:length])
        del buf[:length]
        return head, body
    if b"transfer-encoding: chunked" in lower:
        body = bytearray()
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            size_line, _, rest = bytes(buf).partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += s.recv(65536)
            body += rest[:size]
            buf[:] = rest[size + 2:]
            if size == 0:
                return head, bytes(body)
    return head, b""


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    """``serve(app, **options)`` starts an in-process server; all are stopped afterwards."""
    started: list[Running] = []

    def start(app: Callable[..., Any], **options: Any) -> Running:
        running = Running(app, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        with contextlib.suppress(AssertionError):
            running.stop()


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def echo_environ(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answer with the interesting environ keys as repr lines, plus the body read fully."""
    body = environ["wsgi.input"].read()
    keys = sorted(k for k, v in environ.items() if isinstance(v, str))
    lines = [f"{k}={environ[k]!r}" for k in keys] + [f"BODY={body!r}"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return ["\n".join(lines).encode("utf-8")]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
