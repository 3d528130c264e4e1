"""compose(): order, repr, build-time checks, and the base class's WSGI plumbing."""

from __future__ import annotations

import functools
import sys
from typing import Any
from wsgiref.validate import validator

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    Middleware,
    MiddlewareOrderError,
    ProxyMiddleware,
    SignedCookieMiddleware,
    Stack,
    compose,
    keys,
)

from .conftest import bare_app, client, make_app


class Tag(Middleware):
    """Appends its name to X-Order and to environ['order'] so the nesting can be observed."""

    def __init__(self, app: Any, name: str = "tag") -> None:
        super().__init__(app)
        self.name = name

    def process_request(self, environ: dict[str, Any]) -> None:
        environ.setdefault("test.order", []).append(self.name)

    def process_response(self, environ: dict[str, Any], status: str,
                         headers: list[tuple[str, str]]) -> None:
        headers.append(("X-Order", self.name))


class NeedsSession(Middleware):
    requires = (keys.SESSION,)


class GivesSession(Middleware):
    provides = (keys.SESSION,)

    def process_request(self, environ: dict[str, Any]) -> None:
        environ[keys.SESSION] = {}


def test_layers_apply_outermost_first(app_kind: str) -> None:
    stack = compose(make_app(app_kind), Tag.configure(name="outer"),
                    (Tag, {"name": "middle"}), functools.partial(Tag, name="inner"))
    response = client(stack).get("/")
    # response hooks run innermost first, so the outermost layer appends last
    assert response.headers.getall("X-Order") == ["inner", "middle", "outer"]


