"""Real servers for the WebSocket tests: the bundled server in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support


def serve_argv(app: str, port: int, *extra: str) -> list[str]:
    """The command line of the bundled server serving ``app`` on 127.0.0.1:``port``."""
    return [support.PYTHON, "-m", "microweb.server", app, "--host", "127.0.0.1",
            "--port", str(port), *extra]


@pytest.fixture(scope="module")
def ws_server() -> Iterator[support.Spawned]:
    """tests.websocket.apps served by one bundled-server worker with 4 threads."""
    port = support.free_port()
    with support.spawn(serve_argv("tests.websocket.apps:application", port, "--threads", "4"),
                       port=port) as sp:
        yield sp


def chat_argv(port: int, workers: int) -> list[str]:
    """``microweb serve`` running the chat example."""
    exe = support.which("microweb")
    head = [exe] if exe else [support.PYTHON, "-m", "microweb.cli"]
    return [*head, "serve", "examples.chat.app:application", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--threads", "4"]


@pytest.fixture(scope="module")
def chat_server(redis_port: int) -> Iterator[support.Spawned]:
    """The chat example on two worker processes sharing a Redis hub."""
    port = support.free_port()
    env = {"MICROWEB_CHAT_REDIS": f"redis://127.0.0.1:{redis_port}/0"}
    with support.spawn(chat_argv(port, 2), port=port, env=env) as sp:
        yield sp
