"""Streaming in-process: flush() through the write callable, generator methods, and both
through the whole middleware stack (gzip included), chunk by chunk."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from werkzeug.middleware.lint import LintMiddleware

import microweb as web
from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    ProxyMiddleware,
    SignedCookieMiddleware,
    compose,
)
from middleware.sessions import SessionMiddleware
from middleware.xsrf import XSRFMiddleware

from .conftest import lint_client

Events = list[tuple[str, Any]]


def make_environ(path: str = "/", method: str = "GET", **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path,
                              "QUERY_STRING": "", "SCRIPT_NAME": ""}
    setup_testing_defaults(environ)
    environ.update(extra)
    return environ


def call(app: Callable[..., Iterable[bytes]], events: Events,
         environ: dict[str, Any] | None = None) -> Iterable[bytes]:
    """Call ``app``, recording start_response, write() calls and body chunks in ``events``."""
    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        events.append(("start", status))
        events.append(("headers", dict(headers)))
        return lambda data: events.append(("write", data))

    return app(environ or make_environ(), start_response)


class FlushHandler(web.RequestHandler):
    def initialize(self, events: Events) -> None:
        self.events = events

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write("one " * 200)
        self.flush()
        self.events.append(("handler", "after first flush"))
        self.write("two " * 200)
        self.flush()
        self.events.append(("handler", "after second flush"))
        self.write("end")


class GeneratorHandler(web.RequestHandler):
    def initialize(self, events: Events) -> None:
        self.events = events

    def get(self) -> Any:
        self.set_header("Content-Type", "text/plain")
        self.events.append(("handler", "started"))
        yield "one " * 200
        self.events.append(("handler", "resumed"))
        self.write("two " * 100)
        yield b"three " * 100
        self.events.append(("handler", "resumed again"))

    def on_finish(self) -> None:
        self.events.append(("handler", "on_finish"))


def app_with(handler: type[web.RequestHandler], events: Events) -> web.Application:
    return web.Application([("/", handler, {"events": events})])


def test_flush_sends_through_the_write_callable_before_the_handler_continues() -> None:
    events: Events = []
    body = call(app_with(FlushHandler, events), events)
    kinds = [kind for kind, _ in events]
    assert kinds == ["start", "headers", "write", "handler", "write", "handler", "write"]
    assert "Content-Length" not in events[1][1]
    assert events[-1] == ("write", b"end") and b"".join(body) == b""
    assert events[2][1] == b"one " * 200


def test_generator_chunks_are_produced_as_the_server_iterates() -> None:
    events: Events = []
    body = iter(call(app_with(GeneratorHandler, events), events))
    assert events == []  # nothing ran before the server asked for the first chunk
    assert next(body) == b"one " * 200
    assert [k for k, _ in events] == ["handler", "start", "headers"]
    assert next(body) == b"two " * 100 + b"three " * 100
    assert events[-1] == ("handler", "resumed")
    assert list(body) == []
    assert events[-2:] == [("handler", "resumed again"), ("handler", "on_finish")]


def test_generator_through_the_validators() -> None:
    response = lint_client(app_with(GeneratorHandler, [])).get("/")
    assert response.text == "one " * 200 + "two " * 100 + "three " * 100


def test_flush_through_the_validators() -> None:
    response = lint_client(app_with(FlushHandler, [])).get("/")
    assert response.text == "one " * 200 + "two " * 200 + "end"


def test_generator_error_before_first_chunk_is_a_clean_500() -> None:
    class H(web.RequestHandler):
        def get(self) -> Any:
            self.set_header("X-Lost", "1")
            raise_now = True
            if raise_now:
                raise ValueError("before yielding")
            yield "never"

    response = lint_client(web.Application([("/", H)])).get("/", status=500)
    assert "X-Lost" not in response.headers


def test_generator_error_mid_stream_truncates_and_logs(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> Any:
            yield "partial"
            raise ValueError("mid-stream")

    app_log = logs("microweb.application")
    events: Events = []
    body = list(call(web.Application([("/", H)]), events))
    assert body == [b"partial"] and events[0] == ("start", "200 OK")
    messages = app_log.messages()
    assert messages[0].startswith("Uncaught exception GET /")
    assert "Cannot send error response after headers written" in messages


def test_client_disconnect_closes_generator_and_runs_on_finish() -> None:
    events: Events = []
    body = call(app_with(GeneratorHandler, events), events)
    iterator = iter(body)
    next(iterator)
    body.close()  # type: ignore[attr-defined]
    assert events[-1] == ("handler", "on_finish")
    assert ("handler", "resumed") not in events


def test_head_of_a_streaming_handler_sends_no_body() -> None:
    class H(web.RequestHandler):
        def head(self) -> Any:
            yield "body"

    events: Events = []
    body = list(call(web.Application([("/", H)]), events, make_environ(method="HEAD")))
    assert body == [] and events[0] == ("start", "200 OK")


SECRET = "s" * 32


def full_stack(app: Any) -> Any:
    return compose(
        app,
        ProxyMiddleware.configure(trusted=["127.0.0.1/32"]),
        AccessLogMiddleware,
        IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]),
        GzipMiddleware.configure(min_size=10),
        SignedCookieMiddleware.configure(secret=SECRET, names=["signed"]),
        SessionMiddleware.configure(secret=SECRET),
        XSRFMiddleware,
    )


def decompressor(headers: dict[str, str]) -> Any:
    assert headers.get("Content-Encoding") == "gzip"
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


@pytest.mark.parametrize("handler", [GeneratorHandler, FlushHandler])
def test_streaming_through_every_middleware_chunk_by_chunk(handler: type) -> None:
    events: Events = []
    stack = full_stack(app_with(handler, events))
    environ = make_environ(HTTP_ACCEPT_ENCODING="gzip")
    body = iter(call(stack, events, environ))
    if handler is GeneratorHandler:
        chunk = next(body)
        inflate = decompressor(next(v for k, v in events if k == "headers"))
        first = inflate.decompress(chunk)
        while not first:  # the gzip header may come alone
            first = inflate.decompress(next(body))
        assert first == b"one " * 200
        assert ("handler", "resumed") not in events
        rest = first + b"".join(inflate.decompress(c) for c in body) + inflate.flush()
    else:
        # flush() went out through the write callable before the handler continued
        inflate = decompressor(next(v for k, v in events if k == "headers"))
        position = events.index(("handler", "after first flush"))
        sent = b"".join(d for k, d in events[:position] if k == "write")
        assert inflate.decompress(sent) == b"one " * 200
        later = b"".join(d for k, d in events[position:] if k == "write")
        rest = b"one " * 200 + inflate.decompress(later + b"".join(body)) + inflate.flush()
    expected = {GeneratorHandler: b"one " * 200 + b"two " * 100 + b"three " * 100,
                FlushHandler: b"one " * 200 + b"two " * 200 + b"end"}[handler]
    assert rest == expected


def test_full_stack_buffered_response_is_valid_gzip() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write({"items": list(range(200))})

    events: Events = []
    stack = validator(LintMiddleware(full_stack(web.Application([("/", H)]))))
    iterable = call(stack, events, make_environ(HTTP_ACCEPT_ENCODING="gzip"))
    body = b"".join(iterable)
    iterable.close()  # type: ignore[attr-defined]
    assert events[1][1]["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b'{"items": [0, 1, 2')


@pytest.mark.parametrize("setting", ["compress_response", "gzip"])
def test_compress_response_setting_gzips_like_tornado(setting: str) -> None:
    class Big(web.RequestHandler):
        def get(self) -> None:
            self.write("compressible " * 100)

    app = web.Application([("/", Big), ("/s", GeneratorHandler, {"events": []})],
                          **{setting: True})
    events: Events = []
    body = b"".join(call(app, events, make_environ(HTTP_ACCEPT_ENCODING="gzip")))
    assert events[1][1]["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"compressible " * 100
    events = []
    body = b"".join(call(app, events, make_environ("/s", HTTP_ACCEPT_ENCODING="gzip")))
    assert gzip.decompress(body).startswith(b"one one")
    plain: Events = []
    assert b"".join(call(app, plain, make_environ())) == b"compressible " * 100
