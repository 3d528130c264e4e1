"""``python -m examples.showcase``: serve the showcase on the bundled server.

Equivalent to ``microweb serve examples.showcase:application``; the flags below are the few the
showcase itself needs (the CLI has every server setting).
"""

from __future__ import annotations

import argparse

from examples.showcase.app import make_app
from microweb import log
from microweb.server import serve


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, build the stack, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.showcase", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", help="data folder (default examples/showcase/var)")
    parser.add_argument("--redis", help="redis:// URL for the chat hub (several processes)")
    parser.add_argument("--debug", action="store_true", help="reload templates, show tracebacks")
    args = parser.parse_args(argv)
    log.configure("INFO")
    app = make_app(args.data, debug=args.debug, redis_url=args.redis)
    print(f"microweb showcase on http://{args.host}:{args.port}/  (Ctrl-C to stop)", flush=True)
    serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
