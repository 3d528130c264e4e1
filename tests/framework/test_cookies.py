"""Plain cookies through a real Application: attributes, several Set-Cookie, invalid input."""

from __future__ import annotations

import calendar
import datetime
import email.utils
import time

import pytest
import webtest

import microweb as web


def _app(get):  # type: ignore[no-untyped-def]
    handler = type("H", (web.RequestHandler,), {"get": get})
    return webtest.TestApp(web.Application([(r"/", handler)]))


def _set_cookies(resp: webtest.TestResponse) -> list[str]:
    return resp.headers.getall("Set-Cookie")


def _expires(header: str) -> datetime.datetime:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "expires":
            parsed = email.utils.parsedate_to_datetime(value)
            return parsed
    raise AssertionError(f"no Expires in {header!r}")


def test_get_cookie_reads_request_cookies_and_default() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.write(f"{self.get_cookie('a')}|{self.get_cookie('missing', 'dflt')}"
                   f"|{sorted(self.cookies)}")

    resp = _app(get).get("/", headers={"Cookie": "a=1; b=two"})
    assert resp.text == "1|dflt|['a', 'b']"


def test_several_cookies_each_get_their_own_header() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("a", "1")
        self.set_cookie("b", "2")
        self.set_cookie("c", "3")

    resp = _app(get).get("/")
    headers = _set_cookies(resp)
    assert [h.split(";")[0] for h in headers] == ["a=1", "b=2", "c=3"]
    assert all("Path=/" in h for h in headers)


def test_setting_a_name_twice_keeps_the_last() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("a", "first")
        self.set_cookie("a", "second", path="/x")

    headers = _set_cookies(_app(get).get("/"))
    assert len(headers) == 1
    assert headers[0].startswith("a=second;") and "Path=/x" in headers[0]


def test_all_attributes() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("full", "v", domain="example.com", path="/app", max_age=120,
                        secure=True, httponly=True, samesite="Strict")

    (header,) = _set_cookies(_app(get).get("/"))
    for part in ("full=v", "Domain=example.com", "Path=/app", "Max-Age=120", "Secure",
                 "HttpOnly", "SameSite=Strict"):
        assert part in header, part


@pytest.mark.parametrize("kind", ["datetime", "naive", "timestamp", "timetuple"])
def test_expires_forms(kind: str) -> None:
    when = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    value = {
        "datetime": when,
        "naive": when.replace(tzinfo=None),
        "timestamp": when.timestamp(),
        "timetuple": when.utctimetuple(),
    }[kind]

    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("e", "1", expires=value)

    (header,) = _set_cookies(_app(get).get("/"))
    assert _expires(header) == when


def test_expires_days() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("e", "1", expires_days=10)

    (header,) = _set_cookies(_app(get).get("/"))
    delta = _expires(header).timestamp() - time.time()
    assert 10 * 86400 - 60 < delta <= 10 * 86400 + 1


def test_values_needing_quotes_round_trip() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("q", 'hello world "x", y')

    app = _app(get)
    resp = app.get("/")

    def read(self):  # type: ignore[no-untyped-def]
        self.write(self.get_cookie("q") or "-")

    raw = _set_cookies(resp)[0].split(";")[0]
    assert raw.startswith('q="')
    assert _app(read).get("/", headers={"Cookie": raw}).text == 'hello world "x", y'


@pytest.mark.parametrize("name,value", [
    ("a;b", "v"), ("a b", "v"), ("a=b", "v"), ("", "v"), ("a\nb", "v"),
    ("a", "v;Domain=evil.com"), ("a", "v\r\nSet-Cookie: x=1"), ("a", "v\x00"), ("a", "v\x7f"),
])
def test_invalid_names_and_values_raise_value_error(name: str, value: str) -> None:
    errors: list[BaseException] = []

    def get(self):  # type: ignore[no-untyped-def]
        try:
            self.set_cookie(name, value)
        except ValueError as exc:
            errors.append(exc)
        self.write("ok")

    resp = _app(get).get("/")
    assert len(errors) == 1
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize("attr", [{"domain": "a.com; Secure"}, {"path": "/;x"},
                                  {"samesite": "Lax;x"}, {"domain": "a\r\nb"}])
def test_invalid_attributes_raise_value_error(attr: dict[str, str]) -> None:
    def get(self):  # type: ignore[no-untyped-def]
        with pytest.raises(ValueError):
            self.set_cookie("a", "v", **attr)
        self.write("ok")

    assert _app(get).get("/").text == "ok"


def test_unknown_keyword_is_a_type_error_and_invalid_samesite_a_value_error() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        with pytest.raises(TypeError):
            self.set_cookie("a", "v", colour="red")
        with pytest.raises(ValueError):
            self.set_cookie("a", "v", samesite="sometimes")
        self.set_cookie("a", "v", HttpOnly=True)  # Morsel-style name, as Tornado accepted
        self.write("ok")

    resp = _app(get).get("/")
    assert "HttpOnly" in resp.headers["Set-Cookie"]


def test_uncaught_cookie_error_is_a_500_not_a_crash() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("bad;name", "v")

    resp = _app(get).get("/", status=500)
    assert "Set-Cookie" not in resp.headers


def test_clear_cookie_expires_in_the_past_with_same_path_and_domain() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.clear_cookie("gone", path="/app", domain="example.com")

    (header,) = _set_cookies(_app(get).get("/"))
    assert header.startswith("gone=;")
    assert "Path=/app" in header and "Domain=example.com" in header
    assert "Max-Age=0" in header
    assert _expires(header) < datetime.datetime.now(datetime.UTC)


def test_clear_cookie_refuses_expiry_arguments() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        with pytest.raises(TypeError):
            self.clear_cookie("x", expires=time.time())
        with pytest.raises(TypeError):
            self.clear_cookie("x", max_age=3)
        self.write("ok")

    assert _app(get).get("/").text == "ok"


def test_clear_all_cookies_clears_every_request_cookie() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.clear_all_cookies()

    headers = _set_cookies(_app(get).get("/", headers={"Cookie": "a=1; b=2; c=3"}))
    assert sorted(h.split("=")[0] for h in headers) == ["a", "b", "c"]
    assert all("Max-Age=0" in h for h in headers)


def test_cookies_set_before_an_error_still_go_out() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("seen", "1")
        raise web.HTTPError(404)

    resp = _app(get).get("/", status=404)
    assert resp.headers["Set-Cookie"].startswith("seen=1")


def test_cookies_go_out_with_redirects() -> None:
    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("flash", "saved")
        self.redirect("/next")

    resp = _app(get).get("/", status=302)
    assert resp.headers["Set-Cookie"].startswith("flash=saved")


def test_browser_cookie_jar_round_trip() -> None:
    state: dict[str, str | None] = {}

    class H(web.RequestHandler):
        def get(self) -> None:
            state["seen"] = self.get_cookie("visit")
            self.set_cookie("visit", str(int(self.get_cookie("visit", "0") or 0) + 1))

    app = webtest.TestApp(web.Application([(r"/", H)]))
    app.get("/")
    app.get("/")
    assert state["seen"] == "1"


def test_time_tuple_is_utc() -> None:
    tt = time.gmtime(2_000_000_000)

    def get(self):  # type: ignore[no-untyped-def]
        self.set_cookie("t", "1", expires=tt)

    (header,) = _set_cookies(_app(get).get("/"))
    assert _expires(header).timestamp() == calendar.timegm(tt)
