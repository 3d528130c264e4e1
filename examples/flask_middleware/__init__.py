"""microweb's middleware package around a plain Flask app (no microweb import in the app).

The stack, outermost first: ProxyMiddleware (trust the local nginx) → AccessLogMiddleware →
GzipMiddleware → SessionMiddleware (SQLite) → XSRFMiddleware → Flask. The Flask views read
what the layers provide through documented environ keys (``middleware.keys``):
the session, the XSRF token for forms, the request id and the resolved client address.

    microweb serve examples.flask_middleware:application
    gunicorn examples.flask_middleware:application
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template_string, request

import middleware
from middleware import keys
from middleware.sessions import SessionMiddleware, SQLiteStore
from middleware.xsrf import XSRFMiddleware

__all__ = ["application", "flask_app", "make_app"]

flask_app = Flask(__name__)

_FORM = """<!DOCTYPE html>
<title>Guestbook</title>
<h1>Guestbook</h1>
<form method="post" action="{{ url_for('sign') }}">
  <input type="hidden" name="_xsrf" value="{{ xsrf_token }}">
  <input name="name" placeholder="your name" maxlength="40">
  <button type="submit">Sign</button>
</form>
<ul id="names">{% for name in names %}<li>{{ name }}</li>{% endfor %}</ul>
"""


def _session() -> Any:
    return request.environ[keys.SESSION]


@flask_app.get("/")
def index() -> Any:
    """Who the client is, as resolved by ProxyMiddleware from trusted hops only."""
    return jsonify(client=request.remote_addr, scheme=request.scheme,
                   request_id=request.environ.get(keys.REQUEST_ID))


@flask_app.get("/counter")
def counter() -> Any:
    """A server-side session counter (the cookie holds only a signed random id)."""
    session = _session()
    session["visits"] = int(session.get("visits", 0)) + 1
    return jsonify(visits=session["visits"])


@flask_app.get("/guestbook")
def guestbook() -> str:
    """A form carrying the XSRFMiddleware token (masked afresh on every page)."""
    return render_template_string(_FORM, xsrf_token=request.environ[keys.XSRF_TOKEN],
                                  names=_session().get("names", []))


@flask_app.post("/guestbook")
def sign() -> Any:
    """Reached only with a valid token: XSRFMiddleware answered 403 otherwise."""
    name = request.form.get("name", "").strip()[:40] or "anonymous"
    session = _session()
    session["names"] = [*session.get("names", []), name][-20:]
    return jsonify(signed=name, names=session["names"])


@flask_app.get("/report")
def report() -> Any:
    """A large, compressible response: gzipped when the client accepts it."""
    return jsonify(rows=[{"id": i, "title": f"house {i}", "price": 100 + i} for i in range(500)])


def make_app(data_dir: str | Path | None = None, *, secret: str = "change me: flask demo",
             trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")) -> middleware.Stack:
    """Wrap ``flask_app`` in the middleware stack (sessions in ``data_dir``/sessions.sqlite3)."""
    folder = Path(data_dir) if data_dir else Path(tempfile.gettempdir())
    store = SQLiteStore(folder / "flask-example-sessions.sqlite3")
    return middleware.compose(
        flask_app,
        middleware.ProxyMiddleware.configure(trusted=list(trusted_proxies)),
        middleware.AccessLogMiddleware,
        middleware.GzipMiddleware,
        SessionMiddleware.configure(secret=secret, store=store),
        XSRFMiddleware,  # the token lives in the session (SessionMiddleware is outside it)
    )


def __getattr__(name: str) -> Any:
    """Build ``application`` on first use (PEP 562): importing creates no file."""
    if name == "application":
        globals()["application"] = app = make_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
