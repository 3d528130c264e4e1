"""examples/forms: WTForms renders and validates; its CSRF field is microweb's XSRF token."""

from __future__ import annotations

import re

import pytest
from webtest import TestApp

from examples.forms import make_app


@pytest.fixture
def app() -> TestApp:
    return TestApp(make_app(cookie_secret="forms test secret"))


def test_form_renders_inputs_and_the_xsrf_field(app):
    page = app.get("/")
    form = page.forms["house-form"]
    assert {"_xsrf", "title", "position", "price", "score", "description"} <= set(form.fields)
    assert re.match(r"2\|[0-9a-f]{8}\|[0-9a-f]{32}\|\d+$", form["_xsrf"].value)
    assert 'type="number"' in page.text  # IntegerField renders a number input
    assert any(c.name == "_xsrf" for c in app.cookiejar)


def test_valid_post_is_saved(app):
    form = app.get("/").forms["house-form"]
    form["title"], form["position"], form["price"] = "Garden flat", "Chengdu", "250"
    res = form.submit()
    assert res.status_int == 200
    assert "Saved: Garden flat at 250 per night." in res.text


def test_invalid_post_shows_errors_and_keeps_values(app):
    form = app.get("/").forms["house-form"]
    form["title"], form["position"], form["price"], form["score"] = "ok", "", "-3", "9"
    res = form.submit(status=400)
    for field in ("title", "position", "price", "score"):
        assert f'id="error-{field}"' in res.text
    assert 'value="ok"' in res.text


def test_post_without_token_is_refused(app):
    app.get("/")
    res = app.post("/", {"title": "Garden flat", "position": "Chengdu", "price": "250"},
                   status=403)
    assert res.status_int == 403


def test_token_from_another_browser_is_refused(app):
    stolen = app.get("/").forms["house-form"]["_xsrf"].value
    other = TestApp(app.app)
    other.get("/")  # has its own _xsrf cookie
    other.post("/", {"_xsrf": stolen, "title": "Garden flat", "position": "Chengdu",
                     "price": "250"}, status=403)


def test_wtforms_csrf_check_agrees_with_the_framework(app):
    """With the framework check off, the form's own CSRF validation still refuses a bad token."""
    lax = TestApp(make_app(cookie_secret="forms test secret", xsrf_cookies=False))
    lax.get("/")
    res = lax.post("/", {"_xsrf": "2|00000000|" + "0" * 32 + "|1", "title": "Garden flat",
                         "position": "Chengdu", "price": "250"}, status=400)
    assert 'id="error-_xsrf"' in res.text
    good = lax.get("/").forms["house-form"]
    good["title"], good["position"], good["price"] = "Garden flat", "Chengdu", "250"
    assert "Saved: Garden flat" in good.submit().text
