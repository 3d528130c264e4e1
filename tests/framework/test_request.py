"""Request input: attributes, arguments, forms, uploads, JSON, limits and malformed input."""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any
from wsgiref.validate import validator

import pytest

import microweb as web

from .conftest import lint_client


class Args(web.RequestHandler):
    """Answers with the named argument lists of every source, and the raw argument dicts."""

    def get(self) -> None:
        self.write(self.dump())

    post = put = patch = get

    def dump(self) -> dict[str, Any]:
        names = self.get_arguments("names") or ["a"]
        return {
            "arg": {n: self.get_argument(n, None) for n in names},
            "all": {n: self.get_arguments(n) for n in names},
            "query": {n: self.get_query_arguments(n) for n in names},
            "body": {n: self.get_body_arguments(n) for n in names},
            "raw_types": sorted({type(v).__name__ for vs in self.request.arguments.values()
                                 for v in vs}),
        }


def client(**settings: Any) -> Any:
    return lint_client(web.Application([("/", Args), ("/info", Info), ("/json", JsonEcho),
                                        ("/files", Files), ("/required", Required)],
                                       **settings))


def test_query_and_body_arguments_merge_body_last() -> None:
    body = client().post("/?a=q1&a=q2&names=a", {"a": ["b1", "b2"]}).json
    assert body["all"]["a"] == ["q1", "q2", "b1", "b2"]
    assert body["arg"]["a"] == "b2"
    assert body["query"]["a"] == ["q1", "q2"] and body["body"]["a"] == ["b1", "b2"]
    assert body["raw_types"] == ["bytes"]


def test_form_media_type_is_case_insensitive() -> None:
    for ctype in ("Application/X-WWW-Form-Urlencoded", "application/x-www-form-urlencoded ; "
                  "charset=UTF-8"):
        body = client().post("/?names=a", "a=1", content_type=ctype).json
        assert body["body"]["a"] == ["1"], ctype
    body = client().post("/?names=a", "a=1",
                         content_type="application/x-www-form-urlencodedx").json
    assert body["body"]["a"] == []


def test_arguments_strip_and_blank_values() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            self.write({"strip": self.get_argument("x"),
                        "raw": self.get_argument("x", strip=False),
                        "blank": self.get_argument("blank"),
                        "default": self.get_argument("nope", "dflt"),
                        "ctrl": self.get_argument("ctrl")})

    response = lint_client(web.Application([("/", H)])).get(
        "/?x=+%20padded%20&blank=&ctrl=a%01b%0Ac")
    assert response.json == {"strip": "padded", "raw": "  padded ", "blank": "",
                             "default": "dflt", "ctrl": "a b\nc"}


class Required(web.RequestHandler):
    def get(self) -> None:
        self.write(self.get_argument("needed"))


def test_missing_argument_is_400(logs: Any) -> None:
    app_log = logs("microweb.application")
    response = client().get("/required", status=400)
    assert "400: Bad Request" in response.text
    assert app_log.messages() == ["400 GET /required (): Missing argument needed"]
    assert issubclass(web.MissingArgumentError, web.HTTPError)


def test_put_and_patch_forms_are_parsed() -> None:
    assert client().put("/?names=a", {"a": "put"}).json["arg"]["a"] == "put"
    assert client().patch("/?names=a", {"a": "patch"}).json["arg"]["a"] == "patch"


def test_json_body_is_never_merged_into_arguments() -> None:
    body = client().post_json("/?names=a", {"a": "json"}).json
    assert body["arg"]["a"] is None and body["body"]["a"] == []


def test_non_ascii_values_and_names() -> None:
    body = client().get("/?names=caf%C3%A9&caf%C3%A9=cr%C3%A8me+br%C3%BBl%C3%A9e").json
    assert body["arg"] == {"café": "crème brûlée"}


def test_bad_utf8_in_an_argument_is_400() -> None:
    response = client().get("/?names=a&a=%FF%FE", status=400)
    assert "Bad Request" in response.text
    client().post("/?names=a", "a=%C3%28", content_type="application/x-www-form-urlencoded",
                  status=400)
    client().get("/?%FF=1", status=400)


def test_malformed_percent_encoding_is_400() -> None:
    client().get("/?names=a&a=100%", status=400)
    client().get("/?names=a&a=%zz", status=400)
    client().post("/?names=a", "a=%G1", content_type="application/x-www-form-urlencoded",
                  status=400)


