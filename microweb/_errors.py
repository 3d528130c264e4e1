"""The exceptions a handler raises to answer with an HTTP error (tornado.web's names)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

#: Reason phrases by status code (the standard registry, as ``http.HTTPStatus`` knows it).
RESPONSES: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


class HTTPError(Exception):
    """Raise to end the request with ``status_code``; ``log_message % args`` goes to the log only.

    ``reason`` replaces the standard phrase in the status line and the default error page.
    """

    def __init__(self, status_code: int = 500, log_message: str | None = None, *args: Any,
                 reason: str | None = None) -> None:
        super().__init__(status_code, log_message, *args)
        self.status_code = status_code
        self.log_message = log_message
        self.args = args
        self.reason = reason if reason is not None else RESPONSES.get(status_code, "Unknown")
        if log_message and not args:
            self.log_message = log_message.replace("%", "%%")

    def __str__(self) -> str:
        message = f"HTTP {self.status_code}: {self.reason}"
        if self.log_message:
            return message + " (" + (self.log_message % self.args) + ")"
        return message


class MissingArgumentError(HTTPError):
    """A required argument is missing: answers 400 ``Missing argument <name>``."""

    def __init__(self, arg_name: str) -> None:
        super().__init__(400, "Missing argument %s", arg_name)
        self.arg_name = arg_name


class Finish(Exception):
    """Raise to end the request without an error: ``Finish(chunk)`` calls ``finish(chunk)``."""
