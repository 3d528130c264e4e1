"""The bounded set of worker threads of one process (``--threads``).

Each thread runs the server's poll loop (leader/follower, see ``leaders.py``): it waits for a
ready connection, then reads, runs the WSGI application and writes on that same thread. The
number of threads bounds how many requests run the application at once; idle connections
use none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["ThreadPool"]

log = logging.getLogger("microweb.server")


class ThreadPool:
    """``threads`` daemon threads all running ``target`` until it returns."""

    def __init__(self, threads: int, target: Callable[[], None],
                 name: str = "microweb-worker") -> None:
        self._target = target
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        self._started = False

    def _run(self) -> None:
        try:
            self._target()
        except BaseException:  # pragma: no cover - the target catches what it expects
            log.exception("server thread crashed")

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to finish; False if some outlived ``timeout``."""
        if not self._started:
            return True
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
