"""microweb.signals: every signal is sent by the real code path, and not at all when unobserved."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blinker import Signal
from werkzeug.test import Client

import microweb as web
from microweb import signals
from middleware import compose
from middleware.sessions import MemoryStore, SessionMiddleware
from tests.support import free_port, spawn

SECRET = "signals-test-secret-0123456789abcdef"
ALL_SIGNALS = [getattr(signals, name) for name in signals.__all__]


class Recorder:
    """Connects to signals for the duration of a test and records (signal, sender, kwargs)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, dict[str, Any]]] = []
        self._connected: list[tuple[Signal, Callable[..., None]]] = []

    def watch(self, *sigs: Signal) -> Recorder:
        for sig in sigs:
            def receiver(sender: Any, _name: str = sig.name, **kwargs: Any) -> None:
                self.events.append((_name, sender, kwargs))
            sig.connect(receiver, weak=False)
            self._connected.append((sig, receiver))
        return self

    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]

    def close(self) -> None:
        for sig, receiver in self._connected:
            sig.disconnect(receiver)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


class HelloHandler(web.RequestHandler):
    def get(self) -> None:
        self.write("hello")


class FailHandler(web.RequestHandler):
    def get(self) -> None:
        raise ValueError("broken handler")


class MissingHandler(web.RequestHandler):
    def get(self) -> None:
        raise web.HTTPError(404)


class BadInitHandler(web.RequestHandler):
    def initialize(self) -> None:
        raise KeyError("missing configuration")


class PageHandler(web.RequestHandler):
    def get(self) -> None:
        self.render("page.html", title="Signals")


class LoginHandler(web.RequestHandler):
    def get(self) -> None:
        self.session["user"] = "alice"
        self.write("in")


class LogoutHandler(web.RequestHandler):
    def get(self) -> None:
        self.session.invalidate()
        self.write("out")


@pytest.fixture
def app(tmp_path: Path) -> Any:
    (tmp_path / "page.html").write_text("<h1>{{ title }}</h1>")
    application = web.Application([
        (r"/", HelloHandler), (r"/fail", FailHandler), (r"/missing", MissingHandler),
        (r"/page", PageHandler), (r"/login", LoginHandler), (r"/logout", LogoutHandler),
        (r"/badinit", BadInitHandler),
    ], template_path=str(tmp_path), cookie_secret=SECRET)
    return compose(application, SessionMiddleware.configure(secret=SECRET, store=MemoryStore()))


def test_request_started_and_finished(app: Any, recorder: Recorder) -> None:
    statuses: list[int] = []

    def status(sender: Any, **kwargs: Any) -> None:
        statuses.append(sender.get_status())

    recorder.watch(signals.request_started, signals.request_finished)
    with signals.request_finished.connected_to(status):
        assert Client(app).get("/").get_data() == b"hello"
        assert Client(app).get("/missing").status_code == 404
    assert recorder.names() == ["request-started", "request-finished"] * 2
    sender = recorder.events[0][1]
    assert isinstance(sender, HelloHandler) and sender.request.path == "/"
    assert recorder.events[1][1] is sender and statuses == [200, 404]


def test_got_request_exception_for_uncaught_errors_only(app: Any, recorder: Recorder) -> None:
    recorder.watch(signals.got_request_exception)
    client = Client(app)
    assert client.get("/fail").status_code == 500
    assert client.get("/missing").status_code == 404  # an HTTPError is an answer, not a crash
    assert len(recorder.events) == 1
    _, sender, kwargs = recorder.events[0]
    assert isinstance(sender, FailHandler)
    assert isinstance(kwargs["exception"], ValueError) and "broken" in str(kwargs["exception"])


def test_got_request_exception_when_the_handler_cannot_be_built(app: Any,
                                                                recorder: Recorder) -> None:
    recorder.watch(signals.got_request_exception)
    assert Client(app).get("/badinit").status_code == 500
    [(_, sender, kwargs)] = recorder.events
    assert isinstance(sender, web.Application) and isinstance(kwargs["exception"], KeyError)


