"""Listening sockets (TCP over IPv4/IPv6, unix sockets, inherited descriptors) and TLS."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat

from .config import Config

__all__ = ["ListenError", "bind", "describe", "tls_context"]


class ListenError(Exception):
    """The listening socket the config names cannot be had: one line for the user."""


def bind(config: Config) -> socket.socket:
    """Create the listening socket the config asks for (non-blocking, inheritable by workers)."""
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
    elif config.unix_socket:
        sock = _bind_unix(config.unix_socket, config.backlog)
    else:
        sock = _bind_tcp(config.host, config.port, config.backlog)
    sock.setblocking(False)
    return sock


def _bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            with contextlib.suppress(OSError):  # "::" also accepts IPv4 where allowed
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` only if it is a socket nobody accepts on (left by a previous run);
    a live server's socket or any other file is refused and left alone."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"{path}: exists and is not a socket; refusing to replace it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # stale: nothing listens behind it
        except FileNotFoundError:
            return  # removed meanwhile
        except OSError as exc:
            raise ListenError(f"{path}: cannot tell whether the socket is in use: {exc}") from exc
        else:
            raise ListenError(f"{path}: another server is listening on this socket")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """A server-side TLS context from certfile/keyfile (TLS 1.2+), or None for plain HTTP."""
    if not config.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.certfile, config.keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def describe(sock: socket.socket, tls: bool) -> str:
    """A human-readable address for log lines, e.g. ``http://127.0.0.1:8000``."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
