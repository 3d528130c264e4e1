"""``MemoryStore``: sessions in this process's memory, with expiry and an LRU size bound.

For tests and single-process demos: each worker process of gunicorn or uWSGI would hold its
own sessions, so the store logs a warning (once) when it sees a multi-process server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from .base import Store

__all__ = ["MemoryStore"]

log = logging.getLogger("middleware.sessions")


class MemoryStore(Store):
    """Thread-safe in-process store; the least recently used session goes past ``max_entries``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._warned = False

    def __repr__(self) -> str:
        return f"MemoryStore(max_entries={self.max_entries})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def load(self, sid: str) -> tuple[bytes, float] | None:
        with self._lock:
            item = self._data.get(sid)
            if item is None:
                return None
            if item[1] <= time.time():
                del self._data[sid]
                return None
            self._data.move_to_end(sid)
            return item

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        with self._lock:
            self._data[sid] = (data, time.time() + ttl)
            self._data.move_to_end(sid)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def delete(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)

    def touch(self, sid: str, ttl: int) -> None:
        with self._lock:
            item = self._data.get(sid)
            if item is not None:
                self._data[sid] = (item[0], time.time() + ttl)
                self._data.move_to_end(sid)

    def purge_expired(self) -> int:
        """Drop every expired session now; returns how many went."""
        now = time.time()
        with self._lock:
            dead = [sid for sid, (_, expires) in self._data.items() if expires <= now]
            for sid in dead:
                del self._data[sid]
        return len(dead)

    def check_environ(self, environ: dict[str, Any]) -> None:
        if not self._warned and environ.get("wsgi.multiprocess"):
            self._warned = True
            log.warning("MemoryStore is used by a multi-process server: every worker process "
                        "keeps its own sessions, so users will be logged out at random. Use "
                        "SQLiteStore or RedisStore.")
