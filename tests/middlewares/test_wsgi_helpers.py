"""The shared WSGI plumbing: ClosingIterator and bounded_input."""

from __future__ import annotations

import io
from typing import Any

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from middleware import ClosingIterator, bounded_input
from middleware._wsgi import header, remove_header, set_header, status_code


def test_closing_iterator_closes_everything_once_even_when_a_step_fails() -> None:
    calls: list[str] = []

    class Inner:
        def __iter__(self) -> Any:
            return iter([b"a"])

        def close(self) -> None:
            calls.append("inner")
            raise OSError("inner close failed")

    def callback() -> None:
        calls.append("callback")

    wrapped = ClosingIterator(Inner(), [callback])
    assert list(wrapped) == [b"a"]
    with pytest.raises(OSError, match="inner close failed"):
        wrapped.close()
    wrapped.close()
    assert calls == ["inner", "callback"]  # the callback ran despite the failure, once


def test_bounded_input_reads_only_the_declared_length() -> None:
    environ = {"CONTENT_LENGTH": "5", "wsgi.input": io.BytesIO(b"hello, and the next request")}
    assert bounded_input(environ).read() == b"hello"


def test_bounded_input_without_a_length_never_blocks() -> None:
    class Hanging(io.RawIOBase):
        def readinto(self, buffer: Any) -> int:
            raise AssertionError("read from a stream with no declared length")

    assert bounded_input({"wsgi.input": Hanging()}).read() == b""


def test_bounded_input_refuses_a_body_over_the_limit() -> None:
    environ = {"CONTENT_LENGTH": "100", "wsgi.input": io.BytesIO(b"x" * 100)}
    with pytest.raises(RequestEntityTooLarge):
        bounded_input(environ, max_bytes=10)


def test_header_helpers() -> None:
    headers = [("Content-Type", "text/plain"), ("set-cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert header(headers, "content-type") == "text/plain"
    assert header(headers, "ETag") is None
    set_header(headers, "SET-COOKIE", "c=3")
    assert headers == [("Content-Type", "text/plain"), ("SET-COOKIE", "c=3")]
    remove_header(headers, "content-type")
    assert headers == [("SET-COOKIE", "c=3")]
    assert status_code("404 Not Found") == 404 and status_code("bogus") == 500
