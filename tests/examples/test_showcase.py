"""The showcase (``make run``) in-process: login, XSRF, houses, uploads, streaming, static."""

from __future__ import annotations

import gzip
import logging
import os
import re
import subprocess

from webtest import TestApp
from werkzeug.test import Client

from examples.showcase import make_app
from examples.showcase.data import Database
from tests.examples.conftest import login
from tests.support import PYTHON, ROOT


def _session_cookie(app: TestApp) -> str | None:
    return next((c.value for c in app.cookiejar if c.name == "session"), None)


def test_first_page_says_what_to_try(showcase):
    page = showcase.get("/")
    for link in ("/account", "/houses", "/houses/new", "/upload", "/houses.csv", "/chat"):
        assert f'href="{link}"' in page.text
    assert "demo</strong> / <strong>demo" in page.text
    assert page.headers["Content-Type"].startswith("text/html")


def test_authenticated_page_redirects_to_login_then_back_to_next(showcase):
    res = showcase.get("/account", status=302)
    assert res.headers["Location"].endswith("/login?next=%2Faccount")
    done = login(showcase, next_url="/account")
    assert done.status_int == 302 and done.headers["Location"].endswith("/account")
    page = done.follow()
    assert '<span id="account-name">demo</span>' in page.text


def test_login_regenerates_the_session_id(showcase):
    login(showcase)
    before = _session_cookie(showcase)
    login(showcase, "alice", "wonderland")  # a known id must not survive a login
    after = _session_cookie(showcase)
    assert before and after and after != before
    assert '<span id="account-name">alice</span>' in showcase.get("/account").text


def test_wrong_password_is_refused(showcase):
    res = login(showcase, password="nope")
    assert res.status_int == 401
    assert 'id="login-error"' in res.text
    assert showcase.get("/account", status=302)


def test_next_cannot_leave_the_site(showcase):
    res = login(showcase, next_url="//evil.example/")
    assert res.status_int == 302
    assert res.headers["Location"] in ("/", "http://localhost/")


def test_logout_needs_post_with_token_and_ends_the_session(showcase):
    login(showcase)
    page = showcase.get("/account")
    showcase.post("/logout", status=403)  # no XSRF token: refused, still logged in
    assert showcase.get("/account").status_int == 200
    res = page.forms[0].submit()  # the header's logout form carries the token
    assert res.status_int == 302
    assert showcase.get("/account", status=302)


def test_houses_list_detail_and_missing(showcase):
    page = showcase.get("/houses")
    assert page.text.count('class="house-item"') == 3
    assert "Independent little villa" in page.text
    house = page.click(href=r"/houses/\d+$", index=0)
    assert 'id="house-title"' in house.text
    showcase.get("/houses/9999", status=404)


def test_new_house_needs_login_and_token_and_is_escaped(showcase):
    assert showcase.get("/houses/new", status=302)
    login(showcase)
    form = showcase.get("/houses/new").forms["house-form"]
    bad = showcase.post("/houses/new", {"title": "x", "position": "p", "price": "1"},
                        status=403)  # without the token
    assert bad.status_int == 403
    form["title"], form["position"], form["price"] = "<script>alert(1)</script>", "Chengdu", "12"
    saved = form.submit().follow()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in saved.text
    assert "<script>alert(1)" not in saved.text
    assert "Listed by demo" in saved.text


def test_new_house_validation_errors_keep_the_values(showcase):
    login(showcase)
    form = showcase.get("/houses/new").forms["house-form"]
    form["title"], form["position"], form["price"] = "Nice loft", "Chengdu", "free"
    res = form.submit(status=400)
    assert 'id="error-price"' in res.text
    assert 'value="Nice loft"' in res.text


def test_csv_export_streams_every_house(showcase):
    res = showcase.get("/houses.csv")
    assert res.headers["Content-Type"].startswith("text/csv")
    lines = res.text.strip().splitlines()
    assert lines[0] == "id,title,position,price,score,comments"
    assert len(lines) == 4