def test_template_rendered(app: Any, recorder: Recorder) -> None:
    recorder.watch(signals.template_rendered)
    assert Client(app).get("/page").get_data() == b"<h1>Signals</h1>"
    [(_, sender, kwargs)] = recorder.events
    assert isinstance(sender, PageHandler)
    assert kwargs["template"] == "page.html" and kwargs["context"]["title"] == "Signals"


def test_session_created_and_destroyed(app: Any, recorder: Recorder) -> None:
    recorder.watch(signals.session_created, signals.session_destroyed)
    client = Client(app)
    client.get("/")  # no session written: nothing to report
    assert recorder.events == []
    client.get("/login")
    client.get("/login")  # the same session again: not created twice
    client.get("/logout")
    assert recorder.names() == ["session-created", "session-destroyed"]
    created = recorder.events[0]
    assert created[1]["user"] == "alice" and created[2]["environ"]["PATH_INFO"] == "/login"
    assert recorder.events[1][2]["environ"]["PATH_INFO"] == "/logout"


def test_middleware_signals_are_reexported() -> None:
    from middleware import signals as mw_signals

    assert signals.session_created is mw_signals.session_created
    assert signals.session_destroyed is mw_signals.session_destroyed


def test_unobserved_signals_send_nothing(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Senders test ``receivers`` first: with nobody listening, ``send`` is never even called."""
    calls: list[str] = []
    for sig in ALL_SIGNALS:
        # receivers some other module connected for good are set aside for this test
        monkeypatch.setattr(sig, "receivers", {})
        monkeypatch.setattr(sig, "send", lambda *a, _n=sig.name, **k: calls.append(_n) or [])
    client = Client(app)
    for path in ("/", "/fail", "/page", "/login", "/logout", "/badinit"):
        client.get(path)
    assert calls == []
    # the probe works: the same requests with one receiver are reported
    signals.request_started.connect(_noop)
    try:
        client.get("/")
    finally:
        signals.request_started.disconnect(_noop)
    assert calls == ["request-started"]


def _noop(sender: Any, **kwargs: Any) -> None:
    return None


# -- WebSocket signals, through the bundled server -----------------------------------------------

class _EventsHandler(web.RequestHandler):
    def get(self) -> None:
        self.write({"events": _WS_EVENTS})


_WS_EVENTS: list[str] = []


def _make_ws_application() -> Any:
    """Served in a subprocess: records the WebSocket signals it receives, shows them at /events."""
    from microweb.websocket import WebSocketHandler

    class Echo(WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            self.write_message(message)

    def opened(sender: Any, **kwargs: Any) -> None:
        _WS_EVENTS.append(f"opened:{type(sender).__name__}:{sender.request.path}")

    def closed(sender: Any, **kwargs: Any) -> None:
        _WS_EVENTS.append(f"closed:{type(sender).__name__}:{sender.close_code}")

    signals.websocket_opened.connect(opened, weak=False)
    signals.websocket_closed.connect(closed, weak=False)
    return web.Application([(r"/ws", Echo), (r"/events", _EventsHandler)])


def __getattr__(name: str) -> Any:
    # Only the server subprocess asks for ws_application: the test run itself stays unobserved.
    if name == "ws_application":
        return _make_ws_application()
    raise AttributeError(name)


@pytest.mark.slow
def test_websocket_opened_and_closed() -> None:
    import httpx
    from websockets.sync.client import connect

    port = free_port()
    argv = [sys.executable, "-m", "microweb.server", "tests.framework.test_signals:ws_application",
            "--port", str(port), "--threads", "2"]
    with spawn(argv, port=port):
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"
        events: list[str] = []
        for _ in range(50):  # the close handshake finishes on the server's side a moment later
            events = httpx.get(f"http://127.0.0.1:{port}/events", timeout=10).json()["events"]
            if len(events) == 2:
                break
            time.sleep(0.1)
    assert events == ["opened:Echo:/ws", "closed:Echo:1000"]


def test_signal_reference_matches_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in signals.__all__:
        assert f"`{name}`" in docs, name
    assert all(isinstance(sig, Signal) for sig in ALL_SIGNALS)
