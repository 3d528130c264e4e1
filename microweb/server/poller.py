"""Readiness polling: ``select.epoll`` on Linux, a ``selectors`` stand-in elsewhere.

The server relies on one-shot registrations that any thread may re-arm: epoll gives exactly
that (EPOLLONESHOT, and ``epoll_ctl`` is thread-safe in the kernel). ``SelectorPoller`` offers
the same small interface (register/modify/unregister/poll/close, epoll-style masks) over the
platform's default selector, with a lock and a wake-up pipe, so development on macOS and the
BSDs works too. Linux production always takes the epoll path.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import threading
from typing import Any

__all__ = ["ERR", "HUP", "IN", "ONESHOT", "OUT", "SelectorPoller", "make_poller"]

if hasattr(select, "epoll"):
    IN, OUT, ONESHOT = select.EPOLLIN, select.EPOLLOUT, select.EPOLLONESHOT
    HUP, ERR = select.EPOLLHUP, select.EPOLLERR
else:  # pragma: no cover - non-Linux platforms; the values only need to be distinct bits
    IN, OUT, ERR, HUP, ONESHOT = 0x1, 0x4, 0x8, 0x10, 1 << 30


class SelectorPoller:
    """An epoll-like poller (one-shot, thread-safe re-arming) over ``selectors``."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # selectors are not thread-safe: one poller at a time
        self._masks: dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)

    def register(self, fd: int, mask: int = IN) -> None:
        with self._lock:
            if fd in self._masks:
                raise FileExistsError(fd)
            self._masks[fd] = mask
            self._apply(fd, mask)
        self._kick()

    def modify(self, fd: int, mask: int) -> None:
        with self._lock:
            if fd not in self._masks:
                raise FileNotFoundError(fd)
            self._masks[fd] = mask
            self._apply(fd, mask)
        self._kick()

    def unregister(self, fd: int) -> None:
        with self._lock:
            if self._masks.pop(fd, None) is None:
                raise FileNotFoundError(fd)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(fd)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        with self._poll_lock:
            ready = self._sel.select(timeout)
        events: list[tuple[int, int]] = []
        with self._lock:
            for key, got in ready:
                if 0 < maxevents <= len(events):
                    break  # the rest stay armed and are reported again
                fd = key.fd
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        while os.read(fd, 4096):
                            pass
                    continue
                mask = self._masks.get(fd)
                if mask is None:
                    continue
                if mask & ONESHOT:  # disarm until someone re-arms it, like EPOLLONESHOT
                    self._masks[fd] = ONESHOT
                    self._apply(fd, 0)
                events.append((fd, (IN if got & selectors.EVENT_READ else 0)
                               | (OUT if got & selectors.EVENT_WRITE else 0)))
        return events

    def close(self) -> None:
        self._sel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _apply(self, fd: int, mask: int) -> None:
        wanted = (selectors.EVENT_READ if mask & IN else 0) | \
            (selectors.EVENT_WRITE if mask & OUT else 0)
        try:
            self._sel.get_key(fd)
            registered = True
        except (KeyError, ValueError):
            registered = False
        if registered and wanted:
            self._sel.modify(fd, wanted)
        elif registered:
            self._sel.unregister(fd)
        elif wanted:
            self._sel.register(fd, wanted)

    def _kick(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")


def make_poller(force_selectors: bool = False) -> Any:
    """epoll when the platform has it (and it is not disabled), else ``SelectorPoller``."""
    if hasattr(select, "epoll") and not force_selectors:
        return select.epoll()
    return SelectorPoller()
