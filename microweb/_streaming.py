"""The WSGI iterable of a generator handler method: chunks leave as the server iterates."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any

from . import _async

if TYPE_CHECKING:
    from .handler import RequestHandler

__all__ = ["StreamingBody"]

app_log = logging.getLogger("microweb.application")


class StreamingBody:
    """The WSGI iterable of a generator method: each yielded chunk is written and flushed."""

    def __init__(self, handler: RequestHandler, gen: Any) -> None:
        self._handler = handler
        self._gen = gen
        self._is_async = type(gen) is AsyncGeneratorType
        self._done = False
        handler._pending = deque()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        pending = self._handler._pending
        assert pending is not None
        while not pending:
            if self._done:
                raise StopIteration
            self._advance()
        return pending.popleft()

    def _advance(self) -> None:
        handler = self._handler
        try:
            if self._is_async:
                chunk = _async.run(self._gen.__anext__())
            else:
                chunk = next(self._gen)
            if handler._finished:
                raise RuntimeError("a streaming handler yielded after finish()")
            if chunk is not None:
                handler.write(chunk)
            handler.flush()
        except (StopIteration, StopAsyncIteration):
            self._done = True
            self._finish()
        except Exception as exc:
            self._done = True
            self._close_gen()
            handler._handle_request_exception(exc)

    def _finish(self) -> None:
        handler = self._handler
        if handler._finished:
            return
        try:
            handler.finish()
        except Exception as exc:
            handler._handle_request_exception(exc)

    def _close_gen(self) -> None:
        try:
            if self._is_async:
                _async.run(self._gen.aclose())
            else:
                self._gen.close()
        except Exception:
            app_log.error("Error closing the streaming method", exc_info=True)

    def close(self) -> None:
        """Called by the server when the response ends or the client disconnects."""
        if not self._done:
            self._done = True
            self._close_gen()
        self._handler._abandon()
        self._handler.request._close()
