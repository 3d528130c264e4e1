"""The settings table drives the CLI, Config validation and docs/server.md."""

from __future__ import annotations

import argparse

import pytest

from microweb.server import SETTINGS, Config
from microweb.server.command import build_parser
from microweb.server.config import markdown_table, overrides_from_namespace
from tests.support import ROOT


def test_defaults_and_overrides():
    config = Config(port="9000", keepalive_timeout="2.5", access_log="yes")
    assert config.port == 9000 and config.keepalive_timeout == 2.5 and config.access_log is True
    assert config.header_timeout == 10.0 and config.threads == 8


@pytest.mark.parametrize("options", [{"nope": 1}, {"workers": 0}, {"port": "x"},
                                     {"log_level": "LOUD"}, {"keyfile": "k.pem"}])
def test_bad_options_are_errors(options):
    with pytest.raises((TypeError, ValueError)):
        Config(**options)


def test_every_setting_is_a_cli_option():
    parser = build_parser("microweb serve")
    ns = parser.parse_args(["app:app", "--port", "1234", "-w", "3", "--no-access-log",
                            "--max-body-size", "10"])
    assert overrides_from_namespace(ns) == {"port": 1234, "workers": 3, "access_log": False,
                                            "max_body_size": 10}
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for setting in SETTINGS:
        assert "--" + setting.name.replace("_", "-") in flags


def test_unset_cli_options_do_not_override_a_config_file():
    ns = build_parser("x").parse_args(["app:app"])
    assert isinstance(ns, argparse.Namespace) and overrides_from_namespace(ns) == {}


def test_docs_settings_table_is_generated_from_the_table():
    text = (ROOT / "docs" / "server.md").read_text()
    table = text.split("<!-- settings:begin -->\n")[1].split("<!-- settings:end -->")[0]
    assert table == markdown_table()


def test_console_script_usage_and_unknown_command(capsys):
    from microweb.cli import main

    assert main([]) == 2
    assert "microweb serve module:attr" in capsys.readouterr().out
    assert main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_serve_command_needs_an_app(capsys):
    from microweb.server.command import main

    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "module:attribute" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["x:app", "--workers", "0"])
