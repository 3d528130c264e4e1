"""Routing: rule forms, path arguments, reverse_url, hosts, mounts, 404 and 405."""

from __future__ import annotations

from typing import Any

import flask
import pytest

import microweb as web
from microweb.routing import RuleSet

from .conftest import lint_client


class EchoHandler(web.RequestHandler):
    """Echoes what routing gave it: initialize kwargs, path args and kwargs."""

    def initialize(self, **kwargs: Any) -> None:
        self.init_kwargs = kwargs

    def get(self, *args: Any, **kwargs: Any) -> None:
        self.write({"handler": type(self).__name__, "init": self.init_kwargs,
                    "args": list(args), "kwargs": kwargs, "path": self.request.path})


class OtherHandler(EchoHandler):
    pass


def get_json(app: web.Application, path: str, **kwargs: Any) -> Any:
    return lint_client(app).get(path, **kwargs).json


def test_tuple_forms_and_url_rules() -> None:
    app = web.Application([
        ("/a", EchoHandler),
        ("/b", EchoHandler, {"db": "b"}),
        ("/c", EchoHandler, {"db": "c"}, "c"),
        web.url("/d", OtherHandler, {"db": "d"}, name="d"),
    ])
    assert get_json(app, "/a")["init"] == {}
    assert get_json(app, "/b")["init"] == {"db": "b"}
    assert get_json(app, "/c")["init"] == {"db": "c"}
    assert get_json(app, "/d")["handler"] == "OtherHandler"
    assert app.reverse_url("c") == "/c" and app.reverse_url("d") == "/d"


def test_unnamed_groups_are_positional_and_named_groups_keywords() -> None:
    app = web.Application([
        (r"/story/([0-9]+)/(\w+)", EchoHandler),
        (r"/user/(?P<uid>[0-9]+)/(?P<tab>\w+)", EchoHandler),
    ])
    assert get_json(app, "/story/12/intro")["args"] == ["12", "intro"]
    body = get_json(app, "/user/7/posts")
    assert body["kwargs"] == {"uid": "7", "tab": "posts"} and body["args"] == []


def test_whole_path_must_match() -> None:
    app = web.Application([(r"/story/([0-9]+)", EchoHandler)])
    client = lint_client(app)
    client.get("/story/12x", status=404)
    client.get("/prefix/story/12", status=404)
    client.get("/story/12%0A", status=404)  # fullmatch: "$" would accept it


def test_optional_group_that_did_not_match_is_none() -> None:
    app = web.Application([(r"/page(?:/([0-9]+))?", EchoHandler)])
    assert get_json(app, "/page")["args"] == [None]
    assert get_json(app, "/page/3")["args"] == ["3"]


def test_path_arguments_arrive_percent_decoded() -> None:
    app = web.Application([(r"/tag/([^/]+)", EchoHandler)])
    assert get_json(app, "/tag/caf%C3%A9%20au%20lait")["args"] == ["café au lait"]
    assert get_json(app, "/tag/a%2Bb")["args"] == ["a+b"]


def test_bad_utf8_in_path_is_400_not_500() -> None:
    app = web.Application([(r"/tag/(.*)", EchoHandler)])
    response = lint_client(app).get("/tag/%FF%FE", status=400)
    assert b"400" in response.body


def test_first_matching_rule_wins_even_over_a_later_literal() -> None:
    app = web.Application([
        (r"/items/(.*)", EchoHandler),
        (r"/items/special", OtherHandler),
        (r"/exact", OtherHandler),
        (r"/ex(act)", EchoHandler),
    ])
    assert get_json(app, "/items/special")["handler"] == "EchoHandler"
    assert get_json(app, "/exact")["handler"] == "OtherHandler"


def test_regex_features_still_work_in_the_compiled_table() -> None:
    app = web.Application([
        (r"/files/.+\.txt", EchoHandler),
        (r"/v[12]/thing", OtherHandler),
        (r"/a|/b", EchoHandler),
        (r"/colou?r", OtherHandler),
        (r"/dot\.html", EchoHandler),
    ])
    client = lint_client(app)
    assert client.get("/files/x/y.txt").json["handler"] == "EchoHandler"
    assert client.get("/v2/thing").json["handler"] == "OtherHandler"
    client.get("/v3/thing", status=404)
    assert client.get("/a").json["handler"] == "EchoHandler"
    assert client.get("/b").json["handler"] == "EchoHandler"
    client.get("/ab", status=404)
    assert client.get("/color").json["handler"] == "OtherHandler"
    assert client.get("/colour").json["handler"] == "OtherHandler"
    assert client.get("/dot.html").json["handler"] == "EchoHandler"
    client.get("/dotxhtml", status=404)


