"""Jinja2 templates for RequestHandler: render, render_string and the template globals.

One Jinja2 Environment per application and template folder is built on first use and cached,
so templates compile once; with ``debug`` (``compiled_template_cache=False``) Jinja re-checks
file times and recompiles edited templates. HTML/XML templates are autoescaped.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup

from microweb import signals
from microweb.cookies import require_setting

__all__ = ["TemplateMixin", "UIModule", "template_environment"]

log = logging.getLogger("microweb.template")


class UIModule:
    """A reusable piece of page, called in templates as ``modules.Name(...)`` (Tornado's idea).

    Subclasses implement ``render(*args, **kwargs)`` returning HTML (trusted, not escaped).
    """

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.request = handler.request

    @property
    def current_user(self) -> Any:
        return self.handler.current_user

    def render(self, *args: Any, **kwargs: Any) -> str | bytes:
        """Override: return this module's HTML."""
        raise NotImplementedError

    def render_string(self, path: str, **kwargs: Any) -> bytes:
        """Render a template through the handler (same globals)."""
        return self.handler.render_string(path, **kwargs)  # type: ignore[no-any-return]


class _AppTemplates:
    """Per-application template state: environments per folder and the ui helpers."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.environments: dict[str, jinja2.Environment] = {}
        self.ui_methods = _load_ui(settings.get("ui_methods") or {}, _is_ui_method)
        self.ui_modules = _load_ui(settings.get("ui_modules") or {}, _is_ui_module)


def _is_ui_method(name: str, obj: Any) -> bool:
    return not name.startswith("_") and callable(obj) and name[:1].islower() \
        and not inspect.isclass(obj) and not inspect.ismodule(obj)


def _is_ui_module(name: str, obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, UIModule) and obj is not UIModule


def _load_ui(source: Any, accept: Callable[[str, Any], bool]) -> dict[str, Any]:
    """Tornado's ``ui_methods``/``ui_modules`` forms: a dict, a module, or a list of those."""
    if isinstance(source, types.ModuleType):
        source = {n: getattr(source, n) for n in dir(source)}
    if isinstance(source, list | tuple):
        merged: dict[str, Any] = {}
        for item in source:
            merged.update(_load_ui(item, accept))
        return merged
    return {name: obj for name, obj in dict(source).items() if accept(name, obj)}


_STATE: weakref.WeakKeyDictionary[Any, _AppTemplates] = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


def _app_state(application: Any) -> _AppTemplates:
    state = _STATE.get(application)
    if state is None:
        with _STATE_LOCK:
            state = _STATE.get(application)
            if state is None:
                state = _STATE[application] = _AppTemplates(application.settings)
    return state


def _autoescape(setting: Any) -> bool | Callable[[str | None], bool]:
    """Tornado's ``autoescape`` setting (``"xhtml_escape"`` or None) or a Jinja value."""
    if setting is None or setting is False:
        return False
    if setting is True:
        return True
    if callable(setting):
        return setting  # type: ignore[no-any-return]
    return jinja2.select_autoescape(("html", "htm", "xml", "xhtml", "svg", "jinja", "jinja2",
                                     "j2"),
                                    default_for_string=True)


def template_environment(settings: dict[str, Any], template_path: str) -> jinja2.Environment:
    """Build the Jinja2 Environment the ``settings`` describe for ``template_path``."""
    loader = settings.get("template_loader") or jinja2.FileSystemLoader(template_path)
    auto_reload = bool(settings.get("debug")) or not settings.get("compiled_template_cache", True)
    env = jinja2.Environment(
        loader=loader, autoescape=_autoescape(settings.get("autoescape", "xhtml_escape")),
        auto_reload=auto_reload, extensions=list(settings.get("template_extensions") or ()),
        undefined=settings.get("template_undefined") or jinja2.Undefined)
    env.globals.update(settings.get("template_globals") or {})
    return env


def _template_location(exc: BaseException, name: str) -> tuple[str, int | None]:
    """(template, line) where ``exc`` happened: the innermost template frame of the traceback
    (Jinja rewrites tracebacks so template frames carry the template's file and line)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.filename or exc.name or name, exc.lineno
    found: tuple[str, int | None] = (name, None)
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__jinja_template__") is not None or \
                frame.f_code.co_name in ("top-level template code", "template"):
            found = (frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


class TemplateMixin:
    """render / render_string / static_url and the template namespace; mixed into RequestHandler."""

    request: Any
    application: Any
    settings: Any

    def get_template_path(self) -> str | None:
        """The ``template_path`` setting (None: the folder of the handler's module)."""
        return self.application.settings.get("template_path")  # type: ignore[no-any-return]

    def create_template_environment(self, template_path: str) -> jinja2.Environment:
        """Override to customise Jinja2 (filters, extensions); called once per folder and app."""
        return template_environment(self.application.settings, template_path)

    def _template_env(self) -> jinja2.Environment:
        path = self.get_template_path()
        if not path:
            module = sys.modules.get(type(self).__module__)
            path = os.path.dirname(os.path.abspath(getattr(module, "__file__", None) or "."))
        state = _app_state(self.application)
        env = state.environments.get(path)
        if env is None:
            with _STATE_LOCK:
                env = state.environments.get(path)
                if env is None:
                    env = state.environments[path] = self.create_template_environment(path)
        return env

    def get_template_namespace(self) -> dict[str, Any]:
        """The names every template sees; override to add more (kwargs of render win)."""
        state = _app_state(self.application)
        namespace: dict[str, Any] = {
            "handler": self,
            "request": self.request,
            "current_user": self.current_user,  # type: ignore[attr-defined]
            "static_url": self.static_url,
            "reverse_url": self.reverse_url,  # type: ignore[attr-defined]
            "xsrf_form_html": lambda: Markup(self.xsrf_form_html()),  # type: ignore[attr-defined]
            "xsrf_token": _LazyXsrfToken(self),
        }
        for name, fn in state.ui_methods.items():
            namespace[name] = _bind_ui_method(fn, self)
        modules = _UIModuleNamespace(self, state.ui_modules)
        namespace["modules"] = modules
        for name in state.ui_modules:
            namespace.setdefault(name, getattr(modules, name))
        return namespace

    def render_string(self, template_name: str, **kwargs: Any) -> bytes:
        """Render the template to UTF-8 bytes (render() writes and finishes)."""
        env = self._template_env()
        try:
            template = env.get_template(template_name)
            namespace = self.get_template_namespace()
            namespace.update(kwargs)
            text = template.render(namespace)
        except jinja2.TemplateNotFound as exc:
            log.error("Template %r not found (looked up as %r)", exc.name, template_name)
            raise
        except Exception as exc:
            where, line = _template_location(exc, template_name)
            log.error("Template error in %r line %s: %s: %s", where, line,
                      type(exc).__name__, exc)
            raise
        if signals.template_rendered.receivers:
            signals.template_rendered.send(self, template=template_name, context=namespace)
        return text.encode("utf-8")

    def render(self, template_name: str, **kwargs: Any) -> None:
        """Render ``template_name`` with the template globals plus ``kwargs`` and finish."""
        html = self.render_string(template_name, **kwargs)
        self.finish(html)  # type: ignore[attr-defined]

    def static_url(self, path: str, include_host: bool | None = None, **kwargs: Any) -> str:
        """A URL for a file under ``static_path`` with ``?v=<content hash>`` for caching."""
        require_setting(self, "static_path", "static_url")
        require_setting(self, "static_handler_class", "static_url")
        handler_class = self.settings["static_handler_class"]
        if include_host is None:
            include_host = getattr(self, "include_host", False)
        base = f"{self.request.protocol}://{self.request.host}" if include_host else ""
        return base + handler_class.make_static_url(self.settings, path, **kwargs)  # type: ignore[no-any-return]


def _bind_ui_method(fn: Callable[..., Any], handler: Any) -> Callable[..., Any]:
    """Bind a ui_method to the handler (Tornado passes the handler first); its result is
    escaped like any value unless it returns ``Markup``."""

    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(handler, *args, **kwargs)

    bound.__name__ = getattr(fn, "__name__", "ui_method")
    return bound


class _LazyXsrfToken:
    """``xsrf_token`` in templates: the masked token as text, computed only when used."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def __str__(self) -> str:
        return str(self._handler.xsrf_token.decode("ascii"))

    def __html__(self) -> str:
        return str(self)


class _UIModuleNamespace:
    """``modules.Name(...)`` in templates: instantiates the UIModule once per request."""

    def __init__(self, handler: Any, ui_modules: dict[str, type[UIModule]]) -> None:
        self._handler = handler
        self._modules = ui_modules
        self._active: dict[str, UIModule] = {}

    def __getattr__(self, name: str) -> Callable[..., Markup]:
        try:
            cls = self._modules[name]
        except KeyError:
            raise AttributeError(f"no ui_module named {name!r}") from None

        def render(*args: Any, **kwargs: Any) -> Markup:
            module = self._active.get(name)
            if module is None:
                module = self._active[name] = cls(self._handler)
            out = module.render(*args, **kwargs)
            return Markup(out.decode("utf-8") if isinstance(out, bytes) else out)

        return render
