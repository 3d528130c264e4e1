"""The timing harness every in-process benchmark shares: CPU time, calibrated batches, and
rounds interleaved between contenders so a noisy machine disturbs them alike."""

from __future__ import annotations

import gc
import io
import time
from collections.abc import Callable
from typing import Any


def timer(one: Callable[[], bytes]) -> Callable[[int], float]:
    """``run(n)``: CPU seconds for ``n`` calls of ``one`` (or its ``batch(n)`` when it has one).

    CPU time of this process: other load on a shared machine disturbs it far less than
    wall-clock time (everything measured here runs on this one thread).
    """
    batch = getattr(one, "batch", None)

    def run(n: int) -> float:
        start = time.process_time()
        if batch is not None:
            batch(n)
        else:
            for _ in range(n):
                one()
        return time.process_time() - start

    return run


def calibrate(run: Callable[[int], float], round_time: float, start: int = 20) -> int:
    """How many calls make one round last about ``round_time`` seconds."""
    n = start
    while (elapsed := run(n)) < round_time / 4:
        n *= 4
    return max(1, int(n * round_time / elapsed))


def best_of(timers: dict[str, tuple[Callable[[int], float], int]], rounds: int
            ) -> dict[str, float]:
    """Best µs per call of every contender over ``rounds`` interleaved rounds, GC paused."""
    best = dict.fromkeys(timers, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, (run, n) in timers.items():
                best[name] = min(best[name], run(n) / n * 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def wsgi_caller(app: Callable[..., Any], environ: dict[str, Any], body: bytes | None = None
                ) -> Callable[[], bytes]:
    """One request per call: copy the prepared environ (with a fresh ``wsgi.input`` holding
    ``body``, if any), call the app, drain and close the response; ``one.status[0]`` is the
    last status line."""
    status = [""]

    def start_response(st: str, headers: list[Any], exc_info: Any = None) -> None:
        status[0] = st

    def one() -> bytes:
        env = environ.copy()
        if body is not None:
            env["wsgi.input"] = io.BytesIO(body)
        result = app(env, start_response)
        try:
            return b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    one.status = status  # type: ignore[attr-defined]
    return one
