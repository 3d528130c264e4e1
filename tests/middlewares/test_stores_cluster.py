"""RedisStore with a redis-py RedisCluster client on a real three-node Redis Cluster."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from middleware.sessions import new_session_id
from middleware.sessions.stores.redis import RedisStore
from tests import support


def _port_pair_free() -> int:
    """A port whose cluster-bus companion (port + 10000) is free too."""
    for _ in range(200):
        port = support.free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@contextlib.contextmanager
def redis_cluster() -> Iterator[list[int]]:
    exe, cli = support.which("redis-server"), support.which("redis-cli")
    if exe is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are needed")
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            port = _port_pair_free()
            d = stack.enter_context(tempfile.TemporaryDirectory(prefix="rcluster-"))
            stack.enter_context(support.spawn(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"{d}/nodes.conf", "--save", "", "--appendonly",
                 "no", "--dir", d, "--protected-mode", "no"], port=port))
            ports.append(port)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       capture_output=True, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run([cli, "-p", str(ports[0]), "cluster", "info"],
                                  capture_output=True, text=True, timeout=5).stdout
            if "cluster_state:ok" in info:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"cluster did not become ready: {info}")
        yield ports


@pytest.mark.redis
@pytest.mark.slow
def test_redis_cluster_client() -> None:
    with redis_cluster() as ports:
        client = RedisCluster(host="127.0.0.1", port=ports[0], socket_timeout=2)
        store = RedisStore(client=client)
        sids = [new_session_id() for _ in range(60)]
        for sid in sids:
            store.save(sid, b'{"u":1}', 120)
        assert all(store.load(sid)[0] == b'{"u":1}' for sid in sids)  # type: ignore[index]
        per_node = []
        for port in ports:
            with contextlib.closing(redis.Redis(port=port)) as node:
                per_node.append(int(node.dbsize()))
        assert sum(per_node) == 60 and all(n > 0 for n in per_node)  # spread over the slots
        store.touch(sids[0], 500)
        assert store.load(sids[0])[1] > time.time() + 400  # type: ignore[index]
        store.delete(sids[0])
        assert store.load(sids[0]) is None
        store.close()
