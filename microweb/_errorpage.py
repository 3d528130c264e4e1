"""The HTML traceback page shown for server errors when ``serve_traceback`` (or ``debug``) is on.

werkzeug renders the traceback (source lines, chained exceptions); this module only wraps it
in a self-contained page with werkzeug's debugger stylesheet. It is never shown by default:
tracebacks reveal code and paths.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from importlib import resources

from werkzeug.debug.tbtools import DebugTraceback


@lru_cache(maxsize=1)
def _stylesheet() -> str:
    try:
        return resources.files("werkzeug.debug").joinpath("shared/style.css").read_text("utf-8")
    except OSError:
        return ""


def traceback_page(exc: BaseException | None, status_code: int, reason: str) -> str:
    """A complete HTML page with the traceback of ``exc``."""
    title = f"{status_code}: {escape(reason)}"
    body = DebugTraceback(exc).render_traceback_html() if exc is not None else ""
    return (
        "<!doctype html>\n<html><head><meta charset=utf-8>"
        f"<title>{title}</title><style>{_stylesheet()}</style></head>"
        f'<body style="background-color: #fff"><div class="debugger">'
        f"<h1>{title}</h1>{body}"
        "<div class=footer>Traceback shown because serve_traceback (or debug) is on; "
        "never enable it in production.</div></div></body></html>"
    )
