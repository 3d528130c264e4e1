"""Development auto-reload: run the server in a child process and restart it on changes."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence

__all__ = ["run_with_reload"]

log = logging.getLogger("microweb.server")


def run_with_reload(argv: Sequence[str], paths: Sequence[str] = (".",)) -> int:
    """Run ``python -m microweb.server *argv`` and restart it when a .py file changes."""
    import watchfiles  # only needed for --reload; keeps production imports lean

    command = shlex.join([sys.executable, "-m", "microweb.server", *argv])
    log.info("watching %s for changes (--reload)", ", ".join(os.path.abspath(p) for p in paths))
    watchfiles.run_process(*paths, target=command, target_type="command",
                           watch_filter=watchfiles.PythonFilter(), sigint_timeout=10)
    return 0
