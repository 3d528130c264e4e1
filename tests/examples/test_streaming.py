"""examples/streaming: raw and multipart uploads to disk, generator and flush() downloads."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket

import pytest
from webtest import TestApp

from examples.streaming import make_app
from tests.support import PYTHON, free_port, spawn


@pytest.fixture
def app(tmp_path):
    return TestApp(make_app(tmp_path, max_upload=1024 * 1024))


def test_put_streams_to_disk_and_get_streams_back(app, tmp_path):
    data = os.urandom(300_000)
    res = app.put("/files/blob.bin", data, content_type="application/octet-stream", status=201)
    assert res.json == {"name": "blob.bin", "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()}
    assert (tmp_path / "blob.bin").read_bytes() == data
    assert not list(tmp_path.glob(".*.part"))
    got = app.get("/files/blob.bin")
    assert got.body == data
    assert got.headers["Content-Length"] == str(len(data))


def test_upload_over_the_limit_is_refused_and_leaves_nothing(app, tmp_path):
    app.put("/files/big.bin", b"x" * (1024 * 1024 + 1), status=413)
    assert not (tmp_path / "big.bin").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_names_cannot_escape_the_folder(app):
    app.put("/files/..%2Fescape", b"x", status=404)
    app.get("/files/.hidden", status=404)
    app.get("/files/missing.bin", status=404)


def test_multipart_upload_is_saved(app, tmp_path):
    res = app.post("/upload", upload_files=[("file", "../../etc/passwd", b"a" * 70_000)])
    assert res.json == {"saved": {"passwd": 70_000}}
    assert (tmp_path / "passwd").stat().st_size == 70_000
    app.post("/upload", {"other": "1"}, status=400)


def test_chunked_upload_through_a_real_server(tmp_path):
    """A body without Content-Length (chunked) is streamed and counted as it arrives."""
    port = free_port()
    code = ("import examples.streaming as s; from microweb.server import serve; "
            f"serve(s.make_app({str(tmp_path)!r}), host='127.0.0.1', port={port})")
    with spawn([PYTHON, "-c", code], port=port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        chunks = [os.urandom(50_000) for _ in range(5)]
        conn.request("PUT", "/files/chunked.bin", body=iter(chunks),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        res = conn.getresponse()
        body = res.read()
        conn.close()
    assert res.status == 201, body
    assert (tmp_path / "chunked.bin").read_bytes() == b"".join(chunks)


def test_ticks_arrive_one_by_one_before_the_response_ends():
    port = free_port()
    with spawn([PYTHON, "-m", "microweb.server", "examples.streaming:application",
                "--port", str(port)], port=port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /ticks?n=3&delay=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while b"tick 0" not in first:
                chunk = sock.recv(4096)
                assert chunk, "connection closed before the first tick"
                first += chunk
            assert b"tick 2" not in first  # still being produced: the first line came early
            rest = b""
            while b"0\r\n\r\n" not in rest:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
    assert b"tick 1" in rest and b"tick 2" in rest


def test_chunked_upload_over_the_limit_is_refused_midway(tmp_path):
    port = free_port()
    code = ("import examples.streaming as s; from microweb.server import serve; "
            f"serve(s.make_app({str(tmp_path)!r}, max_upload=100_000), host='127.0.0.1', "
            f"port={port})")
    with spawn([PYTHON, "-c", code], port=port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("PUT", "/files/toobig.bin", body=iter([b"x" * 50_000] * 5),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        res = conn.getresponse()
        res.read()
        conn.close()
    assert res.status == 413
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one
