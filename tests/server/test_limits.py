"""Timeouts and limits: slow clients, idle keep-alive, body and write timeouts, backpressure."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import threading
import time

from microweb.server import Config, Server

from .conftest import hello, read_response, read_until_close, wait_until


def test_slow_client_is_cut_off_by_header_timeout(serve):
    srv = serve(hello, header_timeout=1.0)
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        cut_off = False
        for _ in range(100):  # trickle a header byte every 0.1 s: must not extend the deadline
            try:
                s.sendall(b"X")
            except OSError:
                cut_off = True
                break
            time.sleep(0.1)
    assert cut_off  # closed while the client was still trickling, long before 100 bytes


def test_connection_that_never_sends_is_closed(serve):
    srv = serve(hello, header_timeout=0.5)
    with srv.connect(timeout=10) as s:
        assert read_until_close(s) == b""


def test_idle_keep_alive_connection_is_closed_after_timeout(serve):
    srv = serve(hello, keepalive_timeout=0.5)
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(s, buf)[1] == b"Hello, world!"
        assert read_until_close(s) == b""
    assert wait_until(lambda: srv.server.connections == 0)


def test_keepalive_timeout_zero_disables_keep_alive(serve):
    srv = serve(hello, keepalive_timeout=0)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Connection: close" in data and data.endswith(b"world!")


def test_body_timeout_frees_the_thread(serve):
    outcome = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            outcome.append(type(exc).__name__)
        start_response("200 OK", [])
        return [b"x"]

    srv = serve(app, body_timeout=0.5)
    with srv.connect(timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data = read_until_close(s)
    assert outcome == ["ClientDisconnected"]
    assert b"Connection: close" in data or data == b""


def test_write_timeout_on_a_client_that_never_reads(serve):
    done = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            yield from (b"x" * 65536 for _ in range(10_000))
        finally:
            done.set()

    srv = serve(app, write_timeout=0.5)
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert done.wait(15)  # the generator was closed after the write timed out
    s.close()
    assert wait_until(lambda: srv.server.connections == 0)


def test_max_connections_applies_backpressure(serve):
    srv = serve(hello, max_connections=3)
    held = [srv.connect() for _ in range(3)]
    for s in held:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(s)
    assert wait_until(lambda: srv.server.connections == 3)
    extra = srv.connect(timeout=10)  # queued by the kernel, not accepted yet
    extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    assert srv.server.connections == 3
    held.pop().close()  # a slot frees: the waiting client is served
    assert read_response(extra)[1] == b"Hello, world!"
    extra.close()
    for s in held:
        s.close()


def test_huge_single_header_is_rejected_without_buffering_forever(serve):
    srv = serve(hello, max_header_size=1024, max_request_line=1024)
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(200):
                s.sendall(b"v" * 4096)
        except OSError:
            pass
        data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 431") or data == b""


def test_one_header_field_over_its_limit_is_431(serve):
    srv = serve(hello, max_header_field_size=200)
    with srv.connect() as s:
        buf = bytearray()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"v" * 150 + b"\r\n"
                  b"X-Ok-Too: " + b"v" * 150 + b"\r\n\r\n")  # 330 bytes in all: fine
        assert read_response(s, buf)[0].startswith(b"HTTP/1.1 200")
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 250 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431") and b"header field too large" in data


def test_trickling_client_gets_408_when_the_header_timeout_expires(serve):
    srv = serve(hello, header_timeout=0.5)
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(100):  # a header byte every 0.1 s, until the server answers
            readable, _, _ = select.select([s], [], [], 0.1)
            if readable:
                break
            s.sendall(b"X")
        answer = read_until_close(s)
    head = answer.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"Connection: close" in head
    assert wait_until(lambda: srv.server.connections == 0)


def test_idle_connection_gets_no_408(serve):
    srv = serve(hello, header_timeout=0.5, keepalive_timeout=0.5)
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(s, buf)[1] == b"Hello, world!"
        assert read_until_close(s) == b""  # idle keep-alive: closed without a word


def test_tls_client_gets_the_header_timeout_for_its_first_request(tmp_path):
    """After the TLS handshake nothing has been parsed yet: the client has header_timeout to
    send its first request, not the keep-alive timeout meant for idle connections."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = Server(hello, [listener], Config(threads=2, keepalive_timeout=0,
                                              header_timeout=30), ssl_context=context)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        client = ssl.create_default_context(cafile=str(cert))
        client.check_hostname = False
        with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                client.wrap_socket(raw) as s:
            time.sleep(2.5)  # the server sweeps expired connections every second
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert head.startswith(b"HTTP/1.1 200") and body == b"Hello, world!"
    finally:
        server.stop(timeout=5)
        thread.join(15)
