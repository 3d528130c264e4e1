"""The upgrade extension (environ["microweb.upgrade"]) with a tiny line-echo protocol."""

from __future__ import annotations

import gc
import socket
import struct
import threading
import time

import pytest

from microweb.server.connection import HTTPConnection

from .conftest import hello, read_response, read_until_close, wait_until


class Echo:
    """Echoes each chunk upper-cased; ``quit`` closes, ``later`` writes after a timer."""

    instances: list[Echo] = []

    def __init__(self):
        self.events = []
        self.transport = None
        self.lost = threading.Event()
        self.active = 0
        self.overlaps = 0
        Echo.instances.append(self)

    def _enter(self):
        self.active += 1
        if self.active > 1:
            self.overlaps += 1
        time.sleep(0.001)

    def connection_made(self, transport):
        self._enter()
        self.transport = transport
        self.events.append(("made", transport.get_extra_info("peername")[0]))
        self.active -= 1

    def data_received(self, data):
        self._enter()
        self.events.append(("data", data))
        if data.strip() == b"quit":
            self.transport.write(b"BYE\n")
            self.transport.close()
        elif data.strip() == b"later":
            handle = self.transport.call_later(0.05, lambda: self.transport.write(b"LATER\n"))
            self.transport.call_later(0.01, lambda: None)
            self.transport.call_later(0.02, lambda: None).cancel()
            assert handle is not None
        else:
            self.transport.write(data.upper())
        self.active -= 1

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set()


def upgrade_app(environ, start_response):
    if environ.get("HTTP_UPGRADE") == "echo":
        environ["microweb.upgrade"](Echo())
        if environ["PATH_INFO"] == "/refuse":
            start_response("403 Forbidden", [("Content-Length", "2")])
            return [b"no"]
        start_response("101 Switching Protocols", [("Upgrade", "echo"),
                                                   ("Connection", "Upgrade")])
        return []
    start_response("200 OK", [])
    return [b"plain"]


UPGRADE = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"


def _upgraded(srv, extra=b""):
    s = srv.connect()
    s.sendall(UPGRADE + extra)
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    assert b"Upgrade: echo" in head and b"Connection: Upgrade" in head
    return s, bytearray(rest)


@pytest.fixture(autouse=True)
def _fresh_echo_instances():
    Echo.instances.clear()


def _echoing(srv, message):
    """An upgraded connection that has echoed ``message`` once: (socket, buffer)."""
    s, buf = _upgraded(srv)
    s.sendall(message)
    _read_until(s, buf, message.upper())
    return s, buf


def _read_until(s, buf, needle):
    while needle not in buf:
        data = s.recv(4096)
        assert data, f"closed while waiting for {needle!r}; got {bytes(buf)!r}"
        buf += data
    return buf


def test_echo_protocol_round_trip_and_close(serve):
    srv = serve(upgrade_app)
    s, buf = _upgraded(srv, extra=b"early")  # bytes right after the head go to the protocol
    _read_until(s, buf, b"EARLY")
    s.sendall(b"hello")
    _read_until(s, buf, b"HELLO")
    s.sendall(b"later")
    _read_until(s, buf, b"LATER\n")
    s.sendall(b"quit")
    rest = read_until_close(s)
    assert b"BYE\n" in bytes(buf) + rest
    s.close()
    proto = Echo.instances[-1]
    assert proto.lost.wait(5)
    kinds = [e[0] for e in proto.events]
    assert kinds[0] == "made" and kinds[-1] == "lost" and kinds.count("lost") == 1
    assert ("data", b"early") in proto.events and proto.overlaps == 0
    assert wait_until(lambda: srv.server.connections == 0)


def test_peer_close_calls_connection_lost_once(serve):
    srv = serve(upgrade_app)
    s, buf = _echoing(srv, b"x")
    s.close()
    proto = Echo.instances[-1]
    assert proto.lost.wait(5)
    time.sleep(0.1)
    assert [e[0] for e in proto.events].count("lost") == 1


def test_many_idle_upgraded_connections_hold_no_thread(serve):
    srv = serve(upgrade_app, threads=2)
    conns = [_upgraded(srv) for _ in range(40)]
    for i, (s, _buf) in enumerate(conns):  # with a thread per connection this would deadlock
        s.sendall(b"m%d" % i)
    for i, (s, buf) in enumerate(conns):
        _read_until(s, buf, b"M%d" % i)
    plain = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert plain.endswith(b"plain")
    for s, _ in conns:
        s.close()
    assert wait_until(lambda: all(p.lost.is_set() for p in Echo.instances))


def test_ordered_dispatch_under_a_burst(serve):
    srv = serve(upgrade_app, threads=4)
    s, buf = _upgraded(srv)
    for i in range(50):
        s.sendall(b"<%d>" % i)
    _read_until(s, buf, b"<49>")
    assert bytes(buf) == b"".join(b"<%d>" % i for i in range(50))
    proto = Echo.instances[-1]
    assert proto.overlaps == 0
    s.close()


