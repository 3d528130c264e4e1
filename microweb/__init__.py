"""microweb: a WSGI-first microframework with Tornado-style handlers.

The public names live here; everything else is an implementation detail.
"""

from __future__ import annotations

from ._errors import Finish, HTTPError, MissingArgumentError
from .application import Application
from .auth import authenticated
from .handler import ErrorHandler, RedirectHandler, RequestHandler, addslash, removeslash
from .routing import url
from .static import StaticFileHandler

__version__ = "0.1.0"

__all__ = [
    "Application",
    "ErrorHandler",
    "Finish",
    "HTTPError",
    "MissingArgumentError",
    "RedirectHandler",
    "RequestHandler",
    "StaticFileHandler",
    "__version__",
    "addslash",
    "authenticated",
    "removeslash",
    "url",
]
