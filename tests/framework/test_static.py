"""Static files: routing, send_file (ETag, 304, Range, HEAD, types), traversal, versions."""

from __future__ import annotations

import email.utils
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import webtest

import microweb as web
from microweb.static import StaticFileHandler

CSS = b"body { color: red; }\n"
DATA = bytes(range(256)) * 4


@pytest.fixture
def site(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.css").write_bytes(CSS)
    (static / "data.bin").write_bytes(DATA)
    (static / "app.js").write_text("console.log(1)\n")
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    (static / "notes.unknownext").write_bytes(b"?")
    (static / "favicon.ico").write_bytes(b"ico")
    (static / "robots.txt").write_text("User-agent: *\n")
    (static / "docs").mkdir()
    (static / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (tmp_path / "static-sibling").mkdir()
    (tmp_path / "static-sibling" / "x.txt").write_text("SIBLING")
    StaticFileHandler.reset()
    return tmp_path


class Page(web.RequestHandler):
    def get(self) -> None:
        self.write(self.static_url(self.get_argument("p"),
                                   include_version=self.get_argument("v", "1") == "1"))


def _app(site: Path, **settings: Any) -> webtest.TestApp:
    settings.setdefault("static_path", str(site / "static"))
    extra = settings.pop("extra_environ", None)
    return webtest.TestApp(web.Application(
        [(r"/url", Page),
         (r"/files/(.*)", web.StaticFileHandler,
          {"path": str(site / "static"), "default_filename": "index.html"})],
        **settings), extra_environ=extra)


def test_serves_file_with_type_etag_and_last_modified(site: Path) -> None:
    resp = _app(site).get("/static/css/app.css")
    assert resp.body == CSS
    assert resp.headers["Content-Type"].startswith("text/css")
    assert resp.headers["Content-Length"] == str(len(CSS))
    assert resp.headers["ETag"].strip('"')
    assert resp.headers["Accept-Ranges"] == "bytes"
    mtime = int((site / "static" / "css" / "app.css").stat().st_mtime)
    assert email.utils.parsedate_to_datetime(resp.headers["Last-Modified"]).timestamp() == mtime
    assert "Content-Disposition" not in resp.headers
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name,ctype", [
    ("app.js", "javascript"), ("logo.png", "image/png"),
    ("notes.unknownext", "application/octet-stream"), ("robots.txt", "text/plain"),
])
def test_content_types(site: Path, name: str, ctype: str) -> None:
    assert ctype in _app(site).get("/static/" + name).headers["Content-Type"]


def test_favicon_and_robots_routes(site: Path) -> None:
    app = _app(site)
    assert app.get("/favicon.ico").body == b"ico"
    assert app.get("/robots.txt").text == "User-agent: *\n"


def test_if_none_match_gives_304(site: Path) -> None:
    app = _app(site)
    etag = app.get("/static/css/app.css").headers["ETag"]
    resp = app.get("/static/css/app.css", headers={"If-None-Match": etag}, status=304)
    assert resp.body == b""
    app.get("/static/css/app.css", headers={"If-None-Match": '"other"'}, status=200)


def test_if_modified_since_gives_304(site: Path) -> None:
    app = _app(site)
    last = app.get("/static/css/app.css").headers["Last-Modified"]
    app.get("/static/css/app.css", headers={"If-Modified-Since": last}, status=304)
    app.get("/static/css/app.css",
            headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}, status=200)


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-9", 0, 9), ("bytes=1000-", 1000, 1023), ("bytes=-24", 1000, 1023),
    ("bytes=10-5000", 10, 1023),
])
def test_range_gives_206(site: Path, header: str, start: int, end: int) -> None:
    resp = _app(site).get("/static/data.bin", headers={"Range": header}, status=206)
    assert resp.body == DATA[start:end + 1]
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert resp.headers["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_range_gives_416(site: Path) -> None:
    resp = _app(site).get("/static/data.bin", headers={"Range": "bytes=5000-6000"}, status=416)
    assert resp.headers["Content-Range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["pages=1-2", "bytes=x-y", "bytes=0-1,4-5", "bytes=0-",
                                    "bytes=-5000", "bytes=0-1023"])
def test_ignorable_ranges_give_the_whole_file(site: Path, header: str) -> None:
    resp = _app(site).get("/static/data.bin", headers={"Range": header}, status=200)
    assert resp.body == DATA
    assert "Content-Range" not in resp.headers


def test_head_has_headers_but_no_body(site: Path) -> None:
    resp = _app(site).head("/static/data.bin")
    assert resp.body == b""
    assert resp.headers["Content-Length"] == str(len(DATA))
    assert resp.headers["Content-Type"] == "application/octet-stream"


