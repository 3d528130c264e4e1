"""A raw-socket WebSocket client for the cases a well-behaved library cannot produce."""

from __future__ import annotations

import base64
import os
import socket
import struct

from websockets.frames import Close, Frame, Opcode


def handshake(port: int, path: str = "/echo", extra: str = "") -> tuple[socket.socket, bytes]:
    """Open a WebSocket with a hand-written request; returns the socket and the response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """Serialize one frame by hand (a client must mask; mask=False breaks that rule)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> Frame:
    """Read one (unmasked, server) frame."""
    b1, b2 = _exact(sock, 2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _exact(sock, 8))[0]
    return Frame(Opcode(b1 & 0x0F), _exact(sock, n), fin=bool(b1 & 0x80))


def read_until_close(sock: socket.socket, limit: int = 100000) -> tuple[list[Frame], Close]:
    """Read frames up to the close frame; returns the frames before it and the close."""
    frames = []
    for _ in range(limit):
        f = read_frame(sock)
        if f.opcode is Opcode.CLOSE:
            return frames, Close.parse(f.data)
        frames.append(f)
    raise AssertionError("no close frame")


def at_eof(sock: socket.socket) -> bool:
    """True when the server closed the TCP connection (after any remaining bytes)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True  # aborted
    except TimeoutError:
        return False
