"""Fixtures for the example apps: the showcase in-process on a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webtest import TestApp

from examples.showcase import make_app


@pytest.fixture
def showcase_data(tmp_path: Path) -> Path:
    return tmp_path / "showcase-data"


@pytest.fixture
def showcase(showcase_data: Path) -> Iterator[TestApp]:
    """The whole showcase stack (sessions, gzip, access log to the logger only)."""
    yield TestApp(make_app(showcase_data, access_log=None),
                  extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def login(app: TestApp, name: str = "demo", password: str = "demo", next_url: str = "/"):
    """Fill and submit the real login form (with its XSRF token); returns the response."""
    page = app.get("/login", {"next": next_url})
    form = page.forms["login-form"]
    form["name"], form["password"] = name, password
    return form.submit(status="*")
