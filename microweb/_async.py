"""Run a handler's coroutines to completion on an event loop owned by the calling thread.

WSGI is synchronous: a worker thread calls the application and waits for the response. An
``async def get()`` is therefore driven to completion on that thread's own event loop, so
``asyncio.gather`` of several awaits runs them concurrently, as Tornado's coroutines did.
Blocking calls belong in ``await asyncio.to_thread(...)`` (or ``handler.run_in_executor``):
every per-thread loop shares one bounded thread pool as its default executor.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["executor", "get_loop", "run"]

T = TypeVar("T")


class _SharedExecutor(ThreadPoolExecutor):
    """The process-wide pool; closing one thread's loop must not shut it down for the others."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


_executor: _SharedExecutor | None = None
_executor_lock = threading.Lock()
_local = threading.local()


def executor() -> ThreadPoolExecutor:
    """The shared thread pool blocking work is pushed to (created on first use)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                workers = min(32, (os.cpu_count() or 1) + 4)
                _executor = _SharedExecutor(workers, thread_name_prefix="microweb-blocking")
    return _executor


class _LoopHolder:
    """Owns one thread's loop and closes it when the thread (and its locals) go away."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(executor())

    def __del__(self) -> None:
        loop = self.loop
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def get_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for handler coroutines (created on first use)."""
    holder = getattr(_local, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _local.holder = _LoopHolder()
    return holder.loop


def run(awaitable: Awaitable[T]) -> T:
    """Drive ``awaitable`` to completion and return its result (or raise its exception).

    If this thread already runs an event loop (an application called from async code), the
    awaitable runs on a fresh loop in a helper thread instead of deadlocking this one.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return get_loop().run_until_complete(awaitable)
    return _run_in_helper_thread(awaitable)


def _run_in_helper_thread(awaitable: Awaitable[T]) -> T:
    result: list[Any] = []

    async def _wrap() -> T:
        return await awaitable

    def target() -> None:
        try:
            result.append((True, run(_wrap())))
        except BaseException as exc:  # re-raised in the calling thread
            result.append((False, exc))

    thread = threading.Thread(target=target, name="microweb-async-bridge")
    thread.start()
    thread.join()
    ok, value = result[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def run_in_executor(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Await ``fn(*args)`` running in the shared pool, from a handler coroutine."""
    return asyncio.get_running_loop().run_in_executor(executor(), fn, *args)
