"""In-process benchmark of the middleware stack: each layer alone, the whole stack, bare Flask.

Every app is called in this one process with a prepared environ (no sockets), so the figures
are each layer's own per-request work around a trivial WSGI app. The full stack is the
recommended one, outermost first: Proxy (trusted hop, X-Forwarded-For/-Proto) -> AccessLog
(INFO records to a logger with only a NullHandler and ``propagate`` off, as a user who switched
the output off) -> IPBlacklist (a deny list) -> Gzip -> SignedCookies (one signed cookie in,
one signed cookie out) -> Session (SQLite file, an existing session read) -> XSRF (GET, the
token taken from the session and masked for the page). It is measured with a small body (below
Gzip's ``min_size``) and with a 2 KB body (compressed), against bare Flask's hello.
``AccessLog+fmt`` is the access log with a handler that formats every line. The ``form`` cases
POST a 5-field urlencoded form carrying the ``_xsrf`` field (XSRF alone, the whole stack)
against Flask reading two fields of the same form.

    python -m benchmarks.stack [--quick] [--only "bare WSGI,Flask hello,stack"]

Prints CPU microseconds per request (best of several interleaved rounds) and stack / Flask.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from benchmarks._timing import best_of, calibrate, timer
from benchmarks._timing import wsgi_caller as caller
from middleware import (
    AccessLogMiddleware,
    GzipMiddleware,
    IPBlacklistMiddleware,
    KeyRing,
    ProxyMiddleware,
    SessionMiddleware,
    SignedCookieMiddleware,
    SQLiteStore,
    XSRFMiddleware,
    compose,
    keys,
)
from middleware.signedcookies import SALT_PREFIX
from middleware.xsrf import SESSION_KEY, mask_xsrf_token, new_xsrf_token

SECRET = "benchmark-secret-" + "x" * 24
HELLO = b"Hello, world!"
BIG = b"".join(b"line %04d of a compressible page body\n" % i for i in range(54))[:2048]
COOKIES = "theme=dark; lang=en; tz=UTC; cart=3; visitor=abc123"
FORM = b"name=alice&email=alice%40example.com&age=30&city=Paris&bio=hello+world"
LOGGER = "benchmarks.stack.access"
FORMATTED_LOGGER = "benchmarks.stack.access_formatted"

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def base_environ(path: str = "/") -> dict[str, Any]:
    """A GET as a server behind a trusted proxy hands it over."""
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1", "HTTP_HOST": "example.com",
        "HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_USER_AGENT": "Mozilla/5.0 (bench)", "HTTP_ACCEPT": "*/*",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate", "HTTP_REFERER": "https://example.com/",
        "HTTP_COOKIE": COOKIES,
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def trivial_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Reads what the layers provide when they are there, sets one cookie, answers a body."""
    session = environ.get(keys.SESSION)
    if session is not None:
        session.get("user")
    environ.get(keys.XSRF_TOKEN)
    body = BIG if environ["PATH_INFO"] == "/big" else HELLO
    if environ["REQUEST_METHOD"] == "POST":  # the form: read it, answer two fields
        form = parse_qs(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])).decode())
        body = f"{form['name'][0]} <{form['email'][0]}>".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body))),
                              ("Set-Cookie", "prefs=compact; Path=/; HttpOnly")])
    return [body]


