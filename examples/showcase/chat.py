"""The tutorials' chat room as a WebSocket handler over the pub/sub hub.

The tutorial keeps the users in a class-level set, so the room ends at one process (its nginx
config pins ``/chat`` to one backend). Here every socket joins a hub channel: in-process by
default, Redis pub/sub when a URL is given, so one room spans every worker and machine.
"""

from __future__ import annotations

import secrets

from microweb import pubsub
from microweb.websocket import WebSocketHandler

CHANNEL = "showcase.chat"
MAX_TEXT = 500


def make_hub(redis_url: str | None = None) -> pubsub.Hub:
    """An in-process hub, or a Redis one when ``redis_url`` is set (several processes)."""
    return pubsub.from_url(redis_url or "memory://")


class ChatSocket(WebSocketHandler):
    """Join/leave notices and broadcast messages, named after the logged-in user (or a guest)."""

    max_message_size = 4096

    def open(self) -> None:
        user = self.session.get("user")
        self.name = user if isinstance(user, str) else f"guest-{secrets.token_hex(2)}"
        self.hub = self.settings["chat_hub"]
        self.subscription = self.hub.subscribe(CHANNEL, self.write_message)
        self.hub.publish(CHANNEL, {"type": "join", "name": self.name})

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return  # the page sends text frames only
        text = message.strip()[:MAX_TEXT]
        if text:
            self.hub.publish(CHANNEL, {"type": "message", "name": self.name, "text": text})

    def on_close(self) -> None:
        if getattr(self, "subscription", None) is not None:
            self.subscription.cancel()
            self.hub.publish(CHANNEL, {"type": "leave", "name": self.name})
