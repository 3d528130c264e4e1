"""SignedCookieMiddleware: transparent signing, tampering and expiry refused, key rotation."""

from __future__ import annotations

import logging
import time
from http.cookies import SimpleCookie
from typing import Any

import pytest
from itsdangerous import base64_encode

from middleware import SignedCookieMiddleware, compose, keys
from middleware.signedcookies import SALT_PREFIX
from middleware.signing import KeyRing

from .conftest import bare_app, client, make_app

SECRET = "a long random secret for tests"


def stack(app_kind: str, **options: Any) -> Any:
    options.setdefault("names", ["prefs"])
    return client(compose(make_app(app_kind),
                          SignedCookieMiddleware.configure(secret=SECRET, **options)))


def signed(value: str, name: str = "prefs", secret: Any = SECRET) -> str:
    return KeyRing(secret).sign(value, salt=SALT_PREFIX + name)


def test_outgoing_value_is_signed_and_attributes_kept(app_kind: str) -> None:
    response = stack(app_kind).get("/set-cookie?name=prefs&value=dark-mode")
    [header] = response.headers.getall("Set-Cookie")
    morsel = SimpleCookie(header)["prefs"]
    assert "dark-mode" not in morsel.value
    value, _ = KeyRing(SECRET).unsign(morsel.value, salt=SALT_PREFIX + "prefs")
    assert value == b"dark-mode"
    lowered = header.lower()
    assert "max-age=3600" in lowered and "httponly" in lowered and "samesite=lax" in lowered
    assert "path=/" in lowered


def test_other_cookies_are_left_alone(app_kind: str) -> None:
    response = stack(app_kind).get("/set-cookie?name=theme&value=blue")
    assert response.headers["Set-Cookie"].startswith("theme=blue;")


def test_round_trip_app_sees_plain_value(app_kind: str) -> None:
    app = stack(app_kind)
    app.get("/set-cookie?name=prefs&value=compact")  # webtest keeps the cookie jar
    view = app.get("/env").json
    assert view["cookies"]["prefs"] == "compact"
    assert view["signed"] == {"prefs": "compact"}


def test_non_ascii_values_survive(app_kind: str) -> None:
    app = stack(app_kind)
    app.set_cookie("prefs", _quoted(signed("café; ünïcode")))
    view = app.get("/env").json
    assert view["cookies"]["prefs"] == "café; ünïcode"


def _swap_value(signed_value: str, value: str) -> str:
    return base64_encode(value).decode() + signed_value[signed_value.index("."):]


def _quoted(value: str) -> str:
    from werkzeug.http import dump_cookie

    return dump_cookie("x", value, path=None)[2:]


@pytest.mark.parametrize("forged", [
    "admin",                                        # never signed
    _swap_value(signed("user"), "root"),            # value changed, signature kept
    signed("user")[:-2] + "xx",                     # signature changed
    signed("user", name="other"),                   # moved from another cookie
    signed("user", secret="another secret"),        # signed with a key we do not hold
])
def test_tampered_cookie_removed_and_logged(app_kind: str, forged: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    app = stack(app_kind)
    app.set_cookie("prefs", forged)
    app.set_cookie("theme", "blue")
    with caplog.at_level(logging.WARNING, logger="microweb.signedcookies"):
        view = app.get("/env").json
    assert "prefs" not in view["cookies"] and view["signed"] == {}
    assert view["cookies"]["theme"] == "blue"
    assert "dropped cookie 'prefs'" in caplog.text


def test_expired_cookie_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    middleware = SignedCookieMiddleware(bare_app, SECRET, names=["prefs"], max_age=60)
    environ: dict[str, Any] = {"HTTP_COOKIE": f"prefs={signed('v')}; a=b"}
    middleware.process_request(environ)
    assert environ[keys.SIGNED_COOKIES] == {"prefs": "v"}
    now = time.time()
    with monkeypatch.context() as patch:  # the same cookie, signed two minutes ago
        patch.setattr(time, "time", lambda: now - 120)
        stale = signed("v")
    environ = {"HTTP_COOKIE": f"prefs={stale}; a=b"}
    middleware.process_request(environ)
    assert environ[keys.SIGNED_COOKIES] == {} and environ["HTTP_COOKIE"] == "a=b"


def test_key_rotation_old_key_still_verifies() -> None:
    old_value = signed("v", secret="old key")
    app = client(compose(bare_app, SignedCookieMiddleware.configure(
        secret=["new key", "old key"], names=["prefs"])))
    app.set_cookie("prefs", old_value)
    assert app.get("/env").json["signed"] == {"prefs": "v"}
    new_header = app.get("/set-cookie?name=prefs&value=w").headers["Set-Cookie"]
    cookie = SimpleCookie(new_header)["prefs"].value
    assert KeyRing("new key").unsign(cookie, salt=SALT_PREFIX + "prefs")[0] == b"w"


def test_prefix_selects_cookies(app_kind: str) -> None:
    app = stack(app_kind, names=[], prefix="s_")
    header = app.get("/set-cookie?name=s_cart&value=3").headers["Set-Cookie"]
    assert header.startswith("s_cart=") and not header.startswith("s_cart=3;")
    app.set_cookie("s_forged", "1")
    app.set_cookie("plain", "1")
    view = app.get("/env").json
    assert view["signed"] == {"s_cart": "3"}
    assert set(view["cookies"]) == {"s_cart", "plain"}


def test_deletion_is_not_signed() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Set-Cookie", 'prefs=""; Max-Age=0; Path=/')])
        return [b""]

    response = client(SignedCookieMiddleware(app, SECRET, names=["prefs"])).get("/")
    assert response.headers["Set-Cookie"] == 'prefs=""; Max-Age=0; Path=/'


def test_needs_names_or_prefix() -> None:
    with pytest.raises(ValueError, match="names or a prefix"):
        SignedCookieMiddleware(bare_app, SECRET)
