"""What an idle WebSocket keeps: the pieces that make one cost under 3 KB in the server."""

from __future__ import annotations

import threading
import time
from typing import Any

from microweb.server.upgrade import ProtocolTimer, TimerWheel, Transport, UpgradedConnection

from .memory import Pair


class _Loop:
    """Stands in for the server: records the loop timers the wheel asks for."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_later(self, delay: float, fn: Any) -> None:
        self.timers.append((delay, fn))


class _Conn:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lost = False
        self.ran: list[Any] = []

    def _enqueue(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def _run_timer(self, handle: ProtocolTimer, callback: Any) -> None:
        if not handle.cancelled:
            self.ran.append(callback)


def test_timers_due_in_one_tick_share_one_loop_timer() -> None:
    loop: Any = _Loop()
    conn: Any = _Conn()
    wheel = TimerWheel()
    first = ProtocolTimer(conn, "first")
    second = ProtocolTimer(conn, "second")
    cancelled = ProtocolTimer(conn, "cancelled")
    for handle in (first, second, cancelled):
        wheel.add(loop, handle, 10.0)
    later = ProtocolTimer(conn, "later")
    wheel.add(loop, later, 20.0)
    assert len(loop.timers) == 2
    delay, fire = loop.timers[0]
    assert 10.0 <= delay <= 10.0 + 0.05  # never early, at most one tick late
    cancelled.cancel()
    fire()
    assert conn.ran == ["first", "second"]
    assert wheel.buckets and len(wheel.buckets) == 1


def test_the_connection_is_its_own_transport() -> None:
    assert issubclass(UpgradedConnection, Transport)
    assert len(UpgradedConnection.__slots__) <= 12  # one 128-byte block


def test_protocol_settings_are_shared_and_the_timer_is_the_protocol() -> None:
    a = Pair(ping_interval=30.0, ping_timeout=5.0).start()
    b = Pair(ping_interval=30.0, ping_timeout=5.0).start()
    assert a.proto.limits is b.proto.limits
    assert (a.proto.ping_interval, a.proto.ping_timeout) == (30.0, 5.0)
    (timer,) = a.transport.timers
    assert timer.callback is a.proto  # no bound method per socket


def test_keepalive_stops_once_the_close_begins() -> None:
    p = Pair(ping_interval=10.0, ping_timeout=3.0, close_timeout=2.0).start()
    p.transport.fire()  # a ping goes out; its answer is due in 3 s
    assert [t.delay for t in p.transport.timers] == [3.0]
    p.proto.close()  # the closing deadline replaces the ping's
    assert [t.delay for t in p.transport.timers if not t.cancelled] == [2.0]
    p.transport.fire()
    assert p.transport.aborted


def test_answered_pings_keep_the_socket_open() -> None:
    p = Pair(ping_interval=0.01, ping_timeout=5.0).start()
    for _ in range(3):
        p.transport.fire()  # ping
        p.client_events()
        time.sleep(0.001)
        p.client_send()  # pong
        p.transport.fire()  # answered: next ping planned
        assert not p.transport.closed


def test_negotiation_leftovers_are_shared() -> None:
    plain, compressed = Pair().start(), Pair(compress=True).start()
    assert plain.proto.ws.extensions == () and compressed.proto.ws.extensions
    assert plain.proto.ws.id is compressed.proto.ws.id
    compressed.client.send_text(b"still deflated " * 10)
    compressed.client_send()
    assert compressed.handler.messages == ["still deflated " * 10]