class JsonEcho(web.RequestHandler):
    def post(self) -> None:
        data = self.get_json()
        assert self.get_json() is data  # parsed once
        self.write({"got": data})


def test_get_json() -> None:
    c = client()
    assert c.post_json("/json", {"x": [1, "ü"]}).json == {"got": {"x": [1, "ü"]}}
    for bad in (b"{not json", b"", b"\xff\xfe{", b'{"a": 1} trailing'):
        response = c.post("/json", bad, content_type="application/json", status=400)
        assert "invalid JSON" in response.text


def test_deeply_nested_json_is_a_400_not_a_crash(logs: Any) -> None:
    app_log = logs("microweb.application")
    response = client().post("/json", b"[" * 100_000, content_type="application/json",
                             status=400)
    assert "invalid JSON" in response.text
    assert not any(record.exc_info for record in app_log.records)


class Info(web.RequestHandler):
    def get(self, *args: str) -> None:
        r = self.request
        self.write({
            "method": r.method, "uri": r.uri, "path": r.path, "query": r.query,
            "version": r.version, "remote_ip": r.remote_ip, "host": r.host,
            "host_name": r.host_name, "protocol": r.protocol, "full_url": r.full_url(),
            "ua": r.headers.get("user-agent"), "multi": r.headers.get_list("X-Multi"),
            "cookies": {k: m.value for k, m in r.cookies.items()},
            "cookie_values": r.cookie_values, "body": r.body.decode(),
            "elapsed_ok": r.request_time() >= 0,
        })

    post = get


def test_request_attributes() -> None:
    response = client().post(
        "/info?x=1&y=%2F", "payload", content_type="text/plain",
        headers={"User-Agent": "tester", "Host": "Example.COM:8080",
                 "Cookie": 'a=1; b="two words"; c=%20'},
        extra_environ={"REMOTE_ADDR": "10.1.2.3", "wsgi.url_scheme": "https"})
    info = response.json
    assert info["method"] == "POST" and info["uri"] == "/info?x=1&y=%2F"
    assert info["path"] == "/info" and info["query"] == "x=1&y=%2F"
    assert info["version"].startswith("HTTP/1.")
    assert info["remote_ip"] == "10.1.2.3" and info["protocol"] == "https"
    assert info["host"] == "Example.COM:8080" and info["host_name"] == "example.com"
    assert info["full_url"] == "https://Example.COM:8080/info?x=1&y=%2F"
    assert info["ua"] == "tester" and info["body"] == "payload"
    assert info["cookies"] == {"a": "1", "b": "two words", "c": "%20"}
    assert info["cookie_values"] == info["cookies"] and info["elapsed_ok"] is True


def test_request_path_is_percent_encoded_as_sent() -> None:
    info = client().get("/info", extra_environ={"PATH_INFO": "/info"}).json
    assert info["path"] == "/info"
    app = web.Application([(r"/p/(.*)", Info)])
    info = lint_client(app).get("/p/a%20b/caf%C3%A9").json
    assert info["path"] == "/p/a%20b/caf%C3%A9"


def test_malformed_cookie_header_does_not_break_the_request() -> None:
    info = client().get("/info", headers={"Cookie": 'good=1; bad"name=2; =x; ;;; ok=3'}).json
    assert info["cookies"]["good"] == "1" and info["cookies"]["ok"] == "3"
    info = client().get("/info", extra_environ={"HTTP_COOKIE": "raw=\xff\xfe; ok=2"}).json
    assert info["cookies"]["ok"] == "2" and info["cookie_values"]["raw"] == "\ufffd\ufffd"


def test_cookies_mapping_skips_names_a_morsel_cannot_hold() -> None:
    class H(web.RequestHandler):
        def get(self) -> None:
            cookies = self.request.cookies
            self.write({"names": sorted(cookies), "len": len(cookies), "in": "a" in cookies,
                        "expires_in": "expires" in cookies,
                        "values": self.request.cookie_values})

    body = lint_client(web.Application([("/", H)])).get(
        "/", headers={"Cookie": "a=1; expires=x; sp ace=2; b=3"}).json
    assert body["names"] == ["a", "b"] and body["len"] == 2
    assert body["in"] is True and body["expires_in"] is False
    assert body["values"]["expires"] == "x"


