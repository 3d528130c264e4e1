"""Timer handles of the server loop (``call_later``), shared by the loop and the upgrade code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TimerHandle"]


class TimerHandle:
    """Returned by ``call_later``; ``cancel()`` prevents the callback from running."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        """Run the callback (the loop calls this once the handle is due)."""
        self.callback()
