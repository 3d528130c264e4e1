"""Writing to non-blocking sockets from worker threads: try the syscall, poll only on EAGAIN.

Connections stay in non-blocking mode for the event loop; a worker thread that owns a
connection writes with these helpers, which wait (bounded by ``timeout``) only when the
kernel buffer is full. ``os.sendfile`` serves ``wsgi.file_wrapper`` responses on plain TCP.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from email.utils import formatdate
from time import time

__all__ = ["ClientDisconnected", "http_date", "send_all", "send_file", "wait_readable"]


class ClientDisconnected(OSError):
    """The peer went away (or stopped reading for longer than the write timeout)."""


def _wait(sock: socket.socket, event: int, timeout: float) -> None:
    poller = select.poll()
    poller.register(sock.fileno(), event)
    if not poller.poll(timeout * 1000.0):
        raise ClientDisconnected("timed out waiting for the client")


def wait_readable(sock: socket.socket, timeout: float) -> None:
    """Block until ``sock`` has data (or EOF); ``ClientDisconnected`` after ``timeout``."""
    _wait(sock, select.POLLIN, timeout)


def send_all(sock: socket.socket, data: bytes | memoryview, timeout: float) -> None:
    """Send every byte of ``data``; raises ``ClientDisconnected`` on error or timeout."""
    try:
        sent = sock.send(data)
    except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
        sent = 0
    except OSError as exc:
        raise ClientDisconnected(str(exc)) from exc
    if sent == len(data):  # PERF: the usual case is one syscall and no poll
        return
    view = memoryview(data)[sent:]
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, ssl.SSLWantWriteError):
            _wait(sock, select.POLLOUT, timeout)
            continue
        except ssl.SSLWantReadError:
            _wait(sock, select.POLLIN, timeout)
            continue
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        view = view[sent:]


def send_file(sock: socket.socket, fd: int, offset: int, count: int, timeout: float) -> int:
    """``os.sendfile`` up to ``count`` bytes from ``fd`` at ``offset``; returns bytes sent."""
    total = 0
    while total < count:
        try:
            sent = os.sendfile(sock.fileno(), fd, offset + total, min(count - total, 1 << 20))
        except BlockingIOError:
            _wait(sock, select.POLLOUT, timeout)
            continue
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        if sent == 0:  # the file is shorter than announced
            break
        total += sent
    return total


_date_cache: list[object] = [0, ""]


def http_date() -> str:
    """The current IMF-fixdate, recomputed at most once a second."""
    now = int(time())
    if now != _date_cache[0]:  # PERF: formatting a date costs more than the rest of a head
        _date_cache[1] = formatdate(now, usegmt=True)
        _date_cache[0] = now
    return _date_cache[1]  # type: ignore[return-value]
