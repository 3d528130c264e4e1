"""Build the showcase: routes, settings and the middleware stack around them.

Everything stateful is embedded: one SQLite file for the data, one for the sessions, both in a
data folder (``examples/showcase/var/`` by default, ``MICROWEB_SHOWCASE_DATA`` to move it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import microweb as web
import middleware
from examples.showcase import handlers as h
from examples.showcase.chat import ChatSocket
from examples.showcase.data import Database
from middleware.sessions import SessionMiddleware, SQLiteStore

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "var"
MAX_UPLOAD = 8 * 1024 * 1024

ROUTES: list[Any] = [
    web.url(r"/", h.IndexHandler, name="index"),
    web.url(r"/login", h.LoginHandler, name="login"),
    web.url(r"/logout", h.LogoutHandler, name="logout"),
    web.url(r"/account", h.AccountHandler, name="account"),
    web.url(r"/houses", h.HousesHandler, name="houses"),
    web.url(r"/houses/new", h.NewHouseHandler, name="house_new"),
    web.url(r"/houses/(\d{1,12})", h.HouseHandler, name="house"),
    web.url(r"/houses\.csv", h.HousesCSVHandler, name="houses_csv"),
    web.url(r"/upload", h.UploadHandler, name="upload"),
    web.url(r"/download/([0-9a-f]{32})", h.DownloadHandler, name="download"),
    web.url(r"/chat", h.ChatPageHandler, name="chat"),
    web.url(r"/chat/socket", ChatSocket, name="chat_socket"),
]


def load_secret(data_dir: Path) -> str:
    """``MICROWEB_SHOWCASE_SECRET``, else a random key kept in ``<data>/secret.key`` (0600).

    Kept on disk so a restart (or a second worker process) does not log everybody out. Worker
    processes build the app at the same time: the key is written to a private temporary file
    and hard-linked into place, so nobody ever reads a half-written key.
    """
    if env := os.environ.get("MICROWEB_SHOWCASE_SECRET"):
        return env
    path = data_dir / "secret.key"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".secret-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def make_app(data_dir: str | Path | None = None, *, debug: bool = False,
             redis_url: str | None = None, trusted_proxies: str | None = None,
             access_log: str | None = "-") -> Any:
    """The showcase WSGI stack: [proxy →] access log → gzip → sessions (SQLite) → the app.

    ``redis_url`` (or ``MICROWEB_SHOWCASE_REDIS``) switches the chat hub to Redis pub/sub, so
    one room spans every worker process and machine (see examples/deploy/).
    ``trusted_proxies`` (or ``MICROWEB_SHOWCASE_TRUSTED_PROXIES``, comma-separated addresses
    and CIDR ranges) puts a ProxyMiddleware outermost so the client address and scheme come
    from a reverse proxy's X-Forwarded-* headers; by default nobody is trusted.
    ``access_log``: "-" (stdout), a file path, or None to leave output to logging's handlers
    (``MICROWEB_ACCESS_LOG`` when set wins over the default).
    """
    data = Path(data_dir or os.environ.get("MICROWEB_SHOWCASE_DATA") or DEFAULT_DATA)
    (data / "uploads").mkdir(parents=True, exist_ok=True)
    secret = load_secret(data)
    app = web.Application(
        ROUTES,
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        cookie_secret=secret,
        xsrf_cookies=True,
        login_url="/login",
        debug=debug,
        max_body_size=MAX_UPLOAD + 64 * 1024,
        db=Database(data / "showcase.sqlite3"),
        upload_dir=data / "uploads",
        websocket_hub=redis_url or os.environ.get("MICROWEB_SHOWCASE_REDIS") or None,
        log_function=_no_log,  # AccessLogMiddleware writes the one line per request
    )
    layers: list[Any] = [_access_log(access_log),
                         middleware.GzipMiddleware,
                         SessionMiddleware.configure(
                             secret=secret, store=SQLiteStore(data / "sessions.sqlite3"))]
    trusted = trusted_proxies or os.environ.get("MICROWEB_SHOWCASE_TRUSTED_PROXIES")
    if trusted:
        proxies = [p.strip() for p in trusted.split(",") if p.strip()]
        layers.insert(0, middleware.ProxyMiddleware.configure(trusted=proxies))
    return middleware.compose(app, *layers)


def _no_log(handler: Any) -> None:
    """The application's own per-request log line, replaced by the access log middleware."""


def _access_log(output: str | None) -> Any:
    """The access log layer: to ``output`` on its own logger, or to ``microweb.access``.

    With an output the records go to a non-propagating ``microweb.access.showcase`` logger,
    so however the server configured logging, each request is printed exactly once.
    """
    output = os.environ.get("MICROWEB_ACCESS_LOG", output) if output else None
    if not output:
        return middleware.AccessLogMiddleware
    logger = logging.getLogger("microweb.access.showcase")
    logger.propagate = False
    return middleware.AccessLogMiddleware.configure(output=output, logger=logger)

