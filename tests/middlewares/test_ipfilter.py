"""IPBlacklistMiddleware: lists, per-path rules, reload, rate limit, spoofing refused."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from middleware import IPBlacklistMiddleware, ProxyMiddleware, compose
from middleware.ipfilter import Rules, TokenBuckets
from middleware.proxy import parse_ip

from .conftest import bare_app, client, make_app


class Clock:
    """A hand-driven clock so rate-limit tests never depend on real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def status(app: Any, remote_addr: str, path: str = "/", **headers: str) -> int:
    response = client(app, remote_addr=remote_addr).get(path, headers=headers, status="*")
    return int(response.status_int)


def test_deny_list_blocks_with_403_and_a_log_line(app_kind: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    stack = compose(make_app(app_kind),
                    IPBlacklistMiddleware.configure(deny=["203.0.113.0/24", "2001:db8::/32"]))
    with caplog.at_level(logging.WARNING, logger="microweb.ipfilter"):
        blocked = client(stack, remote_addr="203.0.113.77").get("/", status=403)
    assert blocked.text == "Forbidden\n"
    assert "blocked 203.0.113.77 GET '/': denied address (request id -)" in caplog.text
    assert status(stack, "2001:db8::5") == 403
    assert status(stack, "198.51.100.1") == 200


def test_allow_list_admits_only_listed(app_kind: str) -> None:
    stack = compose(make_app(app_kind), IPBlacklistMiddleware.configure(
        allow=["10.0.0.0/8", "::1"], deny=["10.6.6.6"]))
    assert status(stack, "10.1.2.3") == 200
    assert status(stack, "::1") == 200
    assert status(stack, "10.6.6.6") == 403  # deny wins over allow
    assert status(stack, "8.8.8.8") == 403


def test_per_path_rule_admin_only_from_office(app_kind: str) -> None:
    stack = compose(make_app(app_kind), IPBlacklistMiddleware.configure(
        paths={"/admin": ["192.168.10.0/24"]}))
    assert status(stack, "192.168.10.4", "/admin/users") == 200
    assert status(stack, "8.8.8.8", "/admin/users") == 403
    assert status(stack, "8.8.8.8", "/admin") == 403
    assert status(stack, "8.8.8.8", "/administrators-guide") == 200  # a different path
    assert status(stack, "8.8.8.8", "/public") == 200


@pytest.mark.parametrize("path", ["//admin/x", "/./admin/x", "/public/../admin/x"])
def test_path_tricks_do_not_bypass_a_path_rule(path: str) -> None:
    middleware = IPBlacklistMiddleware(bare_app, paths={"/admin": ["192.168.10.0/24"]})
    seen: list[str] = []
    middleware({"REMOTE_ADDR": "8.8.8.8", "PATH_INFO": path, "REQUEST_METHOD": "GET"},
               lambda s, h, e=None: seen.append(s))  # type: ignore[func-returns-value]
    assert seen == ["403 Forbidden"]


def test_custom_body() -> None:
    stack = IPBlacklistMiddleware(bare_app, deny=["1.2.3.4"], body="<h1>Go away</h1>",
                                  content_type="text/html; charset=utf-8")
    response = client(stack, remote_addr="1.2.3.4").get("/", status=403)
    assert response.text == "<h1>Go away</h1>" and response.content_type == "text/html"


def test_spoofed_forwarded_headers_never_count(app_kind: str) -> None:
    """The client is REMOTE_ADDR as resolved by ProxyMiddleware, never a header it wrote."""
    stack = compose(make_app(app_kind), ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
                    IPBlacklistMiddleware.configure(paths={"/admin": ["192.168.10.0/24"]},
                                                    deny=["6.6.6.6"]))
    # attacker 6.6.6.6 behind our proxy claims to be in the office range
    assert status(stack, "10.0.0.1", "/admin",
                  **{"X-Forwarded-For": "192.168.10.4, 6.6.6.6"}) == 403
    assert status(stack, "10.0.0.1", "/", **{"X-Forwarded-For": "192.168.10.4, 6.6.6.6"}) == 403
    # no proxy in the path: the header is ignored entirely
    assert status(stack, "6.6.6.6", "/", **{"X-Forwarded-For": "192.168.10.4"}) == 403
    # a Host header naming an internal address changes nothing either
    assert status(stack, "8.8.8.8", "/admin", Host="192.168.10.4") == 403
    # the genuine office user behind the proxy gets in
    assert status(stack, "10.0.0.1", "/admin/", **{"X-Forwarded-For": "192.168.10.4"}) == 200


def test_rate_limit_answers_429_with_retry_after(app_kind: str) -> None:
    clock = Clock()
    stack = compose(make_app(app_kind),
                    IPBlacklistMiddleware.configure(rate=1.0, burst=2, clock=clock))
    assert [status(stack, "1.1.1.1") for _ in range(2)] == [200, 200]
    limited = client(stack, remote_addr="1.1.1.1").get("/", status=429)
    assert limited.headers["Retry-After"] == "1"
    assert status(stack, "2.2.2.2") == 200  # other clients unaffected
    clock.now += 1.0
    assert status(stack, "1.1.1.1") == 200


def test_token_buckets_memory_is_bounded() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=100, clock=Clock())
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100


