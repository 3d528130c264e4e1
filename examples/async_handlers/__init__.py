"""``async def`` handlers: the tutorials' parallel coroutines with ``asyncio.gather``.

The tutorial looks up four IP addresses with ``yield [fetch(a), fetch(b)]`` under
``@gen.coroutine``. Here ``get`` is ``async def``: microweb runs it to completion on the
worker thread's event loop, so the lookups overlap and the request takes about as long as the
slowest one. ``/api/ip/<addr>`` is a stand-in for the remote service (deliberately slow).

    microweb serve examples.async_handlers:application --threads 8
    curl 'http://127.0.0.1:8000/lookup?ip=14.130.112.24&ip=15.130.112.24'
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import threading
import time
from typing import Any

import httpx

import microweb as web

__all__ = ["application", "make_app"]

DEFAULT_IPS = ["14.130.112.24", "15.130.112.24", "16.130.112.24", "17.130.112.24"]
CITIES = ["Beijing", "Chengdu", "Shanghai", "Hangzhou", "Xi'an"]


class _InFlight:
    """How many lookups the stand-in service is answering at once (and the most seen)."""

    def __init__(self) -> None:
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


class IPInfoHandler(web.RequestHandler):
    """The "remote" IP service: synchronous and slow on purpose (``delay`` seconds)."""

    def initialize(self, delay: float, in_flight: _InFlight) -> None:
        self.delay, self.in_flight = delay, in_flight

    def get(self, addr: str) -> None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            self.write({"ret": 0, "ip": addr, "error": "not an IP address"})
            return
        with self.in_flight:
            time.sleep(self.delay)
        digest = hashlib.sha256(ip.packed).digest()
        self.write({"ret": 1, "ip": str(ip), "country": "China",
                    "city": CITIES[digest[0] % len(CITIES)]})


class LookupHandler(web.RequestHandler):
    """Fetch every ``ip`` argument at once (``asyncio.gather``), as the tutorial's coroutine."""

    async def get(self) -> None:
        ips = self.get_arguments("ip")[:10] or DEFAULT_IPS
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self._upstream(), timeout=10) as client:
            results = await asyncio.gather(*(self.get_ip_info(client, ip) for ip in ips))
        checksum = await self.run_in_executor(_slow_checksum, results)  # blocking: a thread
        self.write({"results": dict(zip(ips, results, strict=True)), "checksum": checksum,
                    "elapsed_ms": round((time.monotonic() - started) * 1000)})

    async def get_ip_info(self, client: httpx.AsyncClient, ip: str) -> dict[str, Any]:
        """One lookup; a failing upstream gives ``{"ret": 0}`` instead of failing the page."""
        try:
            response = await client.get(f"/api/ip/{ip}")
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError) as exc:
            return {"ret": 0, "ip": ip, "error": type(exc).__name__}

    def _upstream(self) -> str:
        """The ``ipinfo_url`` setting, by default this very server.

        The address comes from the server (SERVER_NAME/PORT), never from the client's Host
        header: a spoofed Host must not make the server fetch other machines (SSRF).
        """
        if url := self.settings.get("ipinfo_url"):
            return str(url)
        env = self.request.environ
        host = env.get("SERVER_NAME", "127.0.0.1")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "localhost") else host
        host = "[::1]" if host in ("::", "[::]") else host
        return f"http://{host}:{env.get('SERVER_PORT', '80')}"


class StatsHandler(web.RequestHandler):
    """The most lookups the stand-in service answered at the same time (1 = no overlap)."""

    def initialize(self, in_flight: _InFlight) -> None:
        self.in_flight = in_flight

    def get(self) -> None:
        self.write({"max_in_flight": self.in_flight.most})


def _slow_checksum(results: list[dict[str, Any]]) -> str:
    """Stands for CPU- or IO-bound library code that must not block the event loop."""
    return hashlib.sha256(repr(results).encode()).hexdigest()[:16]


def make_app(ipinfo_url: str | None = None, delay: float = 0.3) -> web.Application:
    """``ipinfo_url`` points the lookups at another server (default: this one)."""
    in_flight = _InFlight()
    return web.Application([
        (r"/lookup", LookupHandler),
        (r"/api/ip/([^/]+)", IPInfoHandler, {"delay": delay, "in_flight": in_flight}),
        (r"/api/stats", StatsHandler, {"in_flight": in_flight}),
    ], ipinfo_url=ipinfo_url)


application = make_app()
