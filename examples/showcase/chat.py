"""The tutorials' chat room as a WebSocket handler over the pub/sub hub.

The tutorial keeps the users in a class-level set, so the room ends at one process (its nginx
config pins ``/chat`` to one backend). Here every socket joins a hub channel: in-process by
default, Redis pub/sub when the ``websocket_hub`` setting is a ``redis://`` URL, so one room
spans every worker process and machine.
"""

from __future__ import annotations

import secrets

from microweb.websocket import WebSocketHandler

CHANNEL = "showcase.chat"
MAX_TEXT = 500


class ChatSocket(WebSocketHandler):
    """Join/leave notices and broadcast messages, named after the logged-in user (or a guest)."""

    name = ""

    def get_current_user(self) -> str | None:
        user = self.session.get("user")  # the session works here, as in any handler
        return user if isinstance(user, str) else None

    def open(self) -> None:
        self.name = self.current_user or f"guest-{secrets.token_hex(2)}"
        self.join(CHANNEL)
        self.broadcast(CHANNEL, {"type": "join", "name": self.name})

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            return  # the page sends text frames only
        text = message.strip()[:MAX_TEXT]
        if text:
            self.broadcast(CHANNEL, {"type": "message", "name": self.name, "text": text})

    def on_close(self) -> None:
        if self.name:
            self.broadcast(CHANNEL, {"type": "leave", "name": self.name})
