"""A small publish/subscribe hub so WebSocket handlers can share rooms across threads,
processes and machines.

``hub.subscribe(channel, callback)`` returns a :class:`Subscription` (``cancel()`` it when the
socket closes); ``hub.publish(channel, message)`` calls every subscriber's callback with the
message (``str``, ``bytes`` or a JSON-serialisable value), in every process sharing the backend.

* :class:`LocalHub`: one process; callbacks run in the publishing thread.
* :class:`RedisHub`: Redis pub/sub (redis-py). One subscriber connection and one thread per
  process whatever the number of channels and sockets; callbacks run on that thread, so they
  must be quick (``WebSocketHandler.write_message`` only queues bytes). Delivery is at most
  once: what is published while a process is disconnected from Redis is lost for it.

``from_url("memory://")`` / ``from_url("redis://host:6379/0")`` build either one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("microweb.pubsub")

Message = Any  # str | bytes | a JSON-serialisable value
Callback = Callable[[Message], None]


class Subscription:
    """One callback on one channel; ``cancel()`` (idempotent) stops the deliveries."""

    __slots__ = ("active", "callback", "channel", "hub")

    def __init__(self, hub: Hub, channel: str, callback: Callback) -> None:
        self.hub, self.channel, self.callback = hub, channel, callback
        self.active = True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self.hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} active={self.active}>"


class Hub:
    """Base class: the local registry of subscriptions and the delivery to callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, dict[Subscription, None]] = {}  # ordered sets

    def subscribe(self, channel: str, callback: Callback) -> Subscription:
        """Call ``callback(message)`` for every message published on ``channel`` from now on."""
        sub = Subscription(self, channel, callback)
        with self._lock:
            subs = self._subs.setdefault(channel, {})
            first = not subs
            subs[sub] = None
        if first:
            self._channel_added(channel)
        return sub

    def publish(self, channel: str, message: Message) -> None:
        """Deliver ``message`` to every subscriber of ``channel`` (in every process)."""
        raise NotImplementedError

    def subscriber_count(self, channel: str) -> int:
        """Subscribers of ``channel`` in this process."""
        with self._lock:
            return len(self._subs.get(channel, ()))

    def close(self) -> None:
        """Release what the hub holds (connections, thread)."""

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.channel)
            if subs is None or sub not in subs:
                return
            del subs[sub]
            last = not subs
            if last:
                del self._subs[sub.channel]
        if last:
            self._channel_removed(sub.channel)

    def _channel_added(self, channel: str) -> None:
        """Hook: the first local subscriber of ``channel`` arrived."""

    def _channel_removed(self, channel: str) -> None:
        """Hook: the last local subscriber of ``channel`` left."""

    def _deliver(self, channel: str, message: Message) -> None:
        with self._lock:
            subs = list(self._subs.get(channel, ()))
        for sub in subs:
            if not sub.active:
                continue
            try:
                sub.callback(message)
            except Exception:
                log.exception("pub/sub callback for channel %r failed", channel)


class LocalHub(Hub):
    """Subscribers in this process only; ``publish`` calls them in the calling thread."""

    def publish(self, channel: str, message: Message) -> None:
        self._deliver(channel, message)

    def __repr__(self) -> str:
        return "<LocalHub>"


def encode_message(message: Message) -> bytes:
    """One tag byte keeps the type across processes: s(tr), b(ytes) or j(son)."""
    if isinstance(message, str):
        return b"s" + message.encode()
    if isinstance(message, bytes | bytearray | memoryview):
        return b"b" + bytes(message)
    return b"j" + json.dumps(message, separators=(",", ":")).encode()


def decode_message(data: bytes) -> Message:
    tag, body = data[:1], data[1:]
    if tag == b"s":
        return body.decode()
    if tag == b"b":
        return body
    if tag == b"j":
        return json.loads(body)
    raise ValueError(f"not a hub message: {data[:20]!r}")


