"""The event loop of one worker process: leader/follower threads over one epoll.

Theory of operation. Pool threads (``--threads``) poll the same epoll instance
(``poller.py`` has a ``selectors`` stand-in for other systems) and take one ready event at a
time. Connections are registered EPOLLONESHOT: the thread that receives a connection's event
owns it alone — it reads, parses, runs the app, writes, serves pipelined requests in order —
and re-arms it (``epoll.modify`` is thread-safe in the kernel), after which any thread may get
its next event. So a request costs no hand-over between threads, and an idle connection is
only an epoll entry and a small object: it holds no thread.

Not every pool thread polls at once: ``leaders.py`` keeps one *leader* polling while requests
are quick (no GIL hand-offs between threads, so no tail latency from them) and lets another
thread join as soon as every leader is blocked in the application or stuck on one long
request; the extra leaders step down again once requests are quick.

The thread that called ``run()`` coordinates: it runs timers (``call_later``), sweeps parked
connections past their deadline (header timeout for slow clients, keep-alive timeout when
idle) once a second, and performs the graceful stop. ``submit()`` queues small tasks for the
pollers (upgraded connections use it to run protocol callbacks on pool threads).

``Server`` is also the internal API for other front-ends (the gunicorn worker class): give it
an app and listening sockets, call ``run()`` and ``stop()`` from anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .config import Config
from .connection import HTTPConnection
from .environ import base_environ
from .leaders import Leader, Leaders
from .poller import IN, ONESHOT, make_poller
from .pool import ThreadPool
from .task import FileWrapper
from .timers import TimerHandle
from .upgrade import TimerWheel, UpgradedConnection

__all__ = ["Server", "TimerHandle"]

log = logging.getLogger("microweb.server")

_ARMED = IN | ONESHOT
_SWEEP_EVERY = 1.0
_ACCEPT_BATCH = 64
# seconds a connection that has sent nothing keeps after a graceful stop begins
_FRESH_GRACE = 1.0


class _Listener:
    __slots__ = ("sock", "base", "tcp", "busy", "events")

    def __init__(self, sock: socket.socket, base: dict[str, Any], tcp: bool) -> None:
        self.sock = sock
        self.base = base
        self.tcp = tcp
        self.busy = False  # the last accept batch found more than one connection
        self.events = 0


class Server:
    """Serve ``app`` on already bound and listening ``sockets`` until ``stop()``."""

    def __init__(self, app: Callable[..., Any], sockets: Sequence[socket.socket],
                 config: Config | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 multiprocess: bool = False, poller: Any = None) -> None:
        self.app = app
        self.config = config or Config()
        self.ssl_context = ssl_context
        self.keep_alive = self.config.keepalive_timeout > 0
        self.script_name = self.config.script_name.rstrip("/")
        self.server_header = self.config.server_header
        self.access_log = self.config.access_log
        self.draining = False
        self.epoll = poller if poller is not None else make_poller()
        self.pool = ThreadPool(self.config.threads, self._poll_forever)
        self._listeners = {s.fileno(): self._listener(s, multiprocess) for s in sockets}
        self._conns: dict[int, HTTPConnection | UpgradedConnection] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._tasks: deque[Callable[[], Any]] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._kick = threading.Event()  # wakes the coordinator (timers, stop)
        self._leaders = Leaders()  # which pool threads poll (leaders.py)
        self.protocol_timers = TimerWheel()  # upgraded connections' timers, in shared ticks
        self._accepting = False
        self._exiting = False
        self._stop_at: float | None = None
        self._stop_requested: float | None = None
        self.stopped = threading.Event()

    def _listener(self, sock: socket.socket, multiprocess: bool) -> _Listener:
        sock.setblocking(False)
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        if tcp:
            host, port = sock.getsockname()[:2]
        else:
            host, port = "localhost", ""
        scheme = "https" if self.ssl_context is not None else "http"
        base = base_environ(str(host), str(port), scheme, multiprocess, FileWrapper)
        return _Listener(sock, base, tcp)

    # -- public control ------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Open connections right now (HTTP and upgraded)."""
        return len(self._conns)

    def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop accepting; finish in-flight work within ``timeout`` (graceful_timeout)."""
        wait = self.config.graceful_timeout if timeout is None else timeout
        self._stop_requested = 0.0 if not graceful else wait
        self._kick.set()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        """Run ``fn`` on the coordinating thread after ``delay`` seconds (thread-safe)."""
        return self.schedule(TimerHandle(time.monotonic() + max(0.0, delay), fn))

    def schedule(self, handle: TimerHandle) -> TimerHandle:
        """Add ``handle`` to the timers; it fires at ``handle.when`` (thread-safe)."""
        with self._lock:
            heapq.heappush(self._timers, (handle.when, next(self._seq), handle))
            first = self._timers[0][2] is handle
        if first:
            self._kick.set()
        return handle

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` soon on a pool thread (thread-safe, never blocks)."""
        self._tasks.append(fn)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    # -- services for connections (any thread) -------------------------------------------

    def park(self, conn: HTTPConnection, deadline: float) -> None:
        """Give ``conn`` back to the pollers until it is readable or ``deadline`` passes."""
        with self._lock:
            if conn.closed:
                return
            conn.deadline = deadline
            conn.parked = True
            try:
                if conn.registered:
                    self.epoll.modify(conn.fd, _ARMED)
                else:  # PERF: registered only once it waits (many are served at once)
                    self.epoll.register(conn.fd, _ARMED)
                    conn.registered = True
            except (OSError, ValueError):  # the loop is gone (forced shutdown)
                conn.parked = False

    def forget(self, fd: int) -> None:
        """Drop a connection that is being closed by its owner."""
        with self._lock:
            conn = self._conns.pop(fd, None)
            if conn is None:
                return
            if conn.__class__ is not HTTPConnection or conn.registered:
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.unregister(fd)
            if not self._accepting and self._stop_requested is None:
                self._resume_accepting()

    def upgrade_connection(self, conn: HTTPConnection, protocol: Any, leftover: bytes) -> None:
        """Replace ``conn`` by an ``UpgradedConnection`` driven by ``protocol``."""
        upgraded = UpgradedConnection(self, conn.sock, conn.remote, protocol)
        with self._lock:
            conn.closed = True  # the HTTP side must never close this socket now
            self._conns[conn.fd] = upgraded
            if not conn.registered:  # the upgraded side only ever modifies its registration
                self.epoll.register(conn.fd, ONESHOT)
        upgraded.start(leftover)

    # -- running -------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until ``stop()``; returns once every connection is closed or timed out."""
        self.epoll.register(self._wake_r, IN)
        with self._lock:
            self._resume_accepting()
        self.pool.start()
        next_sweep = time.monotonic() + _SWEEP_EVERY
        try:
            while self._stop_at is None or (self._conns and time.monotonic() < self._stop_at):
                self._kick.wait(self._coordinator_timeout(next_sweep))
                self._kick.clear()
                now = time.monotonic()
                self._run_timers(now)
                if self._stop_requested is not None and self._stop_at is None:
                    self._begin_shutdown(now)
                if now >= next_sweep:
                    next_sweep = now + _SWEEP_EVERY
                    self._sweep(now)
        finally:
            self._teardown()

    def _coordinator_timeout(self, next_sweep: float) -> float:
        now = time.monotonic()
        timeout = max(0.0, next_sweep - now)
        if self._stop_at is not None:
            timeout = min(timeout, 0.05)
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - now))
        return timeout

    def _poll_forever(self) -> None:
        """One pool thread: lead (poll and handle events) while needed, else follow."""
        me = Leader()
        while not self._exiting and self._leaders.follow(me):
            self._lead(me)

    def _lead(self, me: Leader) -> None:
        """Take one ready event at a time and handle it right here, until told to step down."""
        poll, conns, wake, lock = self.epoll.poll, self._conns, self._wake_r, self._lock
        monotonic, leaders = time.monotonic, self._leaders
        while not self._exiting:
            me.since = -monotonic()
            try:
                events = poll(None, 1)  # PERF: one event per thread keeps slow apps isolated
            except InterruptedError:
                continue
            except (OSError, ValueError):  # the poller was closed: the server is gone
                return
            start = me.since = monotonic()
            for fd, mask in events:
                conn = conns.get(fd)
                if conn is not None:
                    if conn.__class__ is HTTPConnection:
                        with lock:  # the sweeper may be claiming it at this very moment
                            claimed = conn.parked
                            conn.parked = False
                        if claimed:
                            conn.on_readable()
                    else:
                        conn.on_event(mask)  # type: ignore[union-attr]
                    conn = None  # an idle thread must not keep the last connection alive
                elif fd == wake:
                    self._run_tasks()
                elif fd in self._listeners:
                    self._accept(self._listeners[fd])
            if leaders.step_down(me, monotonic() - start):
                return

    def _run_tasks(self) -> None:
        if self._exiting:  # leave the pipe readable so every poller sees the exit
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._wake_r, 4096)
        tasks = self._tasks
        while True:
            try:
                fn = tasks.popleft()
            except IndexError:
                return
            if tasks:  # wake an idle poller for the rest: fn may block (a slow on_message)
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._wake_w, b"\0")
            try:
                fn()
            except Exception:
                log.exception("error in a server task")

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            with self._lock:
                _, _, handle = heapq.heappop(timers)
            if not handle.cancelled:
                try:
                    handle.fire()
                except Exception:
                    log.exception("error in a timer callback")

    # -- accepting -----------------------------------------------------------------------

    def _accept(self, listener: _Listener) -> None:
        """Accept a connection and serve it right here: a client sends its request with the
        connection, so it is usually readable already (PERF: no epoll round trip for it).
        While connections arrive in bursts, accept the rest of the burst too and hand it to
        the pollers, so one slow request never holds up the connections accepted with it."""
        conn = None
        more: list[HTTPConnection] = []
        try:
            conn = self._accept_one(listener)
            listener.events += 1
            # Look for more only while the last look found some, or every 8th time: at low
            # rates that look is a failing accept() per connection (PERF: ~5 % at c=1).
            if conn is not None and (listener.busy or not listener.events % 8):
                for _ in range(_ACCEPT_BATCH - 1):
                    other = self._accept_one(listener)
                    if other is None:
                        break
                    more.append(other)
                listener.busy = bool(more)
        finally:
            with self._lock:
                if self._accepting:
                    self._arm_listener(listener)
            for other in more:
                other.wait_for_request()
        if conn is not None:
            conn.on_readable()  # reads and serves it, or parks it until readable

    def _accept_one(self, listener: _Listener) -> HTTPConnection | None:
        max_conns = self.config.max_connections
        if len(self._conns) >= max_conns:
            with self._lock:
                # Check again under the lock: a forget() between the first check and the
                # flag change would otherwise leave accepting paused for good.
                if len(self._conns) >= max_conns:
                    log.warning("max_connections (%d) reached: pausing accept", max_conns)
                    self._accepting = False  # forget() re-arms when a slot frees
                    return None
        try:
            sock, addr = listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.error("accept failed (%s): pausing accept for 0.5 s", exc)
                with self._lock:
                    self._accepting = False
                self.call_later(0.5, self._resume_locked)
            return None
        return self._add(listener, sock, addr, time.monotonic() + self.config.header_timeout)

    def _add(self, listener: _Listener, sock: socket.socket, addr: Any,
             deadline: float) -> HTTPConnection | None:
        """Take in a new connection, owned by the calling thread (not parked, not polled)."""
        sock.setblocking(False)
        if listener.tcp:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            remote = (addr[0], str(addr[1]))
        else:
            remote = ("", "")
        tls = self.ssl_context is not None
        if tls:
            try:
                sock = self.ssl_context.wrap_socket(  # type: ignore[union-attr]
                    sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                sock.close()
                return None
        conn = HTTPConnection(self, sock, remote, listener.base, tls)
        conn.deadline = deadline
        conn.parked = False
        with self._lock:
            self._conns[conn.fd] = conn  # registered with epoll by park() once it waits
        return conn

    def _arm_listener(self, listener: _Listener) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.epoll.modify(listener.sock.fileno(), _ARMED)

    def _resume_locked(self) -> None:
        with self._lock:
            self._resume_accepting()

    def _resume_accepting(self) -> None:
        """Arm the listeners again (lock held) unless stopping or still full."""
        if self._accepting or self._stop_requested is not None:
            return
        if len(self._conns) >= self.config.max_connections:
            return
        self._accepting = True
        for fd, listener in self._listeners.items():
            try:
                self.epoll.register(fd, _ARMED)
            except (FileExistsError, OSError):
                self._arm_listener(listener)  # registered before: re-arm the one-shot

    # -- deadlines and shutdown ----------------------------------------------------------

    def _sweep(self, now: float) -> None:
        """Close parked connections whose header or keep-alive deadline has passed."""
        expired: list[HTTPConnection] = []
        with self._lock:
            for conn in self._conns.values():
                if conn.__class__ is HTTPConnection and conn.parked and conn.deadline <= now:
                    conn.parked = False
                    expired.append(conn)
        for conn in expired:
            conn.timed_out()

    def _begin_shutdown(self, now: float) -> None:
        """Stop accepting, close idle connections, let in-flight requests finish."""
        self._stop_at = now + (self._stop_requested or 0.0)
        with self._lock:
            self._accepting = False
            for fd, listener in self._listeners.items():
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.unregister(fd)
                listener.sock.close()
            self.draining = True
            self.keep_alive = False
            conns = list(self._conns.values())
            # Idle keep-alive connections go now. A fresh one that sent nothing yet may be a
            # browser's preconnect or a client whose first request is still in flight: it
            # gets a short grace instead of its whole header timeout (the sweep closes it).
            idle = []
            grace = now + _FRESH_GRACE
            for c in conns:
                if not (isinstance(c, HTTPConnection) and c.parked) or c.parser.in_head():
                    continue
                if c.served:
                    c.parked = False
                    idle.append(c)
                elif c.deadline > grace:
                    c.deadline = grace
        for conn in idle:
            conn.close()
        for other in conns:
            if isinstance(other, UpgradedConnection):
                other.shutdown()
        log.info("shutting down: %d connection(s) still open", len(self._conns))

    def _teardown(self) -> None:
        with self._lock:
            leftovers = list(self._conns.values())
        for conn in leftovers:
            if isinstance(conn, UpgradedConnection):
                conn.abort(None)
            else:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)  # unblock an owner stuck on I/O
                if conn.parked:
                    conn.parked = False
                    conn.close()
        self._run_pending_tasks()
        self._exiting = True
        self._leaders.close()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")  # level-triggered: every poller wakes and exits
        self.pool.join(timeout=1.0 + max(0.0, (self._stop_at or 0.0) - time.monotonic()))
        for listener in self._listeners.values():
            listener.sock.close()
        with contextlib.suppress(OSError):
            self.epoll.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stopped.set()

    def _run_pending_tasks(self) -> None:
        """Let queued protocol callbacks (connection_lost) run before the pollers exit."""
        deadline = time.monotonic() + 2.0
        while self._tasks and time.monotonic() < deadline:
            time.sleep(0.01)

