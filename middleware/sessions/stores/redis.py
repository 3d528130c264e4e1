"""``RedisStore``: sessions in Redis with server-side TTLs, one node, a ring, or a cluster.

- one node: ``RedisStore(url="redis://127.0.0.1:6379/0")`` (redis-py keeps a connection pool);
- several nodes: ``RedisStore(nodes={"a": "redis://10.0.0.1", "b": ("redis://10.0.0.2", 2)})``
  places each session on one node through a weighted consistent-hash ring (uhashring, ketama):
  adding or removing a node moves only about 1/n of the sessions;
- Redis Cluster or any configured client: ``RedisStore(client=redis.cluster.RedisCluster(...))``.

A node that is down answers 503 for the sessions it holds (never a silent fallback to another
node, which would log users out and in at random); the others keep working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from uhashring import HashRing

from .base import Store, StoreUnavailable

__all__ = ["RedisStore"]

NodeSpec = str | tuple[str, int] | Any


def _client(spec: Any, **options: Any) -> tuple[Any, int]:
    """(client, weight) from a URL, a (URL, weight) pair or a ready redis client."""
    weight = 1
    if isinstance(spec, tuple):
        spec, weight = spec
    if isinstance(spec, str):
        spec = redis.Redis.from_url(spec, **options)
    return spec, int(weight)


def _safe_url(url: str) -> str:
    """``url`` with its password masked: the label goes into reprs and 503 log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStore(Store):
    """Sessions as ``<prefix><id>`` keys with a TTL: one Redis, a hash ring of them, a cluster."""

    def __init__(self, url: str | None = None, *, client: Any = None,
                 nodes: Mapping[str, NodeSpec] | None = None, prefix: str = "session:",
                 socket_timeout: float = 2.0, vnodes: int | None = None) -> None:
        if sum(x is not None for x in (url, client, nodes)) != 1:
            raise ValueError("give exactly one of url=, client= or nodes=")
        self.prefix = prefix
        self._options = {"socket_timeout": socket_timeout,
                         "socket_connect_timeout": socket_timeout}
        self._lock = threading.Lock()
        self._ring: HashRing | None = None
        self._client: Any = None
        if nodes is not None:
            if not nodes:
                raise ValueError("nodes= needs at least one node")
            ring_nodes = {}
            for name, spec in nodes.items():
                instance, weight = _client(spec, **self._options)
                ring_nodes[name] = {"instance": instance, "weight": weight}
            self._ring = HashRing(ring_nodes, hash_fn="ketama",
                                  **({"vnodes": vnodes} if vnodes else {}))
        elif url is not None:
            self._client = redis.Redis.from_url(url, **self._options)
        else:
            self._client = client
        self._label = _safe_url(url) if url else (
            ",".join(nodes) if nodes else type(client).__name__)

    def __repr__(self) -> str:
        return f"RedisStore({self._label})"

    # -- ring management ---------------------------------------------------------------------

    def add_node(self, name: str, spec: NodeSpec) -> None:
        """Add a node to the ring: about 1/n of the sessions now map to it (and start anew)."""
        if self._ring is None:
            raise RuntimeError("add_node needs a RedisStore built with nodes=")
        instance, weight = _client(spec, **self._options)
        with self._lock:
            self._ring.add_node(name, {"instance": instance, "weight": weight})

    def remove_node(self, name: str) -> None:
        """Take a node out of the ring (its sessions are lost; the others stay put)."""
        if self._ring is None:
            raise RuntimeError("remove_node needs a RedisStore built with nodes=")
        with self._lock:
            self._ring.remove_node(name)

    def node_for(self, sid: str) -> str | None:
        """The ring node holding ``sid`` (None for a single client or a cluster)."""
        return None if self._ring is None else str(self._ring.get_node(self.prefix + sid))

    def _redis(self, key: str) -> Any:
        if self._ring is None:
            return self._client
        return self._ring.get_node_instance(key)

    def _call(self, operation: str, key: str, fn: Any) -> Any:
        try:
            return fn(self._redis(key))
        except redis.RedisError as exc:
            where = self.node_for(key[len(self.prefix):])
            label = f"{self!r} node {where}" if where else repr(self)
            raise StoreUnavailable(label, operation, exc) from exc

    # -- the Store contract ------------------------------------------------------------------

    def load(self, sid: str) -> tuple[bytes, float] | None:
        key = self.prefix + sid

        def fetch(r: Any) -> tuple[Any, Any]:
            pipe = r.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            data, pttl = pipe.execute()
            return data, pttl

        data, pttl = self._call("load", key, fetch)
        if data is None:
            return None
        ttl = pttl / 1000.0 if pttl and pttl > 0 else 0.0
        return bytes(data), time.time() + ttl

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        key = self.prefix + sid
        self._call("save", key, lambda r: r.set(key, data, ex=max(1, int(ttl))))

    def delete(self, sid: str) -> None:
        key = self.prefix + sid
        self._call("delete", key, lambda r: r.delete(key))

    def touch(self, sid: str, ttl: int) -> None:
        key = self.prefix + sid
        self._call("touch", key, lambda r: r.expire(key, max(1, int(ttl))))

    def close(self) -> None:
        clients = [self._client] if self._ring is None else self._ring.get_instances()
        for client in clients:
            client.close()
