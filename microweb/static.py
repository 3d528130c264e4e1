"""StaticFileHandler: files from a folder with werkzeug's ``send_file`` (tornado.web's API).

werkzeug does the HTTP work (ETag / Last-Modified, 304, Range → 206 / 416, HEAD, types and
``wsgi.file_wrapper`` so servers can use sendfile); this module decides which file may be
served: paths leaving the root (``..``, encoded or absolute, symlinks pointing out) are refused,
and only regular files are opened. ``make_static_url`` adds ``?v=<content hash>`` and versioned
URLs are cached for a year.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import mimetypes
import os
import stat
import threading
from typing import Any, ClassVar

from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header
from werkzeug.utils import send_file

from microweb._errors import HTTPError
from microweb.handler import RequestHandler

__all__ = ["StaticFileHandler"]

log = logging.getLogger("microweb.static")


class StaticFileHandler(RequestHandler):
    """Serve files below ``path``; ``default_filename`` answers directory URLs.

    ``allowed_symlink_directory`` (a folder or a list) lets symlinks point outside ``path``
    into those folders only. Subclass hooks keep Tornado's names: ``get_absolute_path``,
    ``validate_absolute_path``, ``get_content_type``, ``get_cache_time``, ``set_extra_headers``,
    ``make_static_url``, ``get_version``, ``get_content_version``.
    """

    #: Cache-Control max-age for versioned URLs (``?v=...``): one year.
    CACHE_MAX_AGE: ClassVar[int] = 86400 * 365
    #: Larger files get no content hash (hashing would stall the request that asks).
    MAX_VERSION_CONTENT_SIZE: ClassVar[int] = 64 * 1024 * 1024
    #: Bound on the number of cached content hashes (least recently used dropped first).
    MAX_CACHED_VERSIONS: ClassVar[int] = 10000

    _static_hashes: ClassVar[dict[str, str | None]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()
    allowed_symlink_directory: str | list[str] | None = None

    def initialize(self, path: str, default_filename: str | None = None,  # type: ignore[override]
                   allowed_symlink_directory: str | list[str] | None = None) -> None:
        self.root = path
        self.default_filename = default_filename
        self.allowed_symlink_directory = allowed_symlink_directory

    @classmethod
    def reset(cls) -> None:
        """Forget every cached content hash."""
        with cls._lock:
            cls._static_hashes = {}

    def head(self, path: str) -> None:
        self.get(path, include_body=False)

    def get(self, path: str, include_body: bool = True) -> None:
        self.path = self.parse_url_path(path)
        absolute_path = self.get_absolute_path(self.root, self.path)
        self.absolute_path = self.validate_absolute_path(self.root, absolute_path)
        if self.absolute_path is None:
            return
        self._send(self.absolute_path)

    # -- serving ------------------------------------------------------------------------
    def _send(self, absolute_path: str) -> None:
        content_type = self.get_content_type()
        self.modified = self.get_modified_time()
        cache_time = self.get_cache_time(self.path, self.modified, content_type)
        if self.settings.get("static_hash_cache", True) is False:
            version = self._compute_version(absolute_path)  # an edited file gets a new ETag
        else:
            version = self._get_cached_version(absolute_path)
        environ = self._range_environ(self.request.environ, self._stat_result.st_size)
        try:
            response = send_file(
                absolute_path, environ, mimetype=content_type, conditional=True,
                etag=version if version else True, max_age=cache_time or None)
        except RequestedRangeNotSatisfiable as exc:
            self.set_status(416)
            self.set_header("Content-Type", "text/plain")
            self.set_header("Content-Range", f"bytes */{exc.length}")
            self.finish()
            return
        response.headers.pop("Content-Disposition", None)
        self._finish_with_file(response)

    @staticmethod
    def _range_environ(environ: dict[str, Any], size: int) -> dict[str, Any]:
        """Drop a Range header werkzeug would refuse but HTTP lets us ignore: another unit,
        malformed, several ranges, or the whole file (Chrome wants 200 for ``bytes=0-``)."""
        header = environ.get("HTTP_RANGE")
        if not header:
            return environ
        parsed = parse_range_header(header)
        if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
            first = parsed.ranges[0][0]
            whole = (first < 0 and -first >= size) or parsed.range_for_length(size) == (0, size)
            if not whole:
                return environ  # werkzeug answers 206, or 416 when it is out of bounds
        environ = dict(environ)
        del environ["HTTP_RANGE"]
        return environ

    def _finish_with_file(self, response: Any) -> None:
        """Finish with werkzeug's status and headers; the body is its file iterable (which
        uses ``wsgi.file_wrapper``), handed to the server unread."""
        self.set_status(response.status_code)
        for name, value in response.headers.items():
            self.set_header(name, value)
        # Browsers must not guess another type (an uploaded .txt rendered as HTML, say).
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_extra_headers(self.path)
        # The file iterable (werkzeug's, over wsgi.file_wrapper) goes to the server unread,
        # so it can use sendfile; send_wsgi_body closes it at once for HEAD and 304.
        self.send_wsgi_body(response.response)

    # -- paths --------------------------------------------------------------------------
    def parse_url_path(self, url_path: str) -> str:
        """Turn the URL part after the prefix into a path relative to the root."""
        if "\x00" in url_path:
            raise HTTPError(400, "NUL byte in static path")
        if os.path.sep != "/":
            url_path = url_path.replace("/", os.path.sep)
        return url_path

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        """``root``/``path`` made absolute; 403 when it leaves ``root`` as written."""
        absolute = os.path.abspath(os.path.join(root, path))
        cls._check_in_root(root, absolute, path)
        return absolute

    @staticmethod
    def _check_in_root(root: str, absolute_path: str, path: str) -> str:
        root = os.path.abspath(root)
        if not root.endswith(os.path.sep):
            root += os.path.sep
        if not (absolute_path + os.path.sep).startswith(root):
            raise HTTPError(403, "%s is not in root static directory", path)
        return root

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        """Resolve symlinks (they must stay inside the allowed folders), apply
        ``default_filename`` to directories and 404 for anything but an existing regular file."""
        root = self._check_in_root(root, absolute_path, self.path)
        extra = self.allowed_symlink_directory or []
        allowed_dirs = [root, *([extra] if isinstance(extra, str) else extra)]
        absolute_path = self._resolve(absolute_path, allowed_dirs)
        if os.path.isdir(absolute_path) and self.default_filename is not None:
            if not self.request.path.endswith("/"):
                if self.request.path.startswith("//"):
                    raise HTTPError(403, "cannot redirect path with two initial slashes")
                self.redirect(self.request.path + "/", permanent=True)
                return None
            absolute_path = self._resolve(
                os.path.join(absolute_path, self.default_filename), allowed_dirs)
        try:
            st = os.stat(absolute_path)
        except (OSError, ValueError):
            raise HTTPError(404) from None
        if not stat.S_ISREG(st.st_mode):
            raise HTTPError(403 if stat.S_ISDIR(st.st_mode) else 404,
                            "%s is not a file", self.path)
        self._stat_result = st
        return absolute_path

    def _resolve(self, absolute_path: str, allowed_dirs: list[str]) -> str:
        resolved = os.path.realpath(absolute_path)
        for folder in allowed_dirs:
            folder = os.path.realpath(folder)
            if not folder.endswith(os.path.sep):
                folder += os.path.sep
            if (resolved + os.path.sep).startswith(folder):
                return resolved
        raise HTTPError(403, "%s is not in root static directory", self.path)

    # -- metadata hooks -----------------------------------------------------------------
    def get_modified_time(self) -> datetime.datetime | None:
        """Modification time of the file (whole seconds, UTC)."""
        return datetime.datetime.fromtimestamp(int(self._stat_result.st_mtime), datetime.UTC)

    def get_content_type(self) -> str:
        """The Content-Type from the file name (compressed files are served as such)."""
        mime_type, encoding = mimetypes.guess_type(self.absolute_path or self.path)
        if encoding == "gzip":
            return "application/gzip"
        if encoding is not None:
            return "application/octet-stream"
        if mime_type is None:
            return "application/octet-stream"
        if mime_type.startswith("text/") or mime_type in ("application/javascript",
                                                          "application/json"):
            return mime_type + "; charset=utf-8"
        return mime_type

    def get_cache_time(self, path: str, modified: datetime.datetime | None,
                       mime_type: str) -> int:
        """Seconds to cache: a year for versioned URLs (``?v=``), else 0 (revalidate)."""
        return self.CACHE_MAX_AGE if "v" in self.request.query_arguments else 0

    def set_extra_headers(self, path: str) -> None:
        """Override to add headers to every file response."""

    # -- versioned URLs -----------------------------------------------------------------
    @classmethod
    def make_static_url(cls, settings: dict[str, Any], path: str,
                        include_version: bool = True) -> str:
        """``static_url_prefix`` + ``path`` + ``?v=<content hash>`` (when the file exists)."""
        url = str(settings.get("static_url_prefix", "/static/")) + path
        if not include_version:
            return url
        if settings.get("static_hash_cache", True) is False:
            version = cls._compute_version(cls.get_absolute_path(settings["static_path"], path))
        else:
            version = cls.get_version(settings, path)
        return f"{url}?v={version}" if version else url

    @classmethod
    def get_version(cls, settings: dict[str, Any], path: str) -> str | None:
        """The (cached) content hash of the static file ``path``; None if unreadable."""
        return cls._get_cached_version(cls.get_absolute_path(settings["static_path"], path))

    @classmethod
    def _get_cached_version(cls, abs_path: str) -> str | None:
        with cls._lock:
            hashes = cls._static_hashes
            if abs_path in hashes:
                hashes[abs_path] = hashes.pop(abs_path)  # most recently used last
                return hashes[abs_path]
        version = cls._compute_version(abs_path)
        with cls._lock:
            while len(cls._static_hashes) >= cls.MAX_CACHED_VERSIONS:
                del cls._static_hashes[next(iter(cls._static_hashes))]
            cls._static_hashes[abs_path] = version
        return version

    @classmethod
    def _compute_version(cls, abs_path: str) -> str | None:
        try:
            return cls.get_content_version(abs_path)
        except (OSError, ValueError) as exc:
            log.error("Could not hash static file %r: %s", abs_path, exc)
            return None

    @classmethod
    def get_content_version(cls, abspath: str) -> str:
        """A hash of the file's content (SHA-256, 32 hex digits); ValueError if too large."""
        st = os.stat(abspath)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > cls.MAX_VERSION_CONTENT_SIZE:
            raise ValueError("file larger than MAX_VERSION_CONTENT_SIZE")
        digest = hashlib.sha256()
        with open(abspath, "rb") as f:
            for chunk in iter(lambda: f.read(65536), b""):
                digest.update(chunk)
        return digest.hexdigest()[:32]
