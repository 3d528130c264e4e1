"""A base class for WSGI middleware with Django-style hooks over correct WSGI plumbing.

Subclasses override :meth:`Middleware.process_request`, :meth:`Middleware.process_response`
and :meth:`Middleware.process_close`; the base class wraps ``start_response`` (passing
``exc_info`` and the ``write`` callable through untouched) and the body iterable (``close()``
exactly once), and never reads or buffers the body: streaming responses stay streaming.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar

from ._wsgi import ClosingIterator, ExcInfo, Headers, StartResponse, WSGIApp, WSGIEnvironment

__all__ = ["Layer", "Middleware"]

_HIDDEN = ("secret", "key", "password", "token")


def _show(name: str, value: object) -> str:
    """``name=value`` for a repr, masking anything that looks like a secret."""
    if any(word in name.lower() for word in _HIDDEN):
        return f"{name}=***"
    return f"{name}={value!r}"


class Layer:
    """A middleware not yet applied: a factory ``factory(app, **options)`` and its options.

    ``compose`` reads the factory's ``provides`` / ``requires`` / ``uses`` class attributes
    (absent on third-party middleware: then nothing is checked for that layer).
    """

    __slots__ = ("factory", "options")

    def __init__(self, factory: Callable[..., WSGIApp],
                 options: Mapping[str, Any] | None = None) -> None:
        if not callable(factory):
            raise TypeError(f"a middleware layer must be callable, got {factory!r}")
        self.factory = factory
        self.options = dict(options or {})

    @classmethod
    def coerce(cls, spec: object) -> Layer:
        """Accept a Layer, a class or factory ``f(app)``, or a ``(factory, {options})`` tuple."""
        if isinstance(spec, Layer):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
            return cls(spec[0], spec[1])
        if callable(spec):
            return cls(spec)
        raise TypeError(f"cannot use {spec!r} as a middleware layer: pass a class, "
                        "Class.configure(...), a (factory, {options}) tuple or a factory(app)")

    def build(self, app: WSGIApp) -> WSGIApp:
        """Apply the middleware around ``app``."""
        return self.factory(app, **self.options)

    def _attr(self, name: str) -> tuple[str, ...]:
        target = self.factory.func if isinstance(self.factory, partial) else self.factory
        return tuple(getattr(target, name, ()) or ())

    @property
    def provides(self) -> tuple[str, ...]:
        return self._attr("provides")

    @property
    def requires(self) -> tuple[str, ...]:
        return self._attr("requires")

    @property
    def uses(self) -> tuple[str, ...]:
        return self._attr("uses")

    @property
    def name(self) -> str:
        target = self.factory.func if isinstance(self.factory, partial) else self.factory
        return getattr(target, "__qualname__", None) or type(target).__name__

    def __repr__(self) -> str:
        options = dict(self.options)
        if isinstance(self.factory, partial):
            options = {**self.factory.keywords, **options}
        return f"{self.name}({', '.join(_show(k, v) for k, v in options.items())})"


class Middleware:
    """Base class: override the hooks you need; configuration only on ``self``.

    Class attributes used by ``compose`` to check the order at build time (environ keys from
    :mod:`middleware.keys`): ``provides`` (keys this layer sets for the layers inside it),
    ``requires`` (keys a layer *outside* must provide) and ``uses`` (keys read when present:
    if some layer provides them, it must sit outside this one).

    Per-request state belongs in ``environ`` (or a closure), never on ``self``: one instance
    serves every thread.
    """

    provides: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    @classmethod
    def configure(cls, **options: Any) -> Layer:
        """This middleware with ``options``, to be applied by ``compose`` later."""
        return Layer(cls, options)

    def process_request(self, environ: WSGIEnvironment) -> WSGIApp | None:
        """Inspect or edit ``environ`` before the app runs; return a WSGI app to answer instead.

        A returned app (for example a ``werkzeug.wrappers.Response``) short-circuits the inner
        app; its response still goes through :meth:`process_response`.
        """
        return None

    def process_response(self, environ: WSGIEnvironment, status: str,
                         headers: Headers) -> str | None:
        """Edit ``headers`` in place when the response starts; return a new status or None.

        Called from ``start_response``, before any body byte: the body itself is never
        buffered. Called again if the app restarts the response with ``exc_info``.
        """
        return None

    def process_close(self, environ: WSGIEnvironment) -> None:
        """Called once when the response is over: body closed, or the app raised."""

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        answer = self.process_request(environ)
        app = self.app if answer is None else answer

        def hooked_start_response(status: str, headers: Headers,
                                  exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            headers = list(headers)  # never edit the app's own list (it may be reused)
            status = self.process_response(environ, status, headers) or status
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        if type(self).process_close is Middleware.process_close:
            # PERF: nothing to do at close: hand back the app's iterable itself, which keeps a
            # server's wsgi.file_wrapper (sendfile) fast path intact.
            return app(environ, hooked_start_response)
        try:
            iterable = app(environ, hooked_start_response)
        except BaseException:
            self.process_close(environ)
            raise
        return ClosingIterator(iterable, [partial(self.process_close, environ)])
