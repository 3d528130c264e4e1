"""The framework inside the WSGI world: access log with the middleware, on_finish after the
response is sent, and handing the server a WSGI iterable (files for sendfile)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import microweb as web
from middleware import AccessLogMiddleware, compose, keys
from tests.framework.conftest import LogRecorder, lint_client


def _environ(method: str = "GET", path: str = "/", **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.multithread": False,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    environ.update(extra)
    return environ


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], Any]:
    """Call the app like a server: returns (status, headers, iterable) without closing it."""
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen[:] = [status, headers]
        return lambda data: None

    body = app(environ, start_response)
    return seen[0], seen[1], body


# -- the access log ----------------------------------------------------------------------------

class _Account(web.RequestHandler):
    def get_current_user(self) -> str | None:
        return self.get_argument("as", None)

    def get(self) -> None:
        self.write(f"hello {self.current_user or 'stranger'}")


@pytest.fixture
def access(logs: Callable[[str], LogRecorder]) -> LogRecorder:
    return logs("microweb.access")


def test_access_log_middleware_names_the_current_user(access: LogRecorder) -> None:
    app = lint_client(compose(web.Application([(r"/", _Account)]), AccessLogMiddleware))
    assert app.get("/?as=alice").text == "hello alice"
    app.get("/")
    first, second = access.messages()
    assert " alice " in first and '"GET /?as=alice HTTP/1.0" 200' in first
    assert " alice " not in second and " - - [" in second


def test_current_user_object_is_labelled_in_the_environ() -> None:
    class User:
        name = "bob"

    class Handler(web.RequestHandler):
        def get_current_user(self) -> User:
            return User()

        def get(self) -> None:
            assert self.current_user.name == "bob"
            self.write(self.request.environ[keys.USER])

    assert lint_client(web.Application([(r"/", Handler)])).get("/").text == "bob"


def test_nobody_logged_in_leaves_an_outer_user_alone() -> None:
    class Handler(web.RequestHandler):
        def get(self) -> None:
            assert self.current_user is None
            self.write(self.request.environ.get(keys.USER, "-"))

    app = web.Application([(r"/", Handler)])
    assert lint_client(app).get("/").text == "-"
    _, _, body = _call(app, _environ(**{keys.USER: "via-sso"}))
    assert b"".join(body) == b"via-sso"


def test_one_access_line_per_request_behind_the_access_log_middleware(
        access: LogRecorder) -> None:
    bare = lint_client(web.Application([(r"/", _Account)]))
    bare.get("/")
    assert len(access.records) == 1  # the application's own line
    access.records.clear()
    wrapped = lint_client(compose(web.Application([(r"/", _Account)]), AccessLogMiddleware))
    wrapped.get("/")
    wrapped.get("/missing", status=404)
    messages = access.messages()
    assert len(messages) == 2  # the middleware's lines only, no duplicate from the app
    assert all('HTTP/1.0" ' in m for m in messages)


def test_log_function_is_still_called_behind_the_access_log_middleware(
        access: LogRecorder) -> None:
    seen: list[tuple[int, str]] = []
    app = web.Application([(r"/", _Account)],
                          log_function=lambda h: seen.append((h.get_status(), h.request.path)))
    lint_client(compose(app, AccessLogMiddleware)).get("/")
    assert seen == [(200, "/")]
    assert len(access.records) == 1


# -- on_finish runs once the response is sent ---------------------------------------------------

class _Recorder(web.RequestHandler):
    events: list[str]

    def initialize(self, events: list[str]) -> None:
        self.events = events

    def get(self) -> None:
        self.events.append("get")
        if self.get_argument("fail", None):
            raise web.HTTPError(409)
        self.write("body")

    def on_finish(self) -> None:
        self.events.append(f"on_finish {self.get_status()}")


def test_on_finish_runs_when_the_server_closes_the_response() -> None:
    events: list[str] = []
    app = web.Application([(r"/", _Recorder, {"events": events})])
    status, _, body = _call(app, _environ())
    assert status == "200 OK" and events == ["get"]
    assert list(body) == [b"body"]
    assert events == ["get"]  # sent, not yet closed
    body.close()
    body.close()  # a second close() changes nothing
    assert events == ["get", "on_finish 200"]


def test_on_finish_after_an_error_response_is_sent() -> None:
    events: list[str] = []
    app = web.Application([(r"/", _Recorder, {"events": events})])
    status, _, body = _call(app, _environ(QUERY_STRING="fail=1"))
    assert status == "409 Conflict" and b"409" in b"".join(body)
    assert events == ["get"]
    body.close()
    assert events == ["get", "on_finish 409"]


def test_on_finish_order_through_validating_client() -> None:
    events: list[str] = []
    app = lint_client(web.Application([(r"/", _Recorder, {"events": events})]))
    assert app.get("/").text == "body"
    assert events == ["get", "on_finish 200"]


def test_a_handler_without_on_finish_answers_a_plain_list() -> None:
    """Servers send a list in one write; only handlers with on_finish need a closing body."""
    _, _, body = _call(web.Application([(r"/", _Account)]), _environ())
    assert type(body) is list


def test_uploads_stay_readable_in_on_finish() -> None:
    seen: list[bytes] = []

    class Upload(web.RequestHandler):
        def post(self) -> None:
            self.write("ok")

        def on_finish(self) -> None:
            seen.append(self.request.files["f"][0].body)

    app = lint_client(web.Application([(r"/", Upload)]))
    app.post("/", upload_files=[("f", "a.txt", b"payload")])
    assert seen == [b"payload"]


# -- send_wsgi_body: the server gets the iterable unread ----------------------------------------

class _Tracked:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def _body_app(tracked: _Tracked, **route: Any) -> web.Application:
    class Handler(web.RequestHandler):
        def get(self) -> None:
            if route.get("status"):
                self.set_status(route["status"])
            self.set_header("Content-Type", "text/plain")
            self.set_header("Content-Length", str(sum(map(len, tracked.chunks))))
            self.send_wsgi_body(tracked)

        head = get

    return web.Application([(r"/", Handler)])


def test_send_wsgi_body_hands_the_iterable_to_the_server() -> None:
    tracked = _Tracked([b"one ", b"two"])
    status, headers, body = _call(_body_app(tracked), _environ())
    assert body is tracked and status == "200 OK"
    assert ("Content-Length", "7") in headers
    assert not any(name == "Etag" for name, _ in headers)  # nothing buffered to hash
    resp = lint_client(_body_app(_Tracked([b"one ", b"two"]))).get("/")
    assert resp.body == b"one two" and resp.headers["Content-Length"] == "7"


def test_send_wsgi_body_for_head_and_304_closes_the_iterable_unsent() -> None:
    tracked = _Tracked([b"data"])
    resp = lint_client(_body_app(tracked), lint=False).head("/")
    assert resp.body == b"" and resp.headers["Content-Length"] == "4" and tracked.closed == 1
    tracked = _Tracked([b"data"])
    status, headers, body = _call(_body_app(tracked, status=304), _environ())
    assert status.startswith("304") and list(body) == [] and tracked.closed == 1
    assert not any(name == "Content-Type" for name, _ in headers)


def test_send_wsgi_body_after_output_is_refused_and_closes_the_iterable(
        logs: Callable[[str], LogRecorder]) -> None:
    tracked = _Tracked([b"x"])

    class Handler(web.RequestHandler):
        def get(self) -> None:
            self.write("already")
            self.send_wsgi_body(tracked)

    app_log = logs("microweb.application")
    resp = lint_client(web.Application([(r"/", Handler)])).get("/", status=500)
    assert tracked.closed == 1 and b"already" not in resp.body
    error = app_log.records[0].exc_info[1]  # type: ignore[index]
    assert "send_wsgi_body() needs an unsent, empty response" in str(error)


def test_send_wsgi_body_from_a_generator_method_is_refused(
        logs: Callable[[str], LogRecorder]) -> None:
    tracked = _Tracked([b"x"])

    class Handler(web.RequestHandler):
        def get(self) -> Iterator[str]:
            self.send_wsgi_body(tracked)
            yield "never"

    app_log = logs("microweb.application")
    resp = lint_client(web.Application([(r"/", Handler)])).get("/", status=500)
    assert tracked.closed == 1 and b"never" not in resp.body
    error = app_log.records[0].exc_info[1]  # type: ignore[index]
    assert "generator method" in str(error)


def test_send_wsgi_body_with_on_finish_closes_both(tmp_path: Path) -> None:
    events: list[str] = []
    tracked = _Tracked([b"abc"])

    class Handler(web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Length", "3")
            self.send_wsgi_body(tracked)

        def on_finish(self) -> None:
            events.append(f"on_finish, body closed {tracked.closed}")

    _, _, body = _call(web.Application([(r"/", Handler)]), _environ())
    assert b"".join(body) == b"abc" and events == []
    body.close()
    assert events == ["on_finish, body closed 1"]


def test_static_files_reach_the_server_as_its_file_wrapper(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"static bytes")

    class Wrapper:
        def __init__(self, filelike: Any, block_size: int = 8192) -> None:
            self.filelike = filelike

        def __iter__(self) -> Iterator[bytes]:
            return iter(lambda: self.filelike.read(8192), b"")

        def close(self) -> None:
            self.filelike.close()

    app = web.Application([], static_path=str(tmp_path))
    status, _, body = _call(app, _environ(path="/static/a.txt", **{"wsgi.file_wrapper": Wrapper}))
    assert status == "200 OK" and type(body) is Wrapper  # what a server sendfile()s
    assert b"".join(body) == b"static bytes"
    body.close()
    assert body.filelike.closed


def test_access_line_level_reflects_status(access: LogRecorder) -> None:
    lint_client(web.Application([(r"/", _Account)])).get("/nowhere", status=404)
    assert [r.levelno for r in access.records] == [logging.WARNING]
