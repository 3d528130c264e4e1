"""The microweb showcase: what ``make run`` serves (SQLite sessions and data, no other service).

``application`` is the full WSGI stack (access log, gzip, sessions around the app). It is built
on first access, so importing ``make_app`` for tests creates no files:

    microweb serve examples.showcase:application
    gunicorn -k microweb.server.gunicorn.Worker examples.showcase:application
    python -m examples.showcase --port 8000
"""

from __future__ import annotations

from typing import Any

from examples.showcase.app import make_app

__all__ = ["application", "make_app"]


def __getattr__(name: str) -> Any:
    """Build ``application`` lazily (PEP 562) with the default data folder."""
    if name == "application":
        app = make_app()
        globals()["application"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