def test_upload_then_streamed_download(showcase):
    login(showcase)
    payload = bytes(range(256)) * 1024  # 256 KiB: several 64 KiB chunks
    form = showcase.get("/upload").forms["upload-form"]
    form["file"] = ("notes é.bin", payload)
    listing = form.submit().follow()
    link = re.search(r'href="(/download/[0-9a-f]{32})"', listing.text).group(1)
    res = showcase.get(link)
    assert res.body == payload
    assert res.headers["Content-Disposition"] == "attachment; filename*=UTF-8''notes%20%C3%A9.bin"
    other = TestApp(showcase.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    login(other, "alice", "wonderland")
    other.get(link, status=404)  # somebody else's file does not exist for you


def test_upload_without_a_file_is_a_clear_error(showcase):
    login(showcase)
    form = showcase.get("/upload").forms["upload-form"]
    res = form.submit(status=400)
    assert 'id="upload-error"' in res.text


def test_static_urls_are_versioned_and_served(showcase):
    page = showcase.get("/")
    url = re.search(r'href="(/static/css/main\.css\?v=[0-9a-f]+)"', page.text).group(1)
    css = showcase.get(url)
    assert b".house-list" in css.body
    assert "max-age=31536000" in css.headers.get("Cache-Control", "").replace(" ", "")


def test_html_is_gzipped_and_access_logged_with_the_user(showcase_data, caplog):
    client = Client(make_app(showcase_data, access_log=None))
    with caplog.at_level(logging.INFO, logger="microweb.access"):
        res = client.get("/houses", headers={"Accept-Encoding": "gzip"},
                         environ_base={"REMOTE_ADDR": "127.0.0.1"}, buffered=True)
    assert res.headers["Content-Encoding"] == "gzip"
    assert b"house-item" in gzip.decompress(res.data)
    assert any("/houses" in r.getMessage() for r in caplog.records)


def test_access_log_names_the_logged_in_user(showcase, caplog):
    login(showcase)
    with caplog.at_level(logging.INFO, logger="microweb.access"):
        showcase.get("/account")
    assert any("/account" in r.getMessage() and "demo" in r.getMessage()
               for r in caplog.records)


def test_chat_page_points_at_the_socket(showcase):
    page = showcase.get("/chat")
    assert 'data-socket="/chat/socket"' in page.text
    assert re.search(r'src="/static/js/chat\.js\?v=[0-9a-f]+"', page.text)


def test_data_survives_a_restart(showcase_data):
    first = TestApp(make_app(showcase_data, access_log=None))
    login(first)
    form = first.get("/houses/new").forms["house-form"]
    form["title"], form["position"], form["price"] = "Riverside flat", "Hangzhou", "300"
    form.submit()
    second = TestApp(make_app(showcase_data, access_log=None))
    second.cookiejar = first.cookiejar  # same browser, restarted server
    assert "Riverside flat" in second.get("/houses").text
    assert second.get("/account").status_int == 200  # same secret: still logged in


def test_upload_over_the_limit_is_refused(showcase, showcase_data):
    login(showcase)
    form = showcase.get("/upload").forms["upload-form"]
    form["file"] = ("big.bin", b"\0" * (9 * 1024 * 1024))
    form.submit(status=413)
    assert not list((showcase_data / "uploads").iterdir())


def test_odd_ids_are_not_found_not_errors(showcase):
    showcase.get("/houses/99999999999999999999999", status=404)
    showcase.get("/houses/abc", status=404)
    login(showcase)
    showcase.get("/download/" + "a" * 32, status=404)
    showcase.get("/download/../../secret.key", status=404)


def test_a_session_id_stolen_before_logout_is_dead_after_it(showcase):
    login(showcase)
    stolen = _session_cookie(showcase)
    showcase.get("/account").forms[0].submit()  # log out
    thief = TestApp(showcase.app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    thief.set_cookie("session", stolen)
    assert thief.get("/account", status=302).headers["Location"].startswith("/login")


def test_security_headers_on_pages_and_errors(showcase):
    for res in (showcase.get("/"), showcase.get("/houses/12345", status=404)):
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "same-origin"


def test_worker_processes_starting_together_share_secret_and_data(tmp_path):
    """Pre-forked workers build the app at once: one key, one schema, the samples seeded once."""
    code = ("import sys; from examples.showcase.app import make_app, load_secret; "
            "from pathlib import Path; d = Path(sys.argv[1]); make_app(d, access_log=None); "
            "print(load_secret(d))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MICROWEB_SHOWCASE_SECRET", None)
    procs = [subprocess.Popen([PYTHON, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1
    assert len(Database(tmp_path / "showcase.sqlite3").houses()) == 3