class Files(web.RequestHandler):
    def post(self) -> None:
        out = {}
        for name, uploads in self.request.files.items():
            out[name] = [{"filename": f.filename, "content_type": f["content_type"],
                          "size": len(f.body), "head": f["body"][:10].decode("latin-1"),
                          "is_bytes": isinstance(f.body, bytes)} for f in uploads]
        self.write({"files": out, "field": self.get_body_argument("field", None),
                    "raw_field_type": type(self.request.body_arguments.get(
                        "field", [b""])[0]).__name__})


def test_multipart_upload_fields_and_files() -> None:
    response = client().post("/files", {"field": "välue"}, upload_files=[
        ("doc", "notes.txt", b"hello file", "text/plain"),
        ("doc", "data.bin", bytes(range(256)), "application/octet-stream"),
    ])
    body = response.json
    assert body["field"] == "välue" and body["raw_field_type"] == "bytes"
    docs = body["files"]["doc"]
    assert [d["filename"] for d in docs] == ["notes.txt", "data.bin"]
    assert docs[0]["content_type"] == "text/plain" and docs[0]["head"] == "hello file"
    assert docs[1]["size"] == 256 and docs[1]["is_bytes"]


def test_big_upload_streams_to_a_temporary_file(tmp_path: Any) -> None:
    saved = tmp_path / "copy.bin"

    class Saver(web.RequestHandler):
        def post(self) -> None:
            upload = self.request.files["big"][0]
            # a file spooled to disk has a descriptor number as its name; memory has none
            on_disk = isinstance(getattr(upload.stream, "name", None), int)
            upload.save(str(saved))
            self.write({"on_disk": bool(on_disk), "size": os.path.getsize(saved)})

    payload = os.urandom(3 * 1024 * 1024)
    app = web.Application([("/", Saver)])
    body = lint_client(app).post("/", upload_files=[("big", "big.bin", payload)]).json
    assert body == {"on_disk": True, "size": len(payload)}
    assert saved.read_bytes() == payload


def test_body_over_max_body_size_is_413() -> None:
    c = client(max_body_size=1000)
    c.post("/?names=a", {"a": "x" * 2000}, status=413)
    c.post("/files", upload_files=[("f", "f.bin", b"x" * 2000)], status=413)
    assert c.post("/?names=a", {"a": "x" * 100}).json["arg"]["a"] == "x" * 100


def test_form_field_over_max_form_memory_size_is_413() -> None:
    c = client(max_form_memory_size=20_000)
    c.post("/files", {"field": "x" * 30_000}, upload_files=[("f", "f.txt", b"small")],
           status=413)
    # files are not held in memory, so a big file under a small field limit is fine
    body = c.post("/files", {"field": "ok"},
                  upload_files=[("f", "f.txt", b"y" * 500_000)]).json
    assert body["files"]["f"][0]["size"] == 500_000


@pytest.mark.parametrize(("size", "status"), [(999, 200), (1000, 200), (1001, 413)])
def test_urlencoded_body_over_max_form_memory_size_is_413(
        size: int, status: int, caplog: pytest.LogCaptureFixture) -> None:
    """A urlencoded form is held in memory whole: one limit with a multipart field's."""
    body = "a=" + "x" * (size - 2)
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = client(max_form_memory_size=1000).post(
            "/?names=a", body, content_type="application/x-www-form-urlencoded", status=status)
    refusals = [r.getMessage() for r in caplog.records if r.name == "microweb.application"]
    if status == 200:
        assert response.json["body"]["a"] == ["x" * (size - 2)] and refusals == []
    else:
        assert len(refusals) == 1 and refusals[0].startswith("413 POST /?names=a")
        assert refusals[0].endswith(": Request urlencoded form body (max_form_memory_size) "
                                    "exceeds the configured limit")


@pytest.mark.parametrize(("size", "status"), [(1000, "200"), (1001, "413")])
def test_streamed_urlencoded_body_is_read_no_further_than_the_form_limit(
        size: int, status: str) -> None:
    """A chunked body has no Content-Length to refuse early: reading stops past the limit."""
    from werkzeug.test import create_environ

    body = b"a=" + b"x" * (size - 2) + b"&" + b"y" * 100_000  # the part after the limit
    stream = io.BytesIO(body[:size] if status == "200" else body)
    environ = create_environ("/?names=a", method="POST", input_stream=stream,
                             content_type="application/x-www-form-urlencoded")
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    started: list[str] = []
    app = validator(web.Application([("/", Args)], max_form_memory_size=1000))
    result = app(environ, lambda s, h, e=None: started.append(s))  # type: ignore[misc]
    try:
        answer = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    assert [line[:3] for line in started] == [status]
    if status == "200":
        assert json.loads(answer)["body"]["a"] == ["x" * (size - 2)]
    else:
        assert stream.tell() <= 64 * 1024  # the rest of the body was never read


