"""The tutorials' "form component" (render inputs + validate), done with WTForms.

``HouseForm`` renders its inputs and validates them; the CSRF field is microweb's ``_xsrf``
token, so the framework's ``xsrf_cookies`` check and the form agree (see ``wtf.py``).

    microweb serve examples.forms:application
"""

from __future__ import annotations

from pathlib import Path

from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

import microweb as web
from examples.forms.wtf import HandlerForm

__all__ = ["HouseForm", "application", "make_app"]


class HouseForm(HandlerForm):
    """A new house listing: the tutorials' fields, each with its validation rule."""

    title = StringField("Title", [DataRequired(), Length(min=3, max=120)])
    position = StringField("Position", [DataRequired(), Length(max=120)])
    price = IntegerField("Price per night", [DataRequired(), NumberRange(min=1, max=100_000)])
    score = IntegerField("Score", [Optional(), NumberRange(min=0, max=5)])
    description = TextAreaField("Description", [Optional(), Length(max=2000)])


class NewHouseHandler(web.RequestHandler):
    """GET renders the empty form; POST re-renders it with errors, or shows what was saved."""

    def get(self) -> None:
        self.render("house_form.html", form=HouseForm(self), saved=None)

    def post(self) -> None:
        form = HouseForm(self)
        if not form.validate():
            self.set_status(400)
            self.render("house_form.html", form=form, saved=None)
            return
        saved = {name: field.data for name, field in form._fields.items() if name != "_xsrf"}
        self.render("house_form.html", form=HouseForm(self, bind=False), saved=saved)


def make_app(**settings: object) -> web.Application:
    """The forms app; ``xsrf_cookies`` is on, so a post without the token is refused (403)."""
    settings.setdefault("cookie_secret", "change me: examples.forms demo secret")
    settings.setdefault("xsrf_cookies", True)
    return web.Application([(r"/", NewHouseHandler)],
                           template_path=str(Path(__file__).parent / "templates"), **settings)


application = make_app()
