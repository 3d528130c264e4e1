"""The pub/sub hub: in-process and over a real redis-server, across threads and processes."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from microweb.pubsub import LocalHub, RedisHub, decode_message, encode_message, from_url


def _collector() -> tuple[queue.Queue[object], object]:
    q: queue.Queue[object] = queue.Queue()
    return q, q.put


def _drain(q: queue.Queue[object], n: int, timeout: float = 5.0) -> list[object]:
    return [q.get(timeout=timeout) for _ in range(n)]


@pytest.mark.parametrize("message", ["text é", b"\x00bytes", {"user": "ann", "n": [1, 2]}, 3])
def test_messages_keep_their_type(message: object) -> None:
    assert decode_message(encode_message(message)) == message
    assert type(decode_message(encode_message(message))) is type(message)


def test_local_hub_delivers_to_every_subscriber_of_the_channel() -> None:
    hub = LocalHub()
    a, b, other = [], [], []
    hub.subscribe("room", a.append)
    sub_b = hub.subscribe("room", b.append)
    hub.subscribe("elsewhere", other.append)
    hub.publish("room", "hi")
    sub_b.cancel()
    sub_b.cancel()  # idempotent
    hub.publish("room", {"x": 1})
    assert a == ["hi", {"x": 1}] and b == ["hi"] and other == []
    assert hub.subscriber_count("room") == 1


def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    hub = LocalHub()
    got: list[object] = []

    def bad(message: object) -> None:
        raise RuntimeError("subscriber bug")

    hub.subscribe("room", bad)
    hub.subscribe("room", got.append)
    hub.publish("room", "still delivered")
    assert got == ["still delivered"]
    assert "subscriber bug" in caplog.text


def test_subscription_as_context_manager() -> None:
    hub = LocalHub()
    got: list[object] = []
    with hub.subscribe("room", got.append):
        hub.publish("room", 1)
    hub.publish("room", 2)
    assert got == [1]


def test_from_url() -> None:
    assert isinstance(from_url(None), LocalHub)
    assert isinstance(from_url("memory://"), LocalHub)
    assert isinstance(from_url("redis://127.0.0.1:1/0"), RedisHub)
    with pytest.raises(ValueError):
        from_url("amqp://x")


@pytest.fixture
def redis_url(redis_port: int) -> str:
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def hubs(redis_url: str) -> Iterator[tuple[RedisHub, RedisHub]]:
    a, b = RedisHub(redis_url, prefix="t1:"), RedisHub(redis_url, prefix="t1:")
    yield a, b
    a.close()
    b.close()


@pytest.mark.redis
def test_redis_hub_delivers_between_hubs(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    qa, put_a = _collector()
    qb, put_b = _collector()
    a.subscribe("room", put_a)
    b.subscribe("room", put_b)
    a.publish("room", "from a")
    b.publish("room", {"from": "b"})
    assert _drain(qa, 2) == ["from a", {"from": "b"}]
    assert _drain(qb, 2) == ["from a", {"from": "b"}]


@pytest.mark.redis
def test_redis_hub_unsubscribe_and_resubscribe(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    q, put = _collector()
    sub = a.subscribe("r2", put)
    sub.cancel()
    b.publish("r2", "missed")
    a.subscribe("r2", put)
    b.publish("r2", "seen")
    assert _drain(q, 1) == ["seen"]
    assert q.empty()


@pytest.mark.redis
def test_redis_hub_one_thread_for_many_channels(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    before = threading.active_count()
    q, put = _collector()
    for i in range(50):
        a.subscribe(f"many{i}", put)
    assert threading.active_count() - before <= 1
    b.publish("many49", "last")
    assert _drain(q, 1) == ["last"]


def _child(hub: RedisHub, out: multiprocessing.Queue[object]) -> None:
    got: queue.Queue[object] = queue.Queue()
    hub.subscribe("room", got.put)
    out.put("ready")
    out.put(got.get(timeout=10))
    hub.publish("room", "child says hi")
    hub.close()


@pytest.mark.redis
def test_redis_hub_across_processes(redis_url: str) -> None:
    hub = RedisHub(redis_url, prefix="t2:")
    q, put = _collector()
    hub.subscribe("room", put)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[object] = ctx.Queue()
    # The child uses the hub object it inherited: it must start its own connection and thread.
    child = ctx.Process(target=_child, args=(hub, out))
    child.start()
    try:
        assert out.get(timeout=10) == "ready"
        hub.publish("room", "parent says hi")
        assert out.get(timeout=10) == "parent says hi"
        assert _drain(q, 2) == ["parent says hi", "child says hi"]
    finally:
        child.join(10)
        hub.close()
    assert child.exitcode == 0


@pytest.mark.redis
@pytest.mark.slow
def test_redis_hub_survives_a_redis_restart(caplog: pytest.LogCaptureFixture) -> None:
    from tests import support

    port = support.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with support.redis_server(port):
        hub, publisher = RedisHub(url, prefix="t3:"), RedisHub(url, prefix="t3:")
        q, put = _collector()
        hub.subscribe("room", put)
        publisher.publish("room", "before")
        assert _drain(q, 1) == ["before"]
    try:
        with support.redis_server(port):  # the same address comes back empty
            deadline = time.monotonic() + 20
            got: list[object] = []
            while not got and time.monotonic() < deadline:
                try:
                    publisher.publish("room", "after")
                    got = _drain(q, 1, timeout=0.5)
                except (queue.Empty, OSError, redis.RedisError):
                    continue
            assert got == ["after"]
    finally:
        hub.close()
        publisher.close()
    assert "Redis pub/sub connection failed" in caplog.text