class RedisHub(Hub):
    """Channels over Redis pub/sub: one subscriber connection and thread per process.

    Safe to create before a server forks its workers: the connections and the thread are
    made lazily in each process that uses the hub.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "microweb:",
                 subscribe_timeout: float = 5.0, **redis_options: Any) -> None:
        super().__init__()
        self.url, self.prefix = url, prefix
        self.subscribe_timeout = subscribe_timeout
        self.redis_options = {"health_check_interval": 30, **redis_options}
        self._pid: int | None = None
        self._setup_lock = threading.Lock()
        self._ops: list[tuple[str, str]] = []  # queued (op, channel) for the subscriber thread
        self._ready: dict[str, threading.Event] = {}
        self._stopping = threading.Event()
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._control = ""

    def __repr__(self) -> str:
        return f"<RedisHub {self.url!r} prefix={self.prefix!r}>"

    def subscribe(self, channel: str, callback: Callback) -> Subscription:
        """Subscribe; returns once Redis confirmed the channel (or after subscribe_timeout)."""
        self._ensure_started()
        sub = super().subscribe(channel, callback)
        with self._lock:
            ready = self._ready.get(channel)
        if ready is not None and not ready.wait(self.subscribe_timeout):
            log.warning("Redis did not confirm the subscription to %r in %ss",
                        channel, self.subscribe_timeout)
        return sub

    def publish(self, channel: str, message: Message) -> None:
        self._ensure_started()
        self._client.publish(self.prefix + channel, encode_message(message))

    def close(self) -> None:
        self._stopping.set()
        if self._pid == os.getpid() and self._client is not None:
            self._wake()
            if self._thread is not None:
                self._thread.join(5)
            self._client.close()
        self._pid = None

    # -- per-process setup (fork-safe) ------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        import redis  # optional dependency: only a RedisHub needs it

        with self._setup_lock:
            if self._pid == os.getpid():
                return
            # A forked child inherits the parent's registry but not its thread or sockets.
            with self._lock:
                self._subs.clear()
                self._ops.clear()
                self._ready.clear()
            self._stopping = threading.Event()
            self._client = redis.Redis.from_url(self.url, **self.redis_options)
            self._control = f"{self.prefix}control:{uuid.uuid4().hex}"
            pubsub = self._client.pubsub()
            self._thread = threading.Thread(target=self._run, args=(pubsub,),
                                            name="microweb-pubsub", daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    def _channel_added(self, channel: str) -> None:
        with self._lock:
            self._ready[channel] = threading.Event()
            self._ops.append(("subscribe", channel))
        self._wake()

    def _channel_removed(self, channel: str) -> None:
        with self._lock:
            if channel not in self._subs:  # nobody re-subscribed meanwhile
                self._ready.pop(channel, None)
            self._ops.append(("unsubscribe", channel))
        self._wake()

    def _wake(self) -> None:
        """Wake the subscriber thread (blocked reading) with a message on its control channel."""
        try:
            self._client.publish(self._control, b"")
        except Exception:  # it polls every second anyway
            log.debug("could not wake the pub/sub thread", exc_info=True)

    # -- the subscriber thread ---------------------------------------------------------------

    def _run(self, pubsub: Any) -> None:
        backoff = 0.1
        subscribed_control = False
        while not self._stopping.is_set():
            try:
                if not subscribed_control:
                    pubsub.subscribe(self._control)
                    subscribed_control = True
                self._apply_ops(pubsub)
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._handle(message)
                backoff = 0.1
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.warning("Redis pub/sub connection failed (%s); retrying in %.1fs",
                            exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        pubsub.close()

    def _apply_ops(self, pubsub: Any) -> None:
        with self._lock:
            ops, self._ops = self._ops, []
            wanted = set(self._subs)
        for op, channel in ops:
            if op == "subscribe" and channel in wanted:
                pubsub.subscribe(self.prefix + channel)
            elif op == "unsubscribe" and channel not in wanted:
                pubsub.unsubscribe(self.prefix + channel)

    def _handle(self, message: dict[str, Any]) -> None:
        raw = message["channel"]
        name = raw.decode() if isinstance(raw, bytes) else raw
        if name == self._control or not name.startswith(self.prefix):
            return
        channel = name[len(self.prefix):]
        kind = message["type"]
        if kind == "subscribe":
            with self._lock:
                ready = self._ready.get(channel)
            if ready is not None:
                ready.set()
        elif kind == "message":
            try:
                payload = decode_message(message["data"])
            except ValueError:
                log.warning("ignoring a foreign message on channel %r", channel)
                return
            self._deliver(channel, payload)


def from_url(url: str | None) -> Hub:
    """``None``/``""``/``memory://`` → :class:`LocalHub`; ``redis://``, ``rediss://``,
    ``unix://`` → :class:`RedisHub`."""
    if not url or url.startswith("memory:"):
        return LocalHub()
    if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        return RedisHub(url)
    raise ValueError(f"unsupported pub/sub URL {url!r} (use memory:// or redis://)")


__all__ = ["Hub", "LocalHub", "RedisHub", "Subscription", "decode_message", "encode_message",
           "from_url"]
