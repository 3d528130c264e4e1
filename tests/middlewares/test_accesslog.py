"""AccessLogMiddleware: one record per request, levels, formats, request ids, errors."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from middleware import AccessLogMiddleware, ProxyMiddleware, compose, keys
from middleware.accesslog import LOGGER_NAME

from .conftest import bare_app, client, make_app


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    return caplog


def access(records: pytest.LogCaptureFixture) -> list[Any]:
    """The middleware's access records so far (attributes: the record's fields); microweb's
    Application logs its own line on the same logger, which is not counted here."""
    return [r for r in records.records if r.name == LOGGER_NAME and hasattr(r, "access_log")]


def test_one_combined_record_per_request(app_kind: str, records: pytest.LogCaptureFixture) -> None:
    app = client(compose(make_app(app_kind), AccessLogMiddleware), remote_addr="203.0.113.9")
    app.get("/text?x=1&y=%22", headers={"User-Agent": 'curl/8 "evil"\nline',
                                         "Referer": "https://ref.example/"})
    [record] = access(records)
    assert record.levelno == logging.INFO
    line = record.getMessage()
    assert re.fullmatch(
        r'203\.0\.113\.9 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /text\?x=1&y=%22 HTTP/1\.0" 200 2025 "https://ref\.example/" '
        r'"curl/8 \\x22evil\\x22\\x0aline"', line), line
    assert "\n" not in line


def test_fields_on_the_record(records: pytest.LogCaptureFixture) -> None:
    client(compose(bare_app, AccessLogMiddleware)).get("/")
    [record] = access(records)
    fields: Any = record
    assert (fields.method, fields.path, fields.status, fields.bytes) == ("GET", "/", 200, 5)
    assert fields.duration_ms >= 0 and re.fullmatch(r"[0-9a-f]{32}", fields.request_id)


@pytest.mark.parametrize(("status", "level"), [
    (200, logging.INFO), (302, logging.INFO), (404, logging.WARNING), (499, logging.WARNING),
    (500, logging.ERROR), (503, logging.ERROR)])
def test_level_by_status(status: int, level: int, records: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(f"{status} Whatever", [("Content-Type", "text/plain")])
        return [b""]

    client(compose(app, AccessLogMiddleware)).get("/", status=status)
    assert [r.levelno for r in access(records)] == [level]


def test_request_id_echoed_and_exposed(app_kind: str, records: pytest.LogCaptureFixture) -> None:
    app = client(compose(make_app(app_kind), AccessLogMiddleware))
    incoming = app.get("/env", headers={"X-Request-ID": "abc-123.def"})
    assert incoming.headers["X-Request-ID"] == "abc-123.def"
    assert incoming.json["request_id"] == "abc-123.def"
    generated = app.get("/env", headers={"X-Request-ID": "bad id\x7f<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
    assert generated.json["request_id"] == generated.headers["X-Request-ID"]
    assert [r.request_id for r in access(records)] == [
        "abc-123.def", generated.headers["X-Request-ID"]]


def test_request_id_with_a_trailing_newline_is_replaced() -> None:
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.extend(headers)
        return lambda data: None

    app = AccessLogMiddleware(bare_app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http",
               "HTTP_X_REQUEST_ID": "abc\n"}
    b"".join(app(environ, start_response))
    [echoed] = [value for name, value in seen if name == "X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert re.fullmatch(r"[0-9a-f]{32}", environ[keys.REQUEST_ID])


def test_untrusted_request_ids_are_replaced() -> None:
    app = client(compose(bare_app, AccessLogMiddleware.configure(trust_request_id=False)))
    response = app.get("/", headers={"X-Request-ID": "abc"})
    assert response.headers["X-Request-ID"] != "abc"


def test_user_and_resolved_client(records: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ[keys.USER] = "alice"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    stack = compose(app, ProxyMiddleware.configure(trusted=["10.0.0.0/8"]), AccessLogMiddleware)
    client(stack, remote_addr="10.0.0.1").get("/", headers={"X-Forwarded-For": "1.2.3.4"})
    [record] = access(records)
    assert record.getMessage().startswith("1.2.3.4 - alice [")


def test_duration_runs_until_the_body_is_closed(records: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        gate.wait(0.05)  # the stream keeps going after the app returned its iterable
        yield b"b"

    iterable: Any = AccessLogMiddleware(app)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/s"}, lambda s, h, e=None: None)
    assert access(records) == []  # nothing logged while the body is still streaming
    assert b"".join(iterable) == b"ab"
    assert access(records) == []
    iterable.close()
    iterable.close()
    [record] = access(records)
    assert record.bytes == 2 and record.duration_ms >= 40


def test_exception_logged_once_with_traceback_and_answered_500(
        app_kind: str, records: pytest.LogCaptureFixture) -> None:
    app = client(compose(make_app(app_kind), AccessLogMiddleware))
    response = app.get("/boom", status=500, headers={"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    [record] = access(records)
    assert record.levelno == logging.ERROR and record.status == 500
    assert record.request_id == "req-42"
    if app_kind != "microweb":  # microweb answers 500 itself and logs the traceback itself
        assert record.exc_info is not None and "boom" in str(record.exc_info[1])


def test_exception_during_iteration_is_logged_once_and_reraised(
        records: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise RuntimeError("stream broke")

    iterable: Any = AccessLogMiddleware(app)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda s, h, e=None: None)
    with pytest.raises(RuntimeError, match="stream broke"):
        list(iterable)
    iterable.close()
    [record] = access(records)
    assert record.exc_info is not None and record.status == 200
    assert record.bytes == 7


def test_catch_errors_off_reraises(records: pytest.LogCaptureFixture) -> None:
    stack = AccessLogMiddleware(make_app("bare"), catch_errors=False)
    with pytest.raises(RuntimeError, match="boom"):
        stack({"REQUEST_METHOD": "GET", "PATH_INFO": "/boom"}, lambda s, h, e=None: None)
    assert len(access(records)) == 1


def test_json_format_to_a_rotating_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    middleware = AccessLogMiddleware(bare_app, format="json", output=str(path),
                                     max_bytes=2000, backup_count=2)
    try:
        app = client(middleware)
        for _ in range(30):
            app.get("/?q=1", headers={"User-Agent": "pytest"})
    finally:
        middleware.close()
    entry = json.loads(path.read_text().splitlines()[-1])
    assert entry["status"] == 200 and entry["path"] == "/?q=1"
    assert entry["user_agent"] == "pytest" and entry["levelname"] == "INFO"
    assert "request_id" in entry and "duration_ms" in entry and "timestamp" in entry
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "access.log", "access.log.1", "access.log.2"]


def test_custom_format_and_environment_variables(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "custom.log"
    monkeypatch.setenv("MICROWEB_ACCESS_LOG", str(path))
    monkeypatch.setenv("MICROWEB_ACCESS_LOG_FORMAT", "{method} {path} -> {status} ({bytes}B)")
    middleware = AccessLogMiddleware(bare_app)
    try:
        client(middleware).get("/x")
    finally:
        middleware.close()
    assert path.read_text() == "GET /x -> 200 (5B)\n"


def test_two_instances_keep_their_own_files(tmp_path: Path) -> None:
    first = AccessLogMiddleware(bare_app, output=str(tmp_path / "a.log"))
    second = AccessLogMiddleware(bare_app, output=str(tmp_path / "b.log"), format="{path}")
    try:
        client(first).get("/one")
        client(second).get("/two")
    finally:
        first.close()
        second.close()
    assert "/one" in (tmp_path / "a.log").read_text()
    assert "/two" not in (tmp_path / "a.log").read_text()
    assert (tmp_path / "b.log").read_text() == "/two\n"


def test_bad_format_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="bad access log format"):
        AccessLogMiddleware(bare_app, format="{nope}")


def test_app_that_started_its_response_then_raised_gets_a_500(
        records: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("after start_response")

    response = client(AccessLogMiddleware(app)).get("/", status=500)
    assert response.text == "Internal Server Error" and "X-Request-ID" in response.headers
    [record] = access(records)
    assert record.status == 500 and record.exc_info is not None


def test_stdout_output(capsys: pytest.CaptureFixture[str]) -> None:
    middleware = AccessLogMiddleware(bare_app, output="-", format="{method} {path} {status}")
    try:
        client(middleware).get("/hello")
    finally:
        middleware.close()
    assert capsys.readouterr().out == "GET /hello 200\n"


def test_rotation_settings_from_environment(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROWEB_ACCESS_LOG_MAX_BYTES", "300")
    monkeypatch.setenv("MICROWEB_ACCESS_LOG_BACKUPS", "1")
    middleware = AccessLogMiddleware(bare_app, output=str(tmp_path / "a.log"))
    try:
        for _ in range(20):
            client(middleware).get("/")
    finally:
        middleware.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log", "a.log.1"]
    assert (tmp_path / "a.log").stat().st_size <= 300


def test_skip_paths_only_for_successful_requests(records: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        failing = environ.get("QUERY_STRING") == "fail"
        start_response("503 Unavailable" if failing else "200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    c = client(AccessLogMiddleware(app, skip_paths=["/health"]))
    c.get("/health")
    assert access(records) == []
    c.get("/health?fail", status=503)
    c.get("/other")
    assert [r.path for r in access(records)] == ["/health?fail", "/other"]


def test_records_reach_filters_and_real_handlers_behind_null_handlers() -> None:
    """Only when NullHandlers alone would see a record may the layer skip making it."""
    logger = logging.getLogger("tests.accesslog.quiet")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    def counting_filter(record: logging.LogRecord) -> bool:
        seen.append(record)
        return False  # filtered out: no handler sees it

    app = client(compose(bare_app, AccessLogMiddleware.configure(logger=logger)))
    logger.handlers[:] = [logging.NullHandler()]
    try:
        app.get("/")
        assert seen == []  # output switched off
        logger.addFilter(counting_filter)
        app.get("/")
        assert len(seen) == 1 and seen[0].getMessage().startswith("127.0.0.1 - - [")
        logger.removeFilter(counting_filter)
        logger.addHandler(Keep())
        app.get("/next?x=1")
        assert len(seen) == 2 and '"GET /next?x=1 HTTP/1.0" 200' in seen[1].getMessage()
        assert seen[1].path == "/next?x=1" and seen[1].status == 200  # type: ignore[attr-defined]
    finally:
        logger.handlers[:] = []
        logger.filters[:] = []
