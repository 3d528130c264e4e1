"""Helpers shared by the test suite: free ports, subprocess servers, real redis-server, Chromium.

Everything binds to 127.0.0.1 only, is bounded in time and is stopped by whoever started it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    """One plain GET to 127.0.0.1:port on a fresh connection: (status, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts on host:port, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = 10.0) -> int:
    """Signal ``proc``, wait up to ``timeout``, then kill it; returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


class Spawned:
    """A subprocess whose combined output goes to a temp file readable as ``.output()``."""

    def __init__(self, argv: Sequence[str], port: int | None, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        self.port = port
        self._log = tempfile.NamedTemporaryFile(prefix="spawned-", suffix=".log", delete=False)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(list(argv), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env, cwd=str(cwd or ROOT), start_new_session=True)

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        code = stop_process(self.proc, sig, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers (worker processes)
        return code

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@contextlib.contextmanager
def spawn(argv: Sequence[str], port: int | None = None, env: dict[str, str] | None = None,
          cwd: str | Path | None = None, timeout: float = 20.0) -> Iterator[Spawned]:
    """Run ``argv``; if ``port`` is given wait until it accepts. Always stopped on exit."""
    sp = Spawned(argv, port, env, cwd)
    try:
        if port is not None:
            try:
                wait_for_port(port, timeout=timeout, proc=sp.proc)
            except Exception as exc:
                raise RuntimeError(f"{argv} did not start: {exc}\n{sp.output()}") from exc
        yield sp
    finally:
        sp.close()


def which(name: str) -> str | None:
    """Find an executable in the venv, PATH or the sbin folders (nginx lives in /usr/sbin)."""
    venv = BIN / name
    if venv.exists():
        return str(venv)
    return shutil.which(name, path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[int]:
    """A real, throwaway redis-server on 127.0.0.1; yields its port."""
    exe = which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="redis-") as d, spawn(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--protected-mode", "no"], port=port,
    ):
        yield port


def chromium_driver():  # type: ignore[no-untyped-def]
    """A selenium WebDriver for headless Debian Chromium (caller must ``quit()`` it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        opts.add_argument(flag)
    service = Service(executable_path=which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(20)
    return driver
