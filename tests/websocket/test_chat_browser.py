"""Three real Chromium sessions in the chat room, spread over two worker processes that share
a Redis hub: everybody sees everybody's messages and join notices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import support

pytestmark = [pytest.mark.browser, pytest.mark.redis]

NAMES = ("ann", "bob", "cid")


@pytest.fixture
def browsers() -> Iterator[list[Any]]:
    drivers: list[Any] = []
    try:
        for _ in NAMES:
            drivers.append(support.chromium_driver())
        yield drivers
    finally:
        for d in drivers:
            d.quit()


def _wait(driver: Any, condition: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _join(driver: Any, name: str) -> str:
    """Join the room as ``name``; returns the worker process the socket landed on."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "name")
    box.clear()
    box.send_keys(name)
    driver.find_element(By.ID, "join-button").click()
    return str(_wait(driver, lambda d: d.find_element(By.ID, "status")
                     .get_attribute("data-worker")))


def _say(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_element(By.ID, "send-button").is_enabled())
    driver.find_element(By.ID, "text").send_keys(text)
    driver.find_element(By.ID, "send-button").click()


def _log_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "log").text)


def test_three_browsers_two_workers_one_room(chat_server: support.Spawned,
                                              browsers: list[Any]) -> None:
    from selenium.webdriver.common.by import By

    base = f"http://127.0.0.1:{chat_server.port}/"
    workers = []
    for driver, name in zip(browsers, NAMES, strict=True):
        driver.get(base)
        workers.append(_join(driver, name))
    for _ in range(20):  # make sure the room really spans both processes
        if len(set(workers)) == 2:
            break
        workers[-1] = _join(browsers[-1], NAMES[-1])
    assert len(set(workers)) == 2, workers

    _wait(browsers[0], lambda d: "cid joined the room" in _log_text(d))
    for driver, name in zip(browsers, NAMES, strict=True):
        _say(driver, f"hello from {name} <b>!</b>")
    for driver in browsers:
        _wait(driver, lambda d: all(f"{n}: hello from {n} <b>!</b>" in _log_text(d)
                                    for n in NAMES))
        # the text arrived as text: no markup from a message became an element
        assert driver.find_elements(By.CSS_SELECTOR, "#log b") == []
