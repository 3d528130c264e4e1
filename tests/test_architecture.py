"""The import arrows of the design stay true: middleware never imports microweb, and the
bundled server imports neither the framework nor the middlewares."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module name a file imports, with its line number."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _violations(folder: str, forbidden: tuple[str, ...],
                allowed: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for lineno, name in _imports(path):
            top_match = any(name == f or name.startswith(f + ".") for f in forbidden)
            ok = any(name == a or name.startswith(a + ".") for a in allowed)
            if top_match and not ok:
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    return found


def test_middleware_never_imports_microweb() -> None:
    assert _violations("middleware", ("microweb",)) == []


def test_server_imports_neither_framework_nor_middleware() -> None:
    assert _violations("microweb/server", ("microweb", "middleware"),
                       allowed=("microweb.server",)) == []


@pytest.mark.parametrize("folder", ["microweb", "middleware"])
def test_no_pickle_near_cookies_or_sessions(folder: str) -> None:
    assert _violations(folder, ("pickle", "cPickle", "shelve", "marshal")) == []


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom microweb.handler import RequestHandler\n")
    assert list(_imports(bad)) == [(1, "os"), (2, "microweb.handler")]
