"""A real nginx in front of real gunicorn backends, from the recipes in examples/deploy/."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import BIN, ROOT, Spawned, free_port, spawn, wait_for_port, which

DEPLOY = ROOT / "examples" / "deploy"
NGINX = which("nginx") or "/usr/sbin/nginx"


def site_config(backends: list[int], listen: int) -> str:
    """examples/deploy/nginx.conf with this run's ports and checkout path."""
    text = (DEPLOY / "nginx.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n"
                      for p in backends)
    text, count = re.subn(r"(    server 127\.0\.0\.1:800\d [^\n]*\n)+", servers, text)
    assert count == 1, "the upstream block of nginx.conf changed shape"
    text = text.replace("    listen 80;\n", f"    listen 127.0.0.1:{listen};\n")
    text = text.replace("    listen [::]:80;\n", "")
    return text.replace("/srv/microweb", str(ROOT))


def main_config(prefix: Path) -> str:
    """The nginx.conf wrapping the site: foreground, every path inside ``prefix``."""
    temp = "\n".join(f"    {name}_temp_path {prefix}/{name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n"
            f"    default_type application/octet-stream;\n"
            f"    access_log {prefix}/access.log;\n{temp}\n"
            f"    include {prefix}/site.conf;\n}}\n")


@contextlib.contextmanager
def nginx(backends: list[int], prefix: Path) -> Iterator[int]:
    """Run nginx in the foreground on a free loopback port; yields the port."""
    port = free_port()
    (prefix / "site.conf").write_text(site_config(backends, port))
    (prefix / "nginx.conf").write_text(main_config(prefix))
    argv = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
            str(prefix / "error.log")]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=20)
    assert check.returncode == 0, check.stderr
    with spawn(argv, port=port) as proc:
        try:
            yield port
        finally:
            proc.stop(signal.SIGQUIT)


@dataclass
class Site:
    """nginx on ``port`` in front of the gunicorn ``backends`` (their Spawned processes)."""

    port: int
    backends: list[Spawned]

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def site(tmp_path: Path, redis_port: int) -> Iterator[Site]:
    """Two gunicorn backends (microweb worker class) sharing SQLite and a Redis chat hub."""
    env = {"MICROWEB_SHOWCASE_DATA": str(tmp_path / "data"),
           "MICROWEB_SHOWCASE_SECRET": "integration test secret, same on every backend",
           "MICROWEB_SHOWCASE_REDIS": f"redis://127.0.0.1:{redis_port}/0",
           "MICROWEB_SHOWCASE_TRUSTED_PROXIES": "127.0.0.1/32",
           "MICROWEB_WORKERS": "1", "MICROWEB_THREADS": "4"}
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        backends = [stack.enter_context(spawn(
            [str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{p}", "examples.showcase:application"],
            port=p, env=env)) for p in ports]
        for p in ports:
            wait_for_port(p)
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        yield Site(stack.enter_context(nginx(ports, prefix)), backends)
