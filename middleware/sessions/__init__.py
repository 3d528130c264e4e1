"""Sessions for any WSGI app: :class:`SessionMiddleware` and its stores.

``environ["microweb.session"]`` is a lazily loaded, dict-like :class:`Session`. Stores:
:class:`MemoryStore` (tests, one process), :class:`SQLiteStore` (a file shared by threads and
processes), :class:`RedisStore` (one node, a consistent-hash ring, or a cluster) and
:class:`CookieStore` (the signed session in the cookie).
"""

from __future__ import annotations

from .middleware import SessionMiddleware
from .serializers import JSONSerializer, SessionSerializer
from .session import Session
from .stores.base import Store, StoreUnavailable, new_session_id
from .stores.cookie import CookieStore, SessionTooLarge
from .stores.memory import MemoryStore
from .stores.sqlite import SQLiteStore

__all__ = [
    "CookieStore",
    "JSONSerializer",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Session",
    "SessionMiddleware",
    "SessionSerializer",
    "SessionTooLarge",
    "Store",
    "StoreUnavailable",
    "new_session_id",
]


def __getattr__(name: str) -> object:
    # RedisStore needs the optional ``redis`` and ``uhashring`` packages: import it on demand.
    if name == "RedisStore":
        from .stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
