"""RequestHandler: lifecycle order, output, headers, ETag, redirects and error semantics."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest

import microweb as web
from microweb import signals
from microweb.handler import Finish

from .conftest import lint_client


def client_for(*rules: Any, **settings: Any) -> Any:
    return lint_client(web.Application(list(rules), **settings))


# -- lifecycle ----------------------------------------------------------------------------
class Recorder(web.RequestHandler):
    events: list[str] = []

    def set_default_headers(self) -> None:
        self.events.append("set_default_headers")
        self.set_header("X-Default", "yes")

    def initialize(self, fail_in: str = "") -> None:
        self.events.append("initialize")
        self.fail_in = fail_in

    def prepare(self) -> None:
        self.events.append("prepare")
        if self.fail_in == "prepare":
            raise web.HTTPError(403)
        if self.fail_in == "prepare-finish":
            self.finish("done early")

    def get(self) -> None:
        self.events.append("get")
        if self.fail_in == "get":
            raise ValueError("boom")
        self.write("ok")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.events.append(f"write_error {status_code} {type(kwargs['exc_info'][1]).__name__}")
        self.finish(f"error {status_code}")

    def on_finish(self) -> None:
        self.events.append("on_finish")


@pytest.fixture
def recorder() -> list[str]:
    Recorder.events = []
    return Recorder.events


def test_lifecycle_order(recorder: list[str]) -> None:
    client = client_for(("/", Recorder))
    assert client.get("/").text == "ok"
    assert recorder == ["set_default_headers", "initialize", "prepare", "get", "on_finish"]


def test_error_reapplies_default_headers_and_calls_write_error(recorder: list[str]) -> None:
    client = client_for(("/", Recorder, {"fail_in": "get"}))
    response = client.get("/", status=500)
    assert response.text == "error 500"
    assert response.headers["X-Default"] == "yes"
    assert recorder == ["set_default_headers", "initialize", "prepare", "get",
                        "set_default_headers", "write_error 500 ValueError", "on_finish"]


def test_on_finish_runs_when_prepare_raises_or_finishes(recorder: list[str]) -> None:
    client = client_for(("/raise", Recorder, {"fail_in": "prepare"}),
                        ("/finish", Recorder, {"fail_in": "prepare-finish"}))
    assert client.get("/raise", status=403).text == "error 403"
    assert recorder[-1] == "on_finish" and "get" not in recorder
    recorder.clear()
    assert client.get("/finish").text == "done early"
    assert recorder == ["set_default_headers", "initialize", "prepare", "on_finish"]


def test_exception_in_initialize_is_a_logged_500(logs: Any) -> None:
    class Broken(web.RequestHandler):
        def initialize(self) -> None:
            raise RuntimeError("bad init")

    app_log = logs("microweb.application")
    response = client_for(("/", Broken)).get("/", status=500)
    assert "bad init" not in response.text
    assert [r.exc_info[1].args for r in app_log.records if r.exc_info] == [("bad init",)]


# -- output -------------------------------------------------------------------------------
def test_write_str_bytes_and_default_content_type() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("héllo ")
            self.write(b"bytes")

    response = client_for(("/", H)).get("/")
    assert response.body == "héllo bytes".encode()
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Content-Length"] == str(len(response.body))


def test_write_dict_is_json_and_lists_are_refused() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write({"a": [1, 2], "html": "</script>"})

    class L(web.RequestHandler):
        def get(self) -> None:
            self.write([1, 2])  # type: ignore[arg-type]

    client = client_for(("/", H), ("/list", L))
    response = client.get("/")
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.json == {"a": [1, 2], "html": "</script>"}
    assert b"<\\/script>" in response.body
    client.get("/list", status=500)


def test_write_after_finish_and_finish_twice_are_errors(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.finish("first")
            self.write("late")

    class Twice(web.RequestHandler):
        def get(self) -> None:
            self.finish("once")
            self.finish()

    app_log = logs("microweb.application")
    client = client_for(("/", H), ("/twice", Twice))
    assert client.get("/").text == "first"
    assert client.get("/twice").text == "once"
    errors = [str(r.exc_info[1]) for r in app_log.records if r.exc_info]
    assert errors == ["Cannot write() after finish()", "finish() called twice"]


def test_set_status_with_reason_and_unknown_code() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            code = int(self.get_argument("code"))
            reason = self.get_argument("reason", None)
            self.set_status(code, reason)
            self.write("x")

    client = client_for(("/", H))
    assert client.get("/?code=201").status == "201 Created"
    assert client.get("/?code=299&reason=Fine").status == "299 Fine"
    client.get("/?code=299", status=500)  # unknown code without reason: ValueError


def test_set_status_rejects_invalid_values() -> None:
    handler = make_handler()
    with pytest.raises(ValueError):
        handler.set_status(299)
    with pytest.raises(ValueError):
        handler.set_status(20)
    with pytest.raises(ValueError):
        handler.set_status(200, "OK\r\nX-Evil: 1")


def make_handler(method: str = "GET") -> web.RequestHandler:
    from wsgiref.util import setup_testing_defaults

    from microweb.httputil import HTTPServerRequest
    environ: dict[str, Any] = {"REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    return web.RequestHandler(web.Application(), HTTPServerRequest(environ))


def test_header_values_are_converted_and_crlf_rejected() -> None:
    handler = make_handler()
    handler.set_header("X-Int", 42)
    handler.set_header("x-date", datetime.datetime(2024, 1, 2, 3, 4, 5,
                                                    tzinfo=datetime.UTC))
    handler.set_header("X-Bytes", b"raw")
    assert handler._headers["X-Int"] == "42"
    assert handler._headers["X-Date"] == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert handler._headers["X-Bytes"] == "raw"
    for bad in ("a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "nul\x00"):
        with pytest.raises(ValueError):
            handler.set_header("X-Bad", bad)
        with pytest.raises(ValueError):
            handler.add_header("X-Bad", bad)
    with pytest.raises(ValueError):
        handler.set_header("Bad Name", "v")
    with pytest.raises(ValueError):
        handler.set_header("X-Unicode", "snowman ☃")
    with pytest.raises(TypeError):
        handler.set_header("X-Obj", object())


def test_add_clear_and_set_header() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.add_header("X-Multi", "1")
            self.add_header("x-multi", "2")
            self.add_header("X-Gone", "a")
            self.add_header("X-Gone", "b")
            self.clear_header("X-Gone")
            self.add_header("X-Replaced", "a")
            self.add_header("X-Replaced", "b")
            self.set_header("X-Replaced", "c")
            self.set_header("X-Other", "1")
            self.clear_header("x-other")
            self.write("x")

    response = client_for(("/", H)).get("/")
    assert response.headers.getall("X-Multi") == ["1", "2"]
    assert "X-Gone" not in response.headers
    assert response.headers.getall("X-Replaced") == ["c"]
    assert "X-Other" not in response.headers


def test_clear_resets_status_headers_and_body() -> None:
    class H(web.RequestHandler):
        def set_default_headers(self) -> None:
            self.set_header("X-Default", "1")

        def get(self) -> None:
            self.set_status(404)
            self.set_header("X-Temp", "1")
            self.write("discarded")
            self.clear()
            self.write("kept")

    response = client_for(("/", H)).get("/")
    assert response.status_int == 200 and response.text == "kept"
    assert "X-Temp" not in response.headers and response.headers["X-Default"] == "1"


def test_etag_and_304() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("cached body")

    client = client_for(("/", H))
    etag = client.get("/").headers["Etag"]
    response = lint_client(web.Application([("/", H)])).get(
        "/", headers={"If-None-Match": etag}, status=304)
    assert response.body == b"" and "Content-Type" not in response.headers
    for header in (f"W/{etag}", f'"other", {etag}', "*"):
        client.get("/", headers={"If-None-Match": header}, status=304)
    assert client.get("/", headers={"If-None-Match": '"other"'}).text == "cached body"


def test_compute_etag_override_and_post_has_no_etag() -> None:
    class NoTag(web.RequestHandler):
        def compute_etag(self) -> None:
            return None

        def get(self) -> None:
            self.write("x")

        def post(self) -> None:
            self.write("y")

    client = client_for(("/", NoTag))
    assert "Etag" not in client.get("/").headers
    assert "Etag" not in client.post("/").headers


def test_head_body_is_stripped_but_length_kept() -> None:
    class H(web.RequestHandler):
        def head(self) -> None:
            self.write("twelve bytes")

    response = lint_client(web.Application([("/", H)]), lint=False).head("/")
    assert response.body == b"" and response.headers["Content-Length"] == "12"


def test_204_drops_body_headers() -> None:
    class H(web.RequestHandler):
        def delete(self) -> None:
            self.set_status(204)

    class Bad(web.RequestHandler):
        def delete(self) -> None:
            self.set_status(204)
            self.write("not allowed")

    client = lint_client(web.Application([("/", H), ("/bad", Bad)]), lint=False)
    response = client.delete("/", status=204)
    assert "Content-Type" not in response.headers and "Content-Length" not in response.headers
    client.delete("/bad", status=500)


def test_redirect_forms() -> None:
    class R(web.RequestHandler):
        def get(self) -> None:
            kind = self.get_argument("kind")
            if kind == "temp":
                self.redirect("/to")
            elif kind == "perm":
                self.redirect("/to", permanent=True)
            else:
                self.redirect("/to", status=int(kind))

    # werkzeug's linter still wants absolute Locations (RFC 2616); RFC 9110 allows relative.
    client = lint_client(web.Application([("/", R)]), lint=False)
    assert client.get("/?kind=temp", status=302).headers["Location"] == "/to"
    assert client.get("/?kind=perm", status=301).headers["Location"] == "/to"
    assert client.get("/?kind=307", status=307).headers["Location"] == "/to"
    client.get("/?kind=200", status=500)


def test_redirect_handler_is_permanent_and_keeps_query() -> None:
    client = lint_client(web.Application([
        (r"/old/(.*)", web.RedirectHandler, {"url": "/new/{0}"}),
        (r"/tmp", web.RedirectHandler, {"url": "/dest?a=1", "permanent": False}),
    ]), lint=False)
    response = client.get("/old/x/y?page=2&q=z", status=301)
    assert response.headers["Location"] == "/new/x/y?page=2&q=z"
    assert client.get("/tmp?b=2", status=302).headers["Location"] == "/dest?a=1&b=2"


def test_redirect_handler_substitution_cannot_send_to_another_host() -> None:
    client = lint_client(web.Application([
        (r"/a/(.*)", web.RedirectHandler, {"url": "/{0}/b"}),
        (r"/go/(.*)", web.RedirectHandler, {"url": "{0}"}),
        (r"/site/(.*)", web.RedirectHandler, {"url": "https://example.com/{0}"}),
    ]), lint=False)
    for path in ("/a//evil.example", "/a/%5Cevil.example", "/go///evil.example/x",
                 "/go/https:%2F%2Fevil.example/", "/a/x%09y%0D"):
        response = client.get(path, status=400)
        assert "Location" not in response.headers
    assert client.get("/a/x", status=301).headers["Location"] == "/x/b"
    assert client.get("/go/local/page", status=301).headers["Location"] == "local/page"
    response = client.get("/site/docs?q=1", status=301)
    assert response.headers["Location"] == "https://example.com/docs?q=1"


def test_finish_exception_ends_the_request() -> None:
    class H(web.RequestHandler):
        def prepare(self) -> None:
            raise Finish("stopped")

        def get(self) -> None:
            self.write("never")

    assert client_for(("/", H)).get("/").text == "stopped"


# -- errors -------------------------------------------------------------------------------
def test_http_error_discards_output_and_headers() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.set_header("X-Leak", "1")
            self.write("partial")
            raise web.HTTPError(409, "conflict on %s", "row", reason="Busy Row")

    response = client_for(("/", H)).get("/", status=409)
    assert response.status == "409 Busy Row"
    assert "X-Leak" not in response.headers and "partial" not in response.text
    assert response.text == "<html><title>409: Busy Row</title><body>409: Busy Row</body></html>"


def test_http_error_log_message_is_a_warning(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise web.HTTPError(400, "bad value %r", "x%y")

    class Plain(web.RequestHandler):
        def get(self) -> None:
            raise web.HTTPError(410)

    app_log = logs("microweb.application")
    client = client_for(("/", H), ("/plain", Plain))
    client.get("/?a=1", status=400)
    client.get("/plain", status=410)
    assert app_log.messages() == ["400 GET /?a=1 (): bad value 'x%y'"]
    assert app_log.records[0].levelno == logging.WARNING


def test_send_error_with_custom_write_error_and_reason() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.send_error(418, reason="Short And Stout")

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.write({"code": status_code, "reason": self._reason,
                        "has_exc": "exc_info" in kwargs})

    response = client_for(("/", H)).get("/", status=418)
    assert response.json == {"code": 418, "reason": "Short And Stout", "has_exc": False}


def test_write_error_receives_exc_info() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise KeyError("missing-thing")

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            exc = kwargs["exc_info"][1]
            self.finish(f"{status_code} {type(exc).__name__}")

    assert client_for(("/", H)).get("/", status=500).text == "500 KeyError"


def test_broken_write_error_still_answers(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise ValueError("first")

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            raise RuntimeError("second")

    app_log = logs("microweb.application")
    response = client_for(("/", H)).get("/", status=500)
    assert response.body == b""
    assert "Uncaught exception in write_error" in app_log.messages()


def test_uncaught_exception_page_reveals_nothing_and_is_logged_once(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise RuntimeError("secret database password")

    app_log = logs("microweb.application")
    response = client_for(("/crash-path", H)).get("/crash-path?x=1", status=500)
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.text.startswith("<html><title>500: Internal Server Error</title>")
    errors = [r for r in app_log.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == "Uncaught exception GET /crash-path?x=1 ()"
    assert errors[0].exc_info and "secret database password" in str(errors[0].exc_info[1])


@pytest.mark.parametrize("settings", [{"serve_traceback": True}, {"debug": True}])
def test_serve_traceback_shows_an_html_traceback(settings: dict[str, Any]) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise RuntimeError("visible in debug")

    response = client_for(("/", H), **settings).get("/", status=500)
    assert response.content_type == "text/html"
    assert "visible in debug" in response.text and "Traceback" in response.text
    assert "test_handler.py" in response.text


def test_serve_traceback_not_used_for_client_errors() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            raise web.HTTPError(404)

    response = client_for(("/", H), serve_traceback=True).get("/", status=404)
    assert "Traceback" not in response.text


def test_debug_implies_tornado_defaults() -> None:
    app = web.Application([], debug=True)
    assert app.settings["autoreload"] is True and app.settings["serve_traceback"] is True
    assert app.settings["compiled_template_cache"] is False
    assert app.settings["static_hash_cache"] is False
    assert web.Application([], debug=True, serve_traceback=False).settings[
        "serve_traceback"] is False


def test_error_after_flush_keeps_partial_response(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("head ")
            self.flush()
            raise RuntimeError("late")

    app_log = logs("microweb.application")
    response = lint_client(web.Application([("/", H)]), lint=False).get("/")
    assert response.text == "head "
    assert "Cannot send error response after headers written" in app_log.messages()


def test_exception_in_on_finish_is_logged_not_raised(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("fine")

        def on_finish(self) -> None:
            raise RuntimeError("cleanup failed")

    app_log = logs("microweb.application")
    assert client_for(("/", H)).get("/").text == "fine"
    assert app_log.records[0].getMessage().startswith("Exception in on_finish of GET /")


# -- logging ------------------------------------------------------------------------------
def test_access_log_levels_follow_tornado(logs: Any) -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.set_status(int(self.get_argument("s")))
            if self.get_status() >= 300:
                self.write("x")

    access = logs("microweb.access")
    client = client_for(("/", H))
    client.get("/?s=200")
    client.get("/?s=404", status=404)
    client.get("/?s=503", status=503)
    assert [r.levelno for r in access.records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert access.records[0].getMessage().startswith("200 GET /?s=200 ()")
    assert access.records[0].getMessage().endswith("ms")


def test_log_function_setting_replaces_access_log(logs: Any) -> None:
    seen: list[tuple[int, str]] = []

    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("x")

    access = logs("microweb.access")
    client = client_for(("/", H), log_function=lambda h: seen.append(
        (h.get_status(), h.request.uri)))
    client.get("/?q=1")
    assert seen == [(200, "/?q=1")] and access.records == []


def test_handler_logger_adds_user_and_request_id(logs: Any) -> None:
    class H(web.RequestHandler):
        def get_current_user(self) -> str | None:
            return self.get_argument("user", None)

        def get(self) -> None:
            self.logger.info("did %s", "work")
            self.logger.warning("with extra", extra={"k": "v"})
            self.write("x")

    app_log = logs("microweb.application")
    client = client_for(("/", H))
    client.get("/?user=alice", extra_environ={"microweb.request_id": "req-1"})
    client.get("/")
    first, second, anon, _ = app_log.records
    assert first.getMessage() == "did work"
    assert (first.user, first.request_id) == ("alice", "req-1")  # type: ignore[attr-defined]
    assert second.k == "v" and second.user == "alice"  # type: ignore[attr-defined]
    assert anon.user is None and anon.request_id is None  # type: ignore[attr-defined]
    assert first.name == "microweb.application"


# -- signals ------------------------------------------------------------------------------
def test_signals_are_sent_in_order() -> None:
    events: list[tuple[str, Any]] = []

    class H(web.RequestHandler):
        def get(self) -> None:
            events.append(("get", None))
            if self.get_argument("fail", None):
                raise ValueError("x")
            self.write("x")

    def started(sender: Any) -> None:
        events.append(("started", type(sender).__name__))

    def finished(sender: Any) -> None:
        events.append(("finished", sender.get_status()))

    def failed(sender: Any, exception: BaseException) -> None:
        events.append(("exception", type(exception).__name__))

    client = client_for(("/", H))
    with signals.request_started.connected_to(started), \
            signals.request_finished.connected_to(finished), \
            signals.got_request_exception.connected_to(failed):
        client.get("/")
        client.get("/?fail=1", status=500)
    assert events == [("started", "H"), ("get", None), ("finished", 200),
                      ("started", "H"), ("get", None), ("exception", "ValueError"),
                      ("finished", 500)]


def test_session_property_names_the_middleware() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write(str(self.session["k"]))

    client = client_for(("/", H))
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        make_handler().session  # noqa: B018
    response = client.get("/", extra_environ={"microweb.session": {"k": 5}})
    assert response.text == "5"


def test_require_setting_explains() -> None:
    with pytest.raises(RuntimeError, match="'cookie_secret' setting"):
        make_handler().require_setting("cookie_secret", "secure cookies")


def test_cookies_set_before_an_error_still_go_out() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.set_cookie("seen", "1")
            raise web.HTTPError(403)

    response = client_for(("/", H)).get("/", status=403)
    assert "seen=1" in response.headers["Set-Cookie"]


def test_xsrf_check_runs_before_prepare_for_unsafe_methods(recorder: list[str]) -> None:
    client = lint_client(web.Application([("/", Recorder)], xsrf_cookies=True,
                                         cookie_secret="k" * 32), lint=False)
    client.post("/", status=403)
    assert "prepare" not in recorder and recorder[-1] == "on_finish"
    recorder.clear()
    assert client.get("/").text == "ok"
    assert "prepare" in recorder


def test_handler_has_no_post_so_post_with_xsrf_is_still_405_after_check() -> None:
    class G(web.RequestHandler):
        def get(self) -> None:
            self.write(self.xsrf_token)

    client = lint_client(web.Application([("/", G)], xsrf_cookies=True,
                                         cookie_secret="k" * 32), lint=False)
    token = client.get("/").text
    client.post("/", {"_xsrf": token}, status=405)


def test_returning_a_value_from_a_method_is_a_clear_error(logs: Any) -> None:
    class FlaskStyle(web.RequestHandler):
        def get(self) -> str:
            return "hello"

    app_log = logs("microweb.application")
    client_for(("/", FlaskStyle)).get("/", status=500)
    assert "returned a str: use self.write() or yield" in str(app_log.records[0].exc_info[1])


def test_addslash_and_removeslash_redirect_like_tornado() -> None:
    from microweb import addslash, removeslash  # as tornado.web offers them

    class Add(web.RequestHandler):
        @addslash
        def get(self) -> None:
            self.write("with slash")

        @addslash
        def post(self) -> None:
            self.write("posted")

    class Remove(web.RequestHandler):
        @removeslash
        def get(self) -> None:
            self.write("without slash")

    client = lint_client(web.Application([(r"/add/?", Add), (r"/rm/?", Remove),
                                          (r"/", Remove)]), lint=False)
    assert client.get("/add?x=1", status=301).headers["Location"] == "/add/?x=1"
    assert client.get("/add/").text == "with slash"
    client.post("/add", status=404)
    assert client.get("/rm/?q=2", status=301).headers["Location"] == "/rm?q=2"
    assert client.get("/rm").text == "without slash"
    assert client.get("/").text == "without slash"


def test_addslash_and_removeslash_never_redirect_to_another_host() -> None:
    from microweb import addslash, removeslash

    class Add(web.RequestHandler):
        @addslash
        def get(self, path: str) -> None:
            self.write("with slash")

    class Remove(web.RequestHandler):
        @removeslash
        def get(self, path: str) -> None:
            self.write("without slash")

    client = lint_client(web.Application([(r"/add(.*)", Add), (r"(/.*)", Remove)]), lint=False)
    for path in ("//evil.example/", "//evil.example//"):
        response = client.get(path, status=403, expect_errors=True)
        assert "Location" not in response.headers
    client.get("/add//evil.example", status=404, expect_errors=True)  # no route: nothing sent
    response = client.get("/x//evil.example/", status=301)
    assert response.headers["Location"] == "/x//evil.example"


def test_addslash_refuses_a_protocol_relative_target() -> None:
    from microweb import addslash

    class Add(web.RequestHandler):
        @addslash
        def get(self, path: str) -> None:
            self.write("with slash")

    client = lint_client(web.Application([(r"(/.*)", Add)]), lint=False)
    response = client.get("//evil.example", status=403, expect_errors=True)
    assert "Location" not in response.headers
    assert client.get("/a//b", status=301).headers["Location"] == "/a//b/"


def test_error_reason_built_from_user_input_cannot_break_the_status_line(logs: Any) -> None:
    finished: list[bool] = []

    class Item(web.RequestHandler):
        def get(self) -> None:
            raise web.HTTPError(400, reason="Unknown item " + self.get_argument("id"))

        def on_finish(self) -> None:
            finished.append(True)

    app_log = logs("microweb.application")
    client = client_for(("/", Item))
    for value in ("a%0D%0ASet-Cookie:%20x=1", "%E2%82%AC"):
        response = client.get("/?id=" + value, status=400)
        assert response.status == "400 Bad Request"
        assert "Set-Cookie" not in response.headers
    assert finished == [True, True]
    assert any("Unsafe reason phrase" in r.getMessage() for r in app_log.records)
    assert client.get("/?id=caf%C3%A9", status=400).status == "400 Unknown item café"


def test_redirect_encodes_non_ascii_and_refuses_header_injection() -> None:
    class R(web.RequestHandler):
        def get(self) -> None:
            self.redirect(self.get_argument("to"))

    client = lint_client(web.Application([("/", R)]), lint=False)
    response = client.get("/?to=/caf%C3%A9?q=%C3%BC", status=302)
    assert response.headers["Location"] == "/caf%C3%A9?q=%C3%BC"
    client.get("/?to=/x%0D%0ASet-Cookie:%20a=1", status=500)


def test_a_failing_log_function_does_not_skip_on_finish(logs: Any) -> None:
    finished: list[bool] = []

    class H(web.RequestHandler):
        def get(self) -> None:
            self.write("x")

        def on_finish(self) -> None:
            finished.append(True)

    def broken(handler: Any) -> None:
        raise RuntimeError("log sink down")

    app_log = logs("microweb.application")
    assert client_for(("/", H), log_function=broken).get("/").text == "x"
    assert finished == [True]
    assert app_log.messages() == ["Exception logging or signalling GET / ()"]


def test_overridden_set_etag_header_is_used() -> None:
    class Weak(web.RequestHandler):
        def set_etag_header(self) -> None:
            self.set_header("Etag", 'W/"v1"')

        def get(self) -> None:
            self.write("body")

    client = client_for(("/", Weak))
    assert client.get("/").headers["Etag"] == 'W/"v1"'
    client.get("/", headers={"If-None-Match": '"v1"'}, status=304)
