"""The selectors-based poller (non-Linux systems) runs the same server behaviour as epoll."""

from __future__ import annotations

from microweb.server.poller import SelectorPoller

from .conftest import echo_environ, hello, read_response, read_until_close, wait_until
from .test_upgrade import _read_until, _upgraded, upgrade_app


def test_keep_alive_pipelining_and_bodies_on_selectors(serve):
    srv = serve(echo_environ, poller=SelectorPoller())
    with srv.connect() as s:
        buf = bytearray()
        for i in range(3):
            s.sendall(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" % i)
            head, body = read_response(s, buf)
            assert head.startswith(b"HTTP/1.1 200") and b"BODY=b'hi'" in body
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = bytes(buf) + read_until_close(s)
    assert data.count(b"HTTP/1.1 200") == 2


def test_idle_timeout_and_upgrade_on_selectors(serve):
    srv = serve(hello, keepalive_timeout=0.3, poller=SelectorPoller())
    with srv.connect(timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[1] == b"Hello, world!"
        assert read_until_close(s) == b""
    up = serve(upgrade_app, poller=SelectorPoller())
    s, buf = _upgraded(up)
    s.sendall(b"abc")
    _read_until(s, buf, b"ABC")
    s.close()
    assert wait_until(lambda: up.server.connections == 0)
