"""GzipMiddleware: negotiation, eligibility, headers, streaming with bounded memory."""

from __future__ import annotations

import gzip
import sys
import threading
import zlib
from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

import brotli
import pytest

from middleware import GzipMiddleware, compose
from middleware._wsgi import close_iterable

from .conftest import TEXT, Fetched, fetch, make_app

Headers = list[tuple[str, str]]


def fixed(body: bytes = TEXT, status: str = "200 OK", content_type: str = "text/html",
          extra: Headers | None = None) -> Any:
    """A bare app answering ``body`` with the given status and headers."""
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("Content-Length", str(len(body)))]
        headers += [("Content-Type", content_type)] if content_type else []
        start_response(status, headers + (extra or []))
        return [body] if status[:3] not in ("204", "304") else []
    return app


def get(app: Any, accept: str | None = "gzip", method: str = "GET", **environ: Any) -> Fetched:
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    return fetch(compose(app, GzipMiddleware), method=method, headers=headers, **environ)


def test_compresses_text_for_each_kind_of_app(app_kind: str) -> None:
    response = fetch(compose(make_app(app_kind), GzipMiddleware), "/text",
                     headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    # a list body, or one declaring a modest Content-Length, is compressed whole
    assert int(response.headers["Content-Length"]) == len(response.body)
    assert len(response.body) < len(TEXT)
    assert gzip.decompress(response.body) == TEXT


def test_small_body_passes_untouched_but_varies(app_kind: str) -> None:
    response = fetch(compose(make_app(app_kind), GzipMiddleware),
                     headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert response.body == b"hello" and response.headers["Vary"] == "Accept-Encoding"


def test_etag_is_weakened_and_vary_appended() -> None:
    app = fixed(extra=[("ETag", '"abc"'), ("Vary", "Cookie")])
    response = get(app)
    assert response.headers["ETag"] == 'W/"abc"'
    assert response.headers["Vary"] == "Cookie, Accept-Encoding"


@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip", "gzip"),
    ("gzip;q=0", None),
    ("identity", None),
    ("identity;q=1, gzip;q=0.5", None),
    ("gzip;q=0.5, identity;q=0.5", "gzip"),
    ("*", "br"),
    ("*;q=0.5, gzip;q=0, br;q=0", None),
    ("br, gzip", "br"),
    ("gzip, br;q=0.5", "gzip"),
    ("deflate, gzip;q=0.8", "gzip"),
    ("x-gzip", "gzip"),
    ("", None),
])
def test_negotiation_with_q_values(accept: str, expected: str | None) -> None:
    assert GzipMiddleware(fixed()).negotiate(accept) == expected


def test_without_brotli_the_wildcard_means_gzip() -> None:
    middleware = GzipMiddleware(fixed(), use_brotli=False)
    assert middleware.negotiate("br, *;q=0.5") == "gzip"
    assert middleware.negotiate("*;q=0.5, gzip;q=0") is None


def test_brotli_when_preferred() -> None:
    response = get(fixed(), accept="br;q=1, gzip;q=0.5")
    assert response.headers["Content-Encoding"] == "br"
    assert brotli.decompress(response.body) == TEXT


def test_refused_coding_is_not_used() -> None:
    response = get(fixed(), accept="gzip;q=0")
    assert "Content-Encoding" not in response.headers and response.body == TEXT


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "video/mp4"])
def test_incompressible_types_pass_without_vary(content_type: str) -> None:
    response = get(fixed(content_type=content_type))
    assert "Content-Encoding" not in response.headers and "Vary" not in response.headers
    assert response.body == TEXT


@pytest.mark.parametrize("content_type", [
    "application/json", "image/svg+xml", "application/problem+json", "text/css; charset=utf-8",
])
def test_compressible_types(content_type: str) -> None:
    assert get(fixed(content_type=content_type)).headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(("app", "environ"), [
    (fixed(extra=[("Content-Encoding", "br")]), {}),
    (fixed(extra=[("Cache-Control", "public, no-transform")]), {}),
    (fixed(status="206 Partial Content", extra=[("Content-Range", "bytes 0-9/100")]), {}),
    (fixed(), {"HTTP_RANGE": "bytes=0-9"}),
])
def test_skipped_responses(app: Any, environ: dict[str, str]) -> None:
    response = get(app, **environ)
    assert response.headers.get("Content-Encoding") in (None, "br")
    assert response.body == TEXT


def test_skips_204_and_304() -> None:
    no_content = get(fixed(b"", status="204 No Content", content_type=""))
    assert no_content.status == 204 and "Content-Encoding" not in no_content.headers
    not_modified = get(fixed(b"", status="304 Not Modified", content_type="",
                             extra=[("ETag", '"x"')]))
    assert not_modified.headers["ETag"] == '"x"' and "Content-Encoding" not in not_modified.headers