def test_uses_wsgi_file_wrapper(site: Path) -> None:
    wrapped: list[Any] = []

    class Wrapper:
        def __init__(self, f: Any, block_size: int = 8192) -> None:
            wrapped.append(f)
            self.f = f

        def __iter__(self) -> Any:
            return iter(lambda: self.f.read(8192), b"")

        def close(self) -> None:
            self.f.close()

    app = _app(site, extra_environ={"wsgi.file_wrapper": Wrapper})
    assert app.get("/static/data.bin").body == DATA
    assert len(wrapped) == 1 and wrapped[0].closed


@pytest.mark.parametrize("path", [
    "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt",
    "/static/%2E%2E%2Fsecret.txt", "/static/css/../../secret.txt", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/..%5csecret.txt", "/static/../static-sibling/x.txt",
    "/files/../secret.txt", "/files/%2e%2e/secret.txt",
])
def test_traversal_is_refused(site: Path, path: str) -> None:
    resp = _app(site).get(path, expect_errors=True)
    assert resp.status_int in (400, 403, 404)
    assert b"SECRET" not in resp.body and b"root:" not in resp.body
    assert b"SIBLING" not in resp.body


def test_nul_byte_is_refused(site: Path) -> None:
    resp = _app(site).get("/static/css/app.css%00.png", expect_errors=True)
    assert resp.status_int in (400, 404)


def test_symlink_out_of_root_is_403_inside_root_is_served(site: Path) -> None:
    static = site / "static"
    os.symlink(site / "secret.txt", static / "leak.txt")
    os.symlink(site, static / "up")
    os.symlink(static / "css" / "app.css", static / "alias.css")
    app = _app(site)
    app.get("/static/leak.txt", status=403)
    app.get("/static/up/secret.txt", status=403)
    assert app.get("/static/alias.css").body == CSS


def test_allowed_symlink_directory_adds_to_the_root(site: Path) -> None:
    static = site / "static"
    os.symlink(site / "static-sibling" / "x.txt", static / "shared.txt")
    os.symlink(site / "secret.txt", static / "leak.txt")
    app = _app(site, static_handler_args={
        "allowed_symlink_directory": str(site / "static-sibling")})
    assert app.get("/static/shared.txt").text == "SIBLING"
    assert app.get("/static/css/app.css").body == CSS  # files of the root itself still served
    app.get("/static/leak.txt", status=403)


def test_directory_is_not_listed(site: Path) -> None:
    resp = _app(site).get("/static/css", expect_errors=True)
    assert resp.status_int in (403, 404)


def test_missing_file_is_404(site: Path) -> None:
    _app(site).get("/static/nope.css", status=404)


def test_default_filename_and_directory_redirect(site: Path) -> None:
    app = _app(site)
    assert app.get("/files/docs/").text == "<h1>docs</h1>"
    resp = app.get("/files/docs", status=301)
    assert resp.headers["Location"].endswith("/files/docs/")
    assert app.get("/files/css/app.css").body == CSS


def test_static_url_has_content_hash_and_versioned_url_is_cached_a_year(site: Path) -> None:
    app = _app(site)
    url = app.get("/url", {"p": "css/app.css"}).text
    expected = hashlib.sha256(CSS).hexdigest()[:32]
    assert url == f"/static/css/app.css?v={expected}"
    resp = app.get(url)
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    plain = app.get("/static/css/app.css")
    assert "max-age=31536000" not in plain.headers.get("Cache-Control", "")
    assert app.get("/url", {"p": "css/app.css", "v": "0"}).text == "/static/css/app.css"


def test_static_url_prefix_setting(site: Path) -> None:
    app = _app(site, static_url_prefix="/assets/")
    url = app.get("/url", {"p": "app.js"}).text
    assert url.startswith("/assets/app.js?v=")
    assert app.get(url).text == "console.log(1)\n"


def test_hash_cached_unless_static_hash_cache_false(site: Path) -> None:
    css = site / "static" / "css" / "app.css"
    cached = _app(site)
    first = cached.get("/url", {"p": "css/app.css"}).text
    css.write_bytes(b"changed")
    assert cached.get("/url", {"p": "css/app.css"}).text == first
    fresh = _app(site, static_hash_cache=False)
    assert fresh.get("/url", {"p": "css/app.css"}).text != first
    StaticFileHandler.reset()
    assert cached.get("/url", {"p": "css/app.css"}).text != first