def test_upgrade_cancelled_when_status_is_not_101(serve):
    srv = serve(upgrade_app)
    with srv.connect() as s:
        s.sendall(UPGRADE.replace(b"GET / ", b"GET /refuse "))
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 403") and body == b"no"
        assert read_until_close(s) == b""  # what follows a refused Upgrade is not HTTP
    assert Echo.instances[-1].events == []


def test_server_stop_calls_connection_lost(serve):
    srv = serve(upgrade_app)
    s, buf = _echoing(srv, b"hi")
    srv.stop()
    proto = Echo.instances[-1]
    assert proto.lost.wait(5)
    assert [e[0] for e in proto.events].count("lost") == 1
    s.close()


def test_write_buffer_size_reports_unsent_bytes(serve):
    srv = serve(upgrade_app)
    s, buf = _echoing(srv, b"ping")
    transport = Echo.instances[-1].transport
    for _ in range(200):
        transport.write(b"z" * 65536)  # the client is not reading: it queues, never blocks
    assert transport.get_write_buffer_size() > 0
    assert not transport.is_closing()
    transport.abort()
    assert transport.is_closing()
    assert Echo.instances[-1].lost.wait(5)
    s.close()


class Polite(Echo):
    """An Echo that says goodbye when the server stops (the optional ``shutdown`` hook)."""

    def shutdown(self):
        self._enter()
        self.events.append(("shutdown", None))
        self.transport.write(b"GOODBYE\n")
        self.transport.close()
        self.active -= 1


def polite_app(environ, start_response):
    environ["microweb.upgrade"](Polite())
    start_response("101 Switching Protocols", [("Upgrade", "echo"), ("Connection", "Upgrade")])
    return []


def test_server_stop_calls_shutdown_before_closing(serve):
    srv = serve(polite_app)
    s, buf = _echoing(srv, b"hi")
    srv.stop()
    rest = read_until_close(s)  # the goodbye arrives before the close
    assert bytes(buf) + rest == b"HIGOODBYE\n"
    s.close()
    proto = Echo.instances[-1]
    assert proto.lost.wait(5)
    assert [e[0] for e in proto.events] == ["made", "data", "shutdown", "lost"]
    assert proto.overlaps == 0


def _lazy(app):
    """A PEP 3333 middleware that runs the app (hence start_response) on the first next()."""

    def middleware(environ, start_response):
        yield from app(environ, start_response)

    return middleware


def test_upgrade_through_a_middleware_calling_start_response_lazily(serve):
    srv = serve(_lazy(upgrade_app))
    s, buf = _upgraded(srv, extra=b"early")
    _read_until(s, buf, b"EARLY")
    s.sendall(b"quit")
    assert b"BYE\n" in bytes(buf) + read_until_close(s)
    s.close()
    # an ordinary response through the same middleware is unchanged (chunked: a generator)
    plain = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert plain.startswith(b"HTTP/1.1 200 OK") and plain.endswith(b"5\r\nplain\r\n0\r\n\r\n")


def test_lazy_app_that_never_calls_start_response_gets_500(serve):
    def silent(environ, start_response):
        yield b""

    srv = serve(silent)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 ")


def test_client_gone_before_the_101_still_gets_connection_lost(serve):
    client_gone = threading.Event()

    def app(environ, start_response):
        environ["microweb.upgrade"](Echo())
        client_gone.wait(5)
        time.sleep(0.2)  # let the reset arrive
        start_response("101 Switching Protocols", [("Upgrade", "echo"),
                                                   ("Connection", "Upgrade")])
        return []

    srv = serve(app)
    s = srv.connect()
    s.sendall(UPGRADE)
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # a reset: the 101 cannot be sent
    client_gone.set()
    proto = Echo.instances[-1]
    assert proto.lost.wait(5)
    assert [e[0] for e in proto.events] == ["lost"] and proto.events[0][1] is not None
    assert wait_until(lambda: srv.server.connections == 0)


def test_a_kept_environ_does_not_pin_the_http_connection(serve):
    """A handler keeps its environ (self.request) for the socket's life; the HTTP side (its
    parser and request objects, ~2 KiB) must still be freed after the switch."""
    kept = []

    def app(environ, start_response):
        kept.append(environ)
        return upgrade_app(environ, start_response)

    srv = serve(app)
    conns = [_upgraded(srv) for _ in range(10)]
    for s, buf in conns:
        s.sendall(b"x")
        _read_until(s, buf, b"X")
    gc.collect()
    http_side = [o for o in gc.get_objects()
                 if type(o) is HTTPConnection and o.server is srv.server]
    assert http_side == []
    assert all(environ["wsgi.input"].read() == b"" for environ in kept)
    for s, _ in conns:
        s.close()


def test_a_blocked_callback_does_not_hold_up_the_queued_ones(serve):
    """Protocol callbacks of different connections queued in one burst are spread over the
    idle pool threads: one slow on_message must not stall every other socket behind it."""
    srv = serve(hello, threads=4)
    release, ran = threading.Event(), threading.Event()
    srv.server.submit(lambda: release.wait(10))
    srv.server.submit(ran.set)
    try:
        assert ran.wait(5), "the second callback waited for the first one"
    finally:
        release.set()