def test_a_thousand_routes_each_reach_their_handler() -> None:
    handlers = [(rf"/r{i}/([0-9]+)", EchoHandler, {"i": i}) for i in range(1000)]
    handlers += [(f"/lit/{i}", EchoHandler, {"i": i}) for i in range(1000)]
    app = web.Application(handlers)
    client = lint_client(app)
    for i in (0, 1, 10, 500, 999):
        assert client.get(f"/r{i}/5").json["init"] == {"i": i}
        assert client.get(f"/lit/{i}").json["init"] == {"i": i}
    client.get("/r1000/5", status=404)


def test_rule_set_lookup_matches_a_linear_scan() -> None:
    """The compiled table finds exactly what trying the rules in order would find."""
    patterns = [r"/", r"/a", r"/a/(\d+)", r"/a/b", r"/a/.*", r"/x(y)?", r"/x/y/z",
                r"/(\w+)/edit", r"/users/(?P<id>\d+)", r"/users/me", r".*\.json",
                r"/q/r/(s|t)", r"/q/r/s"]
    rules = RuleSet([(p, EchoHandler, {"n": n}) for n, p in enumerate(patterns)])
    import re
    paths = ["/", "/a", "/a/1", "/a/b", "/a/b/c", "/x", "/xy", "/x/y/z", "/foo/edit",
             "/users/3", "/users/me", "/users/me.json", "/q/r/s", "/q/r/t", "/nothing", "",
             "/a/", "/users/"]
    for path in paths:
        expected = next((n for n, p in enumerate(patterns) if re.fullmatch(p, path)), None)
        found = rules.find(path)
        got = None if found is None else found[0].kwargs["n"]
        assert got == expected, path


def test_reverse_url_fills_groups_and_escapes() -> None:
    class Linker(web.RequestHandler):
        def get(self) -> None:
            self.write(self.reverse_url("story", "a b/c", 7))

    app = web.Application([
        web.url(r"/story/([^/]+)/([0-9]+)", EchoHandler, name="story"),
        web.url(r"/link", Linker),
        web.url(r"/static\.d/(?P<f>.+)$", EchoHandler, name="kw"),
        web.url(r"/complex/(\d+|(x))", EchoHandler, name="complex"),
    ])
    assert app.reverse_url("story", "a b/c", 7) == "/story/a%20b/c/7"
    assert lint_client(app).get("/link").text == "/story/a%20b/c/7"
    assert app.reverse_url("kw", "x.png") == "/static.d/x.png"
    with pytest.raises(KeyError):
        app.reverse_url("missing")
    with pytest.raises(ValueError):
        app.reverse_url("story", "only-one")
    with pytest.raises(ValueError):
        app.reverse_url("complex", "1")


# -- hosts --------------------------------------------------------------------------------
def host_app(default_host: str | None = None) -> web.Application:
    app = web.Application([("/", EchoHandler), ("/common", EchoHandler)],
                          default_host=default_host)
    app.add_handlers(r"api\.example\.com", [("/", OtherHandler, {"host": "api"})])
    app.add_handlers(r".*\.example\.com", [("/", OtherHandler, {"host": "wild"}),
                                           ("/wild-only", OtherHandler, {"host": "wild"})])
    return app


def test_first_matching_host_pattern_wins_and_port_is_ignored() -> None:
    client = lint_client(host_app())
    assert client.get("/", headers={"Host": "api.example.com:8080"}).json["init"] == {
        "host": "api"}
    assert client.get("/", headers={"Host": "WWW.example.com"}).json["init"] == {"host": "wild"}
    assert client.get("/", headers={"Host": "other.org"}).json["handler"] == "EchoHandler"


def test_host_rules_lacking_a_path_fall_through_to_default_rules() -> None:
    client = lint_client(host_app())
    body = client.get("/common", headers={"Host": "api.example.com"}).json
    assert body["handler"] == "EchoHandler"
    # api's own set lacks /wild-only, the next matching host set has it
    assert client.get("/wild-only", headers={"Host": "api.example.com"}).json["init"] == {
        "host": "wild"}
    client.get("/wild-only", headers={"Host": "other.org"}, status=404)


