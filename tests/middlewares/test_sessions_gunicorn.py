"""One SQLite session file shared by two real gunicorn worker processes: a login made through
one worker is recognised by the other."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from tests import support

APP = textwrap.dedent('''
    import json, os, time
    from middleware.sessions import SessionMiddleware, SQLiteStore

    def inner(environ, start_response):
        session = environ["microweb.session"]
        path = environ["PATH_INFO"]
        if path == "/slow":  # keeps this worker busy so the next request goes to the other
            time.sleep(float(environ.get("QUERY_STRING") or 1))
            user = None
        elif path == "/login":
            session.regenerate()
            session["user"] = "alice"
            session["login_pid"] = os.getpid()
            user = "alice"
        else:
            user = session.get("user")
        body = json.dumps({"pid": os.getpid(), "user": user,
                           "login_pid": session.get("login_pid") if path != "/slow" else None})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body.encode()]

    app = SessionMiddleware(inner, "gunicorn-test-secret", SQLiteStore(os.environ["SESSIONS_DB"]))
''')


def _get(opener: urllib.request.OpenerDirector, url: str) -> dict[str, Any]:
    with opener.open(url, timeout=15) as response:
        return dict(json.loads(response.read()))


@pytest.mark.slow
def test_login_on_one_worker_is_recognised_by_the_other(tmp_path: Path, port: int) -> None:
    (tmp_path / "sessions_app.py").write_text(APP)
    gunicorn = support.which("gunicorn")
    assert gunicorn is not None
    argv = [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path),
            "--graceful-timeout", "2", "sessions_app:app"]
    base = f"http://127.0.0.1:{port}"
    with support.spawn(argv, port=port, env={"SESSIONS_DB": str(tmp_path / "s.db")}) as server:
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        anonymous = urllib.request.build_opener()
        login = _get(browser, f"{base}/login")
        assert login["user"] == "alice"
        seen_pids: set[int] = set()
        for attempt in range(30):
            # Which idle sync worker accepts a connection is up to the kernel, and it tends to
            # be the same one each time. One /slow request leaves the other worker to answer
            # /me; on odd attempts a second, longer one occupies that worker too, so /me waits
            # for the first sleeper instead: one of the two patterns reaches the other worker.
            sleeps = ["0.6"] if attempt % 2 == 0 else ["0.6", "1.5"]
            busy = [threading.Thread(target=_get, args=(anonymous, f"{base}/slow?{s}"))
                    for s in sleeps]
            for thread in busy:
                thread.start()
                time.sleep(0.2)
            me = _get(browser, f"{base}/me")
            for thread in busy:
                thread.join(15)
            assert me["user"] == "alice", (me, server.output())
            assert me["login_pid"] == login["pid"]
            seen_pids.add(me["pid"])
            if len(seen_pids) == 2:
                break
        assert len(seen_pids) == 2, f"only worker(s) {seen_pids} answered\n{server.output()}"
        assert login["pid"] in seen_pids
        other = (seen_pids - {login["pid"]}).pop()
        assert other != login["pid"]  # a worker that did not handle the login knew the user
