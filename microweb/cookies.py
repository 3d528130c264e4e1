"""Cookies and signed ("secure") cookies for RequestHandler (tornado.web names and meanings)."""

from __future__ import annotations


class CookieMixin:
    """get/set/clear_cookie, clear_all_cookies, set/get_secure_cookie; mixed into RequestHandler."""
