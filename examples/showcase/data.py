"""The showcase's SQLite data: the tutorials' ``houses`` table, demo users and uploads.

Plain ``sqlite3`` (no ORM, see DESIGN.md): one short-lived connection per call, WAL mode, so
several threads and worker processes share the file safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS houses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    position TEXT NOT NULL,
    price INTEGER NOT NULL,
    score INTEGER NOT NULL DEFAULT 0,
    comments INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
"""

# The tutorials' sample listings (price per night, score, comment count, position).
_SAMPLE_HOUSES = [
    ("Kuanzhai Alley loft, 160 m², two metro lines", "Fengtai, Liuliqiao station", 398, 5, 6),
    ("Independent little villa", "Next to Wenjin Street", 280, 5, 128),
    ("Courtyard room near the Drum Tower", "Dongcheng, Gulou", 460, 4, 37),
]

DEMO_USERS = {"demo": "demo", "alice": "wonderland"}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Upload:
    """One stored upload (the bytes live in ``<data>/uploads/<id>``)."""

    id: str
    owner: str
    filename: str
    content_type: str
    size: int


class Database:
    """The tutorials' ``self.application.db``: small helpers over one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):  # worker processes start together: one creates, others wait
            try:
                self._create()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.02 + random.random() * 0.05)

    def _create(self) -> None:
        """Schema, sample houses and demo users, in one write transaction (idempotent)."""
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._fill(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()

    def _fill(self, conn: sqlite3.Connection) -> None:
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        if conn.execute("SELECT count(*) FROM houses").fetchone()[0] == 0:
            conn.executemany("INSERT INTO houses(title, position, price, score, comments)"
                             " VALUES (?, ?, ?, ?, ?)", _SAMPLE_HOUSES)
        for name, password in DEMO_USERS.items():
            if not conn.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
                salt = secrets.token_bytes(16)
                conn.execute("INSERT INTO users VALUES (?, ?, ?)",
                             (name, salt, _hash_password(password, salt)))

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one unit of work: committed on success, rolled back on error."""
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # -- houses (the tutorials' query / get / execute) --
    def houses(self, limit: int = 50) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute("SELECT * FROM houses ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()

    def house(self, house_id: int) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM houses WHERE id=?", (house_id,)).fetchone()
            return row

    def add_house(self, title: str, position: str, price: int, owner: str) -> int:
        with self.connect() as conn:
            cur = conn.execute("INSERT INTO houses(title, position, price, owner)"
                               " VALUES (?, ?, ?, ?)", (title, position, price, owner))
            return int(cur.lastrowid or 0)

    def iter_houses(self, batch: int = 200) -> Iterator[sqlite3.Row]:
        """Every house, fetched in batches: the streamed CSV export never holds the table."""
        with self.connect() as conn:
            cur = conn.execute("SELECT * FROM houses ORDER BY id")
            while rows := cur.fetchmany(batch):
                yield from rows

    # -- users --
    def check_password(self, name: str, password: str) -> bool:
        """Constant-time check; an unknown user costs the same scrypt as a known one."""
        with self.connect() as conn:
            row = conn.execute("SELECT salt, hash FROM users WHERE name=?", (name,)).fetchone()
        salt, expected = (row["salt"], row["hash"]) if row else (b"\0" * 16, b"")
        return hmac.compare_digest(_hash_password(password, salt), expected) and row is not None

    # -- uploads --
    def add_upload(self, upload: Upload) -> None:
        with self.connect() as conn:
            conn.execute("INSERT INTO uploads(id, owner, filename, content_type, size, created)"
                         " VALUES (?, ?, ?, ?, ?, ?)", (upload.id, upload.owner, upload.filename,
                                                        upload.content_type, upload.size,
                                                        time.time()))

    def uploads(self, owner: str) -> list[Upload]:
        with self.connect() as conn:
            rows = conn.execute("SELECT id, owner, filename, content_type, size FROM uploads"
                                " WHERE owner=? ORDER BY created DESC", (owner,)).fetchall()
        return [Upload(*row) for row in rows]

    def upload(self, upload_id: str) -> Upload | None:
        with self.connect() as conn:
            row = conn.execute("SELECT id, owner, filename, content_type, size FROM uploads"
                               " WHERE id=?", (upload_id,)).fetchone()
        return Upload(*row) if row else None


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
