"""The showcase in real headless Chromium: login/next/logout, XSRF, upload, two-browser chat."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import PYTHON, chromium_driver, free_port, spawn

pytestmark = pytest.mark.browser


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The showcase as ``make run`` serves it (bundled server), on a fresh data folder."""
    port = free_port()
    with spawn([PYTHON, "-m", "examples.showcase", "--port", str(port),
                "--data", str(tmp_path / "data")], port=port):
        yield f"http://127.0.0.1:{port}"


def _wait(browser: Any, condition: Any) -> Any:
    return WebDriverWait(browser, 15).until(condition)


def _path(browser: Any) -> str:
    parts = urllib.parse.urlsplit(browser.current_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _log_in(browser: Any, name: str = "demo", password: str = "demo") -> None:
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def test_login_goes_back_to_next_then_logout(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/account")
    _wait(browser, ec.presence_of_element_located((By.ID, "login-form")))
    assert _path(browser) == "/login?next=%2Faccount"
    _log_in(browser)
    _wait(browser, ec.presence_of_element_located((By.ID, "account-name")))
    assert _path(browser) == "/account"
    assert browser.find_element(By.ID, "account-name").text == "demo"
    browser.find_element(By.ID, "logout").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "login-link")))
    assert _path(browser) == "/"
    browser.get(base_url + "/account")
    _wait(browser, ec.presence_of_element_located((By.ID, "login-form")))


def test_form_post_with_token_works_and_without_is_refused(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/login?next=/houses/new")
    _log_in(browser)
    _wait(browser, ec.presence_of_element_located((By.ID, "house-form")))
    browser.find_element(By.NAME, "title").send_keys("Browser-made loft")
    browser.find_element(By.NAME, "position").send_keys("Chengdu")
    browser.find_element(By.NAME, "price").send_keys("321")
    browser.find_element(By.CSS_SELECTOR, "#house-form button[type=submit]").click()
    _wait(browser, ec.text_to_be_present_in_element((By.ID, "house-title"), "Browser-made loft"))

    browser.get(base_url + "/houses/new")
    _wait(browser, ec.presence_of_element_located((By.ID, "house-form")))
    browser.execute_script(  # what a forged cross-site form looks like: no token
        "document.querySelector('#house-form input[name=_xsrf]').remove();")
    browser.find_element(By.NAME, "title").send_keys("Forged house")
    browser.find_element(By.NAME, "position").send_keys("Nowhere")
    browser.find_element(By.NAME, "price").send_keys("1")
    browser.find_element(By.CSS_SELECTOR, "#house-form button[type=submit]").click()
    _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "403"))
    browser.get(base_url + "/houses")
    assert "Forged house" not in browser.page_source
    assert "Browser-made loft" in browser.page_source


def test_upload_and_download(browser: Any, base_url: str, tmp_path: Path) -> None:
    upload = tmp_path / "notes.txt"
    upload.write_text("streamed back in chunks\n" * 5000)
    browser.get(base_url + "/login?next=/upload")
    _log_in(browser)
    _wait(browser, ec.presence_of_element_located((By.ID, "upload-form")))
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    link = _wait(browser, ec.presence_of_element_located((By.LINK_TEXT, "notes.txt")))
    assert "uploaded=" in browser.current_url
    body = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text()).then(done, e => done('error ' + e));",
        link.get_attribute("href"))
    assert body == upload.read_text()


def test_chat_between_two_browsers(browser: Any, base_url: str) -> None:
    second = chromium_driver()
    try:
        second.get(base_url + "/login?next=/chat")
        _log_in(second, "alice", "wonderland")
        for b in (browser, second):
            if b is browser:
                b.get(base_url + "/chat")
            _wait(b, ec.text_to_be_present_in_element((By.ID, "chat-status"), "Connected"))
        _wait(second, ec.text_to_be_present_in_element((By.ID, "contents"), "joined the room"))
        box = browser.find_element(By.ID, "msg")
        box.send_keys("<b>hello</b> from a guest")
        browser.find_element(By.CSS_SELECTOR, "#chat-form button").click()
        _wait(second, ec.text_to_be_present_in_element((By.ID, "contents"),
                                                       "<b>hello</b> from a guest"))
        assert not second.find_elements(By.CSS_SELECTOR, "#contents b")  # text, not markup
        second.find_element(By.ID, "msg").send_keys("hi, I am alice")
        second.find_element(By.CSS_SELECTOR, "#chat-form button").click()
        _wait(browser, ec.text_to_be_present_in_element((By.ID, "contents"),
                                                        "alice: hi, I am alice"))
    finally:
        second.quit()
