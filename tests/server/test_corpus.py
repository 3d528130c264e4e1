"""A raw-request corpus, each request fed whole and split at every byte boundary.

Valid requests must parse to the same method, target, headers and body however the bytes
arrive; invalid ones must fail with the same status (the gunicorn tests/requests idea).
Every case is also sent over a real socket to check the status the client sees.
"""

from __future__ import annotations

import pytest

from microweb.server.http11 import ProtocolError, RequestParser

from .conftest import echo_environ

LIMITS = dict(max_request_line=200, max_header_size=400, max_header_count=10,
              max_body_size=1000)

VALID = {
    "simple": (b"GET /path?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", [("GET", b"/path?q=1", b"")]),
    "http10": (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", [("GET", b"/", b"")]),
    "content-length": (b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
                       [("POST", b"/p", b"hello")]),
    "chunked-ext-trailer": (
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
        [("POST", b"/c", b"hello world")]),
    "pipelined": (b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPUT /2 HTTP/1.1\r\nHost: a\r\n"
                  b"Content-Length: 2\r\n\r\nok",
                  [("GET", b"/1", b""), ("PUT", b"/2", b"ok")]),
    "absolute-form": (b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", [("GET", b"http://a/x", b"")]),
    "empty-header-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", [("GET", b"/", b"")]),
    "tab-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", [("GET", b"/", b"")]),
}

INVALID = {
    "garbage": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),
    "http09": (b"GET /\r\n\r\n", 505),
    "bad-method-char": (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "cl-and-te": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-and-cl": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 3\r\n\r\n0\r\n\r\n", 400),
    "two-lengths": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                    b"Content-Length: 4\r\n\r\nabcd", 400),
    "length-list": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    "negative-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    "plus-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
    "bad-chunk-size": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-overflow": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"fffffffffffffffffff\r\n", 400),
    "te-not-chunked-last": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip"
                            b"\r\n\r\n", 400),
    "te-unknown": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
    "te-gzip-chunked": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        b"3\r\nabc\r\n0\r\n\r\n", 501),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "bare-lf": (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    "no-host-11": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "http12": (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    "http20": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "long-target": (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 11 + b"\r\n", 431),
    "header-too-large": (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 500 + b"\r\n\r\n", 431),
    "body-too-large": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413),
    "chunked-too-large": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n", 413),
    "bad-expect": (b"POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417),
}


def _parse(pieces: list[bytes]) -> list[tuple[str, bytes, bytes]]:
    parser = RequestParser(**LIMITS)
    for piece in pieces:
        parser.feed(piece)
    return [(r.method, r.target, b"".join(r.body)) for r in parser.requests if r.complete]


def _splits(raw: bytes):
    yield [raw]
    for i in range(1, len(raw)):
        yield [raw[:i], raw[i:]]
    yield [raw[i:i + 1] for i in range(len(raw))]  # one byte at a time


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_request_parses_the_same_at_every_split(name):
    raw, expected = VALID[name]
    for pieces in _splits(raw):
        assert _parse(pieces) == expected, pieces


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_request_fails_the_same_at_every_split(name):
    raw, status = INVALID[name]
    for pieces in _splits(raw):
        with pytest.raises(ProtocolError) as info:
            _parse(pieces)
        assert info.value.status == status, (pieces, info.value.reason)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_request_over_a_socket_gets_status_and_close(serve, name):
    raw, status = INVALID[name]
    srv = serve(echo_environ, **LIMITS)
    data = srv.raw(raw + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:80]
    assert b"Connection: close" in data
    assert data.count(b"HTTP/1.1 ") == 1  # nothing after the bad request was served
    assert b"smuggled" not in data


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_request_over_a_socket(serve, name):
    raw, expected = VALID[name]
    srv = serve(echo_environ, **LIMITS)
    data = srv.raw(raw + b"GET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == len(expected) + 1
    for _, _, body in expected:
        assert b"BODY=" + repr(body).encode() in data


UPGRADE_WITH_BODY = {  # curl --http2 sends "Upgrade: h2c" on a POST: the body is still HTTP
    "content-length": b"POST /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"
                      b"Content-Length: 5\r\n\r\nhello",
    "chunked": b"POST /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(UPGRADE_WITH_BODY))
def test_upgrade_request_body_parses_at_every_split(name):
    for pieces in _splits(UPGRADE_WITH_BODY[name]):
        assert _parse(pieces) == [("POST", b"/u", b"hello")], pieces


@pytest.mark.parametrize("name", sorted(UPGRADE_WITH_BODY))
def test_refused_upgrade_request_still_gets_its_body(serve, name):
    srv = serve(echo_environ, **LIMITS)
    data = srv.raw(UPGRADE_WITH_BODY[name] + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"BODY=b'hello'" in data
    assert b"Connection: close" in data and b"smuggled" not in data
