"""microweb.options: Tornado's define/options API, every source, precedence and clear errors."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from microweb import options as options_module
from microweb.options import Error, OptionError, OptionParser
from tests.support import ROOT


@pytest.fixture
def parser() -> OptionParser:
    p = OptionParser()
    p.define("port", default=8000, help="listen on this port", group="server")
    p.define("host", default="127.0.0.1", group="server")
    p.define("debug", default=False, group="app")
    p.define("ratio", default=0.5)
    p.define("origins", type=str, multiple=True, group="app")
    p.define("ids", type=int, multiple=True)
    p.define("start", type=datetime.datetime)
    p.define("ttl", type=datetime.timedelta)
    p.define("template_path", type=str, group="app")
    return p


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- the options object --------------------------------------------------------------------

def test_defaults_attribute_and_item_access(parser: OptionParser) -> None:
    assert parser.port == 8000 and parser["host"] == "127.0.0.1"
    assert parser.origins == [] and parser.start is None
    parser.port = 9000
    parser["template-path"] = "tpl"
    assert parser["port"] == 9000 and parser.template_path == "tpl"
    assert "template_path" in parser and "template-path" in parser and "nope" not in parser
    with pytest.raises(AttributeError, match="nope"):
        parser.nope  # noqa: B018
    with pytest.raises(KeyError):
        parser["nope"]


def test_dict_views_and_groups(parser: OptionParser) -> None:
    assert parser.group_dict("server") == {"port": 8000, "host": "127.0.0.1"}
    assert parser.group_dict("app") == {"debug": False, "origins": [], "template_path": None}
    assert {"server", "app"} <= parser.groups()
    assert parser.as_dict()["ratio"] == 0.5
    assert set(parser) == set(parser.as_dict()) and dict(parser.items()) == parser.as_dict()


def test_type_is_inferred_and_assignment_is_checked(parser: OptionParser) -> None:
    with pytest.raises(OptionError, match="'port'.*expected int"):
        parser.port = 3.5
    parser.ratio = 2  # an int is a fine float
    assert parser.ratio == 2.0 and isinstance(parser.ratio, float)
    parser.port = "8080"  # strings are parsed, as Tornado does for config values
    assert parser.port == 8080


def test_custom_type_callable(parser: OptionParser) -> None:
    def port_range(text: str) -> tuple[int, int]:
        low, _, high = text.partition("-")
        return int(low), int(high)

    parser.define("ports", type=port_range, help="LOW-HIGH")  # type: ignore[arg-type]
    parser.parse_command_line(["prog", "--ports=8000-8010"])
    assert parser.ports == (8000, 8010)
    with pytest.raises(OptionError, match="option 'ports': expected port_range, got 'x'"):
        parser.parse_command_line(["prog", "--ports=x"])


def test_define_twice_is_an_error(parser: OptionParser) -> None:
    with pytest.raises(Error, match="'port' already defined"):
        parser.define("port", default=1)


def test_default_group_is_the_defining_file() -> None:
    p = OptionParser()
    p.define("x", default=1)
    assert p.group_dict(__file__) == {"x": 1}


def test_callback_runs_with_each_new_value(parser: OptionParser) -> None:
    seen: list[object] = []
    parser.define("level", default="info", callback=seen.append)
    parser.parse_command_line(["prog", "--level=debug"])
    parser.level = "warning"
    assert seen == ["debug", "warning"]


def test_parse_callbacks_run_only_on_final_parse(parser: OptionParser) -> None:
    runs: list[int] = []
    parser.add_parse_callback(lambda: runs.append(parser.port))
    parser.parse_command_line(["prog", "--port=1"], final=False)
    assert runs == []
    parser.parse_command_line(["prog", "--port=2"])
    assert runs == [2]


def test_help_hides_secret_defaults(parser: OptionParser) -> None:
    import io

    parser.define("cookie_secret", default="do-not-print-me", help="signing key")
    out = io.StringIO()
    parser.print_help(out)
    assert "signing key (default ***)" in out.getvalue()
    assert "do-not-print-me" not in out.getvalue()
    assert "listen on this port (default 8000)" in out.getvalue()


def test_mockable_patches_and_restores(parser: OptionParser) -> None:
    with mock.patch.object(parser.mockable(), "port", 1234):
        assert parser.port == 1234
    assert parser.port == 8000


# -- command line --------------------------------------------------------------------------

def test_command_line_forms(parser: OptionParser) -> None:
    rest = parser.parse_command_line([
        "prog", "--port", "9000", "--host=0.0.0.0", "--debug", "--origins=a.example, b.example",
        "--ids=1:3,7", "--start=2024-05-06 07:08", "--ttl=1h30m", "--template_path=t",
        "serve", "--not-an-option",
    ])
    assert rest == ["serve", "--not-an-option"]
    assert parser.port == 9000 and parser.host == "0.0.0.0" and parser.debug is True
    assert parser.origins == ["a.example", "b.example"]
    assert parser.ids == [1, 2, 3, 7]
    assert parser.start == datetime.datetime(2024, 5, 6, 7, 8)
    assert parser.ttl == datetime.timedelta(hours=1, minutes=30)
    assert parser.template_path == "t"
    assert parser.source_of("port") == "command line" and parser.source_of("ratio") == "default"


@pytest.mark.parametrize(("arg", "value"), [
    ("--debug", True), ("--debug=false", False), ("--debug=0", False), ("--debug=yes", True),
    ("--no-debug", False), ("-debug", True),
])
def test_bool_flags(parser: OptionParser, arg: str, value: bool) -> None:
    parser.debug = not value
    parser.parse_command_line(["prog", arg])
    assert parser.debug is value


def test_double_dash_ends_options(parser: OptionParser) -> None:
    assert parser.parse_command_line(["prog", "--port=1", "--", "--port=2"]) == ["--port=2"]
    assert parser.port == 1


def test_negative_number_after_option(parser: OptionParser) -> None:
    parser.define("offset", default=0)
    parser.parse_command_line(["prog", "--offset", "-5"])
    assert parser.offset == -5


@pytest.mark.parametrize(("argv", "message"), [
    (["--port=abc"], "command line: option 'port': expected int, got 'abc'"),
    (["--prot=1"], "command line: option 'prot': unrecognized option"),
    (["--port"], "command line: option 'port': requires a value"),
    (["--port", "--debug"], "option 'port': requires a value"),
    (["--debug=maybe"], "option 'debug': expected a boolean"),
    (["--ttl=5 parsecs"], "option 'ttl': unrecognized duration"),
    (["--start=yesterday"], "option 'start': unrecognized date/time"),
    (["--ids=1,x"], "option 'ids': expected int, got '1,x'"),
    (["--ids=5:2"], "option 'ids': empty range '5:2' (write low:high)"),
])
def test_command_line_errors_name_option_and_source(parser: OptionParser, argv: list[str],
                                                    message: str) -> None:
    with pytest.raises(OptionError) as info:
        parser.parse_command_line(["prog", *argv])
    assert message in str(info.value)
    assert info.value.source == "command line"


def test_timedelta_and_datetime_formats(parser: OptionParser) -> None:
    for text, expected in [("45", 45), ("90s", 90), ("2m", 120), ("1.5h", 5400), ("1d 2h", 93600),
                           ("500ms", 0.5), ("1w", 604800)]:
        parser.parse_command_line(["prog", f"--ttl={text}"])
        assert parser.ttl.total_seconds() == expected, text
    parser.parse_command_line(["prog", "--start=2024-05-06T07:08:09+00:00"])
    assert parser.start.tzinfo is not None


# -- config files ---------------------------------------------------------------------------

def test_toml_file_with_tables_for_grouping(parser: OptionParser, tmp_path: Path) -> None:
    path = write(tmp_path, "app.toml", """
        ratio = 1            # an int widens to float
        ttl = 30             # a number is seconds
        [server]
        port = 9100
        [app]
        debug = true
        origins = ["a.example", "b.example"]
        start = 2024-05-06T07:08:00
    """)
    parser.parse_config_file(path)
    assert (parser.port, parser.debug, parser.ratio) == (9100, True, 1.0)
    assert parser.origins == ["a.example", "b.example"]
    assert parser.start == datetime.datetime(2024, 5, 6, 7, 8)
    assert parser.ttl == datetime.timedelta(seconds=30)
    assert parser.source_of("port") == f"config file {path}"


@pytest.mark.parametrize(("body", "message"), [
    ('port = "high"', "option 'port': expected int, got 'high'"),
    ("port = true", "option 'port': expected int, got bool True"),
    ("debug = 1", "option 'debug': expected bool, got int 1"),
    ("origins = 5", "option 'origins': expected a list of str"),
    ("prot = 1", "option 'prot': unknown option"),
    ("[server]\nprot = 1", "option 'prot': unknown option"),
    ("port = ", "invalid TOML"),
])
def test_toml_errors_name_the_file(parser: OptionParser, tmp_path: Path, body: str,
                                   message: str) -> None:
    path = write(tmp_path, "bad.toml", body)
    with pytest.raises(OptionError) as info:
        parser.parse_config_file(path)
    assert str(info.value).startswith(f"config file {path}: ")
    assert message in str(info.value)


def test_toml_date_is_midnight(parser: OptionParser, tmp_path: Path) -> None:
    parser.parse_config_file(write(tmp_path, "d.toml", "start = 2024-05-06\n"))
    assert parser.start == datetime.datetime(2024, 5, 6)


def test_missing_file_is_a_clear_error(parser: OptionParser, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="cannot read"):
        parser.parse_config_file(tmp_path / "missing.toml")


def test_tornado_python_config_file(parser: OptionParser, tmp_path: Path) -> None:
    path = write(tmp_path, "settings.py", """
        import os
        port = 8001
        origins = "x.example,y.example"     # comma strings work for multiple options
        ids = [4, 5]
        template_path = os.path.join(os.path.dirname(__file__), "templates")
        helper_value = {"ignored": True}    # not an option: ignored, as in Tornado
    """)
    parser.parse_config_file(path)
    assert parser.port == 8001 and parser.origins == ["x.example", "y.example"]
    assert parser.ids == [4, 5]
    assert parser.template_path == str(tmp_path / "templates")


def test_python_config_type_error_and_syntax_error(parser: OptionParser, tmp_path: Path) -> None:
    path = write(tmp_path, "settings.py", "debug = 'sometimes'\n")
    with pytest.raises(OptionError, match=r"settings\.py: option 'debug': expected a boolean"):
        parser.parse_config_file(path)
    path = write(tmp_path, "broken.py", "port = (\n")
    with pytest.raises(OptionError, match="invalid Python syntax"):
        parser.parse_config_file(path)


# -- environment and precedence ---------------------------------------------------------------

def test_environment_variables(parser: OptionParser) -> None:
    parser.parse_environment({"MICROWEB_PORT": "7000", "MICROWEB_TEMPLATE_PATH": "tpl",
                              "MICROWEB_ORIGINS": "a,b", "MICROWEB_UNRELATED": "x"})
    assert parser.port == 7000 and parser.template_path == "tpl" and parser.origins == ["a", "b"]
    assert parser.source_of("port") == "environment variable MICROWEB_PORT"
    with pytest.raises(OptionError, match="environment variable MICROWEB_DEBUG: option 'debug'"):
        parser.parse_environment({"MICROWEB_DEBUG": "perhaps"})


def test_precedence_default_file_env_command_line(parser: OptionParser, tmp_path: Path) -> None:
    path = write(tmp_path, "app.toml", "port = 1\nhost = 'file'\nratio = 0.25\n")
    env = {"MICROWEB_PORT": "2", "MICROWEB_HOST": "env"}
    rest = parser.parse_all(["prog", "--port=3", "extra"], config_file=path, environ=env)
    assert rest == ["extra"]
    assert parser.port == 3 and parser.host == "env" and parser.ratio == 0.25
    assert parser.debug is False
    assert [parser.source_of(n) for n in ("port", "host", "ratio", "debug")] == [
        "command line", "environment variable MICROWEB_HOST", f"config file {path}", "default"]


def test_parse_all_finds_the_config_option(parser: OptionParser, tmp_path: Path) -> None:
    parser.define("config", type=str)
    path = write(tmp_path, "app.toml", "port = 11\nhost = 'file'\n")
    parser.parse_all(["prog", "--host=cli", f"--config={path}"], environ={})
    assert (parser.port, parser.host) == (11, "cli")
    other = OptionParser()
    other.define("config", type=str)
    other.define("port", default=0)
    other_path = write(tmp_path, "other.toml", "port = 12\n")
    other.parse_all(["prog"], environ={"MICROWEB_CONFIG": other_path})
    assert other.port == 12


# -- the real command line: --help, exit status 2, logging options ------------------------------

SCRIPT = """
import logging
from microweb.options import define, options, parse_command_line
define("port", default=8000, type=int, help="run on the given port", group="server")
define("subjects", default=[], type=str, multiple=True, help="subjects to teach")
parse_command_line()
logging.getLogger("demo").info("port is %s", options.port)
print("port", options.port, "subjects", options.subjects)
"""


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_real_command_line_parses_and_configures_logging() -> None:
    done = run_script("--port=9000", "--subjects=python,c++")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "port 9000 subjects ['python', 'c++']"
    assert "INFO" in done.stderr and "demo port is 9000" in done.stderr
    quiet = run_script("--logging=none")
    assert quiet.returncode == 0 and "port is" not in quiet.stderr


def test_help_lists_every_option_grouped_and_exits_0() -> None:
    done = run_script("--help")
    assert done.returncode == 0
    out = done.stdout
    assert "--port" in out and "run on the given port (default 8000)" in out
    assert "server options:" in out and "logging options:" in out
    assert "--subjects" in out and "--log-json" in out and "--help" in out
    assert out.index("server options:") < out.index("--port")
    assert "port 8000" not in out  # exited before the program went on


@pytest.mark.parametrize(("arg", "message"), [
    ("--port=abc", "error: command line: option 'port': expected int, got 'abc'"),
    ("--prot=1", "error: command line: option 'prot': unrecognized option"),
])
def test_bad_command_line_exits_2_without_traceback(arg: str, message: str) -> None:
    done = run_script(arg)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_global_module_functions_share_one_parser() -> None:
    assert options_module.options.logging == "info"
    assert "log_file_prefix" in options_module.options


# -- the same program under tornado.options ------------------------------------------------------

def _define_both(parser: Any) -> None:
    parser.define("port", default=8000, type=int, help="run server on the given port.")
    parser.define("itcast", default=[], type=str, multiple=True, help="subjects")
    parser.define("ids", type=int, multiple=True)
    parser.define("debug", default=False)
    parser.define("ratio", default=0.5)
    parser.define("ttl", type=datetime.timedelta)
    parser.define("start", type=datetime.datetime)
    parser.define("name", type=str, group="application")


@pytest.mark.parametrize("argv", [
    ["--port=9000", "--itcast=python,c++,java,php,ios"],
    ["--ids=1:3,7", "--debug", "--ratio=0.25", "rest", "--port=1"],
    ["--ttl=1h 30m", "--start=2024-05-06 07:08", "--name=x", "--", "--debug"],
    ["--debug=false", "--itcast=a", "--itcast=b"],
])
def test_command_line_matches_tornado(argv: list[str]) -> None:
    from tornado.options import OptionParser as TornadoParser

    ours, theirs = OptionParser(), TornadoParser()
    _define_both(ours)
    _define_both(theirs)
    assert ours.parse_command_line(["prog", *argv]) == theirs.parse_command_line(
        ["prog", *argv], final=False)
    assert ours.as_dict() == theirs.as_dict()
    assert ours.group_dict("application") == theirs.group_dict("application")


def test_python_config_file_matches_tornado(tmp_path: Path) -> None:
    from tornado.options import OptionParser as TornadoParser

    path = write(tmp_path, "config", """
        port = 8000
        itcast = ["python", "c++", "java", "php", "ios"]
        ids = "4:6"
        ratio = 2.5
        other_variable = {"not": "an option"}
    """)
    ours, theirs = OptionParser(), TornadoParser()
    _define_both(ours)
    _define_both(theirs)
    ours.parse_config_file(path)
    theirs.parse_config_file(path, final=False)
    assert ours.as_dict() == theirs.as_dict()
