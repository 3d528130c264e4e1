"""Server benchmark: the same hello app on microweb.server and its peers, driven by wrk.

    python -m benchmarks server [--duration 5] [--servers microweb,waitress,...] [--idle]

Every server runs in its own process on 127.0.0.1, pinned to CPU 0 when ``taskset`` exists
(wrk runs on CPU 1); ``microweb-2w`` and ``gunicorn-gthread`` use both cores with wrk
competing. Each cell is keep-alive or ``Connection: close`` at c=1/16/128: requests/s and
p50/p99 latency. ``--idle`` also measures RSS per idle keep-alive connection at 1,000 /
5,000 / 10,000 connections and the latency of a fresh request while they are held.
This is a benchmark, not a test: numbers vary with the machine; compare ratios in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._probe import fresh_request_ms, proc_status

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(sys.executable).parent
BODY = b"Hello, world!"


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The raw WSGI hello app every WSGI server serves."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY]


_CHUNK = b"0123456789abcdef" * 4096  # 64 KiB of compressible text


def stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    """A 1 GiB streamed response (no Content-Length): memory must stay flat."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    for _ in range(16384):
        yield _CHUNK


def _gzipped_stream() -> Callable[..., Any]:
    from middleware import GzipMiddleware

    return GzipMiddleware(stream, level=1)


gzip_stream = _gzipped_stream() if __name__ != "__main__" else None


class _Idle:
    """The smallest upgrade protocol: holds the connection and ignores what it receives."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


def upgraded(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Upgrade every request that asks for it (to measure idle upgraded connections)."""
    if "microweb.upgrade" in environ and environ.get("HTTP_UPGRADE") == "idle":
        environ["microweb.upgrade"](_Idle())
        start_response("101 Switching Protocols", [("Upgrade", "idle"),
                                                   ("Connection", "Upgrade")])
        return []
    return hello(environ, start_response)


_TORNADO = """
import sys, tornado.web, tornado.ioloop, tornado.httpserver
class H(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write(b"Hello, world!")
app = tornado.web.Application([(r"/", H)])
server = tornado.httpserver.HTTPServer(app)
server.listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"""

_WSGIREF = """
import sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
from benchmarks.server import hello
class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass
make_server("127.0.0.1", int(sys.argv[1]), hello, handler_class=Quiet).serve_forever()
"""

APP = "benchmarks.server:hello"