class _Formatting(logging.Handler):
    """A handler that builds every line (as a file or stream handler would) and drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


class Fixture:
    """The shared pieces: key ring, a SQLite session with its signed cookie, a quiet logger."""

    def __init__(self, workdir: Path) -> None:
        self.keyring = KeyRing(SECRET)
        self.store = SQLiteStore(workdir / "sessions.sqlite3")
        sid = "s" * 43
        self.token = token = new_xsrf_token()
        self.store.save(sid, b'{"user":"alice","%s":"%s"}' % (SESSION_KEY.encode(),
                                                             token.hex().encode()), 86400)
        self.session_cookie = self.keyring.sign(sid, salt="microweb.session:session")
        self.prefs_cookie = self.keyring.sign("wide", salt=SALT_PREFIX + "prefs")
        self.xsrf_cookie = mask_xsrf_token(token)
        logger = logging.getLogger(LOGGER)
        logger.handlers[:] = [logging.NullHandler()]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        formatted = logging.getLogger(FORMATTED_LOGGER)
        formatted.handlers[:] = [_Formatting()]
        formatted.propagate = False
        formatted.setLevel(logging.INFO)

    def cookies(self) -> str:
        return (f"{COOKIES}; session={self.session_cookie}; prefs={self.prefs_cookie}; "
                f"_xsrf={self.xsrf_cookie}")

    def layers(self) -> dict[str, object]:
        return {
            "Proxy": ProxyMiddleware.configure(trusted=["10.0.0.0/8"]),
            "AccessLog": AccessLogMiddleware.configure(logger=LOGGER),
            "IPBlacklist": IPBlacklistMiddleware.configure(deny=["203.0.113.0/24"]),
            "Gzip": GzipMiddleware,
            "SignedCookies": SignedCookieMiddleware.configure(secret=self.keyring,
                                                              names=["prefs"]),
            "Session": SessionMiddleware.configure(secret=self.keyring, store=self.store),
            "XSRF": XSRFMiddleware,
        }


def flask_hello() -> App:
    import flask

    app = flask.Flask("bench")

    @app.get("/")
    def hello() -> bytes:
        return HELLO

    return app.wsgi_app  # type: ignore[return-value]


def flask_form() -> App:
    import flask

    app = flask.Flask("bench_form")

    @app.post("/form")
    def form() -> str:
        return f"{flask.request.form['name']} <{flask.request.form['email']}>"

    return app.wsgi_app  # type: ignore[return-value]


def form_post(env: dict[str, Any], body: bytes) -> dict[str, Any]:
    """``env`` turned into the POST of a urlencoded ``body`` to /form."""
    return dict(env, REQUEST_METHOD="POST", PATH_INFO="/form", CONTENT_LENGTH=str(len(body)),
                CONTENT_TYPE="application/x-www-form-urlencoded")


def build_cases(fx: Fixture) -> dict[str, Callable[[], bytes]]:
    env = base_environ()
    env["HTTP_COOKIE"] = fx.cookies()
    big = dict(env, PATH_INFO="/big")
    layers = fx.layers()
    cases = {"bare WSGI": caller(trivial_app, env),
             "Flask hello": caller(flask_hello(), base_environ())}
    for name, layer in layers.items():
        cases[name] = caller(compose(trivial_app, layer), env)
    cases["AccessLog+fmt"] = caller(
        compose(trivial_app, AccessLogMiddleware.configure(logger=FORMATTED_LOGGER)), env)
    cases["Gzip 2 KB"] = caller(compose(trivial_app, layers["Gzip"]), big)
    stack = compose(trivial_app, *layers.values())
    cases["stack"] = caller(stack, env)
    cases["stack 2 KB"] = caller(stack, big)
    signed = FORM + b"&_xsrf=" + mask_xsrf_token(fx.token).encode()
    cases["Flask form"] = caller(flask_form(), form_post(base_environ(), FORM), FORM)
    cases["bare form"] = caller(trivial_app, form_post(env, signed), signed)
    # XSRF alone sees the plain-http origin (no ProxyMiddleware to restore https)
    alone = form_post(dict(env, HTTP_REFERER="http://example.com/form"), signed)
    cases["XSRF form"] = caller(compose(trivial_app, layers["XSRF"]), alone, signed)
    cases["stack form"] = caller(stack, form_post(env, signed), signed)
    return cases


def measure(cases: dict[str, Callable[[], bytes]], rounds: int,
            round_time: float) -> dict[str, float]:
    """Best µs/request of every case; rounds alternate between cases so noise is shared."""
    timers = {}
    for name, one in cases.items():
        body = one()
        if not body or not one.status[0].startswith("200"):  # type: ignore[attr-defined]
            raise AssertionError(f"{name} answered {one.status} {body[:100]!r}")
        run = timer(one)
        timers[name] = (run, calibrate(run, round_time))
    return best_of(timers, rounds)


def report(best: dict[str, float]) -> None:
    print("\nµs per request (lower is better); 'layer' = the case minus bare WSGI (for the "
          "form cases: minus bare form, the app reading the form alone)")
    print(f"{'case':<16}{'µs':>9}{'layer':>9}")
    for name, us in best.items():
        bare = best.get("bare form" if name.endswith(" form") else "bare WSGI", 0.0)
        baselines = ("bare WSGI", "Flask hello", "Flask form", "bare form")
        extra = "" if name in baselines else f"{us - bare:9.2f}"
        print(f"{name:<16}{us:9.2f}{extra}")
    flask = best.get("Flask hello")
    if flask:
        for name in ("stack", "stack 2 KB"):
            if name in best:
                print(f"{name} / Flask hello = {best[name] / flask:.2f} "
                      "(below 1.00: the whole stack costs less than bare Flask)")
    if "stack form" in best and "Flask form" in best:
        print(f"stack form / Flask form = {best['stack form'] / best['Flask form']:.2f} "
              "(below 1.00: the whole stack reads a form faster than bare Flask)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args(argv)
    rounds, round_time = (3, 0.05) if args.quick else (7, 0.2)
    warnings.simplefilter("ignore")
    print(f"Python {sys.version.split()[0]}, best of {rounds} rounds of ~{round_time}s each")
    with tempfile.TemporaryDirectory() as workdir:
        fx = Fixture(Path(workdir))
        cases = build_cases(fx)
        wanted = set(filter(None, args.only.split(",")))
        if wanted:
            cases = {k: v for k, v in cases.items() if k in wanted}
        try:
            report(measure(cases, rounds, round_time))
        finally:
            fx.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
