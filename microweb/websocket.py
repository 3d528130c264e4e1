"""WebSocketHandler: Tornado's WebSocket API on a WSGI stack.

The handshake is an ordinary GET through the middlewares and the handler machinery, so
cookies, ``current_user``, ``@authenticated``, sessions and ``get_argument`` all work in
``open()``, which runs during the handshake: raising ``HTTPError`` (or redirecting) there
refuses the connection with that response. The handler then answers ``101`` and gives the
connection to the server through the ``microweb.upgrade`` environ key; from then on the server
calls ``on_message`` on a worker thread, in order per connection, and an idle socket holds no
thread. ``write_message`` may be called from any thread.

Servers without the upgrade extension (wsgiref, gunicorn's own workers) get a clear 426.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Awaitable, Iterator
from typing import Any
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request

from middleware import keys

from . import _async, signals
from ._ws_protocol import (
    WebSocketClosedError,
    WebSocketProtocol,
    accept_handshake,
    new_server_protocol,
)
from .handler import RequestHandler
from .httputil import HTTPServerRequest
from .pubsub import Hub, LocalHub, Message, Subscription, from_url

log = logging.getLogger("microweb.websocket")

#: Defaults of the ``websocket_*`` application settings.
DEFAULT_SETTINGS: dict[str, Any] = {
    "websocket_ping_interval": 20.0,  # seconds between keepalive pings (None: no pings)
    "websocket_ping_timeout": 20.0,  # seconds a peer has to answer before it is dropped
    "websocket_max_message_size": 10 * 1024 * 1024,  # bytes; larger messages close with 1009
    "websocket_max_write_buffer_size": 8 * 1024 * 1024,  # unsent bytes; then close with 1008
    "websocket_close_timeout": 5.0,  # seconds to wait for the closing handshake
}

_NO_UPGRADE = (
    "This WebSocket endpoint needs a server that can upgrade connections, and the server "
    "running this application cannot (plain WSGI has no way to hand over a socket).\n\n"
    "Serve the application with the bundled server:\n"
    "    microweb serve module:application\n"
    "or under gunicorn with microweb's worker class:\n"
    "    gunicorn -k microweb.server.gunicorn.Worker module:application\n"
)

_SKIP_IN_REFUSAL = frozenset({"content-type", "content-length", "connection", "date",
                              "upgrade", "keep-alive", "transfer-encoding"})

#: Environ keys whose values repeat from socket to socket: after the handshake they are
#: interned, so 10,000 sockets share one ``"websocket"`` (PERF: ~50 bytes per value).
_SHARED_VALUES = frozenset({
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_PROTOCOL", "HTTP_HOST",
    "HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_ORIGIN", "HTTP_USER_AGENT", "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT_LANGUAGE", "HTTP_CACHE_CONTROL", "HTTP_PRAGMA",
    "HTTP_SEC_WEBSOCKET_VERSION", "HTTP_SEC_WEBSOCKET_EXTENSIONS", "HTTP_SEC_WEBSOCKET_PROTOCOL",
})
_URI_KEYS = frozenset({"RAW_URI", "REQUEST_URI"})  # shared too when there is no query
#: Cached request attributes computed from the environ alone: dropped with the full environ
#: and recomputed from the compact one on first use.
_ENVIRON_CACHES = ("path", "query", "uri", "version", "protocol", "remote_ip", "host",
                   "host_name", "headers", "cookie_values", "cookies", "query_arguments")


class _NoBody:
    """``wsgi.input`` of a compacted handshake environ: the handshake has no body left."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


_NO_BODY = _NoBody()


def compact_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """What a connected socket keeps of its handshake environ: the CGI keys, the headers and
    every extension key (session, XSRF token, proxy audit, ...), without the server's
    per-request ``wsgi.*`` plumbing and upgrade callable; repeated values are interned."""
    compact: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("wsgi.") and key != "wsgi.url_scheme" or key == keys.UPGRADE:
            continue
        if type(value) is str and len(value) <= 256 and (
                key in _SHARED_VALUES or key in _URI_KEYS and "?" not in value):
            value = sys.intern(value)
        compact[key] = value
    compact["wsgi.input"] = _NO_BODY
    return compact


def _compact_request(request: HTTPServerRequest) -> None:
    """Swap the request's environ for its compact copy (same request object, so code that
    kept ``self.request`` still sees it) and drop caches computed from the full one."""
    cached = vars(request)
    for name in _ENVIRON_CACHES:
        cached.pop(name, None)
    request.environ = compact_environ(request.environ)


_NO_OUTPUT: list[bytes] = []  # the output buffer of every connected handler: never written
_default_hub = LocalHub()
_hubs_by_url: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def hub_for(setting: Hub | str | None) -> Hub:
    """The hub a ``websocket_hub`` setting names: a Hub, a URL (one hub per URL) or None."""
    if isinstance(setting, Hub):
        return setting
    if not setting:
        return _default_hub
    with _hubs_lock:
        hub = _hubs_by_url.get(setting)
        if hub is None:
            hub = _hubs_by_url[setting] = from_url(setting)
        return hub


