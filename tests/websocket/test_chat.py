"""The chat example: names, join/leave notices and broadcast across two worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import pytest
from websockets.sync.client import ClientConnection, connect

from tests import support

from .conftest import chat_argv

pytestmark = pytest.mark.redis


def _recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))


def _until(ws: ClientConnection, **match: Any) -> dict[str, Any]:
    """Skip messages until one has every key/value of ``match``."""
    for _ in range(100):
        msg = _recv(ws)
        if all(msg.get(k) == v for k, v in match.items()):
            return msg
    raise AssertionError(f"no message matching {match}")


def _join(stack: ExitStack, port: int, name: str) -> tuple[ClientConnection, int]:
    ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/chat?name={name}"))
    welcome = _recv(ws)
    assert welcome["type"] == "welcome" and welcome["name"] == name
    return ws, welcome["worker"]


@pytest.fixture
def two_workers(chat_server: support.Spawned) -> Iterator[dict[int, ClientConnection]]:
    """One connected client on each of the two worker processes."""
    with ExitStack() as stack:
        by_worker: dict[int, ClientConnection] = {}
        for i in range(40):
            inner = ExitStack()
            ws, worker = _join(inner, chat_server.port, f"probe{i}")
            if worker in by_worker:
                inner.close()
            else:
                by_worker[worker] = ws
                stack.enter_context(inner)
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "connections never reached both workers"
        yield by_worker


def test_page_is_served(chat_server: support.Spawned) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{chat_server.port}/", timeout=10) as r:
        page = r.read().decode()
    assert "new WebSocket" in page and "/chat?name=" in page


def test_messages_cross_worker_processes(two_workers: dict[int, ClientConnection]) -> None:
    (w1, a), (w2, b) = two_workers.items()
    assert w1 != w2
    a.send("hello from one")
    got = _until(b, type="message", text="hello from one")
    assert got["name"].startswith("probe")
    b.send("and back from two")
    assert _until(a, type="message", text="and back from two")["name"].startswith("probe")


def test_join_and_leave_notices_reach_everybody(chat_server: support.Spawned,
                                                 two_workers: dict[int, ClientConnection]
                                                 ) -> None:
    watchers = list(two_workers.values())
    with connect(f"ws://127.0.0.1:{chat_server.port}/chat?name=carol") as carol:
        assert _recv(carol)["type"] == "welcome"
        for ws in watchers:
            assert _until(ws, type="join", name="carol")["ip"] == "127.0.0.1"
    for ws in watchers:
        _until(ws, type="leave", name="carol")


def test_names_are_cleaned_and_defaulted(chat_server: support.Spawned) -> None:
    long_name = "  x  " + "y" * 40
    url = f"ws://127.0.0.1:{chat_server.port}/chat?name={quote(long_name)}"
    with connect(url) as ws:
        assert _recv(ws)["name"] == ("x " + "y" * 40)[:32]
    with connect(f"ws://127.0.0.1:{chat_server.port}/chat") as ws:
        assert _recv(ws)["name"].startswith("guest-")


def test_single_process_without_redis_works(port: int) -> None:
    with support.spawn(chat_argv(port, 1), port=port, env={"MICROWEB_CHAT_REDIS": ""}), \
            connect(f"ws://127.0.0.1:{port}/chat?name=ann") as ann, \
            connect(f"ws://127.0.0.1:{port}/chat?name=bob") as bob:
        _until(ann, type="join", name="bob")
        bob.send("<b>hi</b>")
        got = _until(ann, type="message")
        assert (got["name"], got["text"]) == ("bob", "<b>hi</b>")  # the page escapes it
