"""examples/flask_middleware: a Flask app behind Proxy → AccessLog → Gzip → Session → XSRF."""

from __future__ import annotations

import gzip
import json
import logging
import re

import pytest
from webtest import TestApp
from werkzeug.test import Client

from examples.flask_middleware import make_app


@pytest.fixture
def client(tmp_path):
    return TestApp(make_app(tmp_path), extra_environ={"REMOTE_ADDR": "127.0.0.1"})


def _token(page) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def test_client_address_comes_from_trusted_proxy_only(tmp_path):
    app = TestApp(make_app(tmp_path))
    via_proxy = app.get("/", headers={"X-Forwarded-For": "198.51.100.9"},
                        extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert via_proxy.json["client"] == "198.51.100.9"
    spoofed = app.get("/", headers={"X-Forwarded-For": "198.51.100.9"},
                      extra_environ={"REMOTE_ADDR": "203.0.113.5"})
    assert spoofed.json["client"] == "203.0.113.5"


def test_request_id_is_echoed_and_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="microweb.access"):
        res = client.get("/")
    assert res.headers["X-Request-ID"] == res.json["request_id"]
    assert any(res.json["request_id"] in r.getMessage() or
               getattr(r, "request_id", None) == res.json["request_id"] for r in caplog.records)


def test_session_counter_survives_requests(client):
    assert client.get("/counter").json == {"visits": 1}
    assert client.get("/counter").json == {"visits": 2}
    cookie = client.cookiejar
    assert any(c.name == "session" and c.has_nonstandard_attr("HttpOnly") for c in cookie)


def test_guestbook_post_needs_the_token(client):
    page = client.get("/guestbook")
    refused = client.post("/guestbook", {"name": "mallory"}, status=403)
    assert refused.status_int == 403
    signed = client.post("/guestbook", {"name": "alice", "_xsrf": _token(page)})
    assert signed.json == {"signed": "alice", "names": ["alice"]}
    assert "<li>alice</li>" in client.get("/guestbook").text


def test_token_is_masked_afresh_per_page(client):
    first, second = _token(client.get("/guestbook")), _token(client.get("/guestbook"))
    assert first != second
    assert client.post("/guestbook", {"name": "bob", "_xsrf": first}).json["signed"] == "bob"


def test_large_json_is_gzipped(tmp_path):
    # werkzeug's test client, not webtest: webtest decodes gzip bodies before we see them.
    client = Client(make_app(tmp_path))
    res = client.get("/report", headers={"Accept-Encoding": "gzip"})
    assert res.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in res.headers["Vary"]
    rows = json.loads(gzip.decompress(res.data))["rows"]
    assert len(rows) == 500
    plain = client.get("/report", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert len(plain.data) > len(res.data) * 3
