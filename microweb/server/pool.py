"""A fixed pool of worker threads fed through one C-implemented queue.

The event loop only ever hands work over (``submit``); the pool bounds how many requests run
the application at the same time (``--threads``). Idle connections are never in here.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["ThreadPool"]

log = logging.getLogger("microweb.server")


class ThreadPool:
    """``threads`` daemon threads running submitted callables in FIFO order."""

    def __init__(self, threads: int, name: str = "microweb-worker") -> None:
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        self._started = False
        # PERF: the bound put of a SimpleQueue is the whole cost of a hand-over
        self.submit: Callable[[Callable[[], object]], None] = self._queue.put

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def _work(self) -> None:
        get = self._queue.get
        while True:
            fn = get()
            if fn is None:
                return
            try:
                fn()
            except BaseException:  # a task must never kill its thread
                log.exception("unhandled error in a server task")

    def shutdown(self, timeout: float | None = None) -> bool:
        """Let queued work finish, then stop the threads; False if some outlived ``timeout``."""
        for _ in self._threads:
            self._queue.put(None)
        if not self._started:
            return True
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
