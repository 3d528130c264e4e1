"""microweb.log: named loggers, plain / JSON / rotating-file output, user and request id context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

import microweb as web
from microweb import log
from middleware import AccessLogMiddleware, compose

LOGGER = "microweb.test-logging"  # configure() a private logger, never the root of the test run


@pytest.fixture
def target() -> Iterator[logging.Logger]:
    logger = logging.getLogger(LOGGER)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_named_loggers() -> None:
    assert log.access_log.name == "microweb.access"
    assert log.app_log.name == "microweb.application"
    assert log.server_log.name == "microweb.server"
    assert log.websocket_log.name == "microweb.websocket"


def test_plain_output_shows_user_and_request_id_when_present(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(level="DEBUG", stream=out, logger=LOGGER)
    target.info("hello %s", "world", extra={"user": "alice", "request_id": "r-1"})
    target.warning("no context here")
    target.debug("only a user", extra={"user": "bob"})
    first, second, third = out.getvalue().splitlines()
    assert first.endswith(f"INFO    {LOGGER} [user=alice request_id=r-1] hello world")
    assert second.endswith(f"WARNING {LOGGER} no context here")
    assert third.endswith("[user=bob] only a user")


def test_a_user_name_cannot_forge_a_log_line(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(stream=out, logger=LOGGER)
    target.info("login", extra={"user": "eve\n2026-01-01 ERROR forged", "request_id": "r\x1b[2J"})
    (line,) = out.getvalue().splitlines()
    assert "[user=eve\\x0a2026-01-01 ERROR forged request_id=r\\x1b[2J] login" in line
    out = io.StringIO()
    log.configure(stream=out, logger=LOGGER, fmt="%(user)s|%(message)s")
    target.info("login", extra={"user": "eve\r\nx"})
    assert out.getvalue().splitlines() == ["eve\\x0d\\x0ax|login"]


def test_custom_format_with_context_fields(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(stream=out, logger=LOGGER, fmt="%(user)s|%(request_id)s|%(message)s")
    target.info("a", extra={"user": "alice"})
    target.info("b")
    assert out.getvalue().splitlines() == ["alice|-|a", "-|-|b"]


def test_color_only_when_asked_or_on_a_terminal(target: logging.Logger, tmp_path: Path) -> None:
    colored, plain = io.StringIO(), io.StringIO()
    log.configure(stream=colored, color=True, logger=LOGGER)
    target.error("red alert")
    log.configure(stream=plain, logger=LOGGER)  # a StringIO is no terminal
    target.error("red alert")
    assert "\x1b[31mERROR  \x1b[0m" in colored.getvalue()
    assert "\x1b[" not in plain.getvalue() and "ERROR   " in plain.getvalue()
    path = tmp_path / "app.log"
    handlers = log.configure(file=path, stderr=True, color=True, logger=LOGGER)
    target.warning("to both")
    for handler in handlers:
        handler.flush()
    assert "\x1b[" not in path.read_text()


def test_level_filters_and_bad_level_is_clear(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(level="warning", stream=out, logger=LOGGER)
    target.info("hidden")
    target.error("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        log.configure(level="LOUD", stream=out, logger=LOGGER)


def test_configure_twice_does_not_duplicate(target: logging.Logger) -> None:
    foreign = logging.NullHandler()
    target.addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    log.configure(stream=first, logger=LOGGER)
    log.configure(stream=second, logger=LOGGER)
    target.info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    ours = [h for h in target.handlers if getattr(h, "stream", None) in (first, second)]
    assert foreign in target.handlers and len(ours) == 1


def test_json_lines_carry_context_and_extras(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(json=True, stream=out, logger=LOGGER)
    target.info("paid %d", 3, extra={"user": "alice", "request_id": "r-9", "order": 17})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        target.exception("failed")
    paid, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert paid["message"] == "paid 3" and paid["level"] == "INFO"
    assert paid["logger"] == LOGGER and paid["time"]
    assert (paid["user"], paid["request_id"], paid["order"]) == ("alice", "r-9", 17)
    assert failed["level"] == "ERROR" and "RuntimeError: boom" in failed["exc_info"]


def test_rotating_file(target: logging.Logger, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.log"
    handlers = log.configure(file=path, max_bytes=300, backups=2, logger=LOGGER)
    assert len(handlers) == 1  # a file alone: no stderr copy unless asked
    for i in range(40):
        target.info("line %03d %s", i, "x" * 30)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["app.log", "app.log.1", "app.log.2"]
    assert all(p.stat().st_size <= 300 for p in path.parent.iterdir())
    assert "line 039" in path.read_text(encoding="utf-8")


def test_file_and_stderr_together_in_json(target: logging.Logger, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.jsonl"
    handlers = log.configure(file=path, json=True, stderr=True, logger=LOGGER)
    assert len(handlers) == 2
    target.warning("both", extra={"request_id": "abc"})
    for handler in handlers:
        handler.flush()
    assert json.loads(path.read_text())["request_id"] == "abc"
    assert json.loads(capsys.readouterr().err)["message"] == "both"


def test_context_adapter_adds_context_per_record(target: logging.Logger) -> None:
    out = io.StringIO()
    log.configure(stream=out, logger=LOGGER)
    current = {"user": "alice"}
    adapter = log.ContextAdapter(target, lambda: {"user": current["user"], "request_id": "r-2"})
    adapter.info("first")
    current["user"] = "bob"
    adapter.info("second", extra={"request_id": "override"})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[user=alice request_id=r-2] first")
    assert lines[1].endswith("[user=bob request_id=override] second")


def test_formatter_does_not_leak_helper_fields(target: logging.Logger) -> None:
    plain, as_json = io.StringIO(), io.StringIO()
    log.configure(stream=plain, logger=LOGGER)
    other = logging.StreamHandler(as_json)
    other.setFormatter(log.json_formatter())
    target.addHandler(other)
    target.info("x", extra={"user": "alice"})
    record = json.loads(as_json.getvalue())
    assert "context" not in record and "request_id" not in record and record["user"] == "alice"


@pytest.mark.parametrize(("user", "label"), [
    (None, None), ("alice", "alice"), (b"bob", "bob"), ({"name": "carol", "id": 3}, "carol"),
    ({"id": 4}, "4"), (type("U", (), {"username": "dave"})(), "dave"),
])
def test_user_label(user: object, label: str | None) -> None:
    assert log.user_label(user) == label


# -- the framework's records, end to end --------------------------------------------------------

class _WhoHandler(web.RequestHandler):
    def get_current_user(self) -> str | None:
        return self.get_argument("as", None)

    def get(self) -> None:
        self.logger.info("paid", extra={"amount": 12})
        self.write("ok")


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("microweb.application")
    yield logger
    for handler in [h for h in logger.handlers if getattr(h, "_microweb_configured", False)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("as_json", [False, True])
def test_handler_logger_carries_user_and_request_id(app_logger: logging.Logger,
                                                   as_json: bool) -> None:
    out = io.StringIO()
    log.configure(stream=out, json=as_json, logger="microweb.application")
    app = compose(web.Application([(r"/", _WhoHandler)]), AccessLogMiddleware)
    client = Client(app)
    response = client.get("/?as=alice", headers={"X-Request-ID": "req-0001"})
    assert response.headers["X-Request-ID"] == "req-0001"
    client.get("/")  # anonymous, with a generated request id
    first, second = out.getvalue().splitlines()
    if as_json:
        record = json.loads(first)
        assert (record["user"], record["request_id"], record["amount"]) == (
            "alice", "req-0001", 12)
        assert json.loads(second)["request_id"] != "req-0001"
    else:
        assert first.endswith("microweb.application [user=alice request_id=req-0001] paid")
        assert "user=" not in second and "[request_id=" in second


def test_get_current_user_may_log_through_handler_logger(app_logger: logging.Logger) -> None:
    calls: list[str] = []

    class Loading(web.RequestHandler):
        def get_current_user(self) -> str:
            calls.append("load")
            self.logger.info("loading the user")
            return "alice"

        def get(self) -> None:
            self.logger.info("paid")
            self.write(str(self.current_user))

    out = io.StringIO()
    log.configure(stream=out, logger="microweb.application")
    assert Client(web.Application([(r"/", Loading)])).get("/").text == "alice"
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and calls == ["load"]  # no re-entrant loading, no flood of lines
    assert lines[0].endswith("microweb.application loading the user")
    assert lines[1].endswith("[user=alice] paid")


def test_log_function_setting_replaces_the_access_line(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[int, str]] = []
    app = web.Application([(r"/", _WhoHandler)],
                          log_function=lambda h: seen.append((h.get_status(), h.request.path)))
    with caplog.at_level(logging.INFO, logger="microweb.access"):
        Client(app).get("/")
        Client(app).get("/nowhere")
    assert seen == [(200, "/"), (404, "/nowhere")]
    assert not [r for r in caplog.records if r.name == "microweb.access"]
    with caplog.at_level(logging.INFO, logger="microweb.access"):
        Client(web.Application([(r"/", _WhoHandler)])).get("/")
    assert [r.name for r in caplog.records if r.name == "microweb.access"] == ["microweb.access"]