def test_edited_file_is_not_a_304_when_static_hash_cache_is_false(site: Path) -> None:
    app = _app(site, debug=True)  # debug implies static_hash_cache=False
    etag = app.get("/static/css/app.css").headers["ETag"]
    (site / "static" / "css" / "app.css").write_bytes(b"body { color: blue; }\n")
    resp = app.get("/static/css/app.css", headers={"If-None-Match": etag}, status=200)
    assert resp.body == b"body { color: blue; }\n"
    assert resp.headers["ETag"] != etag


def test_static_url_for_missing_file_has_no_version(site: Path) -> None:
    assert _app(site).get("/url", {"p": "missing.css"}).text == "/static/missing.css"


def test_static_url_outside_root_is_refused(site: Path) -> None:
    resp = _app(site).get("/url", {"p": "../secret.txt"}, expect_errors=True)
    assert resp.status_int == 403
    assert "?v=" not in resp.text


def test_static_url_without_static_path_names_the_setting(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = webtest.TestApp(web.Application([(r"/url", Page)]))
    app.get("/url", {"p": "x.css"}, status=500)
    assert "static_path" in caplog.text


def test_post_is_not_allowed(site: Path) -> None:
    _app(site).post("/static/css/app.css", status=405)


# -- through real servers -------------------------------------------------------------------

STYLE = (Path(__file__).resolve().parents[2] / "examples" / "login" / "static"
         / "style.css").read_bytes()


def _raw_get(port: int, target: str, headers: str = "") -> bytes:
    """One request over a plain socket: nothing normalises the path on the way."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     f"{headers}\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _server_argv(kind: str, port: int) -> list[str]:
    from tests import support

    app = "examples.login.app:application"
    if kind == "bundled":
        return [support.PYTHON, "-m", "microweb.server", app, "--port", str(port),
                "--no-access-log"]
    return [str(support.BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1",
            "--log-level", "warning", app]


@pytest.mark.parametrize("kind", ["bundled", "gunicorn"])
def test_static_through_real_servers(kind: str, port: int) -> None:
    import httpx

    from tests import support

    with support.spawn(_server_argv(kind, port), port=port):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            full = client.get("/static/style.css")
            assert full.status_code == 200 and full.content == STYLE
            assert full.headers["content-type"].startswith("text/css")
            etag = full.headers["etag"]
            assert client.get("/static/style.css",
                              headers={"If-None-Match": etag}).status_code == 304
            part = client.get("/static/style.css", headers={"Range": "bytes=5-14"})
            assert part.status_code == 206 and part.content == STYLE[5:15]
            head = client.head("/static/style.css")
            assert head.content == b"" and head.headers["content-length"] == str(len(STYLE))
        for target in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2f__init__.py"):
            response = _raw_get(port, target)
            status = int(response.split(b" ", 2)[1])
            assert status in (400, 403, 404), (target, response[:200])
            assert b"import" not in response


def test_etag_is_the_content_hash_and_include_host(site: Path) -> None:
    app = _app(site)
    version = hashlib.sha256(DATA).hexdigest()[:32]
    assert app.get("/static/data.bin").headers["ETag"] == f'"{version}"'

    class Absolute(web.RequestHandler):
        def get(self) -> None:
            self.write(self.static_url("data.bin", include_host=True))

    absolute = webtest.TestApp(web.Application([(r"/", Absolute)],
                                               static_path=str(site / "static")))
    assert absolute.get("/", headers={"Host": "cdn.example.com"}).text == (
        f"http://cdn.example.com/static/data.bin?v={version}")


def test_static_handler_args_and_subclass_hooks(site: Path) -> None:
    class Custom(StaticFileHandler):
        def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
            return 60

        def set_extra_headers(self, path: str) -> None:
            self.set_header("X-Served-By", "custom")

        @classmethod
        def make_static_url(cls, settings: dict[str, Any], path: str,
                            include_version: bool = True) -> str:
            return "https://cdn.example.com/" + path

    app = _app(site, static_handler_class=Custom,
               static_handler_args={"default_filename": "index.html"})
    resp = app.get("/static/docs/")
    assert resp.text == "<h1>docs</h1>"
    assert resp.headers["X-Served-By"] == "custom"
    assert "max-age=60" in resp.headers["Cache-Control"]
    assert app.get("/url", {"p": "app.js"}).text == "https://cdn.example.com/app.js"


def test_empty_file(site: Path) -> None:
    (site / "static" / "empty.txt").write_bytes(b"")
    resp = _app(site).get("/static/empty.txt")
    assert resp.body == b"" and resp.headers["Content-Length"] == "0"
    resp = _app(site).get("/static/empty.txt", headers={"Range": "bytes=0-10"},
                          expect_errors=True)
    assert resp.status_int in (200, 416) and resp.body == b""
