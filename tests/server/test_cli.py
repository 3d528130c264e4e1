"""``microweb serve`` as users meet it: config errors, ``debug = true`` reloading, --debugger."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support import BIN, PYTHON, ROOT, spawn
from tests.support import http_get as _get

from .conftest import wait_until

MICROWEB = [str(BIN / "microweb"), "serve"]


def _run(*argv: str, cwd: Path | str = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text('[app]\nmodule = "tests.server.apps:app"\n[server]\nthreds = 2\n')
    for argv in ([*MICROWEB, "--config", str(toml)],
                 [PYTHON, "-m", "microweb.server", "--config", str(toml)]):
        done = _run(*argv)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1
        assert str(toml) in errors[0] and "unknown server option 'threds'" in errors[0]


def test_missing_config_file_exit_2(tmp_path: Path) -> None:
    done = _run(*MICROWEB, "--config", str(tmp_path / "nowhere.toml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "nowhere.toml" in done.stderr


def test_debug_true_in_the_config_reloads_on_code_change(tmp_path: Path, port: int) -> None:
    module = tmp_path / "devsite.py"
    source = ("import microweb\n\nclass Home(microweb.RequestHandler):\n    def get(self):\n"
              "        self.write({!r})\n\nhandlers = [(r'/', Home)]\n")
    module.write_text(source.format("first"))
    toml = tmp_path / "dev.toml"
    toml.write_text(f'[app]\nhandlers = "devsite:handlers"\n[app.settings]\ndebug = true\n'
                    f'[server]\nport = {port}\n')
    with spawn([*MICROWEB, "--config", str(toml)], port=port, cwd=tmp_path,
               env={"PYTHONPATH": str(tmp_path)}):
        assert _get(port) == (200, "first")
        time.sleep(0.5)
        module.write_text(source.format("second"))

        def changed() -> bool:
            try:
                return _get(port, timeout=2) == (200, "second")
            except OSError:
                return False

        assert wait_until(changed, 20)


BOOM = "def app(environ, start_response):\n    raise ZeroDivisionError('boom in the app')\n"


def test_debugger_shows_the_traceback_page(tmp_path: Path, port: int) -> None:
    (tmp_path / "boomapp.py").write_text(BOOM)
    argv = [*MICROWEB, "boomapp:app", "--debugger", "--port", str(port)]
    with spawn(argv, port=port, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)}) as sp:
        status, page = _get(port)
        assert status == 500
        assert "ZeroDivisionError" in page and "boom in the app" in page
        assert "debugger" in page.lower() and "<html" in page.lower()
        assert wait_until(lambda: "PIN:" in sp.output())
    # without the flag: a plain 500, no source or traceback for the browser
    with spawn([*MICROWEB, "boomapp:app", "--port", str(port)], port=port, cwd=tmp_path,
               env={"PYTHONPATH": str(tmp_path)}):
        status, page = _get(port)
        assert status == 500 and "boom in the app" not in page


def test_debugger_refused_off_loopback_and_with_workers(tmp_path: Path) -> None:
    (tmp_path / "boomapp.py").write_text(BOOM)
    public = _run(*MICROWEB, "boomapp:app", "--debugger", "--host", "0.0.0.0", "--port", "0",
                  cwd=tmp_path)
    assert public.returncode == 2 and "Traceback" not in public.stderr
    assert "loopback" in public.stderr and "'0.0.0.0'" in public.stderr
    workers = _run(*MICROWEB, "boomapp:app", "--debugger", "--workers", "2", "--port", "0",
                   cwd=tmp_path)
    assert workers.returncode == 2 and "one worker" in workers.stderr


def test_config_debugger_rechecked_after_host_override(tmp_path: Path) -> None:
    """The config file allowed the debugger for its own host; --host 0.0.0.0 must not slip by."""
    (tmp_path / "boomapp.py").write_text(BOOM)
    toml = tmp_path / "dbg.toml"
    toml.write_text('[app]\nmodule = "boomapp:app"\n[app.settings]\ndebugger = true\n'
                    '[server]\nhost = "127.0.0.1"\nport = 0\n')
    done = _run(*MICROWEB, "--config", str(toml), "--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "loopback" in done.stderr
