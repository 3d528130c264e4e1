"""PEP 3333 environ, wsgi.input, write callable, exc_info, file_wrapper (over real sockets)."""

from __future__ import annotations

import os
import sys
import threading
from wsgiref.validate import validator

from .conftest import echo_environ, read_response


def _environ_of(srv, request: bytes) -> dict[str, str]:
    with srv.connect() as s:
        s.sendall(request)
        head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    out = {}
    for line in body.decode("utf-8").splitlines():
        key, _, value = line.partition("=")
        out[key] = eval(value)  # the app wrote repr()s
    return out


def test_core_environ_keys(serve):
    srv = serve(echo_environ)
    env = _environ_of(srv, b"GET /a%20b/%C3%A9?x=%20y&z HTTP/1.1\r\nHost: example.com:81\r\n"
                           b"Content-Type: text/plain\r\nX-Thing: 1\r\n\r\n")
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a b/\xc3\xa9"  # percent-decoded, bytes as latin-1
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/a b/é"
    assert env["QUERY_STRING"] == "x=%20y&z"  # untouched
    assert env["SCRIPT_NAME"] == ""
    assert env["RAW_URI"] == "/a%20b/%C3%A9?x=%20y&z"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(srv.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == "example.com:81"
    assert env["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in env
    assert env["HTTP_X_THING"] == "1"
    assert env["wsgi.url_scheme"] == "http"


def test_underscore_headers_are_dropped_and_duplicates_joined(serve):
    srv = serve(echo_environ)
    env = _environ_of(srv, b"GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\n"
                           b"X-Forwarded-For: 1.1.1.1\r\nAccept: a\r\nAccept: b\r\n"
                           b"Cookie: a=1\r\nCookie: b=2\r\n\r\n")
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"
    assert env["HTTP_ACCEPT"] == "a,b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_script_name_is_stripped_from_path(serve):
    srv = serve(echo_environ, script_name="/app/")
    env = _environ_of(srv, b"GET /app/users?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/users"


def test_script_name_only_for_paths_under_it(serve):
    """SCRIPT_NAME is split off at a segment boundary only; a path outside the mount is
    passed whole with an empty SCRIPT_NAME (SCRIPT_NAME + PATH_INFO is always the path)."""
    srv = serve(echo_environ, script_name="/app")
    cases = {b"/app": ("/app", ""), b"/app/x": ("/app", "/x"), b"/apple": ("", "/apple"),
             b"/other/app": ("", "/other/app"), b"/": ("", "/"), b"/ap": ("", "/ap")}
    for target, expected in cases.items():
        env = _environ_of(srv, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == expected, target


def test_absolute_form_and_asterisk_targets(serve):
    srv = serve(echo_environ)
    env = _environ_of(srv, b"GET http://example.com/p%41th?q HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert env["PATH_INFO"] == "/pAth" and env["QUERY_STRING"] == "q"
    env = _environ_of(srv, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert env["PATH_INFO"] == "*"


def test_absolute_form_authority_replaces_the_host_header(serve):
    """RFC 9112 3.2.2: a server receiving an absolute-form target ignores Host; an app must not
    build links for a host other than the one the request was routed by."""
    srv = serve(echo_environ)
    env = _environ_of(srv, b"GET http://right.example:8080/x HTTP/1.1\r\n"
                           b"Host: wrong.example\r\n\r\n")
    assert env["HTTP_HOST"] == "right.example:8080" and env["PATH_INFO"] == "/x"
    env = _environ_of(srv, b"GET http://user@right.example/x HTTP/1.1\r\nHost: w\r\n\r\n")
    assert env["HTTP_HOST"] == "right.example"


def test_content_length_body_and_input_bounded(serve):
    seen = {}

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        if environ["REQUEST_METHOD"] != "POST":
            start_response("200 OK", [])
            return [b"ok"]
        seen["line"] = stream.readline()
        seen["part"] = stream.read(3)
        seen["rest"] = stream.read()
        seen["more"] = stream.read(10)  # past the end: nothing, and no hang
        seen["length"] = environ["CONTENT_LENGTH"]
        start_response("200 OK", [])
        return [b"ok"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nline\nabcdefg"
                  b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        assert read_response(s, buf)[1] == b"ok"
        assert read_response(s, buf)[1] == b"ok"  # the next request was not eaten by read()
    assert seen["line"] == b"line\n" and seen["part"] == b"abc" and seen["rest"] == b"defg"
    assert seen["more"] == b"" and seen["length"] == "12"


def test_body_streams_while_client_sends(serve):
    chunks = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        while piece := stream.read(5):
            chunks.append(piece)
        start_response("200 OK", [])
        return [b"%d" % len(chunks)]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello", b"world", b"!"):
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        head, body = read_response(s)
    assert b"".join(chunks) == b"helloworld!" and body == b"3"


def test_write_callable_and_iterable_mix(serve):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first ")
        return iter([b"second"])

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)
    assert b"chunked" in head and body == b"first second"


def test_exc_info_replaces_response_before_headers(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-Old", "1")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Oops", [("X-New", "1")], sys.exc_info())
        return [b"replaced"]

    srv = serve(app)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 500 Oops") and b"X-New" in head and b"X-Old" not in head
    assert body == b"replaced"


def test_start_response_twice_without_exc_info_is_an_error(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"never"]

    srv = serve(app)
    data = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500")


def test_file_wrapper_uses_sendfile(serve, tmp_path):
    path = tmp_path / "big.bin"
    payload = os.urandom(300_000)
    path.write_bytes(payload)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        f = open(path, "rb")  # noqa: SIM115 - the server closes it through the wrapper
        f.seek(1000)
        return environ["wsgi.file_wrapper"](f, 8192)

    srv = serve(app)
    with srv.connect() as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert b"Content-Length: 299000" in head
            assert body == payload[1000:]


def test_wsgiref_validator_is_happy(serve):
    errors = []

    def app(environ, start_response):
        environ["wsgi.input"].read(2)  # the validator insists on an explicit size
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"valid"]

    linted = validator(app)

    def guarded(environ, start_response):
        try:
            return linted(environ, start_response)
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)
            raise

    srv = serve(guarded)
    with srv.connect() as s:
        s.sendall(b"POST /v?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        head, body = read_response(s)
    assert body == b"valid" and errors == []


def test_environ_flags(serve):
    seen = {}

    def app(environ, start_response):
        seen.update({k: environ[k] for k in ("wsgi.version", "wsgi.multithread",
                                             "wsgi.multiprocess", "wsgi.run_once",
                                             "wsgi.input_terminated")})
        seen["upgrade"] = callable(environ["microweb.upgrade"])
        seen["thread"] = threading.current_thread().name
        start_response("200 OK", [])
        return []

    srv = serve(app)
    srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert seen["wsgi.version"] == (1, 0) and seen["wsgi.multithread"] is True
    assert seen["wsgi.multiprocess"] is False and seen["wsgi.run_once"] is False
    assert seen["upgrade"] and seen["thread"].startswith("microweb-worker")
