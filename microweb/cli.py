"""The ``microweb`` console script: ``microweb serve module:attr [options]``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["load_config", "main"]

_USAGE = """usage: microweb serve module:attr [--host H] [--port P] [--workers N] [--threads N]
                      [--reload] [--debugger] [--config FILE] [...]

commands:
  serve    serve a WSGI application with microweb's HTTP/1.1 server
           (`microweb serve --help` lists every option)
"""


def load_config(path: str) -> object:
    """``microweb.config.load(path)``; a bad file becomes a one-line usage error (exit 2)."""
    from microweb.config import load  # only when --config is given
    from microweb.options import Error
    from microweb.server.command import UsageError

    try:
        return load(path)
    except Error as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        from microweb.server.command import main as serve_main

        return serve_main(rest, prog="microweb serve", config_loader=load_config)
    print(f"microweb: unknown command {command!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
