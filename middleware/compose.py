"""``compose(app, *layers)``: the middleware stack as data, built once, printable, checked.

Layers are given outermost first. Each may be a middleware class (default options),
``Class.configure(**options)``, a ``(factory, {options})`` tuple, or any factory ``f(app)``
(a ``functools.partial``, werkzeug's ``ProxyFix``...). Before building, the order is checked:
every environ key a layer ``requires`` must be provided by a layer outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._wsgi import StartResponse, WSGIApp, WSGIEnvironment
from .base import Layer

__all__ = ["MiddlewareOrderError", "Stack", "compose", "check_order"]


class MiddlewareOrderError(ValueError):
    """The layers cannot work in this order (a requirement is missing or placed inside)."""


def _providers(layers: Sequence[Layer], key: str) -> list[int]:
    return [i for i, layer in enumerate(layers) if key in layer.provides]


def _check_layer(layers: Sequence[Layer], index: int) -> list[str]:
    layer, problems = layers[index], []
    for key in layer.requires:
        where = _providers(layers, key)
        if any(i < index for i in where):
            continue
        if where:
            inner = layers[where[0]].name
            problems.append(f"{layer.name} requires {key!r}, provided by {inner}, which is "
                            f"placed inside it: list {inner} before {layer.name}")
        else:
            problems.append(f"{layer.name} requires {key!r}, which no layer of the stack "
                            "provides: add the middleware that provides it, outside "
                            f"{layer.name}")
    for key in layer.uses:
        for i in _providers(layers, key):
            if i > index:
                problems.append(f"{layer.name} reads {key!r}, set by {layers[i].name}, which "
                                f"is placed inside it: list {layers[i].name} before "
                                f"{layer.name}")
    return problems


def check_order(layers: Sequence[Layer]) -> None:
    """Raise :class:`MiddlewareOrderError` listing every ordering problem of ``layers``."""
    problems = [p for i in range(len(layers)) for p in _check_layer(layers, i)]
    if problems:
        order = " -> ".join(layer.name for layer in layers) or "(empty)"
        raise MiddlewareOrderError(
            f"middleware order cannot work ({order} -> app):\n  " + "\n  ".join(problems))


class Stack:
    """A built middleware stack: a WSGI app that also knows its layers (outermost first)."""

    __slots__ = ("app", "built", "layers", "wsgi")

    def __init__(self, app: WSGIApp, layers: Iterable[object] = ()) -> None:
        self.app = app
        self.layers: tuple[Layer, ...] = tuple(Layer.coerce(spec) for spec in layers)
        check_order(self.layers)
        wrapped, built = app, []
        for layer in reversed(self.layers):
            try:
                wrapped = layer.build(wrapped)
            except TypeError as exc:  # usually a missing or misspelt option
                raise TypeError(f"cannot build the layer {layer!r}: {exc}") from exc
            built.append(wrapped)
        #: the middleware instances, outermost first
        self.built: tuple[WSGIApp, ...] = tuple(reversed(built))
        #: the outermost WSGI callable
        self.wsgi: WSGIApp = wrapped

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi(environ, start_response)

    def close(self) -> None:
        """Release what the layers hold (log handlers, files): calls each one's ``close()``."""
        for layer in self.built:
            close = getattr(layer, "close", None)
            if callable(close):
                close()

    def describe(self) -> str:
        """One line per layer, outermost first, then the app."""
        lines = [f"{i}. {layer!r}" for i, layer in enumerate(self.layers, 1)]
        return "\n".join([*lines, f"-> {self.app!r}"])

    def __repr__(self) -> str:
        inner = "".join(f"\n  {layer!r}" for layer in self.layers)
        return f"<Stack{inner}\n  -> {self.app!r}>"


def compose(app: WSGIApp, *layers: object) -> Stack:
    """Wrap ``app`` in ``layers`` (outermost first), checking their order first."""
    return Stack(app, layers)
