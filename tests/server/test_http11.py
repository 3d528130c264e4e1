"""HTTP/1.1 behaviour over real loopback sockets: keep-alive, pipelining, framing, HEAD."""

from __future__ import annotations

import http.client
import re
import subprocess
import time

import pytest
import requests

from tests.support import which

from .conftest import echo_environ, hello, read_response, read_until_close


def test_hello_with_http_client(serve):
    srv = serve(hello)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"Hello, world!"
    assert resp.getheader("Content-Length") == "13"
    assert resp.getheader("Server") == "microweb"
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", resp.getheader("Date"))
    # keep-alive: the same connection serves a second request
    conn.request("GET", "/again")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.close()


def test_keep_alive_reuses_one_socket(serve):
    srv = serve(hello)
    with srv.connect() as s:
        buf = bytearray()
        for _ in range(5):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s, buf)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"Connection: close" not in head
            assert body == b"Hello, world!"


def test_connection_close_is_honoured(serve):
    srv = serve(hello)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close\r\n" in data
    assert data.endswith(b"Hello, world!")


def test_http10_closes_by_default_and_keeps_alive_on_request(serve):
    srv = serve(hello)
    data = srv.raw(b"GET / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data
    with srv.connect() as s:
        buf = bytearray()
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            head, body = read_response(s, buf)
            assert b"Connection: keep-alive" in head
            assert body == b"Hello, world!"


def test_pipelined_requests_are_answered_in_order(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    srv = serve(app)
    requests_ = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20))
    with srv.connect() as s:
        s.sendall(requests_ + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_close(s)
    bodies = re.findall(rb"\r\n\r\n(/\d+|/last)", data)
    assert bodies == [b"/%d" % i for i in range(20)] + [b"/last"]


def test_pipelined_posts_with_bodies(serve):
    srv = serve(echo_environ)
    req = (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
           b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
           b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = srv.raw(req)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b"BODY=b'hello'" in data and b"BODY=b'abc'" in data and b"BODY=b''" in data


def test_chunked_response_on_11_and_close_delimited_on_10(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"one,"
        yield b""
        yield b"two"

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"one,two"
    data = srv.raw(b"GET / HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding" not in data and b"Content-Length" not in data
    assert b"Connection: close" in data and data.endswith(b"\r\n\r\none,two")


def test_head_sends_headers_only(serve):
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        while buf.count(b"HTTP/1.1 200") < 2 or not buf.endswith(b"world!"):
            buf += s.recv(65536)
    first, second = bytes(buf).split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b"\r\n\r\n")  # no body after the HEAD head
    assert second.endswith(b"Hello, world!")


def test_no_body_statuses_have_no_framing(serve):
    def app(environ, start_response):
        start_response(environ["PATH_INFO"][1:] + " X", [])
        return []

    srv = serve(app)
    for status in (b"204", b"304"):
        with srv.connect() as s:
            s.sendall(b"GET /" + status + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_close(s)
        assert data.count(b"HTTP/1.1 ") == 2
        assert b"Content-Length" not in data and b"chunked" not in data


def test_expect_100_continue(serve):
    srv = serve(echo_environ)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"data")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and b"BODY=b'data'" in body


def test_expect_100_continue_not_sent_when_app_ignores_body(serve):
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"100 Continue" not in data
    assert b"Connection: close" in data or data.endswith(b"world!")


def test_unread_body_is_drained_and_connection_kept(serve):
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
                  b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(s, buf)[1] == b"Hello, world!"
        assert read_response(s, buf)[1] == b"Hello, world!"


def _ignores_body(environ, start_response):
    """/stream answers with a generator (chunked), anything else with a list."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/stream":
        return (part for part in [b"Hello, ", b"world!"])
    return [b"Hello, world!"]


def _read_to_eof(s):
    """Everything until the server's FIN; a reset instead of a clean close fails the test."""
    chunks = []
    while data := s.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/list", "/stream"])
def test_head_says_close_when_the_unread_body_is_too_large_to_drain(serve, path):
    srv = serve(_ignores_body, drain_limit=1000)
    with srv.connect() as s:
        s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"x" * 100)
        buf = bytearray()
        head, body = read_response(s, buf)
        assert b"Connection: close\r\n" in head and body == b"Hello, world!"
        assert bytes(buf) + _read_to_eof(s) == b""


def test_head_says_close_when_the_body_was_never_asked_for(serve):
    srv = serve(_ignores_body)
    with srv.connect() as s:
        s.sendall(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        head, body = read_response(s)
        assert b"Connection: close\r\n" in head and body == b"Hello, world!"
        assert _read_to_eof(s) == b""


def test_body_found_too_large_after_the_head_still_closes_cleanly(serve):
    """A chunked body's size is unknown when the head goes out: the server learns while
    draining that it is too large, and then closes without resetting the connection (the
    client, still sending, must not lose the response it has not read yet)."""
    srv = serve(_ignores_body, drain_limit=1000)
    with srv.connect() as s:
        s.sendall(b"POST /list HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        head, body = read_response(s)
        assert b"Connection: close" not in head and body == b"Hello, world!"
        s.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n" + b"10000\r\n" + b"y" * 0x10000)
        time.sleep(0.3)  # the server drains, gives up, closes: all before we read again
        assert _read_to_eof(s) == b""


def test_a_lingering_close_holds_no_thread(serve):
    """While a closing connection discards the body its client keeps sending, the only pool
    thread serves others; the lingering connection is dropped at its deadline though the
    client never closes."""
    srv = serve(_ignores_body, drain_limit=1000, threads=1)
    with srv.connect() as s:
        s.sendall(b"POST /list HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        read_response(s)
        s.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")  # too large: the server lingers
        time.sleep(0.2)
        s.sendall(b"y" * 1000)  # still sending, never closing
        with srv.connect(timeout=1.0) as other:  # well inside the 2 s linger
            other.sendall(b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other)[1] == b"Hello, world!"
        assert _read_to_eof(s) == b""  # the server's FIN came first
        deadline = time.monotonic() + 5  # then it lets go at the linger deadline (2 s)
        while srv.server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.server.connections == 0


def test_requests_and_curl_clients(serve):
    srv = serve(echo_environ)
    with requests.Session() as session:
        for i in range(3):
            r = session.post(f"http://127.0.0.1:{srv.port}/p?i={i}", data=b"x" * 70000)
            assert r.status_code == 200
            assert f"QUERY_STRING='i={i}'" in r.text
            assert "BODY=b'xxxx" in r.text and len(r.text) > 70000
    curl = which("curl")
    assert curl
    out = subprocess.run([curl, "-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "abc",
                          f"http://127.0.0.1:{srv.port}/c"], capture_output=True, timeout=20)
    assert b"BODY=b'abc'" in out.stdout
    out = subprocess.run([curl, "-s", "--http1.0", f"http://127.0.0.1:{srv.port}/x%2Fy"],
                         capture_output=True, timeout=20)
    assert b"PATH_INFO='/x/y'" in out.stdout and b"SERVER_PROTOCOL='HTTP/1.0'" in out.stdout


def test_head_of_a_streamed_response_has_no_body_and_keeps_alive(serve):
    closed = []

    class Body:
        def __iter__(self):
            yield b"streamed"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = read_until_close(s)
    first, second = data.split(b"HTTP/1.1 200 OK")[1:]
    assert b"streamed" not in first and b"chunked" not in first
    assert b"streamed" in second and closed == [True, True]


def test_server_header_configurable_and_app_date_kept(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Date", "Thu, 01 Jan 1970 00:00:00 GMT")])
        return [b"x"]

    srv = serve(app, server_header="")
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Server:" not in data and data.count(b"Date:") == 1 and b"1970" in data
    srv2 = serve(app, server_header="edge")
    data = srv2.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Server: edge\r\n" in data


def test_invalid_absolute_target_is_400(serve):
    srv = serve(hello)
    data = srv.raw(b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")


def test_valid_request_then_garbage_is_answered_then_rejected(serve):
    srv = serve(hello)
    data = srv.raw(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\x00\r\n\r\n")
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and first.endswith(b"Hello, world!")
    assert second.startswith(b"400 Bad Request") and b"Connection: close" in second
