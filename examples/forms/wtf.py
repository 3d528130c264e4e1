"""WTForms wired to microweb: request arguments as form data, and the XSRF token as CSRF.

``HandlerForm(handler)`` reads the handler's body arguments and renders its CSRF field as the
``_xsrf`` input, holding the same masked token ``xsrf_form_html()`` gives; validation unmasks it
and compares it with the ``_xsrf`` cookie in constant time, as ``check_xsrf_cookie`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wtforms import Form
from wtforms.csrf.core import CSRF, CSRFTokenField
from wtforms.meta import DefaultMeta
from wtforms.validators import ValidationError

from middleware.xsrf import unmask_xsrf_token, xsrf_tokens_equal


class ArgumentsData:
    """The ``getlist`` multidict WTForms wants, over a handler's body arguments (bytes → str)."""

    def __init__(self, arguments: dict[str, list[bytes]]) -> None:
        self._args = arguments

    def __iter__(self) -> Iterator[str]:
        return iter(self._args)

    def __len__(self) -> int:
        return len(self._args)

    def __contains__(self, name: object) -> bool:
        return name in self._args

    def getlist(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self._args.get(name, [])]


class MicrowebCSRF(CSRF):
    """WTForms CSRF backed by microweb's XSRF cookie (one token for every form on the site)."""

    def setup_form(self, form: Form) -> Any:
        self.handler = form.meta.csrf_context
        return super().setup_form(form)

    def generate_csrf_token(self, csrf_token_field: CSRFTokenField) -> str:
        token = self.handler.xsrf_token
        return token.decode() if isinstance(token, bytes) else str(token)

    def validate_csrf_token(self, form: Form, field: CSRFTokenField) -> None:
        cookie = unmask_xsrf_token(self.handler.get_cookie("_xsrf"))
        if not cookie or not xsrf_tokens_equal(unmask_xsrf_token(field.data), cookie):
            raise ValidationError("The form expired or did not come from this site; reload it.")


class HandlerForm(Form):
    """Base class for forms bound to a RequestHandler: ``MyForm(self)`` in get or post.

    On POST/PUT/PATCH the form reads the request's body arguments unless ``bind=False``.
    """

    class Meta(DefaultMeta):
        csrf = True
        csrf_class = MicrowebCSRF
        csrf_field_name = "_xsrf"

    def __init__(self, handler: Any, *, bind: bool = True, **kwargs: Any) -> None:
        formdata = None
        if bind and handler.request.method in ("POST", "PUT", "PATCH"):
            formdata = ArgumentsData(handler.request.body_arguments)
        super().__init__(formdata=formdata, meta={"csrf_context": handler}, **kwargs)
