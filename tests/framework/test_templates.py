"""Jinja2 templates: render, autoescape, globals, ui helpers, caching, errors and the signal."""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import webtest

import microweb as web
from microweb import signals
from microweb.templating import UIModule


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder


def _render_app(folder: Path, template: str, handler_attrs: dict[str, Any] | None = None,
                **settings: Any) -> webtest.TestApp:
    def get(self):  # type: ignore[no-untyped-def]
        self.render(template, **{k: v[0].decode() for k, v in self.request.arguments.items()})

    attrs = {"get": get, **(handler_attrs or {})}
    handler = type("Page", (web.RequestHandler,), attrs)
    return webtest.TestApp(web.Application(
        [web.url(r"/", handler, name="home"), web.url(r"/item/(\d+)", handler, name="item")],
        template_path=str(folder), **settings))


def test_render_escapes_html(tmp_path: Path) -> None:
    _write(tmp_path, {"page.html": "<p>{{ name }}</p>"})
    resp = _render_app(tmp_path, "page.html").get("/", {"name": "<script>x</script>&"})
    assert resp.text == "<p>&lt;script&gt;x&lt;/script&gt;&amp;</p>"
    assert resp.headers["Content-Type"].startswith("text/html")


def test_jinja2_and_svg_templates_are_escaped(tmp_path: Path) -> None:
    _write(tmp_path, {"page.jinja2": "{{ name }}", "icon.svg": "<text>{{ name }}</text>"})
    assert _render_app(tmp_path, "page.jinja2").get("/", {"name": "<b>"}).text == "&lt;b&gt;"
    assert _render_app(tmp_path, "icon.svg").get("/", {"name": "<b>"}).text == \
        "<text>&lt;b&gt;</text>"


def test_non_html_templates_are_not_escaped_and_autoescape_none(tmp_path: Path) -> None:
    _write(tmp_path, {"mail.txt": "Hi {{ name }}", "page.html": "{{ name }}"})
    assert _render_app(tmp_path, "mail.txt").get("/", {"name": "<b>"}).text == "Hi <b>"
    assert _render_app(tmp_path, "page.html", autoescape=None).get(
        "/", {"name": "<b>"}).text == "<b>"


def test_render_string_returns_bytes_and_inheritance(tmp_path: Path) -> None:
    _write(tmp_path, {
        "base.html": "[{% block body %}{% endblock %}]",
        "child.html": "{% extends 'base.html' %}{% block body %}{{ x }}{% endblock %}"})

    class H(web.RequestHandler):
        def get(self) -> None:
            out = self.render_string("child.html", x="é")
            assert isinstance(out, bytes)
            self.write(out)

    app = webtest.TestApp(web.Application([(r"/", H)], template_path=str(tmp_path)))
    assert app.get("/").text == "[é]"


def test_globals(tmp_path: Path) -> None:
    static = _write(tmp_path / "static", {"app.css": "body{}"})
    _write(tmp_path, {"g.html": (
        "{{ static_url('app.css') }}|{{ reverse_url('item', 7) }}|{{ xsrf_form_html() }}|"
        "{{ xsrf_token }}|{{ current_user }}|{{ request.path }}|{{ handler.__class__.__name__ }}"
    )})

    def get_current_user(self):  # type: ignore[no-untyped-def]
        return "<alice>"

    resp = _render_app(tmp_path, "g.html", {"get_current_user": get_current_user},
                       static_path=str(static)).get("/")
    parts = resp.text.split("|", 2)
    assert parts[0].startswith("/static/app.css?v=")
    assert parts[1] == "/item/7"
    rest = parts[2]
    assert rest.startswith('<input type="hidden" name="_xsrf" value="2|')  # not escaped
    assert "|&lt;alice&gt;|/|Page" in rest
    assert resp.headers["Set-Cookie"].startswith("_xsrf=")


def test_kwargs_override_namespace(tmp_path: Path) -> None:
    _write(tmp_path, {"p.html": "{{ current_user }}"})

    class H(web.RequestHandler):
        def get(self) -> None:
            self.render("p.html", current_user="override")

    app = webtest.TestApp(web.Application([(r"/", H)], template_path=str(tmp_path)))
    assert app.get("/").text == "override"


def shout(handler: Any, text: str) -> str:
    return f"{text.upper()}@{handler.request.path}"