def test_form_limits_leave_a_smaller_max_body_size_in_charge() -> None:
    c = client(max_body_size=500, max_form_memory_size=1000)
    c.post("/?names=a", {"a": "x" * 700}, status=413)
    assert c.post("/?names=a", {"a": "x" * 400}).json["arg"]["a"] == "x" * 400


def test_too_many_multipart_parts_is_413() -> None:
    c = client(max_form_parts=3)
    c.post("/files", [(f"k{i}", "v") for i in range(10)],
           upload_files=[("f", "f.txt", b"1")], status=413)


@pytest.mark.parametrize("body,ctype", [
    (b"--XYZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
     "multipart/form-data; boundary=XYZ"),
    (b"garbage without boundary", "multipart/form-data"),
    (b"--XYZ\r\nno headers end", "multipart/form-data; boundary=XYZ"),
])
def test_malformed_multipart_is_400(body: bytes, ctype: str) -> None:
    # TestApp.post would re-encode a multipart body: send the bytes as they are.
    response = client().request("/files", method="POST", body=body,
                                headers={"Content-Type": ctype}, status=400)
    assert "Bad Request" in response.text


def test_body_survives_form_parsing_order() -> None:
    class Both(web.RequestHandler):
        def post(self) -> None:
            raw = self.request.body
            self.write({"raw": raw.decode(), "a": self.get_argument("a")})

    response = lint_client(web.Application([("/", Both)])).post("/", {"a": "1"})
    assert response.json == {"raw": "a=1", "a": "1"}


def test_upload_read_after_body_was_read() -> None:
    class BodyThenFiles(web.RequestHandler):
        def post(self) -> None:
            size = len(self.request.body)
            self.write({"size": size, "file": self.request.files["f"][0].body.decode()})

    response = lint_client(web.Application([("/", BodyThenFiles)])).post(
        "/", upload_files=[("f", "a.txt", b"content")])
    assert response.json["file"] == "content" and response.json["size"] > 0


def test_http_file_dict_access() -> None:
    class H(web.RequestHandler):
        def post(self) -> None:
            f = self.request.files["f"][0]
            self.write({"keys": f.keys(), "in": "body" in f, "get": f.get("nope", "d"),
                        "repr": repr(f)})

    body = lint_client(web.Application([("/", H)])).post(
        "/", upload_files=[("f", "x.txt", b"x")]).json
    assert body["keys"] == ["filename", "body", "content_type"]
    assert body["in"] is True and body["get"] == "d" and "x.txt" in body["repr"]


def test_raw_json_body_bytes() -> None:
    class Raw(web.RequestHandler):
        def post(self) -> None:
            self.write({"is_bytes": isinstance(self.request.body, bytes),
                        "data": json.loads(self.request.body)})

    body = lint_client(web.Application([("/", Raw)])).post_json("/", [1, 2]).json
    assert body == {"is_bytes": True, "data": [1, 2]}


class Body(web.RequestHandler):
    def post(self) -> None:
        self.write({"size": len(self.request.body)})


