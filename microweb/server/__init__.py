"""microweb.server: a fast, production-grade HTTP/1.1 WSGI server with an upgrade extension.

``serve(app)`` runs it; ``Server`` is the embeddable event loop (one per process) used by the
command line and by other front-ends; ``Config``/``SETTINGS`` is the table of every option.
This package imports only the standard library, httptools and (for --reload) watchfiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import SETTINGS, Config
from .loop import Server, TimerHandle
from .runner import run
from .task import FileWrapper
from .upgrade import Transport

__all__ = ["SETTINGS", "Config", "FileWrapper", "Server", "TimerHandle", "Transport", "serve"]


def serve(app: Callable[..., Any] | str, host: str = "127.0.0.1", port: int = 8000,
          **options: Any) -> None:
    """Serve ``app`` (a WSGI callable or ``"module:attr"``) until SIGTERM/SIGINT.

    ``options`` are the settings of ``microweb.server.config.SETTINGS`` (workers, threads,
    timeouts, limits, certfile/keyfile, unix_socket, fd, ...).
    """
    import logging

    from .command import import_string

    config = Config(host=host, port=port, **options)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("microweb.server").setLevel(config.log_level)
    if isinstance(app, str):
        spec = app
        run(lambda: import_string(spec), config)
    else:
        wsgi_app = app
        run(lambda: wsgi_app, config)
