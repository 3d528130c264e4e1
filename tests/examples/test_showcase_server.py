"""The showcase as ``make run`` serves it: the bundled server, real sockets, the chat room."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support import PYTHON, free_port, spawn


@pytest.fixture
def served(tmp_path):
    port = free_port()
    with spawn([PYTHON, "-m", "examples.showcase", "--port", str(port),
                "--data", str(tmp_path / "data")], port=port) as proc:
        yield f"127.0.0.1:{port}", proc


def _login(base: str, name: str, password: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"http://{base}/login", timeout=10).text
    token = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    res = s.post(f"http://{base}/login", timeout=10, allow_redirects=False,
                 data={"_xsrf": token, "name": name, "password": password, "next": "/"})
    assert res.status_code == 302
    return s


def _socket(base: str, session: requests.Session | None = None):
    cookie = "; ".join(f"{k}={v}" for k, v in (session.cookies.items() if session else []))
    return connect(f"ws://{base}/chat/socket", origin=f"http://{base}", open_timeout=10,
                   additional_headers={"Cookie": cookie} if cookie else None)


def test_chat_between_a_user_and_a_guest(served):
    base, _ = served
    with _socket(base, _login(base, "alice", "wonderland")) as alice:
        assert json.loads(alice.recv(timeout=5)) == {"type": "join", "name": "alice"}
        with _socket(base) as guest:
            joined = json.loads(alice.recv(timeout=5))
            assert joined["type"] == "join" and joined["name"].startswith("guest-")
            assert json.loads(guest.recv(timeout=5)) == joined
            guest.send("  hello <b>alice</b>  ")
            said = {"type": "message", "name": joined["name"], "text": "hello <b>alice</b>"}
            assert json.loads(alice.recv(timeout=5)) == said
            assert json.loads(guest.recv(timeout=5)) == said
        assert json.loads(alice.recv(timeout=5)) == {"type": "leave", "name": joined["name"]}


def test_chat_refuses_a_foreign_origin(served):
    base, _ = served
    with pytest.raises(InvalidStatus) as err:
        connect(f"ws://{base}/chat/socket", origin="http://evil.example", open_timeout=10)
    assert err.value.response.status_code == 403


def test_one_access_log_line_per_request_with_the_user(served):
    base, proc = served
    s = _login(base, "demo", "demo")
    assert s.get(f"http://{base}/account", timeout=10).status_code == 200
    s.get(f"http://{base}/robots.txt", timeout=10)  # the log line is written after the body
    deadline = time.monotonic() + 10
    while '"GET /robots.txt ' not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in proc.output().splitlines() if '"GET /account ' in line]
    assert len(lines) == 1, proc.output()
    assert " demo " in lines[0] and '" 200 ' in lines[0]


def test_pages_are_compressed_over_the_wire(served):
    base, _ = served
    res = requests.get(f"http://{base}/houses", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert res.headers["Content-Encoding"] == "gzip"
    assert "house-item" in res.text