def _maybe_await(result: Any) -> None:
    """``async def`` hooks are driven to completion on the calling worker thread."""
    if result is not None and hasattr(result, "__await__"):
        _async.run(result)


class WebSocketHandler(RequestHandler):
    """Subclass and override ``open``, ``on_message`` and ``on_close`` (Tornado's meanings)."""

    close_code: int | None = None
    close_reason: str | None = None
    _ws: WebSocketProtocol | None = None
    _ws_subscriptions: list[Subscription] | None = None

    # -- hooks to override -------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> Awaitable[None] | None:
        """Called during the handshake with the route's groups; may already send messages."""

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Handle one message: ``str`` for a text message, ``bytes`` for a binary one."""
        raise NotImplementedError

    def on_close(self) -> Awaitable[None] | None:
        """Called once when the connection is gone; see ``close_code`` and ``close_reason``."""

    def on_ping(self, data: bytes) -> None:
        """A ping arrived (the pong is sent automatically)."""

    def on_pong(self, data: bytes) -> None:
        """A pong arrived, usually the answer to ``ping()``."""

    def check_origin(self, origin: str) -> bool:
        """Accept only the page's own host by default (Cross-Site WebSocket Hijacking)."""
        netloc = urlsplit(origin).netloc.lower()
        return bool(netloc) and netloc == self._host().lower()

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Pick one of the client's subprotocols (None: no subprotocol)."""
        return None

    def get_compression_options(self) -> dict[str, Any] | None:
        """None disables permessage-deflate; a dict (``compression_level``, ``mem_level``)
        enables it."""
        return None

    # -- sending -----------------------------------------------------------------------------

    def write_message(self, message: str | bytes | dict[str, Any] | list[Any],
                      binary: bool = False) -> None:
        """Send a message from any thread; a dict or list is sent as JSON text.

        Raises WebSocketClosedError when the connection is closing or closed.
        """
        if isinstance(message, dict | list):
            message = json.dumps(message)
        if self._ws is None:
            raise WebSocketClosedError("the WebSocket is not open")
        self._ws.send(message, binary)

    def ping(self, data: str | bytes = b"") -> None:
        """Send a ping; ``on_pong`` receives the answer."""
        if self._ws is None:
            raise WebSocketClosedError("the WebSocket is not open")
        self._ws.ping(data.encode() if isinstance(data, str) else data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake (1000 when only a reason is given)."""
        if self._ws is not None:
            self._ws.close(code, reason)

    @property
    def ws_connection(self) -> WebSocketProtocol | None:
        """The connection object (None before the handshake)."""
        return self._ws

    @property
    def selected_subprotocol(self) -> str | None:
        return None if self._ws is None else self._ws.ws.subprotocol

    # -- rooms (pub/sub) ---------------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        """The application's hub (``websocket_hub`` setting: a Hub or a URL; default
        in-process)."""
        return hub_for(self.settings.get("websocket_hub"))

    def join(self, channel: str) -> Subscription:
        """Forward every message published on ``channel`` to this socket until it closes."""
        sub = self.hub.subscribe(channel, self._forward)
        if self._ws_subscriptions is None:
            self._ws_subscriptions = []
        self._ws_subscriptions.append(sub)
        return sub

    def broadcast(self, channel: str, message: Message) -> None:
        """Publish ``message`` to every socket that joined ``channel``, in every process."""
        self.hub.publish(channel, message)

    def _forward(self, message: Message) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass  # closing meanwhile: on_close cancels the subscription

    # -- the handshake -----------------------------------------------------------------------

    def get(self, *args: str, **kwargs: str) -> None:
        """Answer the opening handshake, run ``open()`` and hand the socket to the server."""
        if not self._check_upgrade_headers() or not self._check_request_origin():
            return
        upgrade = self.request.environ.get(keys.UPGRADE)
        if upgrade is None:
            log.warning("WebSocket handshake for %s on a server that cannot upgrade; "
                        "answering 426", self.request.path)
            self._plain_response(426, _NO_UPGRADE, {})
            return
        conn = self._new_connection()
        response = accept_handshake(conn.ws, self._ws_request())
        if response.status_code != 101:
            log.info("WebSocket handshake refused: %s", response.body.decode().strip())
            extra = {"Sec-WebSocket-Version": "13"} if response.status_code == 400 else {}
            self._plain_response(response.status_code, response.body.decode(),
                                 {**dict(response.headers.raw_items()), **extra})
            return
        self._ws = conn
        try:
            _maybe_await(self.open(*args, **kwargs))
        except BaseException:
            self._abandon_socket()  # the core answers the error; no socket will exist
            raise
        if self._finished:  # open() redirected or answered: no upgrade
            self._abandon_socket()
            return
        upgrade(conn)
        self._send_101(response.headers)
        if signals.websocket_opened.receivers:
            signals.websocket_opened.send(self)
        log.debug("WebSocket opened: %s", self.request.path)

    def _abandon_socket(self) -> None:
        """The handshake was refused after ``open()`` ran: undo what it set up."""
        for sub in self._ws_subscriptions or ():
            sub.cancel()
        if self._ws is not None:
            self._ws.discard()
        self._ws = None

    def _check_upgrade_headers(self) -> bool:
        env = self.request.environ
        if env.get("HTTP_UPGRADE", "").lower() != "websocket":
            self._plain_response(400, 'Can "Upgrade" only to "WebSocket".\n', {})
            return False
        tokens = [t.strip().lower() for t in env.get("HTTP_CONNECTION", "").split(",")]
        if "upgrade" not in tokens:
            self._plain_response(400, '"Connection" must be "Upgrade".\n', {})
            return False
        return True

    def _check_request_origin(self) -> bool:
        env = self.request.environ
        origin = env.get("HTTP_ORIGIN") or env.get("HTTP_SEC_WEBSOCKET_ORIGIN")
        if origin is not None and not self.check_origin(origin):
            log.warning("WebSocket from origin %r refused (host %r)", origin, self._host())
            self._plain_response(403, "Cross origin WebSockets are not allowed.\n", {})
            return False
        return True

    def _host(self) -> str:
        host = getattr(self.request, "host", None) or self.request.environ.get("HTTP_HOST", "")
        return str(host)

    def _new_connection(self) -> WebSocketProtocol:
        s = {**DEFAULT_SETTINGS, **{k: v for k, v in self.settings.items()
                                    if k.startswith("websocket_")}}
        ws = new_server_protocol(compression=self.get_compression_options(),
                                 max_size=s["websocket_max_message_size"],
                                 select_subprotocol=self._subprotocol_chooser())
        return WebSocketProtocol(ws, self, ping_interval=s["websocket_ping_interval"],
                                 ping_timeout=s["websocket_ping_timeout"],
                                 max_write_buffer=s["websocket_max_write_buffer_size"],
                                 close_timeout=s["websocket_close_timeout"])

    def _subprotocol_chooser(self) -> Any:
        """``select_subprotocol`` when it matters: the default chooses none, and skipping it
        saves a closure per open socket."""
        if type(self).select_subprotocol is WebSocketHandler.select_subprotocol:
            return None
        return self.select_subprotocol

    def _ws_request(self) -> Request:
        headers = Headers()
        for name, value in self.request.environ.items():
            if name.startswith("HTTP_"):
                headers[name[5:].replace("_", "-").title()] = value
        env = self.request.environ
        path = env.get("RAW_URI") or env.get("REQUEST_URI") or self.request.path
        return Request(path, headers, env.get("REQUEST_METHOD", "GET"),
                       env.get("SERVER_PROTOCOL", "HTTP/1.1"))

    def _plain_response(self, status: int, body: str, headers: dict[str, str]) -> None:
        """A refusal in plain text. No ``Upgrade`` header even with 426: PEP 3333 forbids
        hop-by-hop headers from applications (wsgiref and the bundled server refuse them)."""
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        for name, value in headers.items():
            if name.lower() not in _SKIP_IN_REFUSAL:
                self.set_header(name, value)
        self.finish(body)

    def _send_101(self, headers: Headers) -> None:
        self.clear()
        self.set_status(101)
        for name in ("Content-Type", "Content-Length", "Server", "Date", "Etag"):
            self.clear_header(name)
        for name, value in headers.raw_items():
            if name.lower() != "date":
                self.set_header(name, value)
        self.finish()

    # -- called by the connection (worker threads, in order per connection) ------------------

    def _ws_connected(self) -> None:
        """The server took the socket over, so the HTTP response is history: let go of its
        headers, body and WSGI callables, and keep a compact environ (PERF: ~2 KiB per open
        socket). ``self.request`` stays, with its headers, cookies, arguments and address."""
        self._headers = {}
        self._start_response = self._wsgi_write = None
        self._body = ()
        self._write_buffer = _NO_OUTPUT  # finished: write() refuses before touching it
        _compact_request(self.request)

    def _ws_message(self, message: str | bytes) -> None:
        _maybe_await(self.on_message(message))

    def _ws_ping(self, data: bytes) -> None:
        self.on_ping(data)

    def _ws_pong(self, data: bytes) -> None:
        self.on_pong(data)

    def _ws_closed(self, code: int | None, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        for sub in self._ws_subscriptions or ():
            sub.cancel()
        try:
            _maybe_await(self.on_close())
        except Exception:
            log.exception("Uncaught exception in on_close of %s", type(self).__name__)
        if signals.websocket_closed.receivers:
            signals.websocket_closed.send(self)
        log.debug("WebSocket closed: %s (code %s)", self.request.path, code)


__all__ = ["DEFAULT_SETTINGS", "WebSocketClosedError", "WebSocketHandler", "hub_for"]