def test_request_hooks_see_outer_changes_first() -> None:
    seen: list[list[str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(list(environ["test.order"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client(compose(app, Tag.configure(name="a"), Tag.configure(name="b"))).get("/")
    assert seen == [["a", "b"]]


def test_repr_lists_layers_and_hides_secrets() -> None:
    stack = compose(bare_app, ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
                    AccessLogMiddleware, GzipMiddleware.configure(level=5),
                    SignedCookieMiddleware.configure(secret="s3cret-value", names=["prefs"]))
    text = repr(stack)
    assert text.index("ProxyMiddleware(trusted=['10.0.0.0/8'])") < text.index(
        "AccessLogMiddleware()") < text.index("GzipMiddleware(level=5)")
    assert "s3cret-value" not in text and "secret=***" in text
    assert "bare_app" in text
    assert stack.describe().splitlines()[0] == "1. ProxyMiddleware(trusted=['10.0.0.0/8'])"


def test_requirement_placed_inside_is_rejected_with_a_clear_error() -> None:
    with pytest.raises(MiddlewareOrderError) as info:
        compose(bare_app, NeedsSession, GivesSession)
    message = str(info.value)
    assert "NeedsSession requires 'microweb.session'" in message
    assert "list GivesSession before NeedsSession" in message


def test_missing_requirement_is_rejected() -> None:
    with pytest.raises(MiddlewareOrderError, match="no layer of the stack provides"):
        compose(bare_app, NeedsSession)


def test_requirement_provided_outside_builds_and_works() -> None:
    stack = compose(bare_app, GivesSession, NeedsSession)
    assert isinstance(stack, Stack)
    assert client(stack).get("/").text == "hello"


def test_proxy_inside_a_layer_that_reads_the_client_is_rejected() -> None:
    with pytest.raises(MiddlewareOrderError, match="list ProxyMiddleware before"):
        compose(bare_app, IPBlacklistMiddleware, ProxyMiddleware)
    with pytest.raises(MiddlewareOrderError, match="AccessLogMiddleware reads"):
        compose(bare_app, AccessLogMiddleware, ProxyMiddleware)


def test_third_party_factories_are_accepted() -> None:
    stack = compose(bare_app, functools.partial(ProxyFix, x_for=1))
    assert "ProxyFix(x_for=1)" in repr(stack)
    assert client(stack).get("/").text == "hello"


def test_bad_layer_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot use 42"):
        compose(bare_app, 42)


class Guard(Middleware):
    """Short-circuits /private with a werkzeug Response."""

    def process_request(self, environ: dict[str, Any]) -> Response | None:
        if environ["PATH_INFO"] == "/private":
            return Response("nope", status=401)
        return None

    def process_response(self, environ: dict[str, Any], status: str,
                         headers: list[tuple[str, str]]) -> str | None:
        headers.append(("X-Guard", "seen"))
        return None


def test_short_circuit_response_goes_through_process_response(app_kind: str) -> None:
    app = client(compose(make_app(app_kind), Guard))
    denied = app.get("/private", status=401)
    assert denied.text == "nope" and denied.headers["X-Guard"] == "seen"
    assert app.get("/").headers["X-Guard"] == "seen"


class Counting(Middleware):
    def __init__(self, app: Any, log: list[str]) -> None:
        super().__init__(app)
        self.log = log

    def process_close(self, environ: dict[str, Any]) -> None:
        self.log.append("closed")


class ClosableBody:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.closes = chunks, 0

    def __iter__(self) -> Any:
        return iter(self.chunks)

    def close(self) -> None:
        self.closes += 1


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def test_close_reaches_app_and_hook_exactly_once() -> None:
    body = ClosableBody([b"a", b"b"])
    log: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> ClosableBody:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    stack = compose(app, Counting.configure(log=log))
    iterable: Any = stack({"PATH_INFO": "/"}, _start)
    assert b"".join(iterable) == b"ab"
    iterable.close()
    iterable.close()  # a second close (server + outer layer) must not repeat anything
    assert body.closes == 1 and log == ["closed"]


def test_process_close_runs_when_the_app_raises() -> None:
    log: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        compose(app, Counting.configure(log=log))({"PATH_INFO": "/"}, _start)
    assert log == ["closed"]


def test_base_class_passes_exc_info_and_write_through_validator() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"failed"]

    def writer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"then iterated"]

    assert client(compose(app, Tag)).get("/", status=500).text == "failed"
    assert client(compose(writer, Tag)).get("/").text == "written then iterated"


def test_streaming_body_is_not_buffered_by_the_base_class() -> None:
    produced: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(3):
            produced.append(i)
            yield f"chunk{i}".encode()

    iterable: Any = compose(app, Tag, Counting.configure(log=[]))(
        {"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, _start)
    iterator = iter(iterable)
    assert next(iterator) == b"chunk0" and produced == [0]
    iterable.close()


def test_stack_runs_under_wsgiref_validate_directly() -> None:
    stack = validator(compose(bare_app, Tag))
    from werkzeug.test import Client

    response = Client(stack).get("/")
    assert response.status_code == 200 and response.headers["X-Order"] == "tag"
    assert response.get_data() == b"hello"
    response.close()


class MaintenanceMode(Middleware):
    """The example of docs/middleware.md, kept working."""

    def __init__(self, app: Any, *, enabled: bool = False) -> None:
        super().__init__(app)
        self.enabled = enabled

    def process_request(self, environ: dict[str, Any]) -> Response | None:
        if self.enabled and environ["PATH_INFO"] != "/health":
            return Response("Down for maintenance", status=503)
        return None

    def process_response(self, environ: dict[str, Any], status: str,
                         headers: list[tuple[str, str]]) -> None:
        headers.append(("X-Served-By", "app-1"))


def test_documented_example(app_kind: str) -> None:
    app = client(compose(make_app(app_kind), MaintenanceMode.configure(enabled=True)))
    down = app.get("/", status=503)
    assert down.text == "Down for maintenance" and down.headers["X-Served-By"] == "app-1"
    assert app.get("/health").headers["X-Served-By"] == "app-1"


def test_missing_or_misspelt_options_name_the_layer() -> None:
    with pytest.raises(TypeError, match=r"cannot build the layer SignedCookieMiddleware\(\)"):
        compose(bare_app, SignedCookieMiddleware)
    with pytest.raises(TypeError, match=r"GzipMiddleware\(levle=9\).*levle"):
        compose(bare_app, GzipMiddleware.configure(levle=9))


def test_stack_close_releases_layer_resources(tmp_path: Any) -> None:
    stack = compose(bare_app, AccessLogMiddleware.configure(output=str(tmp_path / "a.log")),
                    GzipMiddleware)
    assert [type(m).__name__ for m in stack.built] == ["AccessLogMiddleware", "GzipMiddleware"]
    access_log = stack.built[0]
    assert access_log.handler is not None  # type: ignore[attr-defined]
    stack.close()
    assert access_log.handler is None  # type: ignore[attr-defined]