def test_streamed_body_without_length_is_bounded() -> None:
    """A server that de-chunks bodies sets wsgi.input_terminated; the limit still applies."""
    app = lint_client(web.Application([("/", Body)], max_body_size=100), validate=False)
    ok = app.post("/", extra_environ={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
                  params=b"x" * 50)
    assert ok.json == {"size": 50}
    app.post("/", extra_environ={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
             params=b"x" * 500, status=413)


@pytest.mark.parametrize(("size", "status"), [(100, "200"), (101, "413"), (500, "413")])
def test_streamed_body_just_over_the_limit_is_refused_not_cut(size: int, status: str) -> None:
    app = web.Application([("/", Body)], max_body_size=100)
    answer, body = call_raw(app, CONTENT_LENGTH="", **{"wsgi.input_terminated": True,
                                                       "wsgi.input": io.BytesIO(b"x" * size)})
    assert answer[:3] == status
    if status == "200":
        assert json.loads(body) == {"size": size}


def call_raw(app: web.Application, **environ: Any) -> tuple[str, bytes]:
    """Call the app with exactly this environ (webtest would fix up CONTENT_LENGTH)."""
    from wsgiref.util import setup_testing_defaults
    env: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/"}
    setup_testing_defaults(env)
    env.update(environ)
    status: list[str] = []
    body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
    return status[0], body


def test_body_without_length_from_a_plain_server_is_empty() -> None:
    app = web.Application([("/", Body)])
    status, body = call_raw(app, **{"wsgi.input": io.BytesIO(b"ignored")})
    assert status == "200 OK" and json.loads(body) == {"size": 0}


def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    stream = io.BytesIO(b"x" * 1000)
    app = web.Application([("/", Body)], max_body_size=10)
    status, _ = call_raw(app, CONTENT_LENGTH="1000", **{"wsgi.input": stream})
    assert status.startswith("413") and stream.tell() == 0


def test_invalid_content_length_reads_nothing() -> None:
    app = web.Application([("/", Body)])
    status, body = call_raw(app, CONTENT_LENGTH="12abc", **{"wsgi.input": io.BytesIO(b"x")})
    assert json.loads(body) == {"size": 0}


def test_request_stream_reads_in_pieces_within_limits() -> None:
    class Copy(web.RequestHandler):
        def post(self) -> None:
            sizes = []
            while chunk := self.request.stream.read(1000):
                sizes.append(len(chunk))
            self.write({"sizes": sizes})

    app = web.Application([("/", Copy)], max_body_size=2500)
    status, body = call_raw(app, CONTENT_LENGTH="2100", **{"wsgi.input": io.BytesIO(b"z" * 3000)})
    assert json.loads(body) == {"sizes": [1000, 1000, 100]}
    status, body = call_raw(app, CONTENT_LENGTH="", **{"wsgi.input_terminated": True,
                                                     "wsgi.input": io.BytesIO(b"z" * 3000)})
    assert status.startswith("413")


def test_werkzeug_http_errors_keep_their_status(logs: Any) -> None:
    from werkzeug.exceptions import abort

    class Aborts(web.RequestHandler):
        def get(self) -> None:
            abort(int(self.get_argument("code")))

    app_log = logs("microweb.application")
    client = lint_client(web.Application([("/", Aborts)]))
    assert "404: Not Found" in client.get("/?code=404", status=404).text
    client.get("/?code=418", status=418)
    assert {r.levelname for r in app_log.records} == {"WARNING"}


def test_host_fallbacks_and_ipv6() -> None:
    info = client().get("/info", headers={"Host": "[::1]:8443"}).json
    assert info["host"] == "[::1]:8443" and info["host_name"] == "[::1]"
    status, body = call_raw(web.Application([("/", Info)]), REQUEST_METHOD="GET", HTTP_HOST="",
                            SERVER_NAME="srv.local", SERVER_PORT="8080")
    assert json.loads(body)["host"] == "srv.local:8080"
    status, body = call_raw(web.Application([("/", Info)]), REQUEST_METHOD="GET", HTTP_HOST="",
                            SERVER_NAME="srv.local", SERVER_PORT="443",
                            **{"wsgi.url_scheme": "https"})
    assert json.loads(body)["full_url"] == "https://srv.local/"


def test_each_request_gets_its_own_form_containers() -> None:
    # Requests share empty defaults until they read their form: what one handler does to its
    # arguments must never show up in another request.
    from microweb.httputil import HTTPServerRequest

    def environ(body: bytes, ctype: str) -> dict[str, Any]:
        return {"REQUEST_METHOD": "POST", "CONTENT_TYPE": ctype, "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)), "PATH_INFO": "/", "QUERY_STRING": ""}

    first = HTTPServerRequest(environ(b"", "text/plain"))
    first.body_arguments["leak"] = [b"x"]
    first.files["leak"] = []
    second = HTTPServerRequest(environ(b"", "text/plain"))
    assert second.body_arguments == {} and second.files == {}
    form = HTTPServerRequest(environ(b"a=1", "application/x-www-form-urlencoded"))
    assert form.body_arguments == {"a": [b"1"]}
    assert HTTPServerRequest(environ(b"", "text/plain")).body_arguments == {}
