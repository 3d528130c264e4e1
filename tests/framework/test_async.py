"""Async handlers: coroutine methods, prepare and on_finish on the thread's event loop.

Concurrency is shown without timings: the awaited calls meet at a barrier that only opens when
all of them are in flight at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

import microweb as web
from microweb import _async

from .conftest import lint_client


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def backend() -> Iterator[str]:
    """A threaded local HTTP server; ``/meet?n=N`` answers only when N calls are in flight."""
    barriers: dict[int, threading.Barrier] = {}
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        n = int(environ["QUERY_STRING"].partition("n=")[2] or "1")
        with lock:
            barrier = barriers.setdefault(n, threading.Barrier(n))
        try:
            index = barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            start_response("504 Gateway Timeout", [("Content-Type", "text/plain")])
            return [b"not concurrent"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"met {index}".encode()]

    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_async_get_gathers_httpx_calls_to_a_local_server(backend: str) -> None:
    class Parallel(web.RequestHandler):
        async def get(self) -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                responses = await asyncio.gather(
                    *(client.get(f"{backend}/meet?n=3") for _ in range(3)))
            self.write({"statuses": [r.status_code for r in responses],
                        "bodies": sorted(r.text for r in responses)})

    body = lint_client(web.Application([("/", Parallel)])).get("/").json
    assert body == {"statuses": [200, 200, 200], "bodies": ["met 0", "met 1", "met 2"]}


def test_blocking_work_runs_in_the_thread_pool() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def blocking(i: int) -> str:
        barrier.wait()  # all three must run at the same time
        return f"{i}:{threading.current_thread().name.split('_')[0]}"

    class Pool(web.RequestHandler):
        async def get(self) -> None:
            results = await asyncio.gather(
                asyncio.to_thread(blocking, 0),
                self.run_in_executor(blocking, 1),
                _async.run_in_executor(blocking, 2))
            self.write({"results": results, "loop_thread": threading.current_thread().name})

    body = lint_client(web.Application([("/", Pool)])).get("/").json
    assert body["results"] == [f"{i}:microweb-blocking" for i in range(3)]
    assert body["loop_thread"] == threading.current_thread().name


def test_async_prepare_and_on_finish_run_to_completion() -> None:
    events: list[str] = []

    class H(web.RequestHandler):
        async def prepare(self) -> None:
            await asyncio.sleep(0)
            events.append("prepare")
            if self.get_argument("stop", None):
                self.finish("stopped in prepare")

        async def get(self) -> None:
            await asyncio.sleep(0)
            events.append("get")
            self.write("done")

        async def on_finish(self) -> None:
            await asyncio.sleep(0)
            events.append("on_finish")

    client = lint_client(web.Application([("/", H)]))
    assert client.get("/").text == "done"
    assert events == ["prepare", "get", "on_finish"]
    events.clear()
    assert client.get("/?stop=1").text == "stopped in prepare"
    assert events == ["prepare", "on_finish"]


def test_exceptions_in_coroutines_become_errors(logs: Any) -> None:
    class H(web.RequestHandler):
        async def get(self) -> None:
            await asyncio.sleep(0)
            if self.get_argument("http", None):
                raise web.HTTPError(403)
            raise RuntimeError("async boom")

    app_log = logs("microweb.application")
    client = lint_client(web.Application([("/", H)]))
    client.get("/?http=1", status=403)
    response = client.get("/", status=500)
    assert "async boom" not in response.text
    assert [str(r.exc_info[1]) for r in app_log.records if r.exc_info] == ["async boom"]


def test_async_generator_streams() -> None:
    class H(web.RequestHandler):
        async def get(self) -> Any:
            for i in range(3):
                await asyncio.sleep(0)
                yield f"{i};"

    assert lint_client(web.Application([("/", H)])).get("/").text == "0;1;2;"


def test_each_thread_has_its_own_loop_reused_across_requests() -> None:
    loops: list[int] = []

    class H(web.RequestHandler):
        async def get(self) -> None:
            loops.append(id(asyncio.get_running_loop()))
            self.write("x")

    client = lint_client(web.Application([("/", H)]))
    client.get("/")
    client.get("/")
    worker_loop: list[int] = []
    thread = threading.Thread(target=lambda: (client.get("/"), worker_loop.append(loops[-1])))
    thread.start()
    thread.join(10)
    assert loops[0] == loops[1] and worker_loop and worker_loop[0] != loops[0]


def test_application_called_from_a_running_loop() -> None:
    """A WSGI call made inside async code runs the coroutine on a helper thread."""

    class H(web.RequestHandler):
        async def get(self) -> None:
            await asyncio.sleep(0)
            self.write("from helper loop")

    client = lint_client(web.Application([("/", H)]))

    async def main() -> str:
        return str(client.get("/").text)

    assert asyncio.run(main()) == "from helper loop"
