"""examples/ipfilter: deny list file (reloaded), /admin office range, rate limit, no spoofing."""

from __future__ import annotations

import shutil
import time

import pytest
from webtest import TestApp

from examples.ipfilter import BLOCKLIST, make_app


@pytest.fixture
def blocklist(tmp_path):
    path = tmp_path / "blocklist.txt"
    shutil.copy(BLOCKLIST, path)
    return path


def _client(app, addr: str) -> TestApp:
    return TestApp(app, extra_environ={"REMOTE_ADDR": addr})


def test_listed_addresses_are_blocked(blocklist):
    app = make_app(list_file=blocklist)
    assert _client(app, "192.0.2.10").get("/").json == {"hello": "192.0.2.10"}
    for addr in ("203.0.113.77", "198.51.100.7", "2001:db8:bad::1"):
        res = _client(app, addr).get("/", status=403)
        assert res.text == "Your address is blocked.\n"


def test_forged_forwarded_for_does_not_dodge_the_list(blocklist):
    app = make_app(list_file=blocklist)
    # the blocked client claims to be somebody else: it is not a trusted proxy, so ignored
    _client(app, "203.0.113.77").get("/", headers={"X-Forwarded-For": "192.0.2.10"},
                                     status=403)
    # through the trusted local proxy the real client is the one the proxy saw
    res = _client(app, "127.0.0.1").get("/", headers={"X-Forwarded-For": "203.0.113.77"},
                                        status=403)
    assert res.status_int == 403


def test_admin_is_open_only_to_the_office(blocklist):
    app = make_app(list_file=blocklist)
    assert _client(app, "192.0.2.10").get("/admin").json["admin"] is True
    _client(app, "198.18.0.1").get("/admin", status=403)
    _client(app, "198.18.0.1").get("//admin/../admin/x", status=403)


def test_list_file_is_reloaded_without_restart(blocklist):
    app = make_app(list_file=blocklist, reload_interval=0)
    client = _client(app, "198.18.0.9")
    assert client.get("/").status_int == 200
    time.sleep(0.01)  # a distinct mtime
    blocklist.write_text(blocklist.read_text() + "deny 198.18.0.0/15\n")
    client.get("/", status=403)


def test_rate_limit_answers_429_with_retry_after(blocklist):
    app = make_app(list_file=blocklist, rate=1, burst=3)
    client = _client(app, "192.0.2.50")
    statuses = [client.get("/", status="*").status_int for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    res = client.get("/", status=429)
    assert int(res.headers["Retry-After"]) >= 1
    assert _client(app, "192.0.2.51").get("/").status_int == 200  # per address
