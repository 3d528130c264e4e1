"""Which pool threads run requests: one for fast ones, more as soon as the app blocks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from microweb.server import leaders as sched
from microweb.server.leaders import Leader, Leaders
from tests.support import PYTHON, http_get, spawn

from .conftest import read_response


def _hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_requests_that_block_run_side_by_side(serve):
    # Four requests that can only finish once all four are in the app at the same time:
    # with one thread per blocked request they pass the barrier, serialised they time out.
    barrier = threading.Barrier(4, timeout=10)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/wait":
            barrier.wait()
        return _hello(environ, start_response)

    running = serve(app, threads=4)

    def get() -> bytes:
        with running.connect(15) as s:
            s.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
            return read_response(s)[0].split(b"\r\n")[0]

    with ThreadPoolExecutor(4) as pool:
        heads = list(pool.map(lambda _: get(), range(4)))
    assert heads == [b"HTTP/1.1 200 OK"] * 4
    assert not barrier.broken


def test_a_cpu_bound_request_does_not_hold_up_the_others(serve):
    # /spin keeps its thread busy in Python code until a later request arrives; that request
    # must be served meanwhile by another thread, or /spin gives up after 10 s.
    arrived = threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/spin":
            deadline = time.monotonic() + 10
            while not arrived.is_set() and time.monotonic() < deadline:
                sum(range(1000))
            start_response("200 OK", [])
            return [b"released" if arrived.is_set() else b"starved"]
        arrived.set()
        return _hello(environ, start_response)

    running = serve(app, threads=4)
    with running.connect(15) as spin:
        spin.sendall(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        with running.connect(15) as fast:
            fast.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(fast)[1] == b"hello"
        assert read_response(spin)[1] == b"released"


def test_a_burst_of_connections_is_served_while_the_app_blocks(serve):
    # 64 clients connect at once to an app that sleeps: the connections accepted together
    # are handed to the pollers, so none waits behind the first one's thread for good.
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        time.sleep(0.05)
        return _hello(environ, start_response)

    running = serve(app, threads=8)
    socks = [running.connect(15) for _ in range(64)]
    try:
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [read_response(s)[1] for s in socks] == [b"hello"] * 64
    finally:
        for s in socks:
            s.close()


def test_fast_requests_stay_on_one_thread(port):
    # Sixteen busy keep-alive clients of a fast app on a real server process with eight
    # threads: the requests are not spread over the threads (which would make them queue for
    # the GIL), nearly all run on one of them.
    argv = [PYTHON, "-m", "microweb.server", "tests.server.apps:threads", "--port", str(port),
            "--threads", "8"]
    with spawn(argv, port=port):
        def client(_: int) -> None:
            with socket.create_connection(("127.0.0.1", port), 15) as s:
                buf = bytearray()
                for _ in range(200):
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert read_response(s, buf)[1] == b"hello"

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(client, range(16)))
        counts = [int(n) for n in http_get(port, "/threads")[1].split()]
    assert sum(counts) == 16 * 200
    assert counts[0] >= 0.8 * sum(counts), counts


# -- the rules, on a clock and scheduler statistics set by hand -------------------------


class _Scene:
    """Leaders whose state, clock and thread states (running or sleeping) the test sets."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        self.cpu = 0.0
        self.running: dict[int, bool] = {}
        monkeypatch.setattr(sched, "_clock", lambda: self.now)
        monkeypatch.setattr(sched, "_cpu_clock", lambda: self.cpu)
        monkeypatch.setattr(sched, "_running", lambda tid: self.running.get(tid, False))
        monkeypatch.setattr(sched, "_others_running", lambda exclude: any(
            running for tid, running in self.running.items() if tid not in exclude))
        monkeypatch.setattr(sched, "_HAVE_PROC", True)
        self.group = Leaders()
        self.watcher = Leader()
        self.watcher.tid = 100

    def leader(self, state: str, seconds: float = 0.0, running: bool = False) -> Leader:
        """A leader "busy" on one event for ``seconds`` (running in it, or sleeping), or
        "polling" for that long."""
        leader = Leader()
        leader.tid = len(self.group.current) + 1
        self.running[leader.tid] = running
        began = self.now - seconds
        leader.since = began if state == "busy" else -began
        self.group.current = (*self.group.current, leader)
        return leader

    def looks(self) -> str | None:
        return self.group._verdict(self.watcher)


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch) -> _Scene:
    return _Scene(monkeypatch)


