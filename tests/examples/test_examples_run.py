"""Every example exposes a WSGI ``application`` that a server can import and that PEP 3333's
validator accepts (``microweb serve package.module:application`` resolves it the same way)."""

from __future__ import annotations

from wsgiref.validate import validator

import pytest
from webtest import TestApp

from microweb.server.command import import_string

EXAMPLES = [
    ("examples.forms:application", "/", 200),
    ("examples.ipfilter:application", "/", 200),
    ("examples.streaming:application", "/files/none.bin", 404),
    ("examples.async_handlers:application", "/api/ip/not-an-ip", 200),
    ("examples.tornado_port.app:application", "/houses", 200),
    ("examples.flask_middleware:application", "/counter", 200),
]


@pytest.mark.parametrize(("spec", "path", "status"), EXAMPLES)
def test_example_application_is_valid_wsgi(spec, path, status):
    app = TestApp(validator(import_string(spec)), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    assert app.get(path, status=status).status_int == status


def test_showcase_application_is_valid_wsgi(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROWEB_SHOWCASE_DATA", str(tmp_path))
    monkeypatch.setenv("MICROWEB_ACCESS_LOG", "")
    import examples.showcase as showcase

    monkeypatch.delitem(showcase.__dict__, "application", raising=False)
    app = TestApp(validator(import_string("examples.showcase:application")))
    assert app.get("/").status_int == 200
    assert (tmp_path / "showcase.sqlite3").exists()
    assert app.get("/houses.csv").text.startswith("id,title")


@pytest.mark.redis
def test_redis_sessions_application_is_valid_wsgi(redis_port, monkeypatch):
    monkeypatch.setenv("MICROWEB_REDIS_NODES", f"a=redis://127.0.0.1:{redis_port}/0")
    import examples.redis_sessions as example

    monkeypatch.delitem(example.__dict__, "application", raising=False)
    app = TestApp(validator(import_string("examples.redis_sessions:application")))
    assert app.get("/").json["visits"] == 1