def _head_and_get(app: Any, path: str = "/", accept: str = "gzip") -> tuple[Fetched, Fetched]:
    """The same request as HEAD and as GET through the middleware."""
    stack = compose(app, GzipMiddleware)
    head, got = (fetch(stack, path, method=method, headers={"Accept-Encoding": accept})
                 for method in ("HEAD", "GET"))
    return head, got


def _without_length(headers: Any) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in headers.items() if k != "Content-Length")


def test_head_gets_the_headers_of_a_compressed_get(app_kind: str) -> None:
    head, got = _head_and_get(make_app(app_kind), "/text")
    assert got.headers["Content-Encoding"] == "gzip"
    assert _without_length(head.headers) == _without_length(got.headers)
    assert head.headers["Vary"] == "Accept-Encoding" and head.body == b""
    # the compressed length is only known by compressing, which HEAD does not do
    assert "Content-Length" not in head.headers


def test_head_of_a_small_body_matches_get_with_its_length(app_kind: str) -> None:
    head, got = _head_and_get(make_app(app_kind), "/")
    assert "Content-Encoding" not in got.headers and got.body == b"hello"
    assert sorted(head.headers.items()) == sorted(got.headers.items())
    assert head.headers["Content-Length"] == "5" and head.body == b""


def test_head_weakens_the_etag_and_keeps_a_refused_coding_identical() -> None:
    app = fixed(extra=[("ETag", '"abc"'), ("Vary", "Cookie")])
    head, got = _head_and_get(app, accept="br")
    assert head.headers["Content-Encoding"] == got.headers["Content-Encoding"] == "br"
    assert head.headers["ETag"] == got.headers["ETag"] == 'W/"abc"'
    assert head.headers["Vary"] == got.headers["Vary"] == "Cookie, Accept-Encoding"
    head, got = _head_and_get(app, accept="gzip;q=0")
    assert sorted(head.headers.items()) == sorted(got.headers.items())
    assert head.headers["Content-Length"] == str(len(TEXT)) and head.body == b""


def test_head_of_an_undeclared_list_body_keeps_its_length() -> None:
    """The middleware sends no body for HEAD, so it declares the length of the one it got."""
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        return [b"png" * 10]

    head, got = _head_and_get(app)
    assert head.headers["Content-Length"] == "30" and head.body == b""
    assert "Vary" not in head.headers and "Content-Encoding" not in head.headers


@pytest.mark.parametrize("body_on_head", [True, False])
def test_head_of_a_stream_matches_get_without_reading_it(body_on_head: bool) -> None:
    pulled: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("ETag", '"s"')])
        if environ["REQUEST_METHOD"] == "HEAD" and not body_on_head:
            return
        for i in range(3):
            pulled.append(i)
            yield b"event %d\n" % i * 100

    head, got = _head_and_get(app)
    assert got.headers["Content-Encoding"] == "gzip" and "Content-Length" not in got.headers
    assert sorted(head.headers.items()) == sorted(got.headers.items())
    assert head.headers["ETag"] == 'W/"s"' and head.body == b""
    assert pulled == ([0] if body_on_head else []) + [0, 1, 2]


def test_head_drops_what_the_app_writes() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written " * 200)
        return [b"tail"]

    written: list[bytes] = []
    started, iterable = _call(GzipMiddleware(app), written=written, method="HEAD")
    assert list(iterable) == [] and written == []
    assert dict(started[0][1])["Content-Encoding"] == "gzip"


def _call(app: Any, accept: str = "gzip", written: list[bytes] | None = None,
          method: str = "GET") -> tuple[list[Any], Any]:
    """Call ``app`` at the WSGI level; returns (start_response record, iterable)."""
    started: list[Any] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/", "HTTP_ACCEPT_ENCODING": accept,
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    written = [] if written is None else written

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        started.append((status, headers, written))
        return written.append

    return started, app(environ, start_response)


def test_streaming_generator_is_compressed_chunk_by_chunk() -> None:
    release = threading.Event()
    chunks = [bytes([65 + i]) * 3000 for i in range(3)]

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        yield chunks[0]
        assert release.wait(10), "the first chunk was not delivered before the generator went on"
        yield from chunks[1:]

    started, iterable = _call(GzipMiddleware(app))
    decoder = zlib.decompressobj(31)
    iterator = iter(iterable)
    first = decoder.decompress(next(iterator))
    assert first == chunks[0]  # arrived, decodable, while the generator is still paused
    assert dict(started[0][1])["Content-Encoding"] == "gzip"
    assert "Content-Length" not in dict(started[0][1])
    release.set()
    rest = b"".join(decoder.decompress(part) for part in iterator) + decoder.flush()
    iterable.close()
    assert first + rest == b"".join(chunks) and decoder.eof