def test_the_first_thread_leads(scene):
    assert scene.looks() is None


def test_nobody_joins_while_a_leader_is_free(scene):
    scene.leader("polling")
    scene.leader("busy", 1.0)  # one stuck, one free: still enough
    assert scene.looks() == "free"


def test_nobody_joins_a_leader_on_a_quick_event(scene):
    scene.leader("busy", sched.BUSY / 2)
    assert scene.looks() == "quick"  # look again in a while


def test_a_follower_joins_a_leader_that_sleeps_in_the_app(scene):
    scene.leader("busy", sched.BUSY * 1.1)  # waits on a database, say
    assert scene.looks() is None


def test_nobody_joins_a_leader_that_runs(scene):
    # running, or runnable and waiting for a CPU another program holds: no help in threads
    scene.leader("busy", sched.BUSY * 1.1, running=True)
    assert scene.looks() == "busy"


def test_nobody_joins_a_leader_that_waits_for_the_gil(scene):
    # the leader sleeps while another thread of the process runs: it holds the GIL
    scene.leader("busy", sched.BUSY * 1.1)
    scene.running[50] = True
    assert scene.looks() == "busy"


def test_a_follower_joins_a_leader_computing_for_long(scene):
    scene.leader("busy", sched.STALL * 1.1, running=True)
    assert scene.looks() is None  # one long request must not hold up the rest


def test_a_follower_joins_when_every_leader_is_stuck_or_waits(scene):
    scene.leader("busy", sched.STALL * 1.1, running=True)
    scene.leader("busy", sched.BUSY * 1.1)
    assert scene.looks() is None
    scene.leader("busy", sched.BUSY * 1.1, running=True)  # but this one is computing
    assert scene.looks() == "busy"


def test_without_proc_the_process_cpu_time_decides(scene, monkeypatch):
    monkeypatch.setattr(sched, "_HAVE_PROC", False)
    scene.leader("busy", sched.BUSY * 1.1)
    scene.group._cpu_share(scene.now)
    scene.now += sched.CHECK
    scene.cpu += 0.9 * sched.CHECK  # the process used 90 % of a CPU: no company
    assert scene.looks() == "busy"
    scene.now += sched.CHECK
    scene.cpu += 0.1 * sched.CHECK  # 10 %: the leader waits on something
    assert scene.looks() is None


@pytest.mark.parametrize(("other", "seconds", "took", "leaves"), [
    (None, 0.0, 0.0, False),  # the only leader stays
    ("polling", 0.0, 0.0, True),  # another one is free to poll
    ("busy", sched.BUSY / 2, 0.0, True),  # another one is on quick events too
    ("busy", sched.BUSY * 2, 0.0, False),  # the other may be blocked: keep two
    ("polling", 0.0, sched.BUSY, False),  # this one's event was long: the app may need it
])
def test_when_a_leader_steps_down(scene, other, seconds, took, leaves):
    me = scene.leader("busy", took)
    if other:
        scene.leader(other, seconds)
    assert scene.group.step_down(me, took) is leaves
    assert (me in scene.group.current) is not leaves
    assert scene.group.current


def test_proc_tells_sleeping_from_running_threads():
    # The real /proc states of two real threads: one sleeps, one spins.
    stop = threading.Event()
    ids: dict[str, int] = {}

    def sleeper() -> None:
        ids["sleeper"] = threading.get_native_id()
        stop.wait(5)

    def spinner() -> None:
        ids["spinner"] = threading.get_native_id()
        while not stop.is_set():
            sum(range(100))

    threads = [threading.Thread(target=sleeper), threading.Thread(target=spinner)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        seen = {name: [sched._running(tid) for _ in range(50)] for name, tid in ids.items()}
        me = {threading.get_native_id()}
        spinner_seen = any(sched._others_running(me) for _ in range(50))
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert not any(seen["sleeper"])
    assert any(seen["spinner"])  # runnable at least some of the time it was looked at
    assert spinner_seen


def test_followers_are_released_when_the_server_exits():
    group = Leaders()
    free = Leader()
    free.since = -time.monotonic()
    group.current = (free,)  # a free leader: nobody joins
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(group.follow(Leader())))
               for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.05)
    group.close()
    for waiter in waiters:
        waiter.join(5)
    assert results == [False, False, False]
