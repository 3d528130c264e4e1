"""``SQLiteStore``: sessions in one SQLite file, shared by threads and worker processes.

WAL mode lets readers proceed while one writer commits; ``busy_timeout`` makes concurrent
writers from several processes wait their turn instead of failing. Expired rows are never
returned and are purged in small batches on a background thread, at most once per
``purge_interval``, so no request waits for a purge.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
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


#: Bumped in every forked child: a connection opened in another generation is the parent's.
_GENERATION = [0]


def _next_generation() -> None:
    _GENERATION[0] += 1


os.register_at_fork(after_in_child=_next_generation)


def _after_fork_reset(store: SQLiteStore) -> None:
    """In a forked child, no purge thread of the parent is running (it did not survive)."""
    ref = weakref.ref(store)

    def reset() -> None:
        alive = ref()
        if alive is not None:
            alive._purging = False

    os.register_at_fork(after_in_child=reset)


class _Held:
    """One thread's connection (a weakly tracked holder, so ``close()`` reaches them all)."""

    __slots__ = ("__weakref__", "conn", "generation")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.generation = _GENERATION[0]


class SQLiteStore(Store):
    """Sessions in the SQLite file ``path`` (created with its table on first use).

    ``path`` may also be an SQLite URI (``file:/srv/sessions.db?mode=ro``...). Each thread
    uses its own connection (``pool_size`` is accepted for compatibility and unused).
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = "sessions",
                 timeout: float = 5.0, purge_interval: float = 300.0, pool_size: int = 8) -> None:
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        self.path = str(path) if str(path).startswith("file:") else str(Path(path))
        self.table = table
        self.timeout = timeout
        self.purge_interval = purge_interval
        self._lock = threading.Lock()
        # PERF: a connection per thread, found with one attribute lookup: a shared pool costs
        # two queue locks and a context manager per query (~6 µs of a ~10 µs read).
        self._local = threading.local()
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._schema_ready = False
        self._next_purge = time.monotonic() + purge_interval
        self._purging = False
        # resolved once: the statement text is also sqlite3's prepared-statement cache key
        self._select = f"SELECT data, expires FROM {table} WHERE id = ?"
        self._upsert = f"INSERT OR REPLACE INTO {table} (id, data, expires) VALUES (?, ?, ?)"
        self._delete = f"DELETE FROM {table} WHERE id = ?"
        self._touch = f"UPDATE {table} SET expires = ? WHERE id = ?"
        self._purge = (f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                       "WHERE expires <= ? LIMIT ?)")
        _after_fork_reset(self)

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

    def _conn(self, operation: str) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork or close)."""
        held: _Held | None = getattr(self._local, "held", None)
        # PERF: a fork is noticed by a generation number bumped in the child, not a getpid()
        # system call per query.
        if held is not None and held.conn is not None and held.generation == _GENERATION[0]:
            return held.conn
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise StoreUnavailable(self, operation, exc) from exc
        # A forked worker never reuses the parent's connection: it opens its own here.
        self._local.held = held = _Held(conn)
        with self._lock:
            self._held.add(held)
        return conn

    def _failed(self, operation: str, exc: sqlite3.Error) -> StoreUnavailable:
        """Drop this thread's (possibly broken) connection; the error to raise."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and held.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                held.conn.close()
            held.conn = None
        return StoreUnavailable(self, operation, exc)

    def _write(self, operation: str, sql: str, params: tuple[object, ...]) -> None:
        conn = self._conn(operation)
        try:
            conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._failed(operation, exc) from exc

    # -- the Store contract ------------------------------------------------------------------

    def load(self, sid: str) -> tuple[bytes, float] | None:
        conn = self._conn("load")
        try:
            row = conn.execute(self._select, (sid,)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed("load", exc) from exc
        self._maybe_purge()
        if row is None or row[1] <= time.time():
            return None
        return bytes(row[0]), float(row[1])

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        self._write("save", self._upsert, (sid, data, time.time() + ttl))
        self._maybe_purge()

    def delete(self, sid: str) -> None:
        self._write("delete", self._delete, (sid,))

    def touch(self, sid: str, ttl: int) -> None:
        self._write("touch", self._touch, (time.time() + ttl, sid))

    # -- purging -----------------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Delete expired rows in small batches (each a short write lock); returns the count."""
        removed = 0
        conn = self._conn("purge")
        try:
            while True:
                cur = conn.execute(self._purge, (time.time(), _PURGE_BATCH))
                removed += cur.rowcount
                if cur.rowcount < _PURGE_BATCH:
                    return removed
        except sqlite3.Error as exc:
            raise self._failed("purge", exc) from exc

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
        """Close every thread's connection (a thread that uses the store again reopens)."""
        with self._lock:
            held = list(self._held)
            self._held.clear()
        for one in held:
            conn, one.conn = one.conn, None
            if conn is not None and one.generation == _GENERATION[0]:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
