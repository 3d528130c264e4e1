"""WebSocket benchmark: idle sockets held by one bundled-server worker, and broadcast latency.

Starts ``python -m microweb.server benchmarks.websocket:application`` (one worker) in a
subprocess, opens N idle WebSockets from this process with raw sockets (a real handshake, no
client library per socket, so the client stays small), then reports the server's RSS per
connection and thread count, the latency of a fresh HTTP request while they are held, and the
latency of a message broadcast (in-process hub) to 1,000 connected clients (p50/p99).

    python -m benchmarks websocket [--count 10000] [--clients 1000] [--rounds 20]
    python -m benchmarks.websocket ...
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._probe import fresh_request_ms, proc_status
from microweb import Application, RequestHandler
from microweb.websocket import WebSocketHandler

ROOT = Path(__file__).resolve().parent.parent
BODY = b"Hello, world!"


# -- the served application ------------------------------------------------------------------

class Hello(RequestHandler):
    def get(self) -> None:
        self.write(BODY)


class Echo(WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


class Room(WebSocketHandler):
    def open(self) -> None:
        self.join("room")

    def on_message(self, message: str | bytes) -> None:
        self.broadcast("room", message)


#: Pings every 2 minutes: the benchmark client never answers them, so the default 20 s would
#: close the idle sockets mid-run (each socket still carries its ping timer).
application = Application([(r"/", Hello), (r"/echo", Echo), (r"/room", Room)],
                          websocket_ping_interval=120.0)


# -- helpers -----------------------------------------------------------------------------------

def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(port: int, threads: int) -> Iterator[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-m", "microweb.server", "benchmarks.websocket:application",
            "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads),
            "--max-connections", "60000", "--log-level", "WARNING"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _handshake(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


def _open(port: int, count: int, path: str, batch: int = 500) -> list[socket.socket]:
    """``count`` WebSockets, handshakes pipelined ``batch`` at a time; source addresses
    127.0.0.2, .3, ... (20,000 each) so the loopback never runs out of ports."""
    held: list[socket.socket] = []
    for start in range(0, count, batch):
        group = []
        for i in range(start, min(count, start + batch)):
            source = (f"127.0.0.{2 + i // 20000}", 0)
            s = socket.create_connection(("127.0.0.1", port), 30, source_address=source)
            s.sendall(_handshake(path))
            group.append(s)
        for s in group:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError(f"handshake failed: {head!r}")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head[:200]!r}")
        held += group
    return held


def _fresh_latency_ms(port: int, samples: int) -> tuple[float, float]:
    times = fresh_request_ms(port, samples, BODY)
    return statistics.median(times), _pct(times, 99)


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _masked_text(payload: bytes) -> bytes:
    """A client frame (clients must mask): FIN + text, payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


# -- the measurements --------------------------------------------------------------------------

def idle(port: int, pid: int, count: int) -> dict[str, float]:
    """RSS per idle WebSocket, threads, and a fresh request's latency while they are held."""
    for s in _open(port, 200, "/echo"):  # warm up: imports, pool threads, allocator arenas
        s.close()
    _fresh_latency_ms(port, 20)
    time.sleep(1.0)
    before, threads_before = proc_status(pid, "VmRSS:"), proc_status(pid, "Threads:")
    started = time.perf_counter()
    held = _open(port, count, "/echo")
    opened = time.perf_counter() - started
    time.sleep(2.0)
    after, threads_after = proc_status(pid, "VmRSS:"), proc_status(pid, "Threads:")
    p50, p99 = _fresh_latency_ms(port, 100)
    echo = held[len(held) // 2]  # still a working socket
    echo.sendall(_masked_text(b"still there?"))
    alive = echo.recv(64).endswith(b"still there?")
    for s in held:
        s.close()
    result = {"count": count, "kib_each": (after - before) / count, "rss_mib": after / 1024,
              "threads_before": threads_before, "threads_after": threads_after,
              "fresh_p50_ms": p50, "fresh_p99_ms": p99, "open_s": opened, "alive": alive}
    print(f"  {count} idle WebSockets: {result['kib_each']:.2f} KiB RSS each "
          f"(worker RSS {result['rss_mib']:.1f} MiB), threads {threads_before} -> "
          f"{threads_after}, opened in {opened:.1f} s; fresh HTTP request while held: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; echo still works: {alive}", flush=True)
    return result


def broadcast(port: int, clients: int, rounds: int) -> dict[str, float]:
    """One client's message, broadcast through the hub, timed at each of ``clients``."""
    socks = _open(port, clients, "/room")
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    latencies: list[float] = []
    last: list[float] = []
    try:
        for n in range(rounds):
            payload = b"round %d" % n
            expected = 2 + len(payload)
            got = dict.fromkeys(socks, 0)
            done: list[float] = []
            start = time.perf_counter()
            socks[n % clients].setblocking(True)
            socks[n % clients].sendall(_masked_text(payload))
            socks[n % clients].setblocking(False)
            deadline = start + 30
            while len(done) < clients and time.perf_counter() < deadline:
                for key, _ in sel.select(1.0):
                    sock: Any = key.fileobj
                    with contextlib.suppress(BlockingIOError):
                        got[sock] += len(sock.recv(4096))
                    if got[sock] >= expected and got[sock] - expected < 1_000_000:
                        done.append((time.perf_counter() - start) * 1000)
                        got[sock] = -1_000_000  # counted
            latencies += done
            last.append(max(done) if done else float("nan"))
            time.sleep(0.05)
    finally:
        sel.close()
        for s in socks:
            s.close()
    result = {"clients": clients, "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99),
              "all_reached_p50_ms": statistics.median(last)}
    print(f"  broadcast to {clients} clients ({rounds} rounds): p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms; last client reached after "
          f"{result['all_reached_p50_ms']:.1f} ms (median of rounds)", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the idle and broadcast measurements; returns an exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks websocket")
    parser.add_argument("--count", type=int, default=10_000, help="idle WebSockets to hold")
    parser.add_argument("--clients", type=int, default=1000, help="broadcast receivers")
    parser.add_argument("--rounds", type=int, default=20, help="broadcast rounds")
    parser.add_argument("--threads", type=int, default=8, help="server threads")
    args = parser.parse_args(argv or [])
    _raise_fd_limit()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit != resource.RLIM_INFINITY and limit < args.count + 200:
        print(f"open-file limit {limit} is below --count {args.count}: lower --count or "
              f"raise the hard limit (ulimit -Hn)")
        return 1
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, one worker, "
          f"{args.threads} threads, in-process hub")
    port = _free_port()
    with _server(port, args.threads) as proc:
        idle(port, proc.pid, args.count)
        time.sleep(1.0)
        broadcast(port, args.clients, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
