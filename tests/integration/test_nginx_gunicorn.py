"""The showcase under gunicorn behind a real nginx, configured by examples/deploy/."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from websockets.sync.client import connect

from tests.support import ROOT

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _login(base: str, name: str, password: str, next_url: str) -> requests.Response:
    s = requests.Session()
    page = s.get(f"http://{base}/login", params={"next": next_url}, timeout=10)
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    res = s.post(f"http://{base}/login", timeout=10,
                 data={"_xsrf": token, "name": name, "password": password, "next": next_url})
    res.session = s  # type: ignore[attr-defined]
    return res


def test_login_through_nginx_lands_on_next_and_is_known_to_every_backend(site):
    res = _login(site.base, "alice", "wonderland", "/account")
    assert res.history[0].status_code == 302
    assert res.url == f"http://{site.base}/account"  # redirects keep nginx's host and port
    assert '<span id="account-name">alice</span>' in res.text
    for _ in range(4):  # round robin: both backends read the session from the shared file
        assert res.session.get(f"http://{site.base}/account", timeout=10).status_code == 200


def test_static_files_are_served_by_nginx_with_long_cache(site):
    page = requests.get(f"http://{site.base}/", timeout=10).text
    url = re.search(r'href="(/static/css/main\.css\?v=[0-9a-f]+)"', page).group(1)
    res = requests.get(f"http://{site.base}{url}", timeout=10)
    assert res.status_code == 200
    assert res.content == (ROOT / "examples/showcase/static/css/main.css").read_bytes()
    assert "max-age=31536000" in res.headers["Cache-Control"]
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Request-ID" not in res.headers  # never reached the app
    app_page = requests.get(f"http://{site.base}/", timeout=10)
    assert "X-Request-ID" in app_page.headers


def test_chat_spans_both_backends(site):
    base = site.base
    with connect(f"ws://{base}/chat/socket", origin=f"http://{base}", open_timeout=10) as a:
        me = json.loads(a.recv(timeout=10))
        assert me["type"] == "join"
        with connect(f"ws://{base}/chat/socket", origin=f"http://{base}",
                     open_timeout=10) as b:
            other = json.loads(a.recv(timeout=10))  # b's join, published on the other backend
            assert other["type"] == "join" and other["name"] != me["name"]
            assert json.loads(b.recv(timeout=10)) == other
            b.send("hello across backends")
            said = {"type": "message", "name": other["name"], "text": "hello across backends"}
            assert json.loads(a.recv(timeout=10)) == said
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        served = [sp.output().count('"GET /chat/socket HTTP/1.1" 101') for sp in site.backends]
        if sum(served) >= 2:
            break
        time.sleep(0.1)
    assert served == [1, 1], "each socket should have gone to a different backend"


def test_client_address_is_the_one_nginx_saw(site):
    res = requests.get(f"http://{site.base}/houses", timeout=10,
                       headers={"X-Forwarded-For": "203.0.113.9"})
    assert res.status_code == 200
    time.sleep(0.2)
    lines = [line for sp in site.backends for line in sp.output().splitlines()
             if '"GET /houses ' in line]
    assert lines and lines[-1].startswith("127.0.0.1 ")  # the spoofed hop is not trusted
