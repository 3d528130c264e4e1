"""The dict-like session object a request sees at ``environ["microweb.session"]``.

It is loaded on first use only: a request that never touches it costs no store read. The
middleware decides at response time what to write, from what happened to this object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["Session"]

_PLAIN = frozenset({str, int, float, bool, type(None)})
_MISSING = object()


class Session(MutableMapping[str, Any]):
    """A lazily loaded session: a mutable mapping plus ``regenerate()`` and ``invalidate()``.

    Mutations through the mapping API mark it ``modified``; changes inside nested values are
    found too (the middleware compares the serialized data with what was loaded), or set
    ``session.modified = True`` yourself.
    """

    __slots__ = ("_data", "_dropped", "_id_factory", "_invalidated", "_late", "_loader",
                 "_original", "_snapshot", "committed", "expires", "fresh", "modified", "new",
                 "sid")

    def __init__(self, loader: Callable[[Session], None],
                 id_factory: Callable[[], str] | None = None) -> None:
        self._loader = loader
        self._id_factory = id_factory
        self._data: dict[str, Any] | None = None
        self._original: bytes | None = None
        self._snapshot: dict[str, Any] | None = None
        self._dropped: list[str] = []  # ids to delete from the store at commit
        self._invalidated = False
        self._late = False
        #: the current id (None until a new session is first written; never client-chosen)
        self.sid: str | None = None
        #: expiry (epoch seconds) of the stored session when it was loaded
        self.expires: float | None = None
        #: True when the request brought no valid, stored session
        self.new = True
        #: set to True to force a save (mutating the mapping does it for you)
        self.modified = False
        #: True when ``sid`` was minted in this request (not yet in the store)
        self.fresh = False
        #: True once the middleware wrote this session's outcome (response started)
        self.committed = False

    # -- loading -----------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """True once the app touched the session (and it was read from the store)."""
        return self._data is not None

    @property
    def data(self) -> dict[str, Any]:
        """The underlying dict, loading it first if needed."""
        if self._data is None:
            self._loader(self)
            if self._data is None:
                self._data = {}
        return self._data

    def _fill(self, sid: str | None, data: dict[str, Any], original: bytes | None,
              expires: float | None) -> None:
        """Called by the loader with what the store returned (``sid`` None: a new session)."""
        self.sid, self._data, self._original, self.expires = sid, data, original, expires
        self.new = sid is None and original is None
        # Plain values cannot change in place: a copy is enough to tell later if they did.
        self._snapshot = None
        for value in data.values():
            if type(value) not in _PLAIN:
                break
        else:
            self._snapshot = dict(data)

    def _unchanged(self) -> bool:
        """True when the data holds only plain values, equal (and of the same types) to what
        was loaded: then it would serialize as loaded (nested values: the middleware compares
        the serialized bytes instead)."""
        snapshot, data = self._snapshot, self._data
        if snapshot is None or data is None or len(snapshot) != len(data):
            return False
        for key, value in data.items():
            old = snapshot.get(key, _MISSING)
            if type(old) is not type(value) or old != value:
                return False
        return True

    def _changed(self) -> None:
        self.modified = True
        if self.sid is None and self._id_factory is not None:
            self.sid = self._id_factory()  # minted here, saved (if not empty) at commit
            self.fresh = True
        if self.committed:
            self._late = True

    @property
    def id(self) -> str | None:
        """The session id (loads the session; None for a new session until it is written to)."""
        self.data  # noqa: B018 - loading is the point
        return self.sid

    # -- the mapping API ---------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` or ``default`` (PERF: the dict's own get, not Mapping's two calls)."""
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self._changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def clear(self) -> None:
        self.data.clear()
        self._changed()

    def __repr__(self) -> str:
        if self._data is None:
            return "<Session (not loaded)>"
        return f"<Session keys={sorted(self._data)!r} new={self.new}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def regenerate(self) -> None:
        """Give the session a new id and keep its data (call it at login: stops fixation)."""
        self.data  # noqa: B018
        if self.sid is not None:
            self._dropped.append(self.sid)
            self.sid = None
        self._changed()

    def invalidate(self) -> None:
        """Delete the session (logout): its data is gone and its cookie is expired.

        Writing to it afterwards in the same request starts a fresh session with a new id.
        """
        self.data  # noqa: B018
        if self.sid is not None:
            self._dropped.append(self.sid)
            self.sid = None
        self._data = {}
        self._invalidated = True
        self.new = True
        self._changed()

    @property
    def invalidated(self) -> bool:
        return self._invalidated
