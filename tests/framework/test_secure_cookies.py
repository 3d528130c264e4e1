"""Signed ("secure") cookies: round trips, attacks, key rotation and Tornado migration."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import tornado.web
import webtest

import microweb as web
from microweb.cookies import secure_cookie_salt
from middleware.signing import KeyRing

SECRET = "a-long-random-secret-for-tests"


class Reader(web.RequestHandler):
    def get(self) -> None:
        value = self.get_secure_cookie(self.get_argument("name", "user"),
                                       max_age_days=float(self.get_argument("days", "31")))
        self.write(repr(value))


class Writer(web.RequestHandler):
    def get(self) -> None:
        self.set_secure_cookie(self.get_argument("name", "user"),
                               self.get_argument("value", "alice"), httponly=True)


def _app(secret: Any = SECRET, **settings: Any) -> webtest.TestApp:
    if secret is not None:
        settings["cookie_secret"] = secret
    return webtest.TestApp(web.Application([(r"/read", Reader), (r"/write", Writer)],
                                           **settings))


def _issued(app: webtest.TestApp, name: str = "user", value: str = "alice") -> str:
    header = app.get("/write", {"name": name, "value": value}).headers["Set-Cookie"]
    assert header.startswith(name + "=")
    return header.split(";")[0].split("=", 1)[1]


def _read(app: webtest.TestApp, cookie: str, name: str = "user", **params: str) -> str:
    return app.get("/read", {"name": name, **params},
                   headers={"Cookie": f"{name}={cookie}"}).text


def _signed_at(secret: str, name: str, value: bytes, when: float) -> str:
    """A value signed by the key ring as if the clock said ``when``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", lambda: when)
        return KeyRing(secret).sign(value, salt=secure_cookie_salt(name))


def test_round_trip_returns_bytes() -> None:
    app = _app()
    cookie = _issued(app)
    assert _read(app, cookie) == "b'alice'"


def test_set_secure_cookie_default_lifetime_and_attributes() -> None:
    header = _app().get("/write").headers["Set-Cookie"]
    assert "HttpOnly" in header and "Expires=" in header and "Path=/" in header


def test_arbitrary_bytes_and_unicode_round_trip() -> None:
    class BytesWriter(web.RequestHandler):
        def get(self) -> None:
            self.set_secure_cookie("blob", b"\x00\xff|;,= \n")
            self.set_secure_cookie("text", "héllo")

    app = webtest.TestApp(web.Application([(r"/w", BytesWriter), (r"/read", Reader)],
                                          cookie_secret=SECRET))
    values = dict(h.split(";")[0].split("=", 1) for h in app.get("/w").headers.getall(
        "Set-Cookie"))
    assert _read(app, values["blob"], "blob") == repr(b"\x00\xff|;,= \n")
    assert _read(app, values["text"], "text") == repr("héllo".encode())


def test_missing_cookie_is_none() -> None:
    assert _app().get("/read").text == "None"


