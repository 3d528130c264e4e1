"""Run every benchmark: ``python -m benchmarks [inprocess|server ...]`` (see README)."""

from __future__ import annotations

import importlib
import sys

_SUITES = ("inprocess", "stack", "server", "websocket")


def main(argv: list[str]) -> int:
    """Run the named suites (all by default); each module exposes ``main(argv) -> int | None``."""
    names = [a for a in argv if a in _SUITES] or list(_SUITES)
    rest = [a for a in argv if a not in _SUITES]
    status = 0
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc}) ==", flush=True)
            status = 1
            continue
        print(f"== {name} ==", flush=True)
        status |= int(module.main(rest) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
