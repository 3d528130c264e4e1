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