@pytest.mark.parametrize("mutate", [
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),   # signature
    lambda c: "Ym9i" + c[c.index("."):],                            # payload "bob"
    lambda c: c.split(".")[0],                                      # stripped signature
    lambda c: "garbage",
    lambda c: c + ".x",
])
def test_tampered_cookie_is_none_and_logged(mutate, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    app = _app()
    cookie = mutate(_issued(app))
    with caplog.at_level(logging.WARNING):
        assert _read(app, cookie) == "None"
    assert any("cookie" in r.getMessage().lower() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_value_cannot_move_to_another_cookie_name(caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    cookie = _issued(app, name="user")
    with caplog.at_level(logging.WARNING):
        assert _read(app, cookie, name="admin") == "None"
    assert "admin" in caplog.text


def test_different_secret_does_not_verify() -> None:
    cookie = _issued(_app("another-secret"))
    assert _read(_app(), cookie) == "None"


def test_expired_cookie_is_none_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    old = _signed_at(SECRET, "user", b"alice", time.time() - 3 * 86400)
    app = _app()
    assert _read(app, old, days="5") == "b'alice'"
    with caplog.at_level(logging.WARNING):
        assert _read(app, old, days="2") == "None"
    assert "Expired" in caplog.text


def test_future_dated_cookie_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    future = _signed_at(SECRET, "user", b"alice", time.time() + 3600)
    with caplog.at_level(logging.WARNING):
        assert _read(_app(), future) == "None"
    assert "future" in caplog.text


def test_missing_cookie_secret_names_the_setting() -> None:
    errors: list[str] = []

    class H(web.RequestHandler):
        def get(self) -> None:
            for call in (lambda: self.set_secure_cookie("a", "b"),
                         lambda: self.get_secure_cookie("a")):
                try:
                    call()
                except Exception as exc:
                    errors.append(str(exc))
            self.write("done")

    webtest.TestApp(web.Application([(r"/", H)])).get("/")
    assert len(errors) == 2
    assert all("cookie_secret" in e for e in errors)


def test_missing_cookie_secret_uncaught_is_500(caplog: pytest.LogCaptureFixture) -> None:
    app = _app(secret=None)
    with caplog.at_level(logging.ERROR):
        app.get("/write", status=500)
    assert "cookie_secret" in caplog.text


def test_list_secret_rotation_verifies_old_and_resigns_with_newest() -> None:
    old_cookie = _issued(_app(["old-key"]))
    rotated = _app(["new-key", "old-key"])
    resp = rotated.get("/read", headers={"Cookie": f"user={old_cookie}"})
    assert resp.text == "b'alice'"
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Expires=" in header
    resigned = header.split(";")[0].split("=", 1)[1]
    assert resigned != old_cookie
    # only the newest key is needed for the re-signed cookie
    assert _read(_app(["new-key"]), resigned) == "b'alice'"
    assert _read(_app(["new-key"]), old_cookie) == "None"


def test_reissue_attributes_and_opt_out() -> None:
    old_cookie = _issued(_app(["old-key"]))
    custom = _app(["new-key", "old-key"],
                  secure_cookie_kwargs={"domain": "example.com", "expires_days": 3})
    header = custom.get("/read", headers={"Cookie": f"user={old_cookie}"}).headers["Set-Cookie"]
    assert "Domain=example.com" in header
    off = _app(["new-key", "old-key"], secure_cookie_resign=False)
    resp = off.get("/read", headers={"Cookie": f"user={old_cookie}"})
    assert resp.text == "b'alice'" and "Set-Cookie" not in resp.headers


def test_cookie_signed_with_newest_key_is_not_reissued() -> None:
    app = _app(["new-key", "old-key"])
    cookie = _issued(app)
    resp = app.get("/read", headers={"Cookie": f"user={cookie}"})
    assert resp.text == "b'alice'" and "Set-Cookie" not in resp.headers


def test_dict_secret_with_key_version() -> None:
    keys = {1: "key-one", 2: "key-two"}
    v1_cookie = _issued(_app(keys, key_version=1))
    assert _read(_app({1: "key-one"}), v1_cookie) == "b'alice'"
    assert _read(_app({2: "key-two"}), v1_cookie) == "None"
    newer = _app(keys, key_version=2)
    resp = newer.get("/read", headers={"Cookie": f"user={v1_cookie}"})
    assert resp.text == "b'alice'"
    resigned = resp.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert _read(_app({2: "key-two"}), resigned) == "b'alice'"


def test_dict_secret_defaults_to_highest_version() -> None:
    cookie = _issued(_app({1: "key-one", 7: "key-seven"}))
    assert _read(_app({7: "key-seven"}), cookie) == "b'alice'"


def test_create_signed_value_and_explicit_value_argument() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            signed = self.create_signed_value("token", "payload")
            assert isinstance(signed, bytes)
            ok = self.get_secure_cookie("token", signed.decode())
            wrong = self.get_secure_cookie("other", signed.decode())
            self.write(f"{ok!r} {wrong!r}")

    app = webtest.TestApp(web.Application([(r"/", H)], cookie_secret=SECRET))
    resp = app.get("/")
    assert resp.text == "b'payload' None"
    assert "Set-Cookie" not in resp.headers


# -- migration from Tornado -----------------------------------------------------------------

def test_tornado_v2_cookie_is_accepted_and_reissued() -> None:
    tornado_cookie = tornado.web.create_signed_value(SECRET, "user", "alice").decode()
    resp = _app().get("/read", headers={"Cookie": f"user={tornado_cookie}"})
    assert resp.text == "b'alice'"
    reissued = resp.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert not reissued.startswith("2|")
    assert _read(_app(), reissued) == "b'alice'"


def test_tornado_v2_cookie_with_key_version_dict() -> None:
    keys = {0: "zero-key", 3: "three-key"}
    tornado_cookie = tornado.web.create_signed_value(
        keys, "user", b"\x01bin", key_version=3).decode()
    assert _read(_app(keys, key_version=3), tornado_cookie) == repr(b"\x01bin")
    assert _read(_app({0: "zero-key"}), tornado_cookie) == "None"


def test_tornado_v2_attacks_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    app = _app()
    good = tornado.web.create_signed_value(SECRET, "user", "alice").decode()
    other_name = tornado.web.create_signed_value(SECRET, "admin", "alice").decode()
    expired = tornado.web.create_signed_value(
        SECRET, "user", "alice", clock=lambda: time.time() - 40 * 86400).decode()
    future = tornado.web.create_signed_value(
        SECRET, "user", "alice", clock=lambda: time.time() + 86400).decode()
    wrong_key = tornado.web.create_signed_value("not-the-secret", "user", "alice").decode()
    with caplog.at_level(logging.WARNING):
        for bad in (good[:-1] + ("0" if good[-1] != "0" else "1"), other_name, expired,
                    future, wrong_key, "2|1:0|10:123|4:user|", "2|x:y"):
            assert _read(app, bad) == "None", bad
    assert caplog.records


def test_version_2_output_is_readable_by_tornado() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write(self.create_signed_value("user", "alice", version=2))

    signed = webtest.TestApp(web.Application([(r"/", H)], cookie_secret=SECRET)).get("/").body
    assert tornado.web.decode_signed_value(SECRET, "user", signed) == b"alice"


def test_key_version_of_tornado_cookie() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write(repr(self.get_secure_cookie_key_version("user")))

    keys = {4: "four-key"}
    cookie = tornado.web.create_signed_value(keys, "user", "x", key_version=4).decode()
    app = webtest.TestApp(web.Application([(r"/", H)], cookie_secret=keys, key_version=4))
    assert app.get("/", headers={"Cookie": f"user={cookie}"}).text == "4"
    assert app.get("/").text == "None"
