"""In-process benchmark: microweb's full RequestHandler path against raw WSGI and its peers.

Every framework is called in this one process with a prepared environ (no sockets), so the
numbers measure the framework's own per-request work. Peers: raw WSGI, Falcon, Bottle, Flask
and Tornado (driven through ``tornado.web.Application(request)`` with a stub connection on a
running asyncio loop, which is what its HTTP server does after parsing).

    python -m benchmarks.inprocess [--quick] [--only hello,cookies]

Prints CPU microseconds per request (best of several interleaved rounds), then each peer's
time divided by microweb's (above 1: microweb is faster), then microweb behind the whole
middleware stack against bare Flask, then how routing scales from 10 to 1,000 routes, then
each performance target as met or not met, then what connecting signal receivers costs.
``main(argv)`` is what ``python -m benchmarks inprocess`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from benchmarks import _timing
from benchmarks._timing import best_of, calibrate, timer

SECRET = "benchmark-secret-" + "x" * 24
HELLO = b"Hello, world!"
FORM_BODY = b"name=alice&email=alice%40example.com&age=30&city=Paris&bio=hello+world"
COOKIES = "theme=dark; lang=en; tz=UTC; cart=3; visitor=abc123"


@dataclass
class Scenario:
    name: str
    title: str
    path: str
    method: str = "GET"
    query: str = ""
    body: bytes = b""
    content_type: str = ""
    cookie: str = ""
    routes: int = 0  # for the routing scenarios: how many routes the app has
    expect: bytes = b""  # a fragment every framework's body must contain
    extra: dict[str, str] = field(default_factory=dict)


SCENARIOS = [
    Scenario("hello", "hello", "/", expect=HELLO),
    Scenario("params", "route params + JSON", "/users/42/posts/hello-world", query="verbose=1",
             expect=b"hello-world"),
    Scenario("form", "urlencoded form, read 2 of 5 fields", "/form", method="POST",
             body=FORM_BODY, content_type="application/x-www-form-urlencoded",
             expect=b"alice <alice@example.com>"),
    Scenario("cookies", "5 cookies in, 1 signed cookie out", "/cookies", cookie=COOKIES,
             expect=b"dark"),
    Scenario("routes100", "100 routes, last one hit", "/r99/7", routes=100, expect=b"99:7"),
    Scenario("routes10", "10 routes, last one hit", "/r9/7", routes=10, expect=b"9:7"),
    Scenario("routes1000", "1,000 routes, last one hit", "/r999/7", routes=1000,
             expect=b"999:7"),
]


def base_environ(sc: Scenario) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": sc.method, "SCRIPT_NAME": "", "PATH_INFO": sc.path,
        "QUERY_STRING": sc.query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0", "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if sc.body:
        env["CONTENT_LENGTH"] = str(len(sc.body))
        env["CONTENT_TYPE"] = sc.content_type
    if sc.cookie:
        env["HTTP_COOKIE"] = sc.cookie
    return env


def wsgi_caller(app: Callable[..., Any], sc: Scenario) -> Callable[[], bytes]:
    """One request of scenario ``sc`` against ``app`` (see benchmarks._timing.wsgi_caller)."""
    return _timing.wsgi_caller(app, base_environ(sc), sc.body or None)


# -- raw WSGI ---------------------------------------------------------------------------------
def raw_app(sc: Scenario) -> Callable[..., Any]:
    text = [("Content-Type", "text/plain; charset=utf-8")]
    if sc.routes:
        table = [(re.compile(rf"/r{i}/([^/]+)$"), i) for i in range(sc.routes)]

        def routed(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            path = environ["PATH_INFO"]
            for regex, i in table:
                m = regex.match(path)
                if m:
                    start_response("200 OK", text)
                    return [f"{i}:{m.group(1)}".encode()]
            start_response("404 Not Found", text)
            return [b"not found"]
        return routed
    params = re.compile(r"/users/([0-9]+)/posts/([^/]+)$")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/":
            start_response("200 OK", text)
            return [HELLO]
        m = params.match(path)
        if m:
            q = parse_qs(environ["QUERY_STRING"])
            body = json.dumps({"user": m.group(1), "post": m.group(2),
                               "verbose": q.get("verbose", [""])[0]}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == "/form":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(environ["wsgi.input"].read(size).decode())
            start_response("200 OK", text)
            return [f"{form['name'][0]} <{form['email'][0]}>".encode()]
        if path == "/cookies":
            jar = dict(p.strip().split("=", 1) for p in environ["HTTP_COOKIE"].split(";"))
            value = "user-42|" + str(int(time.time()))
            sig = hmac.new(SECRET.encode(), value.encode(), hashlib.sha256).hexdigest()
            start_response("200 OK", text + [("Set-Cookie", f"sid={value}|{sig}; Path=/")])
            return [jar["theme"].encode()]
        start_response("404 Not Found", text)
        return [b"not found"]
    return app


# -- microweb ---------------------------------------------------------------------------------
def microweb_app(sc: Scenario, base: type | None = None) -> Callable[..., Any]:
    import microweb as web

    Base: Any = base or web.RequestHandler

    class Hello(Base):
        def get(self) -> None:
            self.write(HELLO)

    class Params(Base):
        def get(self, user: str, post: str) -> None:
            self.write({"user": user, "post": post, "verbose": self.get_argument("verbose", "")})

    class Form(Base):
        def post(self) -> None:
            self.write(f"{self.get_body_argument('name')} <{self.get_body_argument('email')}>")

    class Cookies(Base):
        def get(self) -> None:
            self.set_secure_cookie("sid", "user-42")
            self.write(self.get_cookie("theme") or "")

    class Route(Base):
        def initialize(self, i: int) -> None:
            self.i = i

        def get(self, arg: str) -> None:
            self.write(f"{self.i}:{arg}")

    if sc.routes:
        return web.Application([(rf"/r{i}/([^/]+)", Route, {"i": i}) for i in range(sc.routes)])
    return web.Application([
        (r"/", Hello), (r"/users/([0-9]+)/posts/([^/]+)", Params), (r"/form", Form),
        (r"/cookies", Cookies),
    ], cookie_secret=SECRET)


def microweb_stack_caller(sc: Scenario) -> Callable[[], bytes]:
    """microweb behind the whole middleware stack; every handler reads the SQLite session.

    Proxy, access log (to a logger nobody listens to), gzip, signed cookies, sessions in SQLite
    and XSRF. A first request creates the session and the XSRF cookie the measured ones carry.
    """
    import logging
    import tempfile

    import microweb as web
    from middleware import (
        AccessLogMiddleware,
        GzipMiddleware,
        ProxyMiddleware,
        SignedCookieMiddleware,
        compose,
    )
    from middleware.sessions import SessionMiddleware, SQLiteStore
    from middleware.xsrf import XSRFMiddleware

    class SessionReader(web.RequestHandler):
        def prepare(self) -> None:
            self.user = self.session.get("user")

    class Prime(web.RequestHandler):
        def get(self) -> None:
            self.session["user"] = "bench"
            self.write(self.request.environ["microweb.xsrf_token"])

    quiet = logging.getLogger("benchmarks.null")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    app: Any = microweb_app(sc, SessionReader)
    app.router.add_default([(r"/_prime", Prime)])
    db = tempfile.NamedTemporaryFile(prefix="bench-sessions-", suffix=".sqlite3", delete=False)
    stack = compose(
        app,
        ProxyMiddleware.configure(trusted=["127.0.0.1/32"]),
        AccessLogMiddleware.configure(logger=quiet),
        GzipMiddleware,
        SignedCookieMiddleware.configure(secret=SECRET, names=["prefs"]),
        SessionMiddleware.configure(secret=SECRET, store=SQLiteStore(db.name)),
        XSRFMiddleware,
    )
    cookies, token = _prime(stack)
    primed = Scenario(**{**sc.__dict__, "cookie": "; ".join(filter(None, [sc.cookie, cookies]))})
    if sc.body:
        primed.body = sc.body + b"&_xsrf=" + token.encode()
    return wsgi_caller(stack, primed)


def _prime(stack: Callable[..., Any]) -> tuple[str, str]:
    """Run the priming request; returns its cookies (as a Cookie header) and the XSRF token."""
    from http.cookies import SimpleCookie

    seen: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.extend(headers)

    environ = base_environ(Scenario("prime", "", "/_prime"))
    token = b"".join(stack(environ, start_response)).decode()
    jar: SimpleCookie = SimpleCookie()
    for name, value in seen:
        if name.lower() == "set-cookie":
            jar.load(value)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items()), token


# -- Falcon -----------------------------------------------------------------------------------
def falcon_app(sc: Scenario) -> Callable[..., Any]:
    import falcon
    from itsdangerous import TimestampSigner

    signer = TimestampSigner(SECRET)
    app = falcon.App()

    class Route:
        def __init__(self, i: int) -> None:
            self.i = i

        def on_get(self, req: Any, resp: Any, id: str) -> None:
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = f"{self.i}:{id}"

    if sc.routes:
        for i in range(sc.routes):
            app.add_route(f"/r{i}/{{id}}", Route(i))
        return app

    class Hello:
        def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = falcon.MEDIA_TEXT
            resp.data = HELLO

    class Params:
        def on_get(self, req: Any, resp: Any, user: str, post: str) -> None:
            resp.media = {"user": user, "post": post,
                          "verbose": req.get_param("verbose", default="")}

    class Form:
        def on_post(self, req: Any, resp: Any) -> None:
            form = req.get_media()
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = f"{form['name']} <{form['email']}>"

    class Cookies:
        def on_get(self, req: Any, resp: Any) -> None:
            resp.set_cookie("sid", signer.sign("user-42").decode(), secure=False)
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = req.cookies.get("theme", "")

    app.add_route("/", Hello())
    app.add_route("/users/{user}/posts/{post}", Params())
    app.add_route("/form", Form())
    app.add_route("/cookies", Cookies())
    return app


# -- Bottle -----------------------------------------------------------------------------------
def bottle_app(sc: Scenario) -> Callable[..., Any]:
    import bottle

    app = bottle.Bottle()
    if sc.routes:
        for i in range(sc.routes):
            app.route(f"/r{i}/<arg>", callback=lambda arg, i=i: f"{i}:{arg}")
        return app

    @app.get("/")
    def hello() -> bytes:
        return HELLO

    @app.get("/users/<user:int>/posts/<post>")
    def params(user: int, post: str) -> dict[str, Any]:
        return {"user": str(user), "post": post, "verbose": bottle.request.query.verbose}

    @app.post("/form")
    def form() -> str:
        forms = bottle.request.forms
        return f"{forms.name} <{forms.email}>"

    @app.get("/cookies")
    def cookies() -> str:
        bottle.response.set_cookie("sid", "user-42", secret=SECRET)
        return bottle.request.get_cookie("theme") or ""

    return app


# -- Flask ------------------------------------------------------------------------------------
def flask_app(sc: Scenario) -> Callable[..., Any]:
    import flask

    app = flask.Flask("bench")
    if sc.cookie:  # a secret key makes Flask open the session on every request
        app.secret_key = SECRET
    if sc.routes:
        for i in range(sc.routes):
            app.add_url_rule(f"/r{i}/<arg>", f"r{i}", lambda arg, i=i: f"{i}:{arg}")
        return app

    @app.get("/")
    def hello() -> bytes:
        return HELLO

    @app.get("/users/<int:user>/posts/<post>")
    def params(user: int, post: str) -> dict[str, Any]:
        return {"user": str(user), "post": post,
                "verbose": flask.request.args.get("verbose", "")}

    @app.post("/form")
    def form() -> str:
        return f"{flask.request.form['name']} <{flask.request.form['email']}>"

    @app.get("/cookies")
    def cookies() -> str:
        flask.session["sid"] = "user-42"
        return flask.request.cookies.get("theme", "")

    return app


# -- Tornado ----------------------------------------------------------------------------------
class _TornadoConnection:
    """What tornado.web needs from an HTTP/1 connection; collects the response bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks: list[bytes] = []
        self.done = loop.create_future()
        self._loop = loop

    def set_close_callback(self, callback: Any) -> None:
        pass

    def _ready(self) -> asyncio.Future[None]:
        future = self._loop.create_future()
        future.set_result(None)
        return future

    def write_headers(self, start_line: Any, headers: Any, chunk: bytes | None = None) -> Any:
        if chunk:
            self.chunks.append(chunk)
        return self._ready()

    def write(self, chunk: bytes) -> Any:
        self.chunks.append(chunk)
        return self._ready()

    def finish(self) -> None:
        self.done.set_result(None)


