"""blinker signals sent by the middlewares (re-exported by ``microweb.signals``).

They live here because ``middleware`` never imports ``microweb``.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: sent with ``sender=session, environ=environ`` when a new session is first saved.
session_created = _signals.signal("session-created")
#: sent with ``sender=session, environ=environ`` when a session is invalidated.
session_destroyed = _signals.signal("session-destroyed")

__all__ = ["session_created", "session_destroyed"]
