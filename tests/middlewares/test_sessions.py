"""SessionMiddleware behaviour a user notices: lazy loading, saving only on change, cookies,
regenerate/invalidate, forged ids, signals, serializers, cookie sessions, Flask and bare WSGI."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

import flask
import pytest
import webtest
from werkzeug.http import parse_cookie

from middleware import keys, signals
from middleware.sessions import (
    CookieStore,
    JSONSerializer,
    MemoryStore,
    Session,
    SessionMiddleware,
)
from middleware.signing import KeyRing

SECRET = "test-secret-key"


class CountingStore(MemoryStore):
    """The real MemoryStore, counting what the middleware asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def load(self, sid: str) -> tuple[bytes, float] | None:
        self.calls.append(("load", sid))
        return super().load(sid)

    def save(self, sid: str, data: bytes, ttl: int) -> None:
        self.calls.append(("save", sid))
        super().save(sid, data, ttl)

    def delete(self, sid: str) -> None:
        self.calls.append(("delete", sid))
        super().delete(sid)

    def touch(self, sid: str, ttl: int) -> None:
        self.calls.append(("touch", sid))
        super().touch(sid, ttl)

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]


def session_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Routes: /get, /set?k=v, /append?k=v (nested change), /login?user=, /logout, /plain,
    /clear, /bad (a non-JSON value)."""
    session: Session = environ[keys.SESSION]
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/set":
        session.update(query)
    elif path == "/append":
        items = session.get("items")
        if items is None:
            session["items"] = items = []
        items.append(query["v"])  # a nested change: found by comparing serialized data
    elif path == "/login":
        session.regenerate()
        session["user"] = query["user"]
    elif path == "/logout":
        session.invalidate()
    elif path == "/clear":
        session.clear()
    elif path == "/bad":
        session["when"] = {1, 2}
    body = b"plain" if path in ("/plain", "/bad") else json.dumps(
        {"data": dict(session), "id": session.sid}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def make(store: Any = None, app: Any = session_app, **options: Any
         ) -> tuple[webtest.TestApp, Any]:
    store = CountingStore() if store is None else store
    wrapped = SessionMiddleware(validator(app), SECRET, store, **options)
    return webtest.TestApp(validator(wrapped)), store


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return response.headers.getall("Set-Cookie")


def cookie_value(response: webtest.TestResponse, name: str = "session") -> str:
    for header in set_cookies(response):
        parsed = parse_cookie(header.split(";")[0])
        if name in parsed:
            return parsed[name]
    raise AssertionError(f"no {name} cookie in {set_cookies(response)}")


# -- lazy loading and saving only on change -------------------------------------------------------

def test_untouched_session_costs_nothing() -> None:
    client, store = make()
    client.get("/set?user=alice")
    store.calls.clear()
    response = client.get("/plain")
    assert response.text == "plain"
    assert store.calls == []
    assert set_cookies(response) == []
    assert "Vary" not in response.headers


def test_new_session_saved_with_secure_default_cookie() -> None:
    client, store = make()
    response = client.get("/set?user=alice")
    assert store.ops() == ["save"]
    [header] = set_cookies(response)
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "SameSite=Lax" in header and "Path=/" in header and "Max-Age=1209600" in header
    assert "Secure" not in header  # plain http
    assert "Cookie" in response.headers["Vary"]
    assert client.get("/get").json["data"] == {"user": "alice"}


def test_vary_gets_cookie_even_when_another_token_contains_the_word() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[keys.SESSION]["user"] = "alice"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Vary", "X-Cookie-Consent")])
        return [b"hi"]

    client, _ = make(app=app)
    vary = client.get("/").headers["Vary"]
    assert "cookie" in {token.strip().lower() for token in vary.split(",")}
    assert "X-Cookie-Consent" in vary


def test_reading_does_not_write() -> None:
    client, store = make()
    client.get("/set?user=alice")
    store.calls.clear()
    response = client.get("/get")
    assert response.json["data"] == {"user": "alice"}
    assert store.ops() == ["load"]
    assert set_cookies(response) == []


def test_empty_new_session_is_never_stored() -> None:
    client, store = make()
    response = client.get("/get")
    assert store.calls == []  # no cookie: nothing to load, nothing to save
    assert set_cookies(response) == []
    assert len(store) == 0


def test_nested_change_is_saved() -> None:
    client, store = make()
    client.get("/append?v=a")
    client.get("/append?v=b")
    assert client.get("/get").json["data"] == {"items": ["a", "b"]}


def test_same_value_written_again_is_not_a_change() -> None:
    client, store = make()
    client.get("/set?user=alice")
    store.calls.clear()
    client.get("/set?user=alice")
    # explicit assignment marks the session modified: saved again (cheap, and predictable)
    assert store.ops() == ["load", "save"]


def test_sliding_expiry_is_refreshed_by_a_touch_not_a_rewrite() -> None:
    client, store = make(refresh_interval=0)
    client.get("/set?user=alice")
    store.calls.clear()
    response = client.get("/get")
    assert store.ops() == ["load", "touch"]
    assert "Max-Age=1209600" in set_cookies(response)[0]


def test_no_refresh_when_not_sliding() -> None:
    client, store = make(sliding=False, refresh_interval=0)
    client.get("/set?user=alice")
    store.calls.clear()
    assert set_cookies(client.get("/get")) == []
    assert store.ops() == ["load"]


def test_writes_do_not_extend_an_absolute_lifetime() -> None:
    client, store = make(sliding=False)
    client.get("/set?user=alice")
    [sid] = list(store._data)
    data, _ = store._data[sid]
    ends = time.time() + 100  # as if the session were ~14 days old: 100 s left
    store._data[sid] = (data, ends)
    client.get("/set?user=bob")
    assert client.get("/get").json["data"] == {"user": "bob"}
    assert store._data[sid][1] <= ends + 1  # rewritten, but it still ends when it ended


# -- ids: forged, unknown, misshapen -----------------------------------------------------------

def _forged_cookie(client: webtest.TestApp, value: str) -> None:
    client.set_cookie("session", value)


@pytest.mark.parametrize("value", [
    "attacker-chosen-id",
    KeyRing(SECRET).sign("short", salt="microweb.session:session"),  # signed, wrong shape
    KeyRing(SECRET).sign("A" * 43, salt="microweb.session:session"),  # unknown to the store
    KeyRing("other-secret").sign("B" * 43, salt="microweb.session:session"),
    KeyRing(SECRET).sign("C" * 43, salt="microweb.session:other"),
])
def test_bad_ids_start_a_new_session_and_are_never_echoed(value: str) -> None:
    client, store = make()
    _forged_cookie(client, value)
    response = client.get("/get")
    assert response.json == {"data": {}, "id": None}
    assert all(op != "save" for op in store.ops())  # no store write for a bad id
    assert value not in response.headers.get("Set-Cookie", "")
    response = client.get("/set?user=mallory")
    new_sid = response.json["id"]
    assert new_sid not in value and len(new_sid) == 43
    assert value not in cookie_value(response)


def test_ids_are_long_and_random() -> None:
    ids = set()
    for _ in range(20):
        client, _ = make()
        ids.add(client.get("/set?x=1").json["id"])
    assert len(ids) == 20 and all(len(i) == 43 for i in ids)


# -- regenerate / invalidate / signals -----------------------------------------------------------

def test_regenerate_at_login_changes_id_keeps_data_and_drops_old_id() -> None:
    client, store = make()
    before = client.get("/set?cart=3").json["id"]
    response = client.get("/login?user=alice")
    after = response.json["id"]
    assert after != before
    assert response.json["data"] == {"cart": "3", "user": "alice"}
    assert store.load(before) is None and store.load(after) is not None
    assert client.get("/get").json["data"] == {"cart": "3", "user": "alice"}


def test_fixation_a_planted_valid_id_is_replaced_at_login() -> None:
    attacker, store = make()
    planted_cookie = cookie_value(attacker.get("/set?x=1"))
    victim = webtest.TestApp(validator(SessionMiddleware(session_app, SECRET, store)))
    victim.set_cookie("session", planted_cookie)
    victim.get("/login?user=victim")
    attacker_view = attacker.get("/get").json
    assert attacker_view == {"data": {}, "id": None}  # the planted id is gone


def test_invalidate_deletes_and_expires_cookie() -> None:
    client, store = make()
    sid = client.get("/set?user=alice").json["id"]
    response = client.get("/logout")
    assert store.load(sid) is None
    [header] = set_cookies(response)
    assert header.startswith("session=;") and "Max-Age=0" in header
    assert client.get("/get").json["data"] == {}


def test_signals_created_and_destroyed() -> None:
    created: list[Any] = []
    destroyed: list[Any] = []

    def on_created(sender: Session, environ: dict[str, Any]) -> None:
        created.append((sender.sid, environ["PATH_INFO"]))

    def on_destroyed(sender: Session, environ: dict[str, Any]) -> None:
        destroyed.append(environ["PATH_INFO"])

    signals.session_created.connect(on_created)
    signals.session_destroyed.connect(on_destroyed)
    try:
        client, _ = make()
        sid = client.get("/set?user=alice").json["id"]
        client.get("/set?user=bob")
        client.get("/logout")
    finally:
        signals.session_created.disconnect(on_created)
        signals.session_destroyed.disconnect(on_destroyed)
    assert created == [(sid, "/set")]
    assert destroyed == ["/logout"]


def test_clear_removes_the_stored_session() -> None:
    client, store = make()
    sid = client.get("/set?user=alice").json["id"]
    response = client.get("/clear")
    assert store.load(sid) is None
    assert "Max-Age=0" in set_cookies(response)[0]


# -- cookie settings and keys ------------------------------------------------------------------

def test_cookie_settings() -> None:
    client, _ = make(cookie_name="sid", domain="example.com", path="/app", samesite="Strict",
                     secure=True, permanent=False)
    client.extra_environ["HTTP_HOST"] = "example.com"
    [header] = set_cookies(client.get("/set?user=alice"))
    assert header.startswith("sid=")
    for part in ("Domain=example.com", "Path=/app", "SameSite=Strict", "Secure", "HttpOnly"):
        assert part in header
    assert "Max-Age" not in header and "Expires" not in header


def test_secure_follows_https_by_default() -> None:
    client, _ = make()
    client.extra_environ["wsgi.url_scheme"] = "https"
    assert "Secure" in set_cookies(client.get("/set?user=alice"))[0]


def test_key_rotation_keeps_users_logged_in() -> None:
    store = MemoryStore()
    old = webtest.TestApp(SessionMiddleware(session_app, "old-key", store))
    cookie = cookie_value(old.get("/set?user=alice"))
    rotated = webtest.TestApp(SessionMiddleware(session_app, ["new-key", "old-key"], store))
    rotated.set_cookie("session", cookie)
    assert rotated.get("/get").json["data"] == {"user": "alice"}
    dropped = webtest.TestApp(SessionMiddleware(session_app, "new-key", store))
    dropped.set_cookie("session", cookie)
    assert dropped.get("/get").json["data"] == {}


def test_secret_forms_and_validation() -> None:
    for secret in ("s", ["a", "b"], {1: "a", 2: "b"}, KeyRing("k")):
        SessionMiddleware(session_app, secret)
    with pytest.raises(ValueError):
        SessionMiddleware(session_app, "")
    with pytest.raises(ValueError):
        SessionMiddleware(session_app, "s", samesite="sometimes")
    with pytest.raises(ValueError):
        SessionMiddleware(session_app, "s", max_age=0)


def test_expired_cookie_signature_is_a_new_session() -> None:
    store = MemoryStore()
    client = webtest.TestApp(SessionMiddleware(session_app, SECRET, store, max_age=1))
    sid = client.get("/set?user=alice").json["id"]
    store.save(sid, b'{"user":"alice"}', 3600)  # the store would still have it
    import time as _time

    _time.sleep(2.1)
    assert client.get("/get").json["data"] == {}


# -- serializers --------------------------------------------------------------------------------

def test_non_json_value_gives_500_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    client, store = make()
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        response = client.get("/bad", status=500)
    assert b"session could not be saved" in response.body
    assert any("could not be saved" in r.getMessage() for r in caplog.records)
    assert len(store) == 0


class TaggedSerializer(JSONSerializer):
    """A pluggable serializer: keeps sets as tagged lists."""

    def dumps(self, data: dict[str, Any]) -> bytes:
        return super().dumps({k: {"__set__": sorted(v)} if isinstance(v, set) else v
                              for k, v in data.items()})

    def loads(self, raw: bytes) -> dict[str, Any]:
        return {k: set(v["__set__"]) if isinstance(v, dict) and "__set__" in v else v
                for k, v in super().loads(raw).items()}


def test_pluggable_serializer() -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        session = environ[keys.SESSION]
        if environ["PATH_INFO"] == "/set":
            session["tags"] = {"b", "a"}
        else:
            seen.append(session["tags"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client, _ = make(app=app, serializer=TaggedSerializer())
    client.get("/set")
    client.get("/get")
    assert seen == [{"a", "b"}]


def test_unreadable_stored_session_starts_fresh(caplog: pytest.LogCaptureFixture) -> None:
    client, store = make()
    sid = client.get("/set?user=alice").json["id"]
    store.save(sid, b"\x80not json", 3600)
    with caplog.at_level(logging.WARNING, "middleware.sessions"):
        assert client.get("/get").json == {"data": {}, "id": None}
    assert any("unreadable" in r.getMessage() for r in caplog.records)


# -- cookie store -------------------------------------------------------------------------------

def test_cookie_store_round_trip_and_tampering() -> None:
    client, _ = make(store=CookieStore())
    response = client.get("/set?user=alice")
    value = cookie_value(response)
    assert client.get("/get").json["data"] == {"user": "alice"}
    tampered = webtest.TestApp(SessionMiddleware(session_app, SECRET, CookieStore()))
    tampered.set_cookie("session", value[:-6] + "AAAAAA")
    assert tampered.get("/get").json["data"] == {}
    forged = webtest.TestApp(SessionMiddleware(session_app, "other", CookieStore()))
    forged.set_cookie("session", value)
    assert forged.get("/get").json["data"] == {}


def test_cookie_store_sliding_refresh_waits_for_refresh_interval() -> None:
    client, _ = make(store=CookieStore())  # sliding, refresh_interval=60
    client.get("/set?user=alice")
    reading = client.get("/get")
    assert reading.json["data"] == {"user": "alice"}
    assert set_cookies(reading) == []  # signed a moment ago: no new cookie yet
    eager, _ = make(store=CookieStore(), refresh_interval=0)
    eager.get("/set?user=alice")
    assert len(set_cookies(eager.get("/get"))) == 1  # refreshed on every read when asked


def test_cookie_store_compresses() -> None:
    client, _ = make(store=CookieStore())
    response = client.get("/set?a=" + "x" * 6000)
    assert len(cookie_value(response)) < 500
    assert client.get("/get").json["data"] == {"a": "x" * 6000}


def test_cookie_store_logout_expires_cookie() -> None:
    client, _ = make(store=CookieStore())
    client.get("/set?user=alice")
    assert "Max-Age=0" in set_cookies(client.get("/logout"))[0]
    assert client.get("/get").json["data"] == {}


def test_cookie_store_too_large_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make(store=CookieStore())
    big = secrets.token_urlsafe(1800)  # barely compressible
    client.get(f"/set?a={big}")  # fits
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        response = client.get(f"/set?b={secrets.token_urlsafe(1800)}", status=500)
    assert "Set-Cookie" not in response.headers
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "4093-byte browser limit" in messages and "server-side store" in messages
    assert client.get("/get").json["data"] == {"a": big}  # the old cookie still works


# -- app kinds ----------------------------------------------------------------------------------

def flask_session_app() -> flask.Flask:
    app = flask.Flask("sessions")

    @app.route("/login", methods=["POST"])
    def login() -> str:
        session = flask.request.environ[keys.SESSION]
        session.regenerate()
        session["user"] = flask.request.form["user"]
        return "welcome"

    @app.route("/me")
    def me() -> flask.Response:
        return flask.jsonify(user=flask.request.environ[keys.SESSION].get("user"))

    @app.route("/logout", methods=["POST"])
    def logout() -> str:
        flask.request.environ[keys.SESSION].invalidate()
        return "bye"

    return app


def test_around_flask() -> None:
    store = MemoryStore()
    client = webtest.TestApp(validator(SessionMiddleware(flask_session_app(), SECRET, store)))
    assert client.get("/me").json == {"user": None}
    client.post("/login", {"user": "alice"})
    assert client.get("/me").json == {"user": "alice"}
    assert len(store) == 1
    client.post("/logout")
    assert client.get("/me").json == {"user": None}
    assert len(store) == 0


def test_generator_app_starting_response_late() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        environ[keys.SESSION]["n"] = environ[keys.SESSION].get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield str(environ[keys.SESSION]["n"]).encode()
        yield b"!"

    client, _ = make(app=app)
    assert client.get("/").text == "1!"
    assert client.get("/").text == "2!"


def test_change_after_response_started_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        session = environ[keys.SESSION]
        session["a"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"streaming"
        session["b"] = 2

    client, _ = make(app=app)
    with caplog.at_level(logging.WARNING, "middleware.sessions"):
        client.get("/")
    assert any("after the response started" in r.getMessage() for r in caplog.records)


def test_multiprocess_memory_store_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make(store=MemoryStore())
    client.extra_environ["wsgi.multiprocess"] = True
    with caplog.at_level(logging.WARNING, "middleware.sessions"):
        client.get("/plain")
        client.get("/plain")
    warnings = [r for r in caplog.records if "multi-process" in r.getMessage()]
    assert len(warnings) == 1


def test_provides_session_key_for_compose() -> None:
    assert keys.SESSION in SessionMiddleware.provides
    assert "MemoryStore" in repr(SessionMiddleware(session_app, SECRET))
    assert SECRET not in repr(SessionMiddleware(session_app, SECRET))


def test_response_restarted_with_exc_info_commits_once() -> None:
    import sys

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[keys.SESSION]["user"] = "alice"
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"error page"]

    client, store = make(app=app)
    response = client.get("/", status=500)
    assert store.ops() == ["save"]
    assert len(set_cookies(response)) == 1


def _data_editor(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Edits ``session.data`` directly (no mapping API, so ``modified`` stays False)."""
    session: Session = environ[keys.SESSION]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if "set" in query:
        session["n"], session["flag"] = 1, "x"
    elif "int_to_bool" in query:
        session.data["n"] = True  # equal to 1 in Python, but "true" in JSON
    elif "drop" in query:
        del session.data["flag"]
    body = json.dumps(session.data).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize(("edit", "expected"), [
    ("int_to_bool", {"n": True, "flag": "x"}), ("drop", {"n": 1})])
def test_direct_edits_of_plain_values_are_saved(edit: str, expected: dict[str, Any]) -> None:
    client, store = make(app=_data_editor)
    client.get("/?set=1")
    store.calls.clear()
    client.get(f"/?{edit}=1")
    assert store.ops() == ["load", "save"]
    assert client.get("/").json == expected


def test_reading_plain_values_neither_writes_nor_serializes() -> None:
    class Counting(JSONSerializer):
        dumped = 0

        def dumps(self, data: dict[str, Any]) -> bytes:
            Counting.dumped += 1
            return super().dumps(data)

    client, store = make(app=_data_editor, serializer=Counting())
    client.get("/?set=1")
    store.calls.clear()
    before = Counting.dumped
    assert client.get("/").json == {"n": 1, "flag": "x"}
    assert store.ops() == ["load"] and Counting.dumped == before
