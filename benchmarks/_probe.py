"""What the out-of-process benchmarks read off a running server: /proc figures of its process
and the latency of a fresh request on a new connection."""

from __future__ import annotations

import socket
import time
from pathlib import Path


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (``"VmRSS:"`` in KiB, ``"Threads:"``...); 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def fresh_request_ms(port: int, samples: int, body: bytes) -> list[float]:
    """Milliseconds for each of ``samples`` GETs of / on a new connection, until ``body``."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while not data.endswith(body):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        times.append((time.perf_counter() - start) * 1000)
    return times
