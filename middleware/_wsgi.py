"""WSGI's hard parts, written once and reused by every middleware in this package.

- :class:`ClosingIterator` wraps a response iterable so ``close()`` reaches the inner iterable
  and the registered callbacks exactly once, whoever calls it and however often.
- :func:`header` / :func:`set_header` / :func:`remove_header` / :func:`add_vary` edit a PEP 3333
  header list.
- :func:`plain_response` answers a short-circuited request (403, 429, 500...).
- :func:`bounded_input` caps the request body a layer reads (never trusts a missing length).
- :func:`read_exactly` reads a body of known length in one go (a disconnect is a 400).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol, TypeAlias

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import get_input_stream

__all__ = [
    "ClosingIterator",
    "ExcInfo",
    "Headers",
    "StartResponse",
    "WSGIApp",
    "WSGIEnvironment",
    "add_vary",
    "bounded_input",
    "close_iterable",
    "header",
    "plain_response",
    "read_exactly",
    "remove_header",
    "set_header",
    "status_code",
]

WSGIEnvironment: TypeAlias = dict[str, Any]
Headers: TypeAlias = list[tuple[str, str]]
ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
)
Write: TypeAlias = Callable[[bytes], object]


class StartResponse(Protocol):
    """PEP 3333 ``start_response``: returns the legacy ``write`` callable."""

    def __call__(self, status: str, headers: Headers,
                 exc_info: ExcInfo | None = ..., /) -> Write: ...


WSGIApp: TypeAlias = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]


def close_iterable(iterable: object) -> None:
    """Call ``iterable.close()`` if it has one (PEP 3333 says the server must)."""
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class ClosingIterator:
    """Iterate ``iterable``; on the first ``close()`` close it, then run ``callbacks`` in order.

    Later ``close()`` calls do nothing, so a server and an outer layer may both close safely.
    Every callback runs even if an earlier one (or the inner close) raises; the first error is
    re-raised afterwards.
    """

    __slots__ = ("_callbacks", "_closed", "_iterable", "_iterator")

    def __init__(self, iterable: Iterable[bytes],
                 callbacks: Iterable[Callable[[], object]] = ()) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] = iter(iterable)
        self._callbacks = list(callbacks)
        self._closed = False

    def __iter__(self) -> ClosingIterator:
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        except BaseException as exc:  # keep closing; re-raise the first failure below
            error = exc
        for callback in self._callbacks:
            try:
                callback()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error


def status_code(status: str) -> int:
    """The integer code of a PEP 3333 status line (``"404 Not Found"`` -> 404)."""
    try:
        return int(status[:3])
    except ValueError:
        return 500


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def remove_header(headers: Headers, name: str) -> None:
    """Remove every ``name`` header from the list, in place."""
    lname = name.lower()
    for key, _ in headers:
        if key.lower() == lname:
            break
    else:
        return  # PERF: usually absent: no new list
    headers[:] = [(k, v) for k, v in headers if k.lower() != lname]


def set_header(headers: Headers, name: str, value: str) -> None:
    """Replace every ``name`` header by one ``name: value``, in place."""
    remove_header(headers, name)
    headers.append((name, value))


def add_vary(headers: Headers, name: str, current: str | None = None) -> None:
    """Add ``name`` to the ``Vary`` header unless it (as a whole token) or ``*`` is there.

    ``current``: the Vary value when the caller already looked it up (else it is found here).
    """
    vary = header(headers, "Vary") if current is None else current
    if vary is None:
        headers.append(("Vary", name))
        return
    lowered, lname = vary.lower(), name.lower()
    if "*" in lowered or lname in lowered:  # PERF: parse only when it may be there
        tokens = {t.strip() for t in lowered.split(",")}
        if "*" in tokens or lname in tokens:
            return
    set_header(headers, "Vary", f"{vary}, {name}")


def plain_response(start_response: StartResponse, status: str, body: str | bytes,
                   headers: Headers | None = None, content_type: str = "text/plain; charset=utf-8",
                   exc_info: ExcInfo | None = None) -> list[bytes]:
    """Send a small complete response (used when a layer short-circuits the request)."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    out = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    out.extend(headers or ())
    if exc_info is not None:
        start_response(status, out, exc_info)
    else:
        start_response(status, out)
    return [data]


def bounded_input(environ: WSGIEnvironment, max_bytes: int | None = None) -> IO[bytes]:
    """The request body stream, limited to ``CONTENT_LENGTH`` (and to ``max_bytes`` if set).

    A missing length reads as empty unless the server marks the stream as terminated
    (``wsgi.input_terminated``), so a layer can never hang waiting for bytes that never come.
    Raises werkzeug's ``RequestEntityTooLarge`` when the declared length exceeds ``max_bytes``.
    """
    return get_input_stream(environ, max_content_length=max_bytes)


def read_exactly(stream: IO[bytes], length: int) -> bytes:
    """``length`` bytes of ``stream``, as werkzeug's ``LimitedStream`` reads them but without
    its wrapper: a stream that ends early or fails raises ``ClientDisconnected`` (400)."""
    try:
        data = stream.read(length)
        if len(data) == length:  # PERF: the usual case, one read
            return data
        parts = [data]
        remaining = length - len(data)
        while data and remaining > 0:
            data = stream.read(remaining)
            parts.append(data)
            remaining -= len(data)
    except (OSError, ValueError) as exc:
        raise ClientDisconnected() from exc
    if remaining > 0:
        raise ClientDisconnected()
    return b"".join(parts)
