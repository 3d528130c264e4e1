"""IPBlacklistMiddleware: deny / allow lists, per-path allow lists and a per-IP rate limit.

Reads ``REMOTE_ADDR`` only: put ProxyMiddleware outside it when behind a proxy, so the address
is the one resolved from *trusted* hops. Never X-Forwarded-For or Host directly: both are
written by the client. Writes no environ key. Blocked requests get 403 (configurable body) and a
WARNING on the ``microweb.ipfilter`` logger; rate-limited ones get 429 with ``Retry-After``.
Thread-safe: rules are immutable snapshots swapped on reload; the buckets sit behind a lock.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import posixpath
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from . import keys
from ._wsgi import StartResponse, WSGIApp, WSGIEnvironment, plain_response
from .base import Middleware
from .proxy import IPAddress, TrustedNetworks, parse_ip

__all__ = ["IPBlacklistMiddleware", "Rules", "TokenBuckets"]

log = logging.getLogger("microweb.ipfilter")
_SLASHES = re.compile(r"/{2,}")


def _normalise(path: str) -> str:
    """Collapse ``//`` and dot segments so ``/./admin`` or ``//admin`` meet the /admin rule."""
    path = posixpath.normpath(_SLASHES.sub("/", path or "/"))
    return "/" if path == "." else path


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


class Rules:
    """One immutable snapshot of the lists (so a reload never shows a half-built state)."""

    __slots__ = ("allow", "deny", "paths")

    def __init__(self, deny: Iterable[str] = (), allow: Iterable[str] = (),
                 paths: Mapping[str, Iterable[str]] | None = None) -> None:
        self.deny = TrustedNetworks(list(deny))
        self.allow = TrustedNetworks(list(allow))
        ordered = sorted((paths or {}).items(), key=lambda item: -len(item[0]))
        self.paths = tuple((_normalise(prefix), TrustedNetworks(list(nets)))
                           for prefix, nets in ordered)

    @classmethod
    def parse(cls, text: str, base: Rules | None = None) -> Rules:
        """Read the list file format: ``deny NET``, ``allow NET``, ``path /prefix NET...``,
        a bare ``NET`` (deny), ``#`` comments. Raises ValueError naming the bad line."""
        deny = [str(n) for n in base.deny.networks] if base else []
        allow = [str(n) for n in base.allow.networks] if base else []
        paths = {p: [str(n) for n in nets.networks] for p, nets in base.paths} if base else {}
        for number, raw in enumerate(text.splitlines(), 1):
            words = raw.partition("#")[0].split()
            try:
                if not words:
                    continue
                if words[0] == "path" and len(words) >= 3:
                    paths.setdefault(words[1], []).extend(words[2:])
                elif words[0] in ("deny", "allow") and len(words) >= 2:
                    (deny if words[0] == "deny" else allow).extend(words[1:])
                elif len(words) == 1:
                    deny.append(words[0])
                else:
                    raise ValueError("expected 'deny NET', 'allow NET' or 'path /p NET...'")
                for word in words[2 if words[0] == "path" else 1 if len(words) > 1 else 0:]:
                    ipaddress.ip_network(word, strict=False)
                if words[0] == "path" and not words[1].startswith("/"):
                    raise ValueError("a path prefix starts with '/'")
            except ValueError as exc:
                raise ValueError(f"line {number}: {raw.strip()!r}: {exc}") from None
        return cls(deny, allow, paths)

    def refusal(self, address: IPAddress | None, path: str) -> str | None:
        """Why ``address`` may not reach ``path``, or None when it may."""
        if address is not None and address in self.deny:
            return "denied address"
        if self.allow and address not in self.allow:
            return "not in the allow list"
        if self.paths:
            clean = _normalise(path)
            for prefix, networks in self.paths:
                if _under(clean, prefix):
                    return None if address in networks else f"not allowed under {prefix}"
        return None