def _servers(port: int) -> dict[str, tuple[list[str], bool]]:
    """name -> (argv, pinned to one core)."""
    p = str(port)
    return {
        "microweb": ([PY, "-m", "microweb.server", APP, "--port", p, "--keepalive-timeout",
                      "300", "--threads", "4", "--log-level", "WARNING"], True),
        "microweb-2w": ([PY, "-m", "microweb.server", APP, "--port", p, "--workers", "2",
                         "--threads", "4", "--keepalive-timeout", "300",
                         "--log-level", "WARNING"], False),
        "microweb-upgraded": ([PY, "-m", "microweb.server", "benchmarks.server:upgraded",
                               "--port", p, "--threads", "4", "--log-level", "WARNING"], True),
        "waitress": ([str(BIN / "waitress-serve"), f"--listen=127.0.0.1:{p}", "--threads=4",
                      "--connection-limit=20000", "--channel-timeout=300",
                      "--asyncore-use-poll", APP], True),
        "gunicorn-sync": ([str(BIN / "gunicorn"), "-w", "1", "-k", "sync", "-b",
                           f"127.0.0.1:{p}", "--log-level", "warning", APP], True),
        "gunicorn-gthread": ([str(BIN / "gunicorn"), "-w", "2", "-k", "gthread", "--threads",
                              "4", "-b", f"127.0.0.1:{p}", "--log-level", "warning", APP],
                             False),
        "tornado": ([PY, "-c", _TORNADO, p], True),
        "wsgiref": ([PY, "-c", _WSGIREF, p], True),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(argv: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else argv


@contextlib.contextmanager
def _running(name: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    argv, pinned = _servers(port)[name]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_pin(argv, "0") if pinned else argv, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if match is None:
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    return match.group(1) if match else ""


def wrk(port: int, conns: int, duration: float, close: bool, pin: bool) -> dict[str, float]:
    """Run wrk once; requests/s, p50 and p99 in ms, and error count."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", "--timeout", "5s",
            f"http://127.0.0.1:{port}/"]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(_pin(argv, "1") if pin else argv, capture_output=True, text=True,
                         timeout=duration + 60).stdout
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out) or 0.0)
    p50 = _ms(_find(r"(?m)^\s+50%\s+(\S+)", out))  # the Latency Distribution rows
    p99 = _ms(_find(r"(?m)^\s+99%\s+(\S+)", out))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99,
            "errors": float(errors.group(1)) if errors else 0.0,
            "socket_errors": 1.0 if socket_errors else 0.0}


def throughput(names: list[str], duration: float) -> dict[tuple[str, str, int], dict[str, float]]:
    results = {}
    for name in names:
        port = _free_port()
        pinned = _servers(port)[name][1]
        with _running(name, port):
            wrk(port, 16, 1, False, pinned)  # warm-up
            for close in (False, True):
                for conns in (1, 16, 128):
                    mode = "close" if close else "keep-alive"
                    r = wrk(port, conns, duration, close, pinned)
                    results[(name, mode, conns)] = r
                    print(f"  {name:17} {mode:10} c={conns:<4} {r['rps']:>9.0f} req/s  "
                          f"p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms", flush=True)
    return results


def _rss_kb(pid: int) -> int:
    total = 0
    pids = [pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _fresh_latency_ms(port: int, samples: int = 20) -> float:
    return statistics.median(fresh_request_ms(port, samples, BODY))


def idle(names: list[str], counts: tuple[int, ...]) -> dict[tuple[str, int], tuple[float, float]]:
    """RSS per idle keep-alive connection and fresh-request latency while they are held."""
    results = {}
    for name in names:
        for count in counts:
            port = _free_port()
            with _running(name, port) as proc:
                _fresh_latency_ms(port, 50)
                time.sleep(0.5)
                before = _rss_kb(proc.pid)
                held = _open_idle(port, count, upgrade=name.endswith("-upgraded"))
                time.sleep(1.0)
                after = _rss_kb(proc.pid)
                alive = _still_open(held)
                latency = _fresh_latency_ms(port)
                for s in held:
                    s.close()
            per_conn = (after - before) * 1024 / max(1, count)
            results[(name, count)] = (per_conn, latency)
            print(f"  {name:10} {count:>6} idle keep-alive: {per_conn / 1024:.2f} KB each "
                  f"({alive} still open), fresh request {latency:.2f} ms", flush=True)
    return results


def _open_idle(port: int, count: int, upgrade: bool = False) -> list[socket.socket]:
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    end = BODY
    if upgrade:
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: idle\r\n\r\n"
        end = b"\r\n\r\n"
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), 10)
        s.sendall(request)
        held.append(s)
    for s in held:  # every connection got its answer and is now idle, kept alive
        data = b""
        while not data.endswith(end):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return held


def _still_open(held: list[socket.socket]) -> int:
    alive = 0
    for s in held:
        s.setblocking(False)
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def _report(results: dict[tuple[str, str, int], dict[str, float]]) -> None:
    names = sorted({k[0] for k in results}, key=list(_servers(0)).index)
    for mode in ("keep-alive", "close"):
        print(f"\n| {mode}: req/s (p50/p99 ms) | c=1 | c=16 | c=128 |\n|---|---|---|---|")
        for name in names:
            cells = [results.get((name, mode, c)) for c in (1, 16, 128)]
            row = [f"{r['rps']:.0f} ({r['p50']:.2f}/{r['p99']:.2f})" if r else "-"
                   for r in cells]
            print(f"| {name} | " + " | ".join(row) + " |")
    mw = "microweb"
    for peer in ("waitress", "gunicorn-sync", "gunicorn-gthread", "tornado"):
        for mode in ("keep-alive", "close"):
            ratios = [results[(mw, mode, c)]["rps"] / results[(peer, mode, c)]["rps"]
                      for c in (1, 16, 128) if (mw, mode, c) in results
                      and (peer, mode, c) in results]
            if ratios:
                print(f"microweb / {peer} ({mode}): " + ", ".join(f"{r:.2f}x" for r in ratios))


def streaming() -> None:
    """Peak RSS of one microweb worker while streaming 1 GiB, plain and through gzip."""
    for app in ("stream", "gzip_stream"):
        port = _free_port()
        argv = [PY, "-m", "microweb.server", f"benchmarks.server:{app}", "--port", str(port),
                "--log-level", "WARNING"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            _wait_port(port)
            start = time.perf_counter()
            curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                    f"http://127.0.0.1:{port}/"]
            if app == "gzip_stream":
                curl[1:1] = ["-H", "Accept-Encoding: gzip"]
            size = subprocess.run(curl, capture_output=True, text=True, timeout=600).stdout
            seconds = time.perf_counter() - start
            peak = proc_status(proc.pid, "VmHWM:")
            print(f"  {app:12} 1 GiB body, {int(size) / 2**20:.0f} MiB on the wire in "
                  f"{seconds:.1f} s, peak RSS {peak / 1024:.1f} MiB", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks server")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk cell")
    parser.add_argument("--servers", default=",".join(
        n for n in _servers(0) if n != "microweb-upgraded"))
    parser.add_argument("--idle", action="store_true", help="also measure idle connections")
    parser.add_argument("--idle-only", action="store_true")
    parser.add_argument("--idle-servers",
                        default="microweb,microweb-upgraded,waitress,tornado")
    parser.add_argument("--stream", action="store_true", help="1 GiB streaming peak RSS")
    args = parser.parse_args(argv or [])
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)")
        return 1
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{'pinned with taskset' if shutil.which('taskset') else 'not pinned'}")
    if args.stream:
        streaming()
    if not args.idle_only and not args.stream:
        _report(throughput(args.servers.split(","), args.duration))
    if args.idle or args.idle_only:
        idle(args.idle_servers.split(","), (1000, 5000, 10000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
