"""Jinja2 templates for RequestHandler: render, render_string and the template globals."""

from __future__ import annotations


class TemplateMixin:
    """render / render_string; mixed into RequestHandler."""