def test_a_burst_below_one_request_is_refused_at_construction() -> None:
    # a bucket that never holds a whole token would answer 429 to every request
    with pytest.raises(ValueError, match="burst"):
        TokenBuckets(rate=5, burst=0.5)
    with pytest.raises(ValueError, match="burst"):
        IPBlacklistMiddleware(make_app("bare"), rate=5, burst=0)


def test_token_buckets_are_thread_safe() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=500, clock=clock)
    granted: list[float] = []

    def worker() -> None:
        for _ in range(100):
            granted.append(buckets.take("k"))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(0.0) == 500  # exactly the burst, never more


def test_reload_from_file_without_restart(tmp_path: Path) -> None:
    rules = tmp_path / "ips.txt"
    rules.write_text("# office\ndeny 6.6.6.0/24\npath /admin 192.168.10.0/24\n")
    clock = Clock()
    stack = IPBlacklistMiddleware(bare_app, list_file=rules, reload_interval=5, clock=clock)
    assert status(stack, "6.6.6.6") == 403 and status(stack, "7.7.7.7") == 200
    assert status(stack, "7.7.7.7", "/admin") == 403
    rules.write_text("7.7.7.7\nallow 0.0.0.0/0 ::/0\n")
    os.utime(rules, ns=(1, 1))
    assert status(stack, "7.7.7.7") == 200  # not re-checked before reload_interval
    clock.now += 6
    assert status(stack, "7.7.7.7") == 403
    assert status(stack, "6.6.6.6") == 200
    assert status(stack, "6.6.6.6", "/admin") == 200


def test_broken_file_keeps_previous_rules(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "ips.txt"
    rules.write_text("deny 6.6.6.6\n")
    clock = Clock()
    stack = IPBlacklistMiddleware(bare_app, list_file=rules, reload_interval=1, clock=clock)
    rules.write_text("deny 6.6.6.6\ndeny not-an-address\n")
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="microweb.ipfilter"):
        assert status(stack, "6.6.6.6") == 403
    assert "line 2: 'deny not-an-address'" in caplog.text


def test_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    rules = tmp_path / "ips.txt"
    rules.write_text("path admin 10.0.0.0/8\n")
    with pytest.raises(ValueError, match="line 1"):
        IPBlacklistMiddleware(bare_app, list_file=rules)


def test_unparseable_remote_addr() -> None:
    assert Rules(allow=["10.0.0.0/8"]).refusal(None, "/") == "not in the allow list"
    assert Rules(deny=["10.0.0.0/8"]).refusal(None, "/") is None
    stack = IPBlacklistMiddleware(bare_app, allow=["10.0.0.0/8"])
    assert status(stack, "unix-socket") == 403


def test_concurrent_requests_during_reloads_see_whole_rule_sets(tmp_path: Path) -> None:
    """Readers never see a half-built rule set while the file flips between two versions."""
    rules = tmp_path / "ips.txt"
    versions = ["deny 6.6.6.6\nallow 0.0.0.0/0\n", "deny 7.7.7.7\nallow 0.0.0.0/0\n"]
    rules.write_text(versions[0])
    stack = IPBlacklistMiddleware(bare_app, list_file=rules, reload_interval=0)
    outcomes: list[tuple[str, str]] = []
    stop = threading.Event()

    errors: list[BaseException] = []
    six, seven = parse_ip("6.6.6.6"), parse_ip("7.7.7.7")

    def request() -> None:
        while not stop.is_set():
            try:
                snapshot = stack.rules  # what one request uses from start to end
                outcomes.append((str(snapshot.refusal(six, "/") is None),
                                 str(snapshot.refusal(seven, "/") is None)))
                body = stack({"REMOTE_ADDR": "6.6.6.6", "PATH_INFO": "/",
                              "REQUEST_METHOD": "GET"}, lambda s, h, e=None: None)
                assert b"".join(body) in (b"hello", b"Forbidden\n")
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(40):
            staged = tmp_path / "ips.txt.new"  # replaced atomically, as documented
            staged.write_text(versions[i % 2])
            os.utime(staged, ns=(i + 10, i + 10))
            os.replace(staged, rules)
            stack.reload()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    # each answer comes from one consistent rule set (either 6.6.6.6 or 7.7.7.7 denied)
    assert not errors
    assert set(outcomes) <= {("False", "True"), ("True", "False")} and outcomes