def test_default_host_serves_its_rules_to_unknown_hosts_unless_proxied() -> None:
    client = lint_client(host_app(default_host="api.example.com"))
    assert client.get("/wild-only", headers={"Host": "localhost"}).json["init"] == {
        "host": "wild"}
    client.get("/wild-only", headers={"Host": "localhost", "X-Real-Ip": "10.0.0.1"},
               status=404)


# -- mounts -------------------------------------------------------------------------------
def test_rule_list_mounted_under_a_prefix() -> None:
    api = [(r"/users", EchoHandler), web.url(r"/users/([0-9]+)", OtherHandler, name="user"),
           (r"/v2", [(r"/ping", EchoHandler, {"v": 2})])]
    app = web.Application([(r"/api", api), (r"/", EchoHandler)])
    client = lint_client(app)
    assert client.get("/api/users").json["handler"] == "EchoHandler"
    assert client.get("/api/users/4").json["args"] == ["4"]
    assert client.get("/api/v2/ping").json["init"] == {"v": 2}
    assert app.reverse_url("user", 9) == "/api/users/9"
    client.get("/users", status=404)


def wsgi_echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode("latin-1")]


def test_plain_wsgi_app_mounted_with_script_name_shifted() -> None:
    app = web.Application([(r"/legacy", wsgi_echo), (r"/", EchoHandler)])
    client = lint_client(app)
    assert client.get("/legacy/a/b").text == "/legacy|/a/b"
    assert client.get("/legacy").text == "/legacy|"
    assert client.get("/legacy/").text == "/legacy|/"
    client.get("/legacyx", status=404)


def test_mount_keeps_an_outer_script_name_and_non_ascii_paths() -> None:
    app = web.Application([(r"/wiki", wsgi_echo)])
    response = lint_client(app).get("/wiki/caf%C3%A9", extra_environ={"SCRIPT_NAME": "/site"})
    assert response.body.decode("utf-8") == "/site/wiki|/café"


def test_application_mounted_in_an_application() -> None:
    inner = web.Application([(r"/", EchoHandler, {"inner": True}),
                             (r"/page/(\d+)", EchoHandler, {"inner": True})])
    outer = web.Application([(r"/sub/", inner), (r"/", EchoHandler)])
    client = lint_client(outer)
    body = client.get("/sub/page/3").json
    assert body["init"] == {"inner": True} and body["args"] == ["3"]
    assert body["path"] == "/sub/page/3"
    assert client.get("/sub/").json["init"] == {"inner": True}
    assert client.get("/").json["init"] == {}


def test_flask_app_mounted_sees_its_own_root() -> None:
    flask_app = flask.Flask("mounted")

    @flask_app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"flask {name} at {flask.url_for('hello', name=name)}"

    app = web.Application([(r"/flask", flask_app), (r"/", EchoHandler)])
    assert lint_client(app).get("/flask/hello/ann").text == "flask ann at /flask/hello/ann"