def test_ui_methods_as_dict_module_and_list(tmp_path: Path) -> None:
    _write(tmp_path, {"u.html": "{{ shout('hi') }} {{ whisper('<B>') }}"})
    module = types.ModuleType("ui_helpers")

    def whisper(handler: Any, text: str) -> str:
        return text.lower()

    module.whisper = whisper  # type: ignore[attr-defined]
    module._private = whisper  # type: ignore[attr-defined]
    for ui in ({"shout": shout, "whisper": whisper}, [{"shout": shout}, module]):
        resp = _render_app(tmp_path, "u.html", ui_methods=ui).get("/")
        assert resp.text == "HI@/ &lt;b&gt;"  # results are escaped like any value


class Badge(UIModule):
    def render(self, label: str) -> str:
        return f'<span class="badge">{label}</span>'


def test_ui_modules(tmp_path: Path) -> None:
    _write(tmp_path, {"m.html": "{{ modules.Badge('new') }}{{ Badge('x') }}"})
    resp = _render_app(tmp_path, "m.html", ui_modules={"Badge": Badge}).get("/")
    assert resp.text == '<span class="badge">new</span><span class="badge">x</span>'


def test_missing_template_is_500_naming_it(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        _render_app(tmp_path, "nope.html").get("/", status=500)
    assert "nope.html" in caplog.text


def test_syntax_error_is_500_with_name_and_line(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, {"broken.html": "line one\nline two\n{% if %}\n"})
    with caplog.at_level(logging.ERROR):
        resp = _render_app(tmp_path, "broken.html").get("/", status=500)
    assert "broken.html" in caplog.text and "line 3" in caplog.text
    assert "line two" not in resp.text  # no source leaks to the client outside debug


def test_runtime_error_is_500_with_name_and_line(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, {"boom.html": "a\nb\n{{ 1 // zero }}\n", "outer.html":
                      "x\n{% include 'boom.html' %}"})
    with caplog.at_level(logging.ERROR):
        _render_app(tmp_path, "boom.html").get("/", {"zero": "0"}, status=500)
    assert "boom.html" in caplog.text and "line 3" in caplog.text


def test_debug_traceback_page_shows_template(tmp_path: Path) -> None:
    _write(tmp_path, {"oops.html": "one\n{{ missing.attr.deeper }}\n"})
    resp = _render_app(tmp_path, "oops.html", debug=True).get("/", status=500)
    assert "oops.html" in resp.text


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))


def test_compiled_templates_are_cached(tmp_path: Path) -> None:
    page = tmp_path / "c.html"
    page.write_text("v1")
    app = _render_app(tmp_path, "c.html")
    assert app.get("/").text == "v1"
    _touch_later(page, "v2")
    assert app.get("/").text == "v1"


@pytest.mark.parametrize("settings", [{"debug": True}, {"compiled_template_cache": False}])
def test_debug_reloads_edited_templates(tmp_path: Path, settings: dict[str, Any]) -> None:
    page = tmp_path / "c.html"
    page.write_text("v1")
    app = _render_app(tmp_path, "c.html", **settings)
    assert app.get("/").text == "v1"
    _touch_later(page, "v2")
    assert app.get("/").text == "v2"


def test_template_rendered_signal(tmp_path: Path) -> None:
    _write(tmp_path, {"s.html": "{{ n }}"})
    seen: list[tuple[Any, str, Any]] = []

    def receiver(sender: Any, template: str, context: dict[str, Any]) -> None:
        seen.append((type(sender).__name__, template, context["n"]))

    with signals.template_rendered.connected_to(receiver):
        _render_app(tmp_path, "s.html").get("/", {"n": "5"})
    assert seen == [("Page", "s.html", "5")]


def test_templates_next_to_the_handler_module_without_template_path(tmp_path: Path) -> None:
    _write(tmp_path, {"near.html": "near {{ 1 + 1 }}"})
    module = types.ModuleType("near_handlers")
    module.__file__ = str(tmp_path / "near_handlers.py")
    sys.modules["near_handlers"] = module
    try:
        def get(self):  # type: ignore[no-untyped-def]
            self.render("near.html")

        handler = type("Near", (web.RequestHandler,), {"get": get, "__module__": "near_handlers"})
        app = webtest.TestApp(web.Application([(r"/", handler)]))
        assert app.get("/").text == "near 2"
    finally:
        del sys.modules["near_handlers"]


def test_template_path_traversal_is_refused(tmp_path: Path) -> None:
    inner = _write(tmp_path / "templates", {"ok.html": "ok"})
    _write(tmp_path, {"secret.html": "secret"})

    class H(web.RequestHandler):
        def get(self) -> None:
            self.render(self.get_argument("t"))

    app = webtest.TestApp(web.Application([(r"/", H)], template_path=str(inner)))
    assert app.get("/", {"t": "ok.html"}).text == "ok"
    resp = app.get("/", {"t": "../secret.html"}, status=500)
    assert "secret" not in resp.text