def test_write_callable_is_compressed_and_forwarded_at_once() -> None:
    decoder = zlib.decompressobj(31)
    seen_by_client: list[bytes] = []
    written: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first " * 200)
        seen_by_client.append(b"".join(decoder.decompress(p) for p in written))
        write(b"second " * 200)
        return [b"last"]

    started, iterable = _call(GzipMiddleware(app), written=written)
    tail = b"".join(iterable)
    iterable.close()
    assert seen_by_client == [b"first " * 200]
    body = b"".join(written) + tail
    assert gzip.decompress(body) == b"first " * 200 + b"second " * 200 + b"last"


def test_declared_length_above_buffer_max_streams() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "20000")])
        return iter([b"z" * 10000, b"y" * 10000])  # an iterator, not a list

    started, iterable = _call(GzipMiddleware(app, buffer_max=10000))
    parts = list(iterable)
    iterable.close()
    headers = dict(started[0][1])
    assert "Content-Length" not in headers and len(parts) == 3  # two chunks + the trailer
    assert gzip.decompress(b"".join(parts)) == b"z" * 10000 + b"y" * 10000
    started, iterable = _call(GzipMiddleware(app))
    parts = list(iterable)
    close_iterable(iterable)
    assert dict(started[0][1])["Content-Length"] == str(len(parts[0])) and len(parts) == 1


def test_memory_stays_bounded_for_a_long_stream() -> None:
    """Each output chunk is about the size of its input chunk: nothing accumulates."""
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(2000):
            yield (f"line {i} " * 50).encode()

    _, iterable = _call(GzipMiddleware(app))
    sizes = [len(part) for part in iterable]
    iterable.close()
    assert len(sizes) >= 2000 and max(sizes) < 1000


def test_inner_iterable_closed_once_even_when_abandoned() -> None:
    closes: list[int] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x" * 5000
            yield b"y" * 5000

        def close(self) -> None:
            closes.append(1)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    _, iterable = _call(GzipMiddleware(app))
    next(iter(iterable))  # the client goes away after the first chunk
    iterable.close()
    iterable.close()
    assert closes == [1]


def test_exc_info_before_body_replaces_the_response() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        try:
            raise ValueError("failed while rendering")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"error page " * 100]

    started, iterable = _call(GzipMiddleware(app))
    body = b"".join(iterable)
    close_iterable(iterable)
    assert [s for s, _, _ in started] == ["500 Internal Server Error"]  # one upstream call
    assert gzip.decompress(body) == b"error page " * 100


def test_under_wsgiref_validate_with_generator_and_min_size() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"ab" * 1000

    stack = validator(GzipMiddleware(app, min_size=10, level=9))
    response = fetch(stack, headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(response.body) == b"ab" * 1000


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="level"):
        GzipMiddleware(fixed(), level=12)


def test_microweb_flush_is_compressed_and_sent_at_once() -> None:
    import microweb as web

    decoder = zlib.decompressobj(31)
    written: list[bytes] = []
    seen_after_flush: list[bytes] = []

    class Stream(web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "text/plain")
            self.write("part one " * 100)
            self.flush()
            seen_after_flush.append(b"".join(decoder.decompress(p) for p in written))
            self.write("part two " * 100)

    _, iterable = _call(GzipMiddleware(web.Application([(r"/", Stream)])), written=written)
    tail = b"".join(iterable)
    close_iterable(iterable)
    assert seen_after_flush == [b"part one " * 100]
    assert gzip.decompress(b"".join(written) + tail) == b"part one " * 100 + b"part two " * 100


def test_streaming_reaches_a_real_socket_before_the_generator_ends() -> None:
    """End to end through wsgiref's server: the first compressed chunk is readable by the
    client while the app is still blocked producing the second one."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first chunk " * 100
        release.wait(20)
        yield b"second chunk " * 100

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, validator(GzipMiddleware(app)),
                         handler_class=QuietHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.server_address, timeout=20) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            received, decoder, text = b"", zlib.decompressobj(31), b""
            while text != b"first chunk " * 100:
                data = sock.recv(65536)
                assert data, "connection closed before the first chunk"
                received += data
                if b"\r\n\r\n" in received:
                    head, _, body = received.partition(b"\r\n\r\n")
                    text = zlib.decompressobj(31).decompress(body)
            assert b"Content-Encoding: gzip" in head
            release.set()
            while data := sock.recv(65536):
                received += data
        body = received.partition(b"\r\n\r\n")[2]
        assert decoder.decompress(body) == b"first chunk " * 100 + b"second chunk " * 100
    finally:
        release.set()
        thread.join(20)
        server.server_close()
