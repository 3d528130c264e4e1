"""ProxyMiddleware: the one place that decides who the client is, behind trusted proxies.

Reads and writes environ keys: ``REMOTE_ADDR``, ``wsgi.url_scheme``, ``HTTP_HOST`` (replaced),
``keys.ORIGINAL_REMOTE_ADDR`` / ``ORIGINAL_URL_SCHEME`` / ``ORIGINAL_HOST`` (the values
replaced) and ``keys.PROXY_RESOLVED`` (True).

The forwarding header is walked from the right (the entries trusted proxies appended), and the
walk stops at the first hop that is not a trusted proxy: that hop is the client. Entries to its
left were written by the client and never count. Security caveat: list only proxies you run, and
pick the header they *append* to (``mode``): a header your proxy passes through untouched is
attacker-controlled. The default trusts nobody, so nothing changes until you configure it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Literal

from werkzeug.http import parse_list_header

from . import keys
from ._wsgi import StartResponse, WSGIApp, WSGIEnvironment
from .base import Middleware

__all__ = ["Hop", "ProxyMiddleware", "TrustedNetworks", "parse_forwarded"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7230 host: reg-name / IPv4 / [IPv6], optional port; nothing else may reach HTTP_HOST.
# Used with fullmatch: ``$`` would also accept a trailing newline.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*(?:;|$)')


# PERF: the same few proxy and client addresses recur on every request; parsing them with
# ipaddress costs more than the rest of the layer, so both lookups are memoised (bounded).
@functools.lru_cache(maxsize=4096)
def parse_ip(text: str | None) -> IPAddress | None:
    """An address from a header or REMOTE_ADDR (``[v6]:port`` and ``v4:port`` accepted)."""
    if not text:
        return None
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedNetworks:
    """A set of addresses and CIDR networks (IPv4 and IPv6), e.g. ``["10.0.0.0/8", "::1"]``."""

    __slots__ = ("_contains_text", "networks")

    def __init__(self, entries: Iterable[str | IPNetwork | IPAddress] = ()) -> None:
        if isinstance(entries, str):
            entries = [entries]
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in entries)
        self._contains_text = functools.lru_cache(maxsize=4096)(self._contains_address)

    def _contains_address(self, address: str | IPAddress | None) -> bool:
        if isinstance(address, str):
            address = parse_ip(address)
        if address is None:
            return False
        return any(address in network for network in self.networks)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            return bool(self._contains_text(address))
        if address is None or not isinstance(address, ipaddress.IPv4Address
                                             | ipaddress.IPv6Address):
            return False
        return self._contains_address(address)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedNetworks({[str(n) for n in self.networks]!r})"


class Hop:
    """One forwarding hop: the address a proxy saw, and the scheme/host it received."""

    __slots__ = ("for_", "host", "proto")

    def __init__(self, for_: str | None, proto: str | None = None,
                 host: str | None = None) -> None:
        self.for_, self.proto, self.host = for_, proto, host

    def __repr__(self) -> str:
        return f"Hop(for_={self.for_!r}, proto={self.proto!r}, host={self.host!r})"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_forwarded(value: str) -> list[Hop]:
    """RFC 7239 ``Forwarded`` elements, left to right; a malformed element becomes an empty hop
    (so the right-to-left walk stops there rather than skipping it)."""
    hops = []
    for element in parse_list_header(value):
        pairs: dict[str, str] = {}
        pos = 0
        while pos < len(element):
            match = _FORWARDED_PAIR.match(element, pos)
            if match is None or match.end() == pos:
                pairs = {}
                break
            pairs.setdefault(match.group(1).lower(), _unquote(match.group(2)))
            pos = match.end()
        hops.append(Hop(pairs.get("for"), pairs.get("proto"), pairs.get("host")))
    return hops


def _x_forwarded_hops(for_: str, proto: str, host: str) -> list[Hop]:
    """X-Forwarded-For entries as hops; Proto/Host lists aligned from the right."""
    fors = [v.strip() for v in for_.split(",") if v.strip()]
    protos = [v.strip() for v in proto.split(",") if v.strip()]
    hosts = [v.strip() for v in host.split(",") if v.strip()]
    hops = [Hop(f) for f in fors]
    # Proxies that overwrite rather than append leave a single value: it belongs to the
    # outermost trusted proxy we reach, so it is attached below by index from the right.
    for hop, proto in zip(reversed(hops), reversed(protos), strict=False):
        hop.proto = proto
    for hop, host in zip(reversed(hops), reversed(hosts), strict=False):
        hop.host = host
    return hops


class ProxyMiddleware(Middleware):
    """Resolve the real client, scheme and host from trusted proxies' forwarding headers.

    ``trusted``: proxy addresses / CIDR ranges (default: none, headers ignored).
    ``mode``: ``"x-forwarded"`` (X-Forwarded-For/-Proto/-Host, nginx' default) or
    ``"forwarded"`` (RFC 7239). ``forward_scheme`` / ``forward_host`` switch those parts off.
    """

    provides = (keys.PROXY_RESOLVED,)

    def __init__(self, app: WSGIApp, trusted: Iterable[str] = (), *,
                 mode: Literal["x-forwarded", "forwarded"] = "x-forwarded",
                 forward_scheme: bool = True, forward_host: bool = True) -> None:
        if mode not in ("x-forwarded", "forwarded"):
            raise ValueError(f"mode must be 'x-forwarded' or 'forwarded', not {mode!r}")
        super().__init__(app)
        self.trusted = TrustedNetworks(trusted)
        self.mode = mode
        self.forward_scheme = forward_scheme
        self.forward_host = forward_host
        # PERF: a proxy sends the same few header values again and again; the walk over them
        # (splitting, address parsing, network checks) is memoised per distinct values. The
        # cache is bounded, so clients spraying new values only cost their own lookups.
        self._walk = functools.lru_cache(maxsize=4096)(self._resolve_hops)

    def __repr__(self) -> str:
        return f"ProxyMiddleware(trusted={[str(n) for n in self.trusted.networks]!r})"

    def resolve(self, environ: WSGIEnvironment) -> tuple[str, str | None, str | None] | None:
        """(client address, scheme, host) per the trusted hops, or None to change nothing."""
        remote = environ.get("REMOTE_ADDR", "")
        if remote not in self.trusted:
            return None
        if self.mode == "forwarded":
            return self._walk(environ.get("HTTP_FORWARDED", ""))
        return self._walk(environ.get("HTTP_X_FORWARDED_FOR", ""),
                          environ.get("HTTP_X_FORWARDED_PROTO", ""),
                          environ.get("HTTP_X_FORWARDED_HOST", ""))

    def _resolve_hops(self, *headers: str) -> tuple[str, str | None, str | None] | None:
        """The walk over the forwarding headers' values (cached per distinct values)."""
        if self.mode == "forwarded":
            hops = parse_forwarded(headers[0])
        else:
            hops = _x_forwarded_hops(*headers)
        client, proto, host = None, None, None
        for hop in reversed(hops):
            address = parse_ip(hop.for_)
            if address is None:  # garbage written by a trusted hop: stop, keep what we have
                break
            client, proto, host = str(address), hop.proto or proto, hop.host or host
            if address not in self.trusted:
                break
        if client is None:
            return None
        return client, proto, host

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        environ[keys.ORIGINAL_REMOTE_ADDR] = environ.get("REMOTE_ADDR", "")
        environ[keys.ORIGINAL_URL_SCHEME] = environ.get("wsgi.url_scheme", "http")
        environ[keys.ORIGINAL_HOST] = environ.get("HTTP_HOST")
        resolved = self.resolve(environ)
        if resolved is not None:
            client, proto, host = resolved
            environ["REMOTE_ADDR"] = client
            if self.forward_scheme and proto and proto.lower() in ("http", "https"):
                environ["wsgi.url_scheme"] = proto.lower()
            if self.forward_host and host and _HOST_RE.fullmatch(host):
                environ["HTTP_HOST"] = host
        environ[keys.PROXY_RESOLVED] = True
        return self.app(environ, start_response)
