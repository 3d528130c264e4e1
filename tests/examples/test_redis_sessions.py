"""examples/redis_sessions: sessions spread over a ring of three real redis-server nodes."""

from __future__ import annotations

import contextlib

import pytest
import redis
from webtest import TestApp

from examples.redis_sessions import make_app, parse_nodes
from tests.support import redis_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def ring():
    with contextlib.ExitStack() as stack:
        ports = {name: stack.enter_context(redis_server()) for name in "abc"}
        yield {name: f"redis://127.0.0.1:{port}/0" for name, port in ports.items()}


def test_each_session_lives_on_exactly_one_node(ring):
    app = make_app(ring, prefix="example:")
    clients = [TestApp(app) for _ in range(30)]
    first = [c.get("/").json for c in clients]
    second = [c.get("/").json for c in clients]
    assert {r["visits"] for r in first} == {1} and {r["visits"] for r in second} == {2}
    servers = {name: redis.Redis.from_url(url) for name, url in ring.items()}
    held = {name: {k.decode() for k in r.keys("example:*")} for name, r in servers.items()}
    assert sum(len(keys) for keys in held.values()) == 30
    assert all(held.values()), f"a node holds no session: { {k: len(v) for k, v in held.items()} }"
    for result in second:  # the node the app names really holds that session
        assert any(held[result["node"]])
    for r in servers.values():
        r.delete(*r.keys("example:*"))
        r.close()


def test_cart_post_with_the_xsrf_header(ring):
    client = TestApp(make_app(ring, prefix="cart:"))
    token = client.get("/").json["xsrf"]
    client.post("/", {"house": "3"}, status=403)  # no token
    assert client.post("/", {"house": "3"}, headers={"X-XSRFToken": token}).json == {"cart": [3]}
    client.post("/", {"house": "x"}, headers={"X-XSRFToken": token}, status=400)
    assert client.get("/").json["cart"] == [3]


def test_node_list_parsing():
    assert parse_nodes("a=redis://h1:6379/0, b=redis://h2:6379/1*3") == {
        "a": ("redis://h1:6379/0", 1), "b": ("redis://h2:6379/1", 3)}
    for bad in ("", "a", "a=http://h1", "=redis://h1"):
        with pytest.raises(ValueError):
            parse_nodes(bad)
