"""Application errors, client disconnects and close() exactly once."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from .conftest import hello, read_response, read_until_close, wait_until


class Tracked:
    """A response iterable that records how often close() was called."""

    def __init__(self, chunks, fail_at=None, delay=0.0):
        self.chunks = chunks
        self.fail_at = fail_at
        self.delay = delay
        self.closed = 0
        self.done = threading.Event()

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("iteration failed")
            if self.delay:
                time.sleep(self.delay)
            yield chunk

    def close(self):
        self.closed += 1
        self.done.set()


def test_app_exception_gives_500_and_server_keeps_serving(serve, caplog):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise ValueError("kaboom")
        return hello(environ, start_response)

    srv = serve(app)
    with caplog.at_level(logging.ERROR, "microweb.server"), srv.connect() as s:
        buf = bytearray()
        s.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s, buf)
        assert head.startswith(b"HTTP/1.1 500 ") and b"kaboom" not in body
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection still works
        assert read_response(s, buf)[1] == b"Hello, world!"
    assert "kaboom" in caplog.text


def test_exception_after_headers_closes_connection_and_closes_iterable(serve):
    tracked = Tracked([b"partial", b"never"], fail_at=1)

    def app(environ, start_response):
        start_response("200 OK", [])
        return tracked

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(s)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"7\r\npartial\r\n" in data
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees truncation
    assert tracked.done.wait(5) and tracked.closed == 1


def test_close_called_once_on_success_and_error_paths(serve):
    cases = [Tracked([b"a", b"b"]), Tracked([b"a"], fail_at=0), Tracked([])]
    it = iter(cases)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return next(it)

    srv = serve(app)
    for _ in cases:
        srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert all(c.done.wait(5) for c in cases)
    assert [c.closed for c in cases] == [1, 1, 1]


def test_close_called_once_when_client_disconnects_mid_response(serve):
    tracked = Tracked([b"x" * 65536] * 2000, delay=0.0005)

    def app(environ, start_response):
        start_response("200 OK", [])
        return tracked

    srv = serve(app, write_timeout=5)
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    assert tracked.done.wait(10) and tracked.closed == 1
    assert wait_until(lambda: srv.server.connections == 0)


def test_missing_start_response_is_a_500(serve):
    srv = serve(lambda environ, start_response: [b"oops"])
    assert srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 500")


def test_header_injection_is_refused(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b""]

    srv = serve(app)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500") and b"pwned" not in data


@pytest.mark.parametrize("name", ["X Bad", "X:Bad", "X-Caf\u00e9", "", "X\x01Ctl", "X\x7f",
                                  "X\tTab", "X-Evil\r\nSet-Cookie"])
@pytest.mark.parametrize("path", ["/list", "/stream"])
def test_response_header_name_not_a_token_is_a_logged_500(serve, caplog, name, path):
    """RFC 9110: a field name is a token; anything else would write a malformed head."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), (name, "v")])
        return [b"body"] if environ["PATH_INFO"] == "/list" else iter([b"bo", b"dy"])

    srv = serve(app)
    with caplog.at_level(logging.ERROR, logger="microweb.server"), srv.connect() as s:
        for _ in range(2):  # nothing was sent before the 500: the connection stays usable
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert head.startswith(b"HTTP/1.1 500 ") and b"body" not in body
            assert b"\r\n" + name.encode("latin-1") + b": v" not in head + b"\r\n"
            assert b"Set-Cookie" not in head
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert messages and all(repr(name) in m for m in messages), messages


@pytest.mark.parametrize("value", ["a\x00b", "a\x01", "\x1f", "x\x7f", "a\rb", "a\nb"])
def test_response_header_value_with_a_control_character_is_a_logged_500(serve, caplog, value):
    """RFC 9110: a field value holds visible characters, spaces and tabs, nothing else."""
    def app(environ, start_response):
        start_response("200 OK", [("X-Value", value)])
        return [b"body"]

    srv = serve(app)
    with caplog.at_level(logging.ERROR, logger="microweb.server"), srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 500 ") and b"X-Value" not in head
    assert any("'X-Value'" in r.getMessage() for r in caplog.records)


def test_response_header_value_may_hold_tabs_and_obs_text(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-Value", "a\tb \xe9")])
        return [b"body"]

    srv = serve(app)
    head = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"X-Value: a\tb \xe9\r\n" in head


def test_hop_by_hop_header_from_app_is_refused(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Transfer-Encoding", "chunked")])
        return [b"x"]

    srv = serve(app)
    assert srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 500")


def test_app_connection_close_header_closes(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Connection", "close"), ("Content-Length", "2")])
        return [b"ok"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(s)  # returns because the server closed
    assert data.count(b"Connection: close") == 1 and data.endswith(b"ok")


def test_content_length_mismatch_closes(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(s)
    assert data.endswith(b"short")


def test_client_disconnect_while_app_reads_body(serve):
    errors = []
    done = threading.Event()

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            errors.append(exc)
        finally:
            done.set()
        start_response("200 OK", [])
        return [b"x"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.1)
    assert done.wait(10) and errors
    assert wait_until(lambda: srv.server.connections == 0)


def test_body_over_limit_while_streaming_gets_413(serve):
    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"read it all"]

    srv = serve(app, max_body_size=10)
    data = srv.raw(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n5\r\nworld\r\n5\r\nagain\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413") and b"Connection: close" in data


def test_bad_app_return_values_are_500s(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/none":
            return None
        return iter(["text, not bytes"])

    srv = serve(app)
    for path in (b"/none", b"/str"):
        data = srv.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 500"), (path, data[:60])


def test_invalid_status_line_from_app_is_a_500(serve):
    def app(environ, start_response):
        start_response("OK", [])
        return [b"x"]

    srv = serve(app)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500")


def test_response_finished_during_shutdown_says_connection_close(serve):
    """A keep-alive client must learn from the response itself that the server stops, not from
    a connection closed under its next request."""
    started, release = threading.Event(), threading.Event()

    def app(environ, start_response):
        started.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(10)
        srv.server.stop(timeout=10)
        assert wait_until(lambda: srv.server.draining, 10)
        release.set()
        head, body = read_response(s)
        assert body == b"done"
        assert b"Connection: close" in head
        assert read_until_close(s) == b""


def test_shutdown_closes_a_connection_that_never_sent_a_request(serve):
    """A browser's speculative preconnect must not hold a graceful stop until the header
    timeout (idle keep-alive connections are closed at once too)."""
    srv = serve(hello, header_timeout=60)
    with srv.connect(timeout=10) as idle, srv.connect(timeout=10) as busy:
        busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(busy)
        assert wait_until(lambda: srv.server.connections == 2, 10)
        srv.server.stop(timeout=30)
        assert read_until_close(idle) == b""  # closed now, not after 60 s
        assert read_until_close(busy) == b""


def test_non_latin1_response_header_is_a_500_not_an_empty_reply(serve, caplog):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Disposition", 'attachment; filename="ok\u2713.pdf"')])
        return [b"pdf"]

    srv = serve(app)
    with caplog.at_level(logging.ERROR, logger="microweb.server"), srv.connect() as s:
        for _ in range(2):  # the connection stays usable
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert head.startswith(b"HTTP/1.1 500") and b"\xe2\x9c\x93" not in head
    assert "UnicodeEncodeError" in caplog.text
