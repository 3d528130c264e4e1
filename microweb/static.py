"""Static files (placeholder: the full StaticFileHandler replaces this)."""

from __future__ import annotations

from typing import Any

from .handler import HTTPError, RequestHandler


class StaticFileHandler(RequestHandler):
    """Serves files from the ``path`` directory (placeholder answering 404)."""

    def initialize(self, path: str, default_filename: str | None = None) -> None:  # type: ignore[override]
        self.root = path
        self.default_filename = default_filename

    @classmethod
    def make_static_url(cls, settings: dict[str, Any], path: str,
                        include_version: bool = True) -> str:
        """The URL of a static file: the ``static_url_prefix`` followed by ``path``."""
        return str(settings.get("static_url_prefix", "/static/")) + path

    def get(self, path: str, include_body: bool = True) -> None:
        raise HTTPError(404)

    def head(self, path: str) -> None:
        self.get(path, include_body=False)
