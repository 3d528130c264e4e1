"""Fixtures shared by every test package (see tests/support.py for the helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support


@pytest.fixture
def port() -> int:
    return support.free_port()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """One real redis-server for the session (tests must use distinct key prefixes or flush)."""
    with support.redis_server() as p:
        yield p


@pytest.fixture
def browser() -> Iterator[object]:
    """A fresh headless Chromium per test."""
    driver = support.chromium_driver()
    try:
        yield driver
    finally:
        driver.quit()
