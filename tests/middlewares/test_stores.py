"""The session stores against real backends: MemoryStore, an SQLite file, real redis-server
processes (one node, a three-node consistent-hash ring, a node stopped mid-run), and the
defined outcome of concurrent writes (last write wins)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
import redis
import webtest

from middleware import keys
from middleware.sessions import (
    MemoryStore,
    SessionMiddleware,
    SQLiteStore,
    Store,
    StoreUnavailable,
    new_session_id,
)
from middleware.sessions.stores.redis import RedisStore
from tests import support

SECRET = "store-tests"


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each real store; the Redis one on the shared test redis-server with its own prefix."""
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "sessions.db")
    else:
        port = request.getfixturevalue("redis_port")
        made = RedisStore(f"redis://127.0.0.1:{port}/0", prefix=f"t{uuid.uuid4().hex[:8]}:")
    try:
        yield made
    finally:
        made.close()


# -- the common contract -------------------------------------------------------------------------

def test_save_load_delete(store: Store) -> None:
    sid = new_session_id()
    assert store.load(sid) is None
    store.save(sid, b'{"a":1}', 60)
    data, expires = store.load(sid)  # type: ignore[misc]
    assert data == b'{"a":1}'
    assert time.time() + 50 < expires <= time.time() + 61
    store.save(sid, b'{"a":2}', 60)
    assert store.load(sid)[0] == b'{"a":2}'  # type: ignore[index]
    store.delete(sid)
    assert store.load(sid) is None
    store.delete(sid)  # deleting twice is fine


def test_expiry_and_touch(store: Store) -> None:
    short, kept = new_session_id(), new_session_id()
    store.save(short, b"{}", 1)
    store.save(kept, b"{}", 1)
    store.touch(kept, 60)
    time.sleep(1.3)
    assert store.load(short) is None
    assert store.load(kept) is not None


