"""A gunicorn worker class running the bundled server's event loop (HTTP/1.1 + WebSocket).

    gunicorn -k microweb.server.gunicorn.Worker -w 4 --threads 8 app:application

gunicorn's arbiter keeps doing what it does — opens the listening sockets, forks, supervises,
restarts — and each worker process serves them with ``microweb.server.loop.Server``, the same
loop ``microweb serve`` uses, so applications get the bundled server's behaviour (keep-alive,
limits, timeouts, idle connections parked in epoll) and the ``microweb.upgrade`` extension that
WebSocket handlers need. The worker keeps gunicorn's contract: it heartbeats (``notify``) for
``--timeout``, stops gracefully on TERM within ``--graceful-timeout``, quickly on QUIT/INT,
honours ``--max-requests`` (+ jitter), the reloader and the parent-death check.

This is the only module of the project that imports gunicorn.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from gunicorn.workers.base import Worker as _GunicornWorker

from .config import Config
from .loop import Server

__all__ = ["Worker", "server_config"]

_TICK = 1.0  # seconds between heartbeats and liveness checks


# gunicorn's own bounds for its request limits (gunicorn/http/message.py)
_MAX_REQUEST_LINE = 8190
_UNLIMITED_REQUEST_LINE = 1024 * 1024  # what gunicorn enforces for limit_request_line = 0
_MAX_HEADERS = 32768
_DEFAULT_FIELD_SIZE = 8190


def server_config(cfg: Any) -> Config:
    """Translate gunicorn's settings into the bundled server's ``Config``."""
    options: dict[str, Any] = {
        "threads": max(1, int(cfg.threads)),
        "graceful_timeout": float(cfg.graceful_timeout),
        "keepalive_timeout": float(cfg.keepalive),
        "max_connections": max(1, int(cfg.worker_connections)),
    }
    options.update(_request_limits(cfg))
    return Config(**options)


def _request_limits(cfg: Any) -> dict[str, int]:
    """gunicorn's ``limit_request_*`` settings as the server's limits, with gunicorn's reading
    of 0 and out-of-range values, so a request gunicorn refuses is refused here too."""
    line = int(cfg.limit_request_line)
    if line == 0:  # "unlimited" in gunicorn, which still stops at 1 MiB
        line = _UNLIMITED_REQUEST_LINE
    elif line < 0 or line > _MAX_REQUEST_LINE:
        line = _MAX_REQUEST_LINE
    fields = int(cfg.limit_request_fields)
    if fields <= 0 or fields > _MAX_HEADERS:
        fields = _MAX_HEADERS
    field_size = int(cfg.limit_request_field_size)
    if field_size <= 0:
        field_size = _DEFAULT_FIELD_SIZE
    head_size = max(int(Config().max_header_size), field_size)  # one allowed field must fit
    return {"max_request_line": line, "max_header_count": fields,
            "max_header_field_size": field_size, "max_header_size": head_size}


class Worker(_GunicornWorker):  # type: ignore[misc]
    """gunicorn worker serving the WSGI app on microweb's event loop."""

    server: Server | None = None

    def run(self) -> None:
        """Serve the arbiter's sockets until stopped, heartbeating meanwhile."""
        ssl_context = None
        if self.cfg.is_ssl:
            from gunicorn.sock import ssl_context as _ssl_context

            ssl_context = _ssl_context(self.cfg)
        sockets = [getattr(s, "sock", s) for s in self.sockets]
        self.server = Server(self._counting(self.wsgi), sockets, server_config(self.cfg),
                             ssl_context=ssl_context, multiprocess=self.cfg.workers > 1)
        self.server.call_later(0, self._tick)
        self.log.info("microweb worker serving with %d threads", self.server.config.threads)
        self.server.run()

    def _counting(self, app: Callable[..., Any]) -> Callable[..., Iterable[bytes]]:
        """Wrap the app to count requests for ``--max-requests``."""
        count_lock = threading.Lock()
        restarting = False

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
            nonlocal restarting
            with count_lock:  # requests run on several threads: count and decide once
                self.nr += 1
                restart = self.nr >= self.max_requests and not restarting
                restarting = restarting or restart
            if restart:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
                self._stop(graceful=True)
            result: Iterable[bytes] = app(environ, start_response)
            return result

        return counted

    def _tick(self) -> None:
        """On the loop thread every second: heartbeat, then check why we might have to stop."""
        server = self.server
        if server is None:
            return
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
        if not self.alive:
            self._stop(graceful=True)
        self.notify()
        server.call_later(_TICK, self._tick)

    def _stop(self, graceful: bool) -> None:
        if self.server is not None:
            self.server.stop(graceful=graceful,
                             timeout=float(self.cfg.graceful_timeout) if graceful else 0.0)

    # -- signals (gunicorn installs these in init_signals) -----------------------------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """TERM: stop accepting, let requests finish within the graceful timeout."""
        self.alive = False
        self._stop(graceful=True)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """QUIT/INT: stop now (in-flight requests are cut off)."""
        self.alive = False
        self.cfg.worker_int(self)
        self._stop(graceful=False)

    def init_signals(self) -> None:
        super().init_signals()
        # The loop wakes itself; gunicorn's wakeup pipe is never read by this worker.
        if hasattr(signal, "set_wakeup_fd"):
            signal.set_wakeup_fd(-1)
