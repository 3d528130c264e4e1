"""Streaming request and response bodies with bounded memory.

- ``PUT /files/<name>``: the raw body is read from ``request.stream`` in 64 KiB chunks,
  hashed and written to disk as it arrives (never held whole); ``max_upload`` answers 413.
- ``POST /upload``: a multipart upload; werkzeug spools big files to a temporary file and
  ``request.files[...][0].save()`` copies it without loading it into memory.
- ``GET /files/<name>``: a generator handler; each yielded chunk is sent at once.
- ``GET /ticks?n=5``: ``flush()`` after each line, so a client sees them one by one.

    microweb serve examples.streaming:application
    curl -T big.iso http://127.0.0.1:8000/files/big.iso
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import microweb as web

__all__ = ["application", "make_app"]

CHUNK = 64 * 1024
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


class FileHandler(web.RequestHandler):
    """Raw-body upload (PUT) and streamed download (GET) of one stored file."""

    def initialize(self, folder: Path, max_upload: int) -> None:
        self.folder, self.max_upload = folder, max_upload

    def put(self, name: str) -> None:
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_upload:
            raise web.HTTPError(413, "upload of %s bytes refused", length)
        partial = self.folder / f".{name}.part"
        try:
            size, digest = self._receive(partial)
            partial.replace(self.folder / name)  # readers never see half a file
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.set_status(201)
        self.write({"name": name, "size": size, "sha256": digest})

    def _receive(self, path: Path) -> tuple[int, str]:
        """Copy ``request.stream`` to ``path`` chunk by chunk; (size, sha256 hex)."""
        digest, size, stream = hashlib.sha256(), 0, self.request.stream
        with open(path, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > self.max_upload:  # chunked bodies have no Content-Length
                    raise web.HTTPError(413, "upload over %d bytes refused", self.max_upload)
                digest.update(chunk)
                out.write(chunk)
        return size, digest.hexdigest()

    def get(self, name: str) -> Iterator[bytes]:
        path = self.folder / name
        if not path.is_file():
            raise web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(path.stat().st_size))
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


class MultipartHandler(web.RequestHandler):
    """A multipart upload copied to disk from werkzeug's spooled temporary file."""

    def initialize(self, folder: Path, max_upload: int) -> None:
        self.folder = folder

    def post(self) -> None:
        saved = {}
        for upload in self.request.files.get("file", []):
            name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.filename).name)[:100] or "upload"
            upload.save(str(self.folder / name))
            saved[name] = (self.folder / name).stat().st_size
        if not saved:
            raise web.HTTPError(400, "no file", reason="Bad Request: send a 'file' field")
        self.write({"saved": saved})


class TicksHandler(web.RequestHandler):
    """One line per tick, flushed as written: a long response delivered incrementally."""

    def get(self) -> None:
        count = min(int(self.get_argument("n", "5")), 100)
        delay = min(float(self.get_argument("delay", "0.2")), 2.0)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Cache-Control", "no-transform")  # keep proxies from buffering it
        for i in range(count):
            self.write(f"tick {i}\n")
            self.flush()
            time.sleep(delay)


def make_app(folder: str | Path | None = None, max_upload: int = 1024**3) -> web.Application:
    """Files live in ``folder`` (a temporary folder by default)."""
    where = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="microweb-streaming-"))
    where.mkdir(parents=True, exist_ok=True)
    opts = {"folder": where, "max_upload": max_upload}
    return web.Application([
        (rf"/files/({_NAME})", FileHandler, opts),
        (r"/upload", MultipartHandler, opts),
        (r"/ticks", TicksHandler),
    ], max_body_size=max_upload)


def __getattr__(name: str) -> Any:
    """Build ``application`` on first use (PEP 562): importing creates no folder."""
    if name == "application":
        globals()["application"] = app = make_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
