"""Fixtures for the framework tests: lint-wrapped in-process clients and log capture."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from webtest import TestApp
from werkzeug.middleware.lint import LintMiddleware


def lint_client(app: Any, lint: bool = True, validate: bool = True) -> TestApp:
    """A webtest client calling ``app`` through wsgiref's validator and werkzeug's linter.

    Lint warnings are errors under the project's pytest settings, so any PEP 3333 slip fails
    the test. werkzeug's linter does not know that HEAD / 204 responses carry no body, so
    tests of those pass ``lint=False`` and keep the stricter-on-protocol wsgiref validator.
    Both validators reject methods outside the standard set: ``validate=False`` for those.
    """
    if not validate:
        return TestApp(app, lint=False)
    wrapped = validator(LintMiddleware(app) if lint else app)
    return TestApp(wrapped)


@pytest.fixture
def client() -> Callable[..., TestApp]:
    return lint_client


class LogRecorder(logging.Handler):
    """Collects records of one logger at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


@pytest.fixture
def logs() -> Iterator[Callable[[str], LogRecorder]]:
    """``logs("microweb.access")`` -> a recorder attached until the test ends."""
    attached: list[tuple[logging.Logger, LogRecorder, int, bool]] = []

    def attach(name: str) -> LogRecorder:
        logger = logging.getLogger(name)
        recorder = LogRecorder()
        attached.append((logger, recorder, logger.level, logger.propagate))
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        return recorder

    yield attach
    for logger, recorder, level, propagate in attached:
        logger.removeHandler(recorder)
        logger.setLevel(level)
        logger.propagate = propagate
