"""The store contract every server-side session store follows, and its one failure type."""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from typing import Any

from werkzeug.exceptions import ServiceUnavailable

__all__ = ["SESSION_ID_RE", "Store", "StoreUnavailable", "new_session_id"]

#: A session id: 32 bytes (256 bits) from :mod:`secrets`, URL-safe base64 without padding.
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_session_id() -> str:
    """A fresh, unguessable session id (256 bits from :mod:`secrets`)."""
    return secrets.token_urlsafe(32)


class StoreUnavailable(ServiceUnavailable):
    """The session store cannot be reached or written (answered as 503, logged with its name).

    It is a werkzeug ``ServiceUnavailable``, so frameworks that render HTTP exceptions (Flask)
    answer 503 even when the error is raised inside a view.
    """

    def __init__(self, store: object, operation: str, reason: BaseException | str) -> None:
        self.store_name = str(store)
        self.operation = operation
        self.reason = reason
        super().__init__(f"session store {self.store_name} failed to {operation}: {reason}",
                         retry_after=5)


class Store(ABC):
    """A server-side store of serialized sessions keyed by id, with expiry.

    Methods raise :class:`StoreUnavailable` when the backend is down or read-only; a missing
    or expired id is not an error (``load`` returns None). Saving replaces the whole session:
    of two concurrent writes to one session the last one wins.
    """

    #: True for stores that keep the whole session in the cookie (no ids, no server state).
    client_side = False

    @abstractmethod
    def load(self, sid: str) -> tuple[bytes, float] | None:
        """The stored bytes and their expiry time (epoch seconds), or None if absent/expired."""

    @abstractmethod
    def save(self, sid: str, data: bytes, ttl: int) -> None:
        """Store ``data`` under ``sid`` for ``ttl`` seconds (replacing any previous value)."""

    @abstractmethod
    def delete(self, sid: str) -> None:
        """Forget ``sid`` (no error if it is already gone)."""

    @abstractmethod
    def touch(self, sid: str, ttl: int) -> None:
        """Extend the life of ``sid`` to ``ttl`` seconds from now without rewriting it."""

    def check_environ(self, environ: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Called on every request before the session is used (cheap checks only)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def __str__(self) -> str:
        return repr(self)
