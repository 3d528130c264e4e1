"""Start serving: bind, pick single-process or master mode, report the address."""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from typing import Any

from .config import Config
from .listeners import bind, describe, tls_context
from .workers import Master, run_single

__all__ = ["run"]

log = logging.getLogger("microweb.server")


def _raise_fd_limit() -> None:
    """Allow as many open files as the hard limit permits (idle connections are fds)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def run(loader: Callable[[], Callable[..., Any]], config: Config) -> int:
    """Serve the app ``loader()`` returns according to ``config``; returns an exit code."""
    _raise_fd_limit()
    sock = bind(config)
    context = tls_context(config)
    log.info("microweb.server listening on %s (%d worker(s) x %d threads)",
             describe(sock, context is not None), config.workers, config.threads)
    if config.workers == 1:
        return run_single(loader, sock, config, context)
    return Master(loader, sock, config, context).run()
