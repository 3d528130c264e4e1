"""``SQLiteStore``: sessions in one SQLite file, shared by threads and worker processes.

WAL mode lets readers proceed while one writer commits; ``busy_timeout`` makes concurrent
writers from several processes wait their turn instead of failing. Expired rows are never
returned and are purged in small batches on a background thread, at most once per
``purge_interval``, so no request waits for a purge.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .base import Store, StoreUnavailable

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires);
"""
_PURGE_BATCH = 500


class SQLiteStore(Store):
    """Sessions in the SQLite file ``path`` (created with its table on first use).

    ``path`` may also be an SQLite URI (``file:/srv/sessions.db?mode=ro``...).
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = "sessions",
                 timeout: float = 5.0, purge_interval: float = 300.0, pool_size: int = 8) -> None:
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        self.path = str(path) if str(path).startswith("file:") else str(Path(path))
        self.table = table
        self.timeout = timeout
        self.purge_interval = purge_interval
        self._pool_size = pool_size
        self._lock = threading.Lock()
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._pid = os.getpid()
        self._schema_ready = False
        self._next_purge = time.monotonic() + purge_interval
        self._purging = False

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False, uri=self.path.startswith("file:"))
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        if not self._schema_ready:
            with self._lock:
                if not self._schema_ready:
                    self._create_schema(conn)
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # WAL is persistent in the file; on a read-only file the pragma just reports the mode.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA.format(table=self.table))
        self._schema_ready = True

    def _reset_after_fork(self) -> None:
        """A forked worker must not share the parent's connections: start a fresh pool."""
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._pool = queue.LifoQueue()
                    self._pid = os.getpid()
                    self._purging = False

    @contextlib.contextmanager
    def _connection(self, operation: str) -> Iterator[sqlite3.Connection]:
        self._reset_after_fork()
        conn = None
        try:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        except sqlite3.Error as exc:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                conn = None
            raise StoreUnavailable(self, operation, exc) from exc
        finally:
            if conn is not None:
                if self._pool.qsize() < self._pool_size:
                    self._pool.put(conn)
                else:
                    conn.close()

    # -- the Store contract ------------------------------------------------------------------

    def load(self, sid: str) -> tuple[bytes, float] | None:
        with self._connection("load") as conn:
            row = conn.execute(f"SELECT data, expires FROM {self.table} WHERE id = ?",
                               (sid,)).fetchone()
        self._maybe_purge()
        if row is None or row[1] <= time.time():
            return None
        return bytes(row[0]), float(row[1])

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        with self._connection("save") as conn:
            conn.execute(f"INSERT OR REPLACE INTO {self.table} (id, data, expires) "
                         "VALUES (?, ?, ?)", (sid, data, time.time() + ttl))
        self._maybe_purge()

    def delete(self, sid: str) -> None:
        with self._connection("delete") as conn:
            conn.execute(f"DELETE FROM {self.table} WHERE id = ?", (sid,))

    def touch(self, sid: str, ttl: int) -> None:
        with self._connection("touch") as conn:
            conn.execute(f"UPDATE {self.table} SET expires = ? WHERE id = ?",
                         (time.time() + ttl, sid))

    # -- purging -----------------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Delete expired rows in small batches (each a short write lock); returns the count."""
        removed = 0
        with self._connection("purge") as conn:
            while True:
                cur = conn.execute(
                    f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} "
                    "WHERE expires <= ? LIMIT ?)", (time.time(), _PURGE_BATCH))
                removed += cur.rowcount
                if cur.rowcount < _PURGE_BATCH:
                    return removed

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge or self._purging:
            return
        with self._lock:
            if self._purging or now < self._next_purge:
                return
            self._purging = True
            self._next_purge = now + self.purge_interval
        threading.Thread(target=self._purge_in_background, name="session-purge",
                         daemon=True).start()

    def _purge_in_background(self) -> None:
        try:
            self.purge_expired()
        except StoreUnavailable:
            pass  # the next request that needs the store reports it (503 + log)
        finally:
            self._purging = False

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return
