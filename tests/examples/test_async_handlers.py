"""examples/async_handlers: async def + asyncio.gather of httpx calls to a local server."""

from __future__ import annotations

import requests
from webtest import TestApp

from examples.async_handlers import DEFAULT_IPS, make_app
from tests.support import PYTHON, free_port, spawn


def test_lookups_run_in_parallel_against_a_real_server():
    port = free_port()
    with spawn([PYTHON, "-m", "microweb.server", "examples.async_handlers:application",
                "--port", str(port), "--threads", "8"], port=port):
        base = f"http://127.0.0.1:{port}"
        res = requests.get(f"{base}/lookup", timeout=20)
        stats = requests.get(f"{base}/api/stats", timeout=5).json()
    assert res.status_code == 200
    results = res.json()["results"]
    assert list(results) == DEFAULT_IPS
    assert all(r["ret"] == 1 and r["ip"] == ip for ip, r in results.items())
    assert len(res.json()["checksum"]) == 16
    assert stats["max_in_flight"] >= 2  # the four awaits overlapped


def test_one_bad_address_does_not_fail_the_page():
    port = free_port()
    with spawn([PYTHON, "-m", "microweb.server", "examples.async_handlers:application",
                "--port", str(port)], port=port):
        res = requests.get(f"http://127.0.0.1:{port}/lookup",
                           params=[("ip", "14.130.112.24"), ("ip", "not-an-ip")], timeout=20)
    results = res.json()["results"]
    assert results["14.130.112.24"]["ret"] == 1
    assert results["not-an-ip"] == {"ret": 0, "ip": "not-an-ip", "error": "not an IP address"}


def test_upstream_down_gives_an_answer_not_a_500():
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = TestApp(make_app(ipinfo_url=dead, delay=0))
    res = app.get("/lookup", {"ip": ["192.0.2.1", "192.0.2.2"]})
    assert res.status_int == 200
    assert {r["ret"] for r in res.json["results"].values()} == {0}
    assert {r["error"] for r in res.json["results"].values()} == {"ConnectError"}
