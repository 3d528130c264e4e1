"""Hello, world: the smallest microweb application.

Run it with ``python -m examples.hello [--host H --port P]`` (the bundled server when it is
installed, else wsgiref), ``microweb serve examples.hello:application`` or
``gunicorn examples.hello:application``.
"""

from __future__ import annotations

import argparse
from typing import Any

import microweb as web


class MainHandler(web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class GreetHandler(web.RequestHandler):
    def get(self, name: str) -> None:
        self.write({"hello": name, "greeting": self.get_argument("greeting", "Hello")})


class StreamHandler(web.RequestHandler):
    """Streams ``n`` lines, one chunk each (a generator method)."""

    def get(self) -> Any:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        for i in range(int(self.get_argument("n", "3"))):
            yield f"line {i}\n"


def make_app(**settings: Any) -> web.Application:
    return web.Application([
        web.url(r"/", MainHandler, name="home"),
        web.url(r"/hello/([^/]+)", GreetHandler, name="greet"),
        web.url(r"/stream", StreamHandler, name="stream"),
    ], **settings)


application = make_app()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the hello example.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        from microweb.server import serve
    except ImportError:
        serve = None
    if serve is not None:
        serve(application, host=args.host, port=args.port)
        return
    from wsgiref.simple_server import make_server
    with make_server(args.host, args.port, application) as httpd:
        print(f"Serving on http://{args.host}:{args.port}/ (wsgiref)", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main()
