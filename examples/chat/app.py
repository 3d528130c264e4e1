"""The tutorials' chat room: names, join/leave notices and broadcast, across worker processes.

Run it with ``microweb serve examples.chat.app:application --workers 2`` and open
http://127.0.0.1:8000/ in a few browser tabs. With one process the in-process hub is enough;
with several processes (or machines behind nginx) set ``MICROWEB_CHAT_REDIS`` to a Redis URL
(``redis://127.0.0.1:6379/0``) so every process sees every message.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import microweb as web
from microweb.websocket import WebSocketHandler

ROOM = "chat"
MAX_NAME = 32
MAX_TEXT = 2000
PAGE = (Path(__file__).parent / "index.html").read_bytes()


class IndexHandler(web.RequestHandler):
    """The chat page (HTML + JavaScript)."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(PAGE)


class ChatHandler(WebSocketHandler):
    """One browser in the room: every message goes to everybody, in every process."""

    name = ""

    def open(self) -> None:
        name = " ".join(self.get_argument("name", "").split())[:MAX_NAME]
        self.name = name or f"guest-{os.urandom(2).hex()}"
        self.write_message({"type": "welcome", "name": self.name, "worker": os.getpid()})
        self.join(ROOM)  # after the welcome: it is always the first message
        self._announce("join")

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return  # the page only sends text
        text = message.strip()[:MAX_TEXT]
        if text:
            self.broadcast(ROOM, {"type": "message", "name": self.name, "text": text,
                                  "time": _now()})

    def on_close(self) -> None:
        self._announce("leave")

    def _announce(self, kind: str) -> None:
        self.broadcast(ROOM, {"type": kind, "name": self.name, "ip": self.request.remote_ip,
                              "time": _now()})


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def make_app(redis_url: str | None = None) -> web.Application:
    """The chat application; ``redis_url`` (or MICROWEB_CHAT_REDIS) shares the room."""
    return web.Application(
        [(r"/", IndexHandler), (r"/chat", ChatHandler)],
        websocket_hub=redis_url or os.environ.get("MICROWEB_CHAT_REDIS") or None,
    )


application = make_app()