def _writer_app(barriers: dict[str, threading.Event]) -> Callable[..., Iterable[bytes]]:
    """/w?name=X: load, optionally wait for a signal, then write the whole session."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ[keys.SESSION]
        name = environ["QUERY_STRING"].split("=", 1)[1]
        session.get("seed")  # load now: both requests see the same stored state
        loaded = barriers.get(f"{name}-loaded")
        if loaded is not None:
            loaded.set()
        go = barriers.get(f"{name}-go")
        if go is not None:
            assert go.wait(10)
        session["writer"] = name
        session[f"only-{name}"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"written"]
    return app


def test_concurrent_writes_last_write_wins(store: Store) -> None:
    events = {k: threading.Event() for k in ("a-loaded", "a-go", "b-loaded")}
    app = SessionMiddleware(_writer_app(events), SECRET, store)
    client = webtest.TestApp(app)
    seed = webtest.TestApp(SessionMiddleware(_seed_app, SECRET, store))
    seed.get("/")
    client.cookiejar = seed.cookiejar
    results: dict[str, int] = {}

    def run(name: str) -> None:
        results[name] = client.get(f"/w?name={name}").status_int

    first = threading.Thread(target=run, args=("a",))
    first.start()
    assert events["a-loaded"].wait(10)   # A has read the session...
    run("b")                             # ...B reads, writes and finishes...
    events["a-go"].set()                 # ...then A writes: A's whole session wins
    first.join(10)
    assert results == {"a": 200, "b": 200}
    final = seed.get("/").json
    assert final == {"seed": 1, "writer": "a", "only-a": True}


def _seed_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = environ[keys.SESSION]
    session.setdefault("seed", 1)
    body = json.dumps(dict(session)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_concurrent_writers_never_corrupt(store: Store) -> None:
    """Two threads hammer one session: every request succeeds and the final state is exactly
    one writer's complete session."""
    app = SessionMiddleware(_writer_app({}), SECRET, store)
    seed = webtest.TestApp(SessionMiddleware(_seed_app, SECRET, store))
    seed.get("/")
    errors: list[BaseException] = []

    def hammer(name: str) -> None:
        client = webtest.TestApp(app)
        client.cookiejar = seed.cookiejar
        try:
            for _ in range(25):
                client.get(f"/w?name={name}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    final = seed.get("/").json
    writer = final["writer"]
    assert final in ({"seed": 1, "writer": writer, "only-a": True},
                     {"seed": 1, "writer": writer, "only-b": True},
                     {"seed": 1, "writer": writer, "only-a": True, "only-b": True})
    assert final.get(f"only-{writer}") is True


# -- MemoryStore ---------------------------------------------------------------------------------

def test_memory_store_lru_bound() -> None:
    store = MemoryStore(max_entries=3)
    ids = [new_session_id() for _ in range(4)]
    for sid in ids[:3]:
        store.save(sid, b"{}", 60)
    store.load(ids[0])  # recently used: kept
    store.save(ids[3], b"{}", 60)
    assert len(store) == 3
    assert store.load(ids[1]) is None
    assert all(store.load(s) is not None for s in (ids[0], ids[2], ids[3]))
    with pytest.raises(ValueError):
        MemoryStore(max_entries=0)


def test_memory_store_purge() -> None:
    store = MemoryStore()
    store.save("a" * 43, b"{}", 1)
    store.save("b" * 43, b"{}", 60)
    time.sleep(1.1)
    assert store.purge_expired() == 1 and len(store) == 1


# -- SQLiteStore ---------------------------------------------------------------------------------

def test_sqlite_file_is_wal_and_shared_between_store_objects(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    one, two = SQLiteStore(path), SQLiteStore(path)
    sid = new_session_id()
    one.save(sid, b'{"x":1}', 60)
    assert two.load(sid)[0] == b'{"x":1}'  # type: ignore[index]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    one.close()
    two.close()


def test_sqlite_expired_rows_purged_in_background(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", purge_interval=0.2)
    for _ in range(1200):  # more than one purge batch
        store.save(new_session_id(), b"{}", 1)
    live = new_session_id()
    store.save(live, b"{}", 60)
    time.sleep(1.3)
    store.load(live)  # a request notices the purge is due; the purge runs on its own thread
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
            if conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1:
                break
        time.sleep(0.1)
    with contextlib.closing(sqlite3.connect(tmp_path / "s.db")) as conn:
        assert conn.execute("SELECT id FROM sessions").fetchall() == [(live,)]
    store.close()


def test_sqlite_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                sid = new_session_id()
                store.save(sid, b'{"k":1}', 60)
                assert store.load(sid) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    store.close()


# -- a store that is down answers 503 with a log record naming it ------------------------------

def _session_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = environ[keys.SESSION]
    if environ["PATH_INFO"] == "/set":
        session["user"] = "alice"
    body = json.dumps(dict(session)).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _assert_503(response: webtest.TestResponse, caplog: pytest.LogCaptureFixture,
                name: str) -> None:
    assert response.status_int == 503
    assert b"session store is unavailable" in response.body
    assert response.headers["Retry-After"] == "5"
    assert "Set-Cookie" not in response.headers
    records = [r for r in caplog.records if r.name == "middleware.sessions"
               and r.levelno == logging.ERROR]
    assert records and name in records[-1].getMessage()


def test_sqlite_read_only_file_gives_503(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    path = tmp_path / "s.db"
    writable = SQLiteStore(path)
    writable.save(new_session_id(), b"{}", 60)  # the file and its table exist
    writable.close()
    store = SQLiteStore(f"file:{path}?mode=ro")
    client = webtest.TestApp(validator(SessionMiddleware(_session_app, SECRET, store)))
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        response = client.get("/set", status=503)
    _assert_503(response, caplog, "SQLiteStore")
    assert "readonly" in caplog.records[-1].getMessage()


def test_sqlite_locked_database_gives_503(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                          ) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, timeout=0.2)
    client = webtest.TestApp(validator(SessionMiddleware(_session_app, SECRET, store)))
    client.get("/set")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with caplog.at_level(logging.ERROR, "middleware.sessions"):
            response = client.get("/set", status=503)
        other.execute("ROLLBACK")
    _assert_503(response, caplog, "SQLiteStore")
    assert client.get("/").json == {"user": "alice"}  # and it recovers


def test_unwritable_directory_gives_503(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    store = SQLiteStore(tmp_path / "missing-dir" / "s.db")
    client = webtest.TestApp(validator(SessionMiddleware(_session_app, SECRET, store)))
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        _assert_503(client.get("/set", status=503), caplog, "missing-dir")


def test_store_failure_inside_flask_is_still_503(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import flask

    app = flask.Flask("down")

    @app.route("/")
    def index() -> str:
        return str(flask.request.environ[keys.SESSION].get("user"))

    path = tmp_path / "s.db"
    SQLiteStore(path).save(new_session_id(), b"{}", 60)
    good = webtest.TestApp(SessionMiddleware(_session_app, SECRET, SQLiteStore(path)))
    good.get("/set")
    path.unlink()
    (tmp_path / "s.db").mkdir()  # the file is gone: opening it now fails
    client = webtest.TestApp(validator(SessionMiddleware(app, SECRET, SQLiteStore(path))))
    client.cookiejar = good.cookiejar
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        _assert_503(client.get("/", status=503), caplog, "SQLiteStore")


# -- Redis: one node, a ring of three, a node lost mid-run ---------------------------------------

@pytest.mark.redis
def test_redis_ttl_is_set_server_side(redis_port: int) -> None:
    prefix = f"ttl{uuid.uuid4().hex[:6]}:"
    store = RedisStore(f"redis://127.0.0.1:{redis_port}/0", prefix=prefix)
    sid = new_session_id()
    store.save(sid, b"{}", 120)
    raw = redis.Redis(port=redis_port)
    assert 110 < raw.ttl(prefix + sid) <= 120
    store.touch(sid, 500)
    assert 490 < raw.ttl(prefix + sid) <= 500
    raw.close()
    store.close()


@contextlib.contextmanager
def _three_redis() -> Iterator[list[tuple[int, contextlib.ExitStack]]]:
    """Three real redis-servers, each stoppable on its own (close its ExitStack)."""
    stacks = [contextlib.ExitStack() for _ in range(3)]
    try:
        yield [(s.enter_context(support.redis_server()), s) for s in stacks]
    finally:
        for s in stacks:
            s.close()


def _count_keys(port: int) -> int:
    with contextlib.closing(redis.Redis(port=port)) as r:
        return int(r.dbsize())


@pytest.mark.redis
@pytest.mark.slow
def test_ring_spreads_sessions_and_adding_a_node_moves_about_a_third() -> None:
    with _three_redis() as servers:
        ports = [p for p, _ in servers]
        two = {"a": f"redis://127.0.0.1:{ports[0]}", "b": f"redis://127.0.0.1:{ports[1]}"}
        store = RedisStore(nodes=two)
        sids = [new_session_id() for _ in range(1500)]
        for sid in sids:
            store.save(sid, b'{"u":1}', 300)
        counts = [_count_keys(p) for p in ports[:2]]
        assert sum(counts) == 1500 and min(counts) > 500  # both nodes carry a fair share
        store.add_node("c", f"redis://127.0.0.1:{ports[2]}")
        moved = sum(store.load(sid) is None for sid in sids)
        # consistent hashing: only the share of the new node (1/3) moves; a modulo scheme
        # would move about 2/3
        fraction = moved / len(sids)
        assert 0.22 < fraction < 0.45, fraction
        assert all(store.node_for(sid) == "c" for sid in sids if store.load(sid) is None)
        store.close()


@pytest.mark.redis
def test_weighted_ring() -> None:
    with _three_redis() as servers:
        ports = [p for p, _ in servers]
        store = RedisStore(nodes={"small": f"redis://127.0.0.1:{ports[0]}",
                                  "big": (f"redis://127.0.0.1:{ports[1]}", 3)})
        for _ in range(800):
            store.save(new_session_id(), b"{}", 300)
        small, big = _count_keys(ports[0]), _count_keys(ports[1])
        assert small + big == 800 and big > 2 * small
        store.close()


@pytest.mark.redis
@pytest.mark.slow
def test_node_stopped_mid_run_gives_503_for_its_sessions_only(
        caplog: pytest.LogCaptureFixture) -> None:
    with _three_redis() as servers:
        nodes = {name: f"redis://127.0.0.1:{port}"
                 for name, (port, _) in zip("abc", servers, strict=True)}
        store = RedisStore(nodes=nodes, socket_timeout=1.0)
        app = SessionMiddleware(_session_app, SECRET, store)
        clients = []
        for _ in range(30):
            client = webtest.TestApp(validator(app))
            client.get("/set")
            clients.append(client)
        sid_of = {id(c): SessionMiddleware(_session_app, SECRET)._read_sid(
            c.cookies["session"]) for c in clients}
        on_a = [c for c in clients if store.node_for(sid_of[id(c)]) == "a"]
        others = [c for c in clients if c not in on_a]
        assert on_a and others
        servers[0][1].close()  # node "a" goes down mid-run
        with caplog.at_level(logging.ERROR, "middleware.sessions"):
            for client in on_a:
                _assert_503(client.get("/", status=503), caplog, "node a")
                _assert_503(client.get("/set", status=503), caplog, "RedisStore")
        for client in others:
            assert client.get("/").json == {"user": "alice"}
        store.close()


@pytest.mark.redis
def test_single_redis_stopped_mid_run_gives_503(caplog: pytest.LogCaptureFixture) -> None:
    stack = contextlib.ExitStack()
    with stack:
        port = stack.enter_context(support.redis_server())
        store = RedisStore(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)
        client = webtest.TestApp(validator(SessionMiddleware(_session_app, SECRET, store)))
        client.get("/set")
        assert client.get("/").json == {"user": "alice"}
        stack.close()
        with caplog.at_level(logging.ERROR, "middleware.sessions"):
            _assert_503(client.get("/", status=503), caplog, f"127.0.0.1:{port}")
        store.close()


def test_redis_password_never_reaches_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{support.free_port()}/0"
    store = RedisStore(url, socket_timeout=1.0)
    middleware = SessionMiddleware(_session_app, SECRET, store)
    assert "s3cret-pw" not in repr(store) and "s3cret-pw" not in repr(middleware)
    assert "127.0.0.1" in repr(store)
    client = webtest.TestApp(validator(middleware))
    with caplog.at_level(logging.ERROR, "middleware.sessions"):
        response = client.get("/set", status=503)
    assert caplog.records and "s3cret-pw" not in caplog.text
    assert b"s3cret-pw" not in response.body
    store.close()


def test_redis_store_arguments() -> None:
    with pytest.raises(ValueError):
        RedisStore()
    with pytest.raises(ValueError):
        RedisStore("redis://x", nodes={"a": "redis://y"})
    with pytest.raises(ValueError):
        RedisStore(nodes={})
    with pytest.raises(RuntimeError):
        RedisStore("redis://127.0.0.1:1").add_node("b", "redis://127.0.0.1:2")


def test_store_unavailable_is_a_503_http_exception() -> None:
    exc = StoreUnavailable("RedisStore(x)", "load", "connection refused")
    assert exc.code == 503 and "RedisStore(x)" in exc.description
