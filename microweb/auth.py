"""Login (current_user, @authenticated, safe ``next`` redirects) and XSRF for RequestHandler."""

from __future__ import annotations


class AuthMixin:
    """current_user, get_current_user, get_login_url, xsrf_token, check_xsrf_cookie..."""


def authenticated(method):  # type: ignore[no-untyped-def]
    """Placeholder until login lands: require ``current_user`` (see the login docs)."""
    return method
