"""The middleware stack under real servers (gunicorn, microweb.server), and behind a real nginx
as the trusted proxy.

The client connects from 127.0.0.2 while nginx (the only trusted proxy) talks to the backend
from 127.0.0.1, so spoofed forwarding headers can be told apart from the proxy's own entries.
"""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PYTHON, free_port, spawn, which

from .stack_app import FIRST, SECOND

pytestmark = pytest.mark.slow


def _server_argv(kind: str, port: int) -> list[str]:
    app = "tests.middlewares.stack_app:app"
    if kind == "gunicorn":
        return [PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
                "--timeout", "30", "--no-control-socket", app]
    return [PYTHON, "-m", "microweb.server", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", app]


@pytest.fixture(params=["gunicorn", "microweb.server"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Path, object]]:
    """The stack app served by a real server (gunicorn's sync worker, microweb's own)."""
    port, release = free_port(), tmp_path / "release"
    argv = _server_argv(request.param, port)
    with spawn(argv, port=port, env={"STACK_APP_RELEASE": str(release)}) as server:
        yield port, release, server


def _request(port: int, raw: bytes, source: str = "127.0.0.2") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20,
                                    source_address=(source, 0))
    sock.sendall(raw)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _wait_for_line(server: object, line: str, timeout: float = 10.0) -> None:
    """The access record is written when the server closes the body, just after the client
    has everything: poll the server's output for it."""
    deadline = time.monotonic() + timeout
    while line not in server.output():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"{line!r} not logged:\n{server.output()}"  # type: ignore[attr-defined]
        time.sleep(0.05)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def test_streaming_through_a_real_server_arrives_incrementally(
        backend: tuple[int, Path, object]) -> None:
    port, release, _ = backend
    with _request(port, b"GET /stream HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n"
                        b"Connection: close\r\n\r\n", source="127.0.0.1") as sock:
        received = b""
        while True:
            data = sock.recv(65536)
            assert data, "closed before the first chunk"
            received += data
            head, _, body = received.partition(b"\r\n\r\n")
            try:
                first = zlib.decompressobj(31).decompress(_dechunk(body))
            except (ValueError, zlib.error):
                continue
            if first == FIRST:
                break
        assert b"Content-Encoding: gzip" in head and b"chunked" in head.lower()
        release.touch()  # only now may the app produce its second chunk
        received += _read_all(sock)
    body = _dechunk(received.partition(b"\r\n\r\n")[2])
    assert gzip.decompress(body) == FIRST + SECOND


def test_direct_clients_cannot_spoof_their_address(backend: tuple[int, Path, object]) -> None:
    port, _, server = backend
    with _request(port, b"GET /env HTTP/1.0\r\nHost: t\r\nX-Forwarded-For: 10.9.9.9\r\n"
                        b"X-Request-ID: direct-1\r\n\r\n") as sock:
        response = _read_all(sock)
    assert b'"remote_addr": "127.0.0.2"' in response
    with _request(port, b"GET / HTTP/1.0\r\nHost: t\r\nX-Forwarded-For: 127.0.0.9\r\n\r\n",
                  source="127.0.0.3") as sock:
        assert _read_all(sock).split(b"\r\n", 1)[0].endswith(b" 403 Forbidden")
    _wait_for_line(server, "ACCESS 127.0.0.2 /env 200 direct-1")


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_bind 127.0.0.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(backend: tuple[int, Path, object], tmp_path: Path) -> Iterator[tuple[int, object]]:
    exe = which("nginx")
    assert exe is not None, "nginx is not installed"
    backend, _, server = backend
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp_path, port=port, backend=backend))
    with spawn([exe, "-c", str(conf), "-p", str(tmp_path)], port=port):
        yield port, server


def test_behind_nginx_the_real_client_is_resolved(nginx: tuple[int, object]) -> None:
    port, server = nginx
    raw = (b"GET /env HTTP/1.0\r\nHost: shop.example\r\nX-Forwarded-For: 127.0.0.1, 6.6.6.6\r\n"
           b"X-Request-ID: via-nginx\r\n\r\n")
    with _request(port, raw) as sock:
        response = _read_all(sock)
    assert response.startswith(b"HTTP/1.1 200")
    # the spoofed entries are left of the address nginx saw (127.0.0.2): never trusted
    assert b'"remote_addr": "127.0.0.2"' in response
    assert b'"scheme": "https"' in response and b'"host": "shop.example"' in response
    assert b"X-Request-ID: via-nginx" in response
    _wait_for_line(server, "ACCESS 127.0.0.2 /env 200 via-nginx")


def test_behind_nginx_the_ip_filter_sees_the_real_client(nginx: tuple[int, object]) -> None:
    port, _ = nginx
    raw = b"GET / HTTP/1.0\r\nHost: t\r\nX-Forwarded-For: 192.168.1.1\r\n\r\n"
    with _request(port, raw, source="127.0.0.3") as sock:  # 127.0.0.3 is denied
        assert _read_all(sock).startswith(b"HTTP/1.1 403")
    with _request(port, raw, source="127.0.0.2") as sock:
        assert _read_all(sock).startswith(b"HTTP/1.1 200")