def test_mount_prefix_groups_go_to_routing_args() -> None:
    def app_with_args(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        args, kwargs = environ["wsgiorg.routing_args"]
        return [f"{kwargs['tenant']}|{environ['PATH_INFO']}".encode()]

    app = web.Application([(r"/t/(?P<tenant>\w+)", app_with_args)])
    assert lint_client(app).get("/t/acme/home").text == "acme|/home"


# -- 404 / 405 ----------------------------------------------------------------------------
def test_unknown_path_is_404_with_the_default_page() -> None:
    app = web.Application([("/", EchoHandler)])
    response = lint_client(app).get("/missing", status=404)
    assert response.text == "<html><title>404: Not Found</title><body>404: Not Found</body></html>"
    assert response.content_type == "text/html"


def test_default_handler_class_takes_unknown_paths() -> None:
    class NotFound(web.RequestHandler):
        def initialize(self, page: str) -> None:
            self.page = page

        def prepare(self) -> None:
            self.set_status(404)
            self.finish(self.page)

    app = web.Application([("/", EchoHandler)], default_handler_class=NotFound,
                          default_handler_args={"page": "custom 404"})
    assert lint_client(app).get("/nope", status=404).text == "custom 404"


def test_unimplemented_method_is_405_with_allow_header() -> None:
    class GetPost(web.RequestHandler):
        def get(self) -> None:
            self.write("g")

        def post(self) -> None:
            self.write("p")

    app = web.Application([("/", GetPost)])
    client = lint_client(app)
    response = client.delete("/", status=405)
    assert response.headers["Allow"] == "GET, POST"
    response = lint_client(app, validate=False).request("/", method="BREW", status=405)
    assert response.headers["Allow"] == "GET, POST"


def test_extra_supported_methods() -> None:
    class Dav(web.RequestHandler):
        SUPPORTED_METHODS = (*web.RequestHandler.SUPPORTED_METHODS, "PROPFIND")

        def propfind(self) -> None:
            self.write("props")

    client = lint_client(web.Application([("/", Dav)]), validate=False)
    assert client.request("/", method="PROPFIND").text == "props"
    assert client.get("/", status=405).headers["Allow"] == "PROPFIND"


def test_url_with_a_rule_list_target_and_bad_rules() -> None:
    app = web.Application([web.url(r"/v1/", [(r"/ping", EchoHandler, {"v": 1})])])
    assert lint_client(app).get("/v1/ping").json["init"] == {"v": 1}
    with pytest.raises(TypeError):
        web.Application([("/only-pattern",)])
    with pytest.raises(TypeError):
        web.Application([(b"/bytes", EchoHandler)])


def test_static_path_adds_tornado_static_routes_in_front() -> None:
    class FakeStatic(web.RequestHandler):
        def initialize(self, path: str, **kwargs: Any) -> None:
            self.root = path

        def get(self, name: str) -> None:
            self.write(f"{self.root}|{name}")

    app = web.Application([(r"/(.*)", EchoHandler)], static_path="/srv/files",
                          static_url_prefix="/assets/", static_handler_class=FakeStatic)
    client = lint_client(app)
    assert client.get("/assets/css/site.css").text == "/srv/files|css/site.css"
    assert client.get("/favicon.ico").text == "/srv/files|favicon.ico"
    assert client.get("/robots.txt").text == "/srv/files|robots.txt"
    assert client.get("/other").json["args"] == ["other"]


def test_static_handler_class_defaults_to_static_file_handler() -> None:
    assert web.Application().settings["static_handler_class"] is web.StaticFileHandler


def test_exception_in_set_default_headers_is_a_plain_500(logs: Any) -> None:
    class Broken(web.RequestHandler):
        def set_default_headers(self) -> None:
            raise RuntimeError("header bug")

    app_log = logs("microweb.application")
    response = lint_client(web.Application([("/", Broken)])).get("/", status=500)
    assert "header bug" not in response.text
    assert len([r for r in app_log.records if r.exc_info]) == 1


def test_compiled_lookup_agrees_with_linear_scan_on_generated_tables() -> None:
    """Seeded random tables of literal, regex, optional and alternation rules."""
    import random
    import re

    rng = random.Random(20240601)
    words = ["a", "b", "api", "v1", "users", "x.y", "me"]
    pieces = [r"([0-9]+)", r"(\w+)", r"[^/]+", r".*", r"(?:x|y)", r"b?", r"[a-z]+\.?"]

    def segment() -> str:
        return rng.choice([re.escape(rng.choice(words)), rng.choice(pieces)])

    for _ in range(30):
        patterns = ["/" + "/".join(segment() for _ in range(rng.randint(0, 3)))
                    for _ in range(rng.randint(1, 25))]
        rules = RuleSet([(p, EchoHandler, {"n": n}) for n, p in enumerate(patterns)])
        for _ in range(40):
            path = "/" + "/".join(rng.choice(words + ["7", "xyz", "", "x"])
                                  for _ in range(rng.randint(0, 4)))
            expected = next((n for n, p in enumerate(patterns) if re.fullmatch(p, path)), None)
            found = rules.find(path)
            assert (None if found is None else found[0].kwargs["n"]) == expected, (patterns,
                                                                                   path)


def test_reverse_url_quotes_non_ascii_and_round_trips() -> None:
    app = web.Application([web.url(r"/tag/([^/]+)", EchoHandler, name="tag")])
    path = app.reverse_url("tag", "café au lait")
    assert path == "/tag/caf%C3%A9%20au%20lait"
    assert lint_client(app).get(path).json["args"] == ["café au lait"]


def test_ipv6_host_header_matches_host_rules() -> None:
    app = web.Application([("/", EchoHandler)])
    app.add_handlers(r"\[::1\]", [("/", OtherHandler)])
    response = lint_client(app).get("/", headers={"Host": "[::1]:8080"})
    assert response.json["handler"] == "OtherHandler"
