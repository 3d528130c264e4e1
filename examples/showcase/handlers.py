"""The showcase's request handlers: Tornado's handler API, served over WSGI.

Each handler shows one feature; the index page (``/``) lists what to try.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import microweb as web
from examples.showcase.data import Database, Upload
from middleware import keys

CHUNK = 64 * 1024


CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


class BaseHandler(web.RequestHandler):
    """The current user lives in the server-side session (SQLite), never in a readable cookie."""

    def set_default_headers(self) -> None:
        """Security headers on every page, error pages included (see docs/security.md)."""
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    @property
    def db(self) -> Database:
        return self.settings["db"]  # type: ignore[no-any-return]

    def get_current_user(self) -> str | None:
        user = self.session.get("user")
        if user:
            self.request.environ[keys.USER] = user  # the access log names the user
        return user if isinstance(user, str) else None


class IndexHandler(BaseHandler):
    """The first page: what to try."""

    def get(self) -> None:
        self.render("index.html", houses=self.db.houses(limit=3))


class LoginHandler(BaseHandler):
    """A login form (XSRF-protected) that starts a fresh session and goes back to ``next``."""

    def get(self) -> None:
        self.render("login.html", error=None, next=self.get_next_url())

    def post(self) -> None:
        name = self.get_body_argument("name", "").strip()
        password = self.get_body_argument("password", "")
        target = self.get_next_url()  # only a same-site path: no open redirect
        if not self.db.check_password(name, password):
            self.set_status(401)
            self.render("login.html", error="Wrong name or password.", next=target)
            return
        self.session.regenerate()  # a new id at login: no session fixation
        self.session["user"] = name
        self.redirect(target)


class LogoutHandler(BaseHandler):
    """Logout is a POST (with the XSRF token): a cross-site image cannot log anybody out."""

    def post(self) -> None:
        self.session.invalidate()
        self.redirect("/")


class AccountHandler(BaseHandler):
    """An ``@authenticated`` page: anonymous GETs are redirected to the login form."""

    @web.authenticated
    def get(self) -> None:
        self.render("account.html", uploads=self.db.uploads(self.current_user))


class HousesHandler(BaseHandler):
    """The tutorials' house list, from a SQLite table."""

    def get(self) -> None:
        self.render("houses.html", houses=self.db.houses())


class HouseHandler(BaseHandler):
    """One house; ``/houses/<id>`` (the tutorials' ``GetHandler``)."""

    def get(self, house_id: str) -> None:
        house = self.db.house(int(house_id))
        if house is None:
            raise web.HTTPError(404, "no house %s", house_id)
        self.render("house.html", house=house)


class NewHouseHandler(BaseHandler):
    """Add a house: an authenticated, XSRF-protected form with validation."""

    @web.authenticated
    def get(self) -> None:
        self.render("house_new.html", errors={}, values={})

    @web.authenticated
    def post(self) -> None:
        values = {k: self.get_body_argument(k, "").strip() for k in ("title", "position", "price")}
        errors = _validate_house(values)
        if errors:
            self.set_status(400)
            self.render("house_new.html", errors=errors, values=values)
            return
        house_id = self.db.add_house(values["title"], values["position"], int(values["price"]),
                                     self.current_user)
        self.redirect(self.reverse_url("house", house_id))


def _validate_house(values: dict[str, str]) -> dict[str, str]:
    errors = {}
    if not 3 <= len(values["title"]) <= 120:
        errors["title"] = "Between 3 and 120 characters."
    if not 2 <= len(values["position"]) <= 120:
        errors["position"] = "Between 2 and 120 characters."
    if not values["price"].isdigit() or not 1 <= int(values["price"]) <= 100_000:
        errors["price"] = "A whole number of yuan per night, 1 to 100000."
    return errors


class HousesCSVHandler(BaseHandler):
    """A streamed download: the handler is a generator, each yielded chunk goes out at once."""

    def get(self) -> Iterator[bytes]:
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", 'attachment; filename="houses.csv"')
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["id", "title", "position", "price", "score", "comments"])
        for n, row in enumerate(self.db.iter_houses(), 1):
            writer.writerow([row["id"], row["title"], row["position"], row["price"],
                             row["score"], row["comments"]])
            if n % 100 == 0:
                yield _drain(buf)
        yield _drain(buf)


def _drain(buf: io.StringIO) -> bytes:
    data = buf.getvalue().encode()
    buf.seek(0)
    buf.truncate()
    return data


class UploadHandler(BaseHandler):
    """File upload (multipart, XSRF-protected); files are stored under a random id."""

    @web.authenticated
    def get(self) -> None:
        self.render("upload.html", uploads=self.db.uploads(self.current_user), error=None)

    @web.authenticated
    def post(self) -> None:
        files = self.request.files.get("file") or []
        if not files or not files[0].filename:
            self.set_status(400)
            self.render("upload.html", uploads=self.db.uploads(self.current_user),
                        error="Choose a file first.")
            return
        upload = self._store(files[0])
        self.redirect(self.reverse_url("upload") + f"?uploaded={upload.id}")

    def _store(self, file: Any) -> Upload:
        """Copy the upload to disk without reading it into memory (it may be 8 MiB)."""
        upload_id = secrets.token_hex(16)
        path = self.settings["upload_dir"] / upload_id
        file.save(str(path))
        upload = Upload(id=upload_id, owner=self.current_user,
                        filename=Path(file.filename).name[:200] or "upload",
                        content_type=file.content_type or "application/octet-stream",
                        size=path.stat().st_size)
        self.db.add_upload(upload)
        return upload


class DownloadHandler(BaseHandler):
    """A streamed download of an upload: ``flush()`` sends each 64 KiB chunk as it is read."""

    @web.authenticated
    def get(self, upload_id: str) -> None:
        upload = self.db.upload(upload_id)
        if upload is None or upload.owner != self.current_user:
            raise web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(upload.size))
        self.set_header("Content-Disposition",
                        f"attachment; filename*=UTF-8''{quote(upload.filename)}")
        self.set_header("X-Content-Type-Options", "nosniff")
        with open(self.settings["upload_dir"] / upload.id, "rb") as f:
            while chunk := f.read(CHUNK):
                self.write(chunk)
                self.flush()


class ChatPageHandler(BaseHandler):
    """The tutorials' chat room page; the socket is ``/chat/socket``."""

    def get(self) -> None:
        self.render("chat.html")
