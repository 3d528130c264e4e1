"""Applications the WebSocket tests serve with real servers (imported by subprocesses)."""

from __future__ import annotations

import os
import threading
from typing import Any

import microweb as web
from microweb.websocket import WebSocketClosedError, WebSocketHandler
from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    MemoryStore,
    ProxyMiddleware,
    SessionMiddleware,
    XSRFMiddleware,
    compose,
    keys,
)

EVENTS = "events"


class EchoHandler(WebSocketHandler):
    """Echoes messages with their type; ``close:CODE:REASON`` makes the server close."""

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("close:"):
            _, code, reason = message.split(":", 2)
            self.close(int(code), reason)
        elif isinstance(message, str) and message == "json":
            self.write_message({"kind": "dict", "n": 1})
        else:
            self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        self.broadcast(EVENTS, f"closed:{self.close_code}:{self.close_reason}")


class ObserverHandler(WebSocketHandler):
    """Receives what other sockets report on the events channel (same process)."""

    def open(self) -> None:
        self.join(EVENTS)
        self.write_message("observing")

    def on_message(self, message: str | bytes) -> None:
        pass


class ArgsHandler(WebSocketHandler):
    """open() sees the route groups, query arguments, cookies and the current user."""

    def get_current_user(self) -> Any:
        return self.get_cookie("user")

    def open(self, room: str) -> None:
        self.write_message({"room": room, "name": self.get_argument("name", None),
                            "user": self.current_user, "ip": self.request.remote_ip})

    def on_message(self, message: str | bytes) -> None:
        if message == "request?":  # the handshake's request, still whole after the switch
            self.write_message({"room": self.path_args[0], "name": self.get_argument("name"),
                                "user": self.current_user, "ip": self.request.remote_ip,
                                "cookie": self.get_cookie("user"), "path": self.request.path})
        else:
            self.write_message({"thread": threading.current_thread().name})


class AuthHandler(WebSocketHandler):
    def get_current_user(self) -> Any:
        return self.get_cookie("user")

    @web.authenticated
    def open(self) -> None:
        self.write_message(f"hello {self.current_user}")

    def on_message(self, message: str | bytes) -> None:
        pass


class RefuseHandler(WebSocketHandler):
    def open(self) -> None:
        raise web.HTTPError(403, "no sockets for you")

    def on_message(self, message: str | bytes) -> None:
        pass


class PingHandler(WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.ping(b"srv")

    def on_ping(self, data: bytes) -> None:
        self.write_message(b"ping:" + data, binary=True)

    def on_pong(self, data: bytes) -> None:
        self.write_message(b"pong:" + data, binary=True)


class FloodHandler(WebSocketHandler):
    """``flood:N`` sends N messages of 64 KiB (to a client that does not read)."""

    def on_message(self, message: str | bytes) -> None:
        count = int(str(message).split(":")[1])
        chunk = b"x" * 65536
        try:
            for _ in range(count):
                self.write_message(chunk, binary=True)
        except WebSocketClosedError:
            self.broadcast(EVENTS, "flood stopped: closed")


class FeaturesHandler(WebSocketHandler):
    """Subprotocol choice, permessage-deflate and thread counting."""

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "chat.v2" if "chat.v2" in subprotocols else None

    def get_compression_options(self) -> dict[str, Any] | None:
        return {}

    def open(self) -> None:
        self.write_message(self.selected_subprotocol or "none")

    def on_message(self, message: str | bytes) -> None:
        if message == "threads":
            self.write_message(str(threading.active_count()))
        else:
            self.write_message(message)


class AnyOriginHandler(EchoHandler):
    def check_origin(self, origin: str) -> bool:
        return True


class BrokenHandler(WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        raise RuntimeError("handler bug")


class PageHandler(web.RequestHandler):
    def get(self) -> None:
        self.write("plain page")


class PidHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(str(os.getpid()))


class SessionSetHandler(web.RequestHandler):
    def get(self) -> None:
        self.session["user"] = self.get_argument("user")
        self.write("stored")


class SessionSocketHandler(WebSocketHandler):
    """open() and on_message() read the session the middleware loaded for the handshake."""

    def open(self) -> None:
        self.write_message({"user": self.session.get("user"),
                            "xsrf": bool(self.request.environ.get(keys.XSRF_TOKEN))})

    def on_message(self, message: str | bytes) -> None:
        self.write_message({"user": self.session.get("user"), "echo": message})


def make_app(**settings: Any) -> web.Application:
    defaults: dict[str, Any] = {
        "websocket_max_message_size": 64 * 1024,
        "websocket_max_write_buffer_size": 256 * 1024,
        "websocket_ping_interval": float(os.environ.get("WS_PING_INTERVAL", "20")),
        "websocket_ping_timeout": float(os.environ.get("WS_PING_TIMEOUT", "20")),
        "login_url": "/login",
    }
    return web.Application([
        (r"/echo", EchoHandler),
        (r"/observe", ObserverHandler),
        (r"/args/(\w+)", ArgsHandler),
        (r"/auth", AuthHandler),
        (r"/refuse", RefuseHandler),
        (r"/ping", PingHandler),
        (r"/flood", FloodHandler),
        (r"/features", FeaturesHandler),
        (r"/any-origin", AnyOriginHandler),
        (r"/broken", BrokenHandler),
        (r"/page", PageHandler),
        (r"/pid", PidHandler),
        (r"/session/set", SessionSetHandler),
        (r"/session/socket", SessionSocketHandler),
    ], **{**defaults, **settings})


application = make_app()

def _lazy(app: Any) -> Any:
    """A legal PEP 3333 middleware that runs the app (and start_response) on first next()."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        def body() -> Any:
            yield from app(environ, start_response)

        return body()

    return middleware


#: Sessions only (the handshake reads them in open()).
session_application = compose(
    make_app(), SessionMiddleware.configure(secret="websocket-tests", store=MemoryStore()))

#: The app behind a middleware that calls start_response lazily.
lazy_application = _lazy(application)

#: The same app inside the full middleware stack of the design, outermost first.
stacked_application = compose(
    make_app(xsrf_cookies=True, cookie_secret="websocket-tests"),
    ProxyMiddleware.configure(trusted=["127.0.0.1/32"]),
    AccessLogMiddleware,
    IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]),
    GzipMiddleware.configure(min_size=1),
    SessionMiddleware.configure(secret="websocket-tests", store=MemoryStore()),
    XSRFMiddleware,
)