def tornado_caller(sc: Scenario) -> Callable[[], bytes]:
    import tornado.web
    from tornado.httputil import HTTPHeaders, HTTPServerRequest

    class Hello(tornado.web.RequestHandler):
        def get(self) -> None:
            self.write(HELLO)

    class Params(tornado.web.RequestHandler):
        def get(self, user: str, post: str) -> None:
            self.write({"user": user, "post": post, "verbose": self.get_argument("verbose", "")})

    class Form(tornado.web.RequestHandler):
        def post(self) -> None:
            self.write(f"{self.get_body_argument('name')} <{self.get_body_argument('email')}>")

    class Cookies(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_signed_cookie("sid", "user-42")
            self.write(self.get_cookie("theme") or "")

    class Route(tornado.web.RequestHandler):
        def initialize(self, i: int) -> None:
            self.i = i

        def get(self, arg: str) -> None:
            self.write(f"{self.i}:{arg}")

    if sc.routes:
        rules: list[Any] = [(rf"/r{i}/([^/]+)", Route, {"i": i}) for i in range(sc.routes)]
    else:
        rules = [(r"/", Hello), (r"/users/([0-9]+)/posts/([^/]+)", Params), (r"/form", Form),
                 (r"/cookies", Cookies)]
    app = tornado.web.Application(rules, cookie_secret=SECRET, log_function=lambda h: None)
    headers = {"Host": "127.0.0.1:8000", "User-Agent": "bench/1.0", "Accept": "*/*"}
    if sc.body:
        headers["Content-Type"] = sc.content_type
        headers["Content-Length"] = str(len(sc.body))
    if sc.cookie:
        headers["Cookie"] = sc.cookie
    uri = sc.path + ("?" + sc.query if sc.query else "")
    loop = asyncio.new_event_loop()

    async def one_async() -> bytes:
        conn = _TornadoConnection(loop)
        request = HTTPServerRequest(method=sc.method, uri=uri, version="HTTP/1.1",
                                    headers=HTTPHeaders(headers), body=sc.body,
                                    host="127.0.0.1:8000", connection=conn)
        request._parse_body()  # what tornado's HTTP server does once the body is read
        app(request)
        await conn.done
        return b"".join(conn.chunks)

    def one() -> bytes:
        return loop.run_until_complete(one_async())

    one.batch = lambda n: loop.run_until_complete(_batch(one_async, n))  # type: ignore[attr-defined]
    return one


async def _batch(fn: Callable[[], Any], n: int) -> None:
    for _ in range(n):
        await fn()


# -- measuring --------------------------------------------------------------------------------
PEERS: dict[str, Callable[[Scenario], Callable[[], bytes]]] = {
    "raw WSGI": lambda sc: wsgi_caller(raw_app(sc), sc),
    "microweb": lambda sc: wsgi_caller(microweb_app(sc), sc),
    "mw+stack": microweb_stack_caller,
    "Falcon": lambda sc: wsgi_caller(falcon_app(sc), sc),
    "Bottle": lambda sc: wsgi_caller(bottle_app(sc), sc),
    "Flask": lambda sc: wsgi_caller(flask_app(sc), sc),
    "Tornado": tornado_caller,
}


def run_scenario(sc: Scenario, rounds: int, round_time: float) -> dict[str, float]:
    """Best µs/request of every peer; rounds alternate between peers so load noise is shared."""
    timers: dict[str, tuple[Callable[[int], float], int]] = {}
    for peer, build in PEERS.items():
        one = build(sc)
        body = one()
        if sc.expect not in body:
            raise AssertionError(f"{peer} answered {body[:200]!r} for {sc.name}")
        run = timer(one)
        timers[peer] = (run, calibrate(run, round_time, start=50))
    return best_of(timers, rounds)


def signal_cost(rounds: int, round_time: float) -> tuple[float, float]:
    """microweb's hello without and with receivers on request_started / request_finished."""
    from microweb import signals

    sc = SCENARIOS[0]
    one = wsgi_caller(microweb_app(sc), sc)
    run = timer(one)
    n = calibrate(run, round_time, start=50)

    def receiver(sender: Any, **kwargs: Any) -> None:
        pass

    quiet = min(run(n) for _ in range(rounds)) / n * 1e6
    with signals.request_started.connected_to(receiver), \
            signals.request_finished.connected_to(receiver):
        observed = min(run(n) for _ in range(rounds)) / n * 1e6
    return quiet, observed


def print_report(table: dict[str, dict[str, float]]) -> None:
    peers = list(PEERS)
    width = max(len(sc.title) for sc in SCENARIOS) + 2
    print("\nµs per request (lower is better)")
    print("scenario".ljust(width) + "".join(p.rjust(11) for p in peers))
    for sc in SCENARIOS:
        if sc.name in table:
            row = table[sc.name]
            print(sc.title.ljust(width) + "".join(f"{row[p]:11.2f}" for p in peers))
    print("\npeer time / microweb time (above 1.00: microweb is faster)")
    others = [p for p in peers if p != "microweb"]
    print("scenario".ljust(width) + "".join(p.rjust(11) for p in others))
    for sc in SCENARIOS:
        if sc.name in table:
            row = table[sc.name]
            print(sc.title.ljust(width)
                  + "".join(f"{row[p] / row['microweb']:11.2f}" for p in others))
    print("\nthe whole middleware stack (proxy, access log to a NullHandler, gzip, signed "
          "cookies,\nSQLite session read, XSRF) around microweb, against bare Flask "
          "(target: Flask / mw+stack above 1.00)")
    for sc in SCENARIOS:
        if sc.name in table:
            row = table[sc.name]
            print(f"  {sc.title.ljust(width)}{row['Flask'] / row['mw+stack']:6.2f}")
    if "routes10" in table and "routes1000" in table:
        print("\nrouting: last of 1,000 routes / last of 10 routes (target for microweb <= 1.5)")
        for p in peers:
            print(f"  {p:10} {table['routes1000'][p] / table['routes10'][p]:6.2f}")
    print_targets(table)


def print_targets(table: dict[str, dict[str, float]]) -> None:
    """The performance targets, each marked met or NOT met with its measured ratio."""
    print("\ntargets (microweb at or below Bottle, >= 5x faster than Flask and Tornado)")
    for sc in SCENARIOS:
        if sc.name not in table:
            continue
        row, mw = table[sc.name], table[sc.name]["microweb"]
        checks = [("Bottle", row["Bottle"] / mw, 1.0), ("Flask", row["Flask"] / mw, 5.0),
                  ("Tornado", row["Tornado"] / mw, 5.0)]
        verdicts = [f"{peer} {ratio:5.2f}x {'met' if ratio >= goal else 'NOT met'}"
                    for peer, ratio, goal in checks]
        print(f"  {sc.title:38} " + ", ".join(verdicts))
    if "routes10" in table and "routes1000" in table:
        scale = table["routes1000"]["microweb"] / table["routes10"]["microweb"]
        print(f"  {'routing 1,000 / 10':38} {scale:.2f} {'met' if scale <= 1.5 else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inprocess",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args(argv)
    rounds, round_time = (3, 0.05) if args.quick else (5, 0.2)
    wanted = set(filter(None, args.only.split(",")))
    warnings.simplefilter("ignore")  # peers' deprecation notices are not what we measure
    print(f"Python {sys.version.split()[0]}, best of {rounds} rounds of ~{round_time}s each")
    table: dict[str, dict[str, float]] = {}
    for sc in SCENARIOS:
        if wanted and sc.name not in wanted:
            continue
        table[sc.name] = run_scenario(sc, rounds, round_time)
        print(f"  {sc.title}: " + ", ".join(f"{p} {t:.2f}" for p, t in table[sc.name].items()),
              flush=True)
    print_report(table)
    if not wanted or "signals" in wanted:
        quiet, observed = signal_cost(rounds, round_time)
        print(f"\nsignals: hello {quiet:.2f} µs with no receivers, {observed:.2f} µs with "
              "receivers on request_started and request_finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
