"""Processes: one worker in-process, or a master that pre-forks and supervises workers.

Master signals: SIGTERM / SIGINT stop gracefully (workers finish in-flight requests within
``graceful_timeout``, then are killed); SIGHUP starts a fresh set of workers (re-importing the
app when it was given as ``module:attr``) and retires the old ones once the new ones are
ready, so no request is dropped; a worker that dies is replaced. A worker that fails before it
is ready (import error) stops the master instead of restarting in a tight loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .config import Config
from .loop import Server

__all__ = ["Master", "run_single"]

log = logging.getLogger("microweb.server")

AppLoader = Callable[[], Callable[..., Any]]
BOOT_ERROR = 3


def _install_stop_handlers(server: Server) -> None:
    def stop(signum: int, frame: Any) -> None:
        log.info("received %s: stopping gracefully", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run_single(loader: AppLoader, sock: socket.socket, config: Config,
               ssl_context: ssl.SSLContext | None) -> int:
    """Serve in this process until SIGTERM/SIGINT (the default for ``--workers 1``)."""
    server = Server(loader(), [sock], config, ssl_context=ssl_context)
    if threading.current_thread() is threading.main_thread():
        _install_stop_handlers(server)
        with contextlib.suppress(AttributeError):
            signal.signal(signal.SIGHUP, lambda *_: log.warning(
                "SIGHUP needs --workers 2 or more to reload; ignored"))
    server.run()
    return 0


class Master:
    """Pre-fork ``config.workers`` processes sharing ``sock`` and keep them alive."""

    def __init__(self, loader: AppLoader, sock: socket.socket, config: Config,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.loader = loader
        self.sock = sock
        self.config = config
        self.ssl_context = ssl_context
        self.workers: dict[int, int] = {}  # pid -> readiness pipe (read end, -1 once ready)
        self.retiring: dict[int, float] = {}  # pid -> kill deadline
        self._stop = False
        self._reload = False

    # -- master side ---------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        log.info("master %d starting %d workers", os.getpid(), self.config.workers)
        for _ in range(self.config.workers):
            self._spawn()
        code = 0
        while not self._stop:
            code = self._tick()
            if code:
                break
            time.sleep(0.1)
        self._shutdown()
        return code

    def _on_stop(self, signum: int, frame: Any) -> None:
        self._stop = True

    def _on_hup(self, signum: int, frame: Any) -> None:
        self._reload = True

    def _tick(self) -> int:
        for pid in list(self.workers):
            self._check_ready(pid)
        code = self._reap()
        if self._reload:
            self._reload = False
            self._replace_all()
        now = time.monotonic()
        for pid, deadline in list(self.retiring.items()):
            if now > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return code

    def _check_ready(self, pid: int) -> bool:
        fd = self.workers.get(pid, -1)
        if fd == -1:
            return True
        try:
            os.set_blocking(fd, False)
            ready = bool(os.read(fd, 1))
        except BlockingIOError:
            return False
        except OSError:
            ready = False
        if ready:
            os.close(fd)
            self.workers[pid] = -1
        return ready

    def _reap(self) -> int:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 0
            if pid == 0:
                return 0
            code = os.waitstatus_to_exitcode(status)
            if self.retiring.pop(pid, None) is not None:
                continue
            fd = self.workers.pop(pid, None)
            if fd is None:
                continue
            if fd != -1:
                os.close(fd)
                if not self._stop:
                    log.error("worker %d failed to boot (exit %s): stopping", pid, code)
                    return BOOT_ERROR
            if not self._stop:
                log.error("worker %d died (exit %s): starting a new one", pid, code)
                self._spawn()

    def _replace_all(self) -> None:
        """SIGHUP: start new workers, wait until they serve, then retire the old ones."""
        old = list(self.workers)
        log.info("SIGHUP: replacing %d workers", len(old))
        new = [self._spawn() for _ in range(self.config.workers)]
        deadline = time.monotonic() + max(30.0, self.config.graceful_timeout)
        while time.monotonic() < deadline and not all(
                self._check_ready(pid) for pid in new if pid in self.workers):
            self._reap()
            time.sleep(0.05)
        for pid in old:
            fd = self.workers.pop(pid, -1)
            if fd != -1:
                os.close(fd)
            self._retire(pid)

    def _retire(self, pid: int) -> None:
        self.retiring[pid] = time.monotonic() + self.config.graceful_timeout + 5.0
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def _shutdown(self) -> None:
        for pid in list(self.workers):
            self._retire(pid)
            fd = self.workers.pop(pid)
            if fd != -1:
                os.close(fd)
        while self.retiring:
            self._tick()
            with contextlib.suppress(ChildProcessError):
                while self.retiring:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    self.retiring.pop(pid, None)
            time.sleep(0.05)
        self.sock.close()
        log.info("master %d stopped", os.getpid())

    def _spawn(self) -> int:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_end)
            code = 1
            try:
                code = self._worker_main(write_end)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_end)
        self.workers[pid] = read_end
        return pid

    # -- worker side ---------------------------------------------------------------------

    def _worker_main(self, ready_fd: int) -> int:
        for sig in (signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the master too
        try:
            app = self.loader()
        except BaseException:
            traceback.print_exc()
            return BOOT_ERROR
        server = Server(app, [self.sock], self.config, ssl_context=self.ssl_context,
                        multiprocess=True)
        _install_stop_handlers(server)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        master = os.getppid()
        threading.Thread(target=_watch_master, args=(master, server), daemon=True).start()
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        log.info("worker %d serving", os.getpid())
        server.run()
        return 0


def _watch_master(master: int, server: Server) -> None:
    """Stop this worker if the master disappears (no orphaned workers)."""
    while not server.stopped.is_set():
        if os.getppid() != master:
            log.warning("master %d is gone: stopping", master)
            server.stop()
            return
        time.sleep(1.0)
