"""examples/tornado_port: the same scenario against the Tornado original and the microweb port."""

from __future__ import annotations

import difflib
import re
from urllib.parse import urlsplit

import requests

from tests.support import PYTHON, ROOT, free_port, spawn

EXAMPLE = ROOT / "examples" / "tornado_port"


def _token(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def _location(res: requests.Response) -> str:
    parts = urlsplit(res.headers["Location"])
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _scenario(base: str) -> list[object]:
    """What a user sees, step by step; both frameworks must produce the same transcript."""
    s, seen = requests.Session(), []

    def get(path: str, **kw: object) -> requests.Response:
        return s.get(base + path, allow_redirects=False, timeout=10, **kw)

    def post(path: str, **kw: object) -> requests.Response:
        return s.post(base + path, allow_redirects=False, timeout=10, **kw)

    seen += [get("/").text, get("/").text]
    res = get("/profile")
    seen.append((res.status_code, _location(res)))
    token = _token(get("/login", params={"next": "/profile"}).text)
    seen.append(post("/login", data={"name": "ada", "password": "tornado"}).status_code)
    res = post("/login", data={"_xsrf": token, "name": "ada", "password": "bad",
                               "next": "/profile"})
    seen.append((res.status_code, "Wrong password." in res.text))
    res = post("/login", data={"_xsrf": token, "name": "ada", "password": "tornado",
                               "next": "/profile"})
    seen.append((res.status_code, _location(res)))
    res = get("/profile")
    seen.append((res.status_code, res.headers["Content-Type"], res.json()))
    res = get("/houses")
    seen.append((res.status_code, res.text.count('class="house-item"')))
    seen.append((get("/houses/1").json()["title"], get("/houses/7").status_code))
    res = post("/logout", data={"_xsrf": token})
    seen.append((res.status_code, _location(res), get("/profile").status_code))
    return seen


EXPECTED = [
    "<h1>You have seen this page 1 times.</h1>",
    "<h1>You have seen this page 2 times.</h1>",
    (302, "/login?next=%2Fprofile"),
    403,
    (401, True),
    (302, "/profile"),
    (200, "application/json; charset=UTF-8", {"user": "ada", "houses": 2}),
    (200, 2),
    ("Independent little villa", 404),
    (302, "/", 302),
]


def test_tornado_original_and_microweb_port_behave_the_same():
    tornado_port, microweb_port = free_port(), free_port()
    with spawn([PYTHON, "-m", "examples.tornado_port.tornado_app", f"--port={tornado_port}"],
               port=tornado_port), \
         spawn([PYTHON, "-m", "examples.tornado_port.app", f"--port={microweb_port}"],
               port=microweb_port):
        on_tornado = _scenario(f"http://127.0.0.1:{tornado_port}")
        on_microweb = _scenario(f"http://127.0.0.1:{microweb_port}")
    assert on_tornado == EXPECTED
    assert on_microweb == on_tornado


def _changed(a: str, b: str) -> list[str]:
    diff = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_readme_shows_the_real_python_diff():
    readme = (EXAMPLE / "README.md").read_text()
    shown = re.search(r"```diff\n(.*?)```", readme, re.S).group(1).splitlines()
    real = _changed((EXAMPLE / "tornado_app.py").read_text(), (EXAMPLE / "app.py").read_text())
    assert sorted(real) == sorted(shown)