class TokenBuckets:
    """Per-key token buckets (``rate`` tokens/s, ``burst`` capacity), least recently seen keys
    evicted beyond ``max_keys`` so memory stays bounded under address-spraying."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (requests per second)")
        self.rate, self.burst = float(rate), float(burst if burst is not None else max(1, rate))
        if self.burst < 1:
            raise ValueError("burst must be at least 1 (a request costs one token)")
        self.max_keys, self.clock = max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if granted, else seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


class IPBlacklistMiddleware(Middleware):
    """Refuse requests by client address (403) and rate-limit per address (429).

    ``deny`` / ``allow``: addresses or CIDR networks (an empty allow list allows all);
    ``paths``: ``{"/admin": ["192.168.10.0/24"]}`` allow lists per path prefix (longest wins);
    ``list_file``: extra rules in a text file, re-read when it changes (checked at most every
    ``reload_interval`` seconds; a broken file keeps the old rules and logs an error);
    ``rate`` (requests/s) and ``burst`` switch the rate limit on; ``max_tracked`` bounds it.
    """

    uses = (keys.PROXY_RESOLVED,)

    def __init__(self, app: WSGIApp, *, deny: Iterable[str] = (), allow: Iterable[str] = (),
                 paths: Mapping[str, Iterable[str]] | None = None,
                 list_file: str | os.PathLike[str] | None = None, reload_interval: float = 2.0,
                 rate: float | None = None, burst: float | None = None,
                 max_tracked: int = 10_000, body: str | bytes = "Forbidden\n",
                 content_type: str = "text/plain; charset=utf-8",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(app)
        self._static = Rules(deny, allow, paths)
        self.list_file = Path(list_file) if list_file is not None else None
        self.reload_interval, self.clock = reload_interval, clock
        self.body, self.content_type = body, content_type
        self.buckets = TokenBuckets(rate, burst, max_tracked, clock) if rate else None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = clock()
        self.rules = self._static
        if self.list_file is not None:
            self.reload()  # a broken file at start-up is an error, not a log line

    def reload(self) -> bool:
        """Re-read ``list_file`` now; True if the rules changed. Raises on a bad file."""
        with self._lock:
            return self._reload_locked()

    def _reload_locked(self) -> bool:
        if self.list_file is None:
            return False
        stat = self.list_file.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self.rules = Rules.parse(self.list_file.read_text("utf-8"), self._static)
        self._stamp = stamp
        log.info("reloaded IP rules from %s", self.list_file)
        return True

    def _maybe_reload(self) -> None:
        now = self.clock()
        if self.list_file is None or now - self._checked < self.reload_interval:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is reloading; keep serving with the current snapshot
        try:
            self._checked = now
            self._reload_locked()
        except (OSError, ValueError) as exc:
            log.error("keeping the previous IP rules: cannot load %s: %s", self.list_file, exc)
        finally:
            self._lock.release()

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        if self.list_file is not None:
            self._maybe_reload()
        raw = environ.get("REMOTE_ADDR", "")
        rules = self.rules
        if not rules.allow and not rules.paths:
            # PERF: a deny list alone is one memoised lookup by the address text
            reason = "denied address" if raw in rules.deny else None
        else:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            reason = rules.refusal(parse_ip(raw), path)
        if reason is not None:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            log.warning("blocked %s %s %r: %s (request id %s)", raw or "-",
                        environ.get("REQUEST_METHOD"), path, reason,
                        environ.get(keys.REQUEST_ID, "-"))
            return plain_response(start_response, "403 Forbidden", self.body,
                                  content_type=self.content_type)
        if self.buckets is not None:
            address = parse_ip(raw)
            wait = self.buckets.take(str(address) if address is not None else raw)
            if wait:
                log.info("rate limited %s %s %r", raw or "-", environ.get("REQUEST_METHOD"),
                         environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
                return plain_response(start_response, "429 Too Many Requests",
                                      "Too Many Requests\n",
                                      [("Retry-After", str(max(1, math.ceil(wait))))])
        return self.app(environ, start_response)
