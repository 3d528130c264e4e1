"""The login example in real headless Chromium: login → back to ``next`` → logout, XSRF refusal."""

from __future__ import annotations

import socketserver
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from examples.login.app import make_app

pytestmark = pytest.mark.browser


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def base_url(port: int) -> Iterator[str]:
    """The example app on wsgiref in a thread, on a free loopback port."""
    server = make_server("127.0.0.1", port, make_app(cookie_secret="browser-test-secret"),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _wait(browser: Any, condition: Any) -> Any:
    return WebDriverWait(browser, 15).until(condition)


def _sign_in(browser: Any, user: str, password: str) -> None:
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()


def test_login_redirects_to_next_then_logout(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/account")
    _wait(browser, ec.presence_of_element_located((By.ID, "login")))
    parts = urllib.parse.urlsplit(browser.current_url)
    assert parts.path == "/login"
    assert urllib.parse.parse_qs(parts.query) == {"next": ["/account"]}

    _sign_in(browser, "alice", "wonderland")
    heading = _wait(browser, ec.presence_of_element_located((By.ID, "account")))
    assert heading.text == "Account of alice"
    assert urllib.parse.urlsplit(browser.current_url).path == "/account"

    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["user"]["httpOnly"] is True
    assert "user=" not in browser.execute_script("return document.cookie")
    assert "_xsrf" in cookies

    browser.find_element(By.CSS_SELECTOR, "#logout button").click()
    _wait(browser, ec.presence_of_element_located((By.ID, "login")))
    browser.get(base_url + "/account")
    _wait(browser, ec.presence_of_element_located((By.ID, "login")))
    assert urllib.parse.urlsplit(browser.current_url).path == "/login"


def test_wrong_password_stays_on_login(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/login")
    _sign_in(browser, "alice", "not-the-password")
    error = _wait(browser, ec.presence_of_element_located((By.ID, "error")))
    assert "Wrong user name or password" in error.text
    assert "user" not in {c["name"] for c in browser.get_cookies()}


def test_form_post_without_token_is_refused(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/login")
    _wait(browser, ec.presence_of_element_located((By.ID, "login")))
    browser.execute_script("""
        const form = document.createElement('form');
        form.method = 'post';
        form.action = '/login';
        for (const [name, value] of [['username', 'alice'], ['password', 'wonderland']]) {
            const input = document.createElement('input');
            input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
    """)
    _wait(browser, lambda b: "403" in b.page_source or "Forbidden" in b.page_source)
    assert "user" not in {c["name"] for c in browser.get_cookies()}
    assert not browser.find_elements(By.ID, "welcome")


def test_offsite_next_is_ignored(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/login?next=" + urllib.parse.quote("//evil.example/steal"))
    _sign_in(browser, "bob", "builder")
    welcome = _wait(browser, ec.presence_of_element_located((By.ID, "welcome")))
    assert welcome.text == "Welcome, bob!"
    assert browser.current_url == base_url + "/"
