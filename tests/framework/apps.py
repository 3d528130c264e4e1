"""A microweb app the real-server tests run under gunicorn and wsgiref (``apps:application``).

The streaming endpoints send a first chunk, then wait (bounded) until the test creates the
marker file named in ``?marker=``: the test can only see the first chunk before creating the
marker if the chunk really left the server on its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import microweb as web


def _wait_for(marker: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)


class Hello(web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class GeneratorStream(web.RequestHandler):
    def get(self) -> Any:
        self.set_header("Content-Type", "text/plain")
        yield "first\n"
        _wait_for(self.get_argument("marker"))
        yield "second\n"


class FlushStream(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write("first\n")
        self.flush()
        _wait_for(self.get_argument("marker"))
        self.write("second\n")


class AsyncStream(web.RequestHandler):
    async def get(self) -> Any:
        self.set_header("Content-Type", "text/plain")
        yield "first\n"
        await asyncio.to_thread(_wait_for, self.get_argument("marker"))
        yield "second\n"


class AfterSend(web.RequestHandler):
    """on_finish waits (bounded) for the test's marker: only a response sent before on_finish
    runs reaches the client in time; then on_finish reports by creating ``<marker>.done``."""

    def get(self) -> None:
        self.write("sent")

    def on_finish(self) -> None:
        marker = self.get_argument("marker")
        _wait_for(marker)
        with open(marker + ".done", "w") as done:
            done.write("on_finish ran after the response was sent" if os.path.exists(marker)
                       else "timed out")


class Echo(web.RequestHandler):
    def post(self) -> None:
        self.write({"a": self.get_argument("a"), "files": sorted(self.request.files)})


application = web.Application([
    ("/", Hello),
    ("/stream/generator", GeneratorStream),
    ("/stream/flush", FlushStream),
    ("/stream/async", AsyncStream),
    ("/echo", Echo),
    ("/after", AfterSend),
])
