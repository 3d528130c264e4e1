"""Command-line and config-file options in the style of ``tornado.options``.

Define options anywhere with :func:`define`, then read them from the global :data:`options`::

    from microweb.options import define, options, parse_command_line

    define("port", default=8000, help="listen on this port")
    define("origins", type=str, multiple=True, group="cors")
    parse_command_line()           # --port=9000 --origins=a.example,b.example
    print(options.port, options.origins)

Values come from four sources with a fixed precedence, lowest first: the ``default`` given to
``define``, a config file (TOML, recommended, or Tornado's Python syntax), environment variables
``MICROWEB_<NAME>`` and the command line. :meth:`OptionParser.parse_all` reads them all in that
order; the single-source functions keep Tornado's behaviour (the last call wins).

Bad input raises :class:`OptionError`, whose message names the option and where the value came
from. Parsing the real command line (``args=None``) prints that message and exits with status 2
instead, like ``argparse``: users see a sentence, not a traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import numbers
import os
import re
import sys
import textwrap
import tomllib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from microweb import log

__all__ = [
    "Error",
    "OptionError",
    "OptionParser",
    "add_parse_callback",
    "define",
    "options",
    "parse_all",
    "parse_command_line",
    "parse_config_file",
    "parse_environment",
    "print_help",
]

ENV_PREFIX = "MICROWEB_"
COMMAND_LINE = "command line"

_SECRET_WORDS = ("secret", "password", "token", "key")  # --help never prints such defaults
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})
_DATETIME_FORMATS = (
    "%a %b %d %H:%M:%S %Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
    "%Y%m%d %H:%M:%S", "%Y%m%d %H:%M", "%Y-%m-%d", "%Y%m%d", "%H:%M:%S", "%H:%M",
)
_TIMEDELTA_UNITS = {
    "": "seconds", "s": "seconds", "sec": "seconds", "second": "seconds", "seconds": "seconds",
    "ms": "milliseconds", "milliseconds": "milliseconds",
    "us": "microseconds", "microseconds": "microseconds",
    "m": "minutes", "min": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
}
_TIMEDELTA_PART = re.compile(r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)\s*")


class Error(Exception):
    """Raised by errors in the options module (Tornado's name, so ``except Error`` ports)."""


class OptionError(Error, ValueError):
    """A bad option value or an unknown option; ``option`` and ``source`` say which and where."""

    def __init__(self, message: str, *, option: str | None = None,
                 source: str | None = None) -> None:
        self.option = option
        self.source = source
        self.detail = message
        where = f"{source}: " if source else ""
        what = f"option {option!r}: " if option else ""
        super().__init__(f"{where}{what}{message}")


class _BadValue(ValueError):
    """A parse error whose message is already user-facing."""


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _BadValue(f"expected a boolean (true/false, yes/no, on/off, 1/0), got {text!r}")


def _parse_datetime(text: str) -> datetime.datetime:
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), fmt)
        except ValueError:
            pass
    try:
        return datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _BadValue(f"unrecognized date/time format {text!r}") from None


def _parse_timedelta(text: str) -> datetime.timedelta:
    """``"1h 30m"``, ``"45s"``, ``"2.5d"``, ``"10"`` (seconds): Tornado's syntax, strictly."""
    total, pos = datetime.timedelta(), 0
    if not text.strip():
        raise _BadValue("empty duration")
    while pos < len(text):
        m = _TIMEDELTA_PART.match(text, pos)
        unit = _TIMEDELTA_UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None:
            raise _BadValue(f"unrecognized duration {text!r} (use e.g. 90s, 5m, 1h30m, 2d)")
        total += datetime.timedelta(**{unit: float(m.group(1))})
        pos = m.end()
    return total


def _parse_str(text: str) -> str:
    return text


_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: _parse_bool,
    datetime.datetime: _parse_datetime,
    datetime.timedelta: _parse_timedelta,
    str: _parse_str,
}


class _Option:
    """One defined option: its metadata and current value (unset until a source sets it)."""

    _UNSET: Any = object()

    def __init__(self, name: str, default: Any, type_: type, help: str | None,
                 metavar: str | None, multiple: bool, group_name: str,
                 callback: Callable[[Any], None] | None) -> None:
        self.name = name
        self.default = [] if default is None and multiple else default
        self.type = type_
        self.help = help
        self.metavar = metavar
        self.multiple = multiple
        self.group_name = group_name
        self.callback = callback
        self._value: Any = _Option._UNSET
        self.source = "default"

    def value(self) -> Any:
        return self.default if self._value is _Option._UNSET else self._value

    @property
    def type_name(self) -> str:
        return getattr(self.type, "__name__", str(self.type))

    def parse(self, text: str, source: str) -> Any:
        """Convert command-line / environment text and set it; returns the new value."""
        try:
            value = self._parse_many(text) if self.multiple else self._parse_one(text)
        except (ValueError, TypeError, OverflowError) as exc:
            message = str(exc) if isinstance(exc, _BadValue) else ""
            raise OptionError(message or f"expected {self.type_name}, got {text!r}",
                              option=self.name, source=source) from None
        return self._store(value, source)

    def coerce(self, value: Any, source: str) -> Any:
        """Set a value that arrived typed (TOML / Python config file), checking its type."""
        if isinstance(value, str) and (self.type is not str or self.multiple):
            return self.parse(value, source)
        try:
            if self.multiple:
                if not isinstance(value, list | tuple):
                    raise TypeError(f"expected a list of {self.type_name} or a comma-separated "
                                    f"string, got {type(value).__name__} {value!r}")
                value = [self._check(item) for item in value]
            else:
                value = self._check(value)
        except (TypeError, ValueError) as exc:
            raise OptionError(str(exc), option=self.name, source=source) from None
        return self._store(value, source)

    def set(self, value: Any) -> None:
        """Programmatic assignment (``options.port = 80``); a string is parsed like a flag."""
        if value is None:
            self._store(None, "assignment")
        else:
            self.coerce(value, "assignment")

    def _store(self, value: Any, source: str) -> Any:
        self._value = value
        self.source = source
        if self.callback is not None:
            self.callback(value)
        return value

    def _parse_one(self, text: str) -> Any:
        return _PARSERS.get(self.type, self.type)(text)

    def _parse_many(self, text: str) -> list[Any]:
        values: list[Any] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if ":" in part and self._is_int():
                to_int: Callable[[str], int] = self.type
                lo, _, hi = part.partition(":")  # Tornado's ranges: "1:3" -> 1, 2, 3
                first, last = to_int(lo), to_int(hi)
                if last < first:
                    raise _BadValue(f"empty range {part!r} (write low:high)")
                values.extend(range(first, last + 1))
            else:
                values.append(self._parse_one(part))
        return values

    def _is_int(self) -> bool:
        return (isinstance(self.type, type) and self.type is not bool
                and issubclass(self.type, numbers.Integral))

    def _check(self, value: Any) -> Any:
        """Accept ``value`` if it already has the option's type (ints widen to float)."""
        if value is None or (isinstance(value, self.type) and not (
                isinstance(value, bool) and self.type is not bool)):
            return value
        if self.type is datetime.datetime and isinstance(value, datetime.date):
            return datetime.datetime.combine(value, datetime.time())  # a TOML date
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.type is datetime.timedelta and isinstance(value, int | float) \
                and not isinstance(value, bool):
            return datetime.timedelta(seconds=value)
        raise TypeError(f"expected {self.type_name}, got {type(value).__name__} {value!r}")


def _caller_file() -> str:
    """The file that called ``define`` (Tornado's default group), skipping this module."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_code.co_filename if frame is not None else ""


class OptionParser:
    """A collection of options with attribute and item access; ``options`` is the global one."""

    def __init__(self) -> None:
        # Attribute writes set option values, so internals go straight into __dict__.
        self.__dict__["_options"] = {}
        self.__dict__["_parse_callbacks"] = []
        self.define("help", type=bool, group="", help="show this help information and exit",
                    callback=self._help_callback)

    # -- mapping-like access -------------------------------------------------------------
    @staticmethod
    def _normalize(name: str) -> str:
        return name.replace("_", "-")

    def _get(self, name: str) -> _Option:
        opt = self._options.get(self._normalize(name))
        if opt is None:
            raise AttributeError(f"Unrecognized option {name!r}")
        return opt  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return self._get(name).value()

    def __setattr__(self, name: str, value: Any) -> None:
        self._get(name).set(value)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._get(name).value()
        except AttributeError as exc:
            raise KeyError(name) from exc

    def __setitem__(self, name: str, value: Any) -> None:
        try:
            opt = self._get(name)
        except AttributeError as exc:
            raise KeyError(name) from exc
        opt.set(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._options

    def __iter__(self) -> Iterator[str]:
        return (opt.name for opt in self._options.values())

    def items(self) -> list[tuple[str, Any]]:
        """(name, value) pairs of every option."""
        return [(opt.name, opt.value()) for opt in self._options.values()]

    def groups(self) -> set[str]:
        """The group names used by ``define`` (a file name when no group was given)."""
        return {opt.group_name for opt in self._options.values()}

    def group_dict(self, group: str) -> dict[str, Any]:
        """Names and values of one group, e.g. ``Application(h, **options.group_dict("app"))``."""
        return {opt.name: opt.value() for opt in self._options.values()
                if not group or opt.group_name == group}

    def as_dict(self) -> dict[str, Any]:
        """Names and values of every option."""
        return {opt.name: opt.value() for opt in self._options.values()}

    def source_of(self, name: str) -> str:
        """Where the current value came from: "default", "command line", a file or env var."""
        return str(self._get(name).source)

    # -- definition ----------------------------------------------------------------------
    def define(self, name: str, default: Any = None, type: type | None = None,
               help: str | None = None, metavar: str | None = None, multiple: bool = False,
               group: str | None = None, callback: Callable[[Any], None] | None = None) -> None:
        """Define an option; ``type`` defaults to the default's type, else ``str``."""
        key = self._normalize(name)
        if key in self._options:
            raise Error(f"Option {key!r} already defined in group "
                        f"{self._options[key].group_name!r}")
        if type is None:
            type = default.__class__ if default is not None and not multiple else str
            if multiple and default:
                type = default[0].__class__
        group_name = group if group is not None else _caller_file()
        self._options[key] = _Option(name, default, type, help, metavar, multiple, group_name,
                                     callback)

    def add_parse_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` after each final parse (Tornado's hook)."""
        self._parse_callbacks.append(callback)

    def run_parse_callbacks(self) -> None:
        for callback in self._parse_callbacks:
            callback()

    # -- sources -------------------------------------------------------------------------
    def parse_command_line(self, args: list[str] | None = None, final: bool = True,
                           exit_on_error: bool | None = None) -> list[str]:
        """Parse ``args`` (``sys.argv`` by default; ``args[0]`` is the program name).

        Returns the arguments left after the options. Errors raise :class:`OptionError`, or
        print and exit with status 2 when ``exit_on_error`` (default: parsing ``sys.argv``).
        """
        with _exit_on_error(args is None if exit_on_error is None else exit_on_error):
            pairs, remaining = self._scan(sys.argv if args is None else args)
            for opt, text in pairs:
                opt.parse(text, COMMAND_LINE)
            if final:
                self.run_parse_callbacks()
        return remaining

    def parse_config_file(self, path: str | os.PathLike[str], final: bool = True) -> None:
        """Load a ``.toml`` file, or any other file as Tornado's Python-syntax config.

        TOML keys must be defined options (tables only group them). Python files run as code
        (never load untrusted ones); names there that are not options are ignored, as Tornado.
        """
        path = os.fspath(path)
        source = f"config file {path}"
        if path.endswith(".toml"):
            self.apply_mapping(_read_toml(path), source)
        else:
            for name, value in _exec_python(path).items():
                if name in self:
                    self._get(name).coerce(value, source)
        if final:
            self.run_parse_callbacks()

    def apply_mapping(self, values: Mapping[str, Any], source: str) -> None:
        """Set options from a (TOML-like) mapping; a nested table just groups option names."""
        for key, value in values.items():
            if key in self:
                self._get(key).coerce(value, source)
            elif isinstance(value, Mapping):
                self.apply_mapping(value, source)
            else:
                raise OptionError("unknown option (define it first, or remove it)",
                                  option=key, source=source)

    def parse_environment(self, environ: Mapping[str, str] | None = None,
                          prefix: str = ENV_PREFIX, final: bool = True) -> None:
        """Set each defined option from ``<prefix><NAME>`` (``MICROWEB_PORT`` sets ``port``).

        Only defined names are read: other variables with the prefix belong to other tools.
        """
        environ = os.environ if environ is None else environ
        for opt in self._options.values():
            if opt.name == "help":
                continue
            var = prefix + opt.name.upper().replace("-", "_")
            if var in environ:
                opt.parse(environ[var], f"environment variable {var}")
        if final:
            self.run_parse_callbacks()

    def parse_all(self, args: list[str] | None = None, *, config_file: str | None = None,
                  environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX,
                  exit_on_error: bool | None = None) -> list[str]:
        """Read every source with the documented precedence: default < file < env < command line.

        The file is ``config_file``, else the value of a defined ``config`` option given on the
        command line or in the environment. Returns the non-option command-line arguments.
        """
        environ = os.environ if environ is None else environ
        with _exit_on_error(args is None if exit_on_error is None else exit_on_error):
            pairs, remaining = self._scan(sys.argv if args is None else args)
            path = config_file or self._config_path(pairs, environ, prefix)
            if path:
                self.parse_config_file(path, final=False)
            self.parse_environment(environ, prefix, final=False)
            for opt, text in pairs:
                opt.parse(text, COMMAND_LINE)
            self.run_parse_callbacks()
        return remaining

    def _config_path(self, pairs: list[tuple[_Option, str]], environ: Mapping[str, str],
                     prefix: str) -> str | None:
        if "config" not in self:
            return None
        given = [text for opt, text in pairs if opt is self._get("config")]
        if given:
            return given[-1]
        return environ.get(prefix + "CONFIG") or self._get("config").value()

    def _scan(self, args: list[str]) -> tuple[list[tuple[_Option, str]], list[str]]:
        """Split ``args[1:]`` into (option, text) pairs and the remaining arguments.

        Runs ``--help`` at once (it exits); checks names but converts nothing yet.
        """
        pairs: list[tuple[_Option, str]] = []
        i = 1
        while i < len(args):
            arg = args[i]
            if arg == "--":
                return pairs, list(args[i + 1:])
            if not arg.startswith("-") or arg == "-":
                return pairs, list(args[i:])
            opt, text, used = self._scan_one(arg, args[i + 1] if i + 1 < len(args) else None)
            if opt.name == "help":
                opt.parse(text, COMMAND_LINE)
            pairs.append((opt, text))
            i += used
        return pairs, []

    def _scan_one(self, arg: str, following: str | None) -> tuple[_Option, str, int]:
        name, equals, text = arg.lstrip("-").partition("=")
        if name == "h" and not equals:
            name = "help"
        if name not in self and name.startswith("no-") and name[3:] in self and not equals \
                and self._get(name[3:]).type is bool:
            return self._get(name[3:]), "false", 1
        if name not in self:
            raise OptionError("unrecognized option (see --help)", option=name.replace("_", "-"),
                              source=COMMAND_LINE)
        opt = self._get(name)
        if equals:
            return opt, text, 1
        if opt.type is bool and not opt.multiple:
            return opt, "true", 1
        if following is None or following.startswith("--"):
            raise OptionError(f"requires a value (--{opt.name}=VALUE)", option=opt.name,
                              source=COMMAND_LINE)
        return opt, following, 2

    # -- help ----------------------------------------------------------------------------
    def print_help(self, file: TextIO | None = None) -> None:
        """Print every option, grouped, with its help, metavar and default."""
        out = file or sys.stdout
        print(f"Usage: {os.path.basename(sys.argv[0] or 'app')} [OPTIONS]", file=out)
        by_group: dict[str, list[_Option]] = {}
        for opt in self._options.values():
            by_group.setdefault(opt.group_name, []).append(opt)
        for group in sorted(by_group):
            print(f"\n{_group_title(group)} options:\n" if group else "\nOptions:\n", file=out)
            for opt in sorted(by_group[group], key=lambda o: o.name):
                _print_option(opt, out)
        print(file=out)

    def _help_callback(self, value: bool) -> None:
        if value:
            self.print_help()
            sys.exit(0)

    def mockable(self) -> _Mockable:
        """A wrapper ``unittest.mock.patch.object`` can patch option values through."""
        return _Mockable(self)


class _Mockable:
    """``mock.patch``-compatible view of an OptionParser (delattr restores the old value)."""

    def __init__(self, parser: OptionParser) -> None:
        self.__dict__["_parser"] = parser
        self.__dict__["_originals"] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._originals.setdefault(name, getattr(self._parser, name))
        setattr(self._parser, name, value)

    def __delattr__(self, name: str) -> None:
        setattr(self._parser, name, self._originals.pop(name))


def _group_title(group: str) -> str:
    return os.path.normpath(group) if os.sep in group else group


def _print_option(opt: _Option, out: TextIO) -> None:
    prefix = opt.name.replace("_", "-")
    if opt.metavar:
        prefix += "=" + opt.metavar
    description = opt.help or ""
    if opt.multiple:
        description += " (comma-separated list)"
    if opt.default not in (None, "", []):
        secret = any(word in opt.name.lower() for word in _SECRET_WORDS)
        description += " (default ***)" if secret else f" (default {opt.default})"
    lines = textwrap.wrap(description.strip(), 44, break_long_words=False,
                          break_on_hyphens=False) or [""]
    if len(prefix) > 30:
        lines.insert(0, "")
    print(f"  --{prefix:<30} {lines[0]}".rstrip(), file=out)
    for line in lines[1:]:
        print(f"{'':34} {line}", file=out)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise OptionError(f"cannot read: {exc.strerror}", source=f"config file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"invalid TOML: {exc}", source=f"config file {path}") from None


def _exec_python(path: str) -> dict[str, Any]:
    """Run a Tornado-style config file; its globals become candidate option values."""
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path)}
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
        exec(code, namespace, namespace)
    except OSError as exc:
        raise OptionError(f"cannot read: {exc.strerror}", source=f"config file {path}") from None
    except SyntaxError as exc:
        raise OptionError(f"invalid Python syntax line {exc.lineno}: {exc.msg}",
                          source=f"config file {path}") from None
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


@contextlib.contextmanager
def _exit_on_error(enabled: bool) -> Iterator[None]:
    """Turn an :class:`Error` into a one-line message on stderr and exit status 2."""
    try:
        yield
    except Error as exc:
        if not enabled:
            raise
        prog = os.path.basename(sys.argv[0] or "app")
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# -- the global parser and Tornado's module-level functions --------------------------------

options = OptionParser()
"""The global options: every ``define()``-d option is an attribute (and an item) of it."""


def define(name: str, default: Any = None, type: type | None = None, help: str | None = None,
           metavar: str | None = None, multiple: bool = False, group: str | None = None,
           callback: Callable[[Any], None] | None = None) -> None:
    """Define an option on the global :data:`options` (see :meth:`OptionParser.define`)."""
    options.define(name, default=default, type=type, help=help, metavar=metavar,
                   multiple=multiple, group=group, callback=callback)


def parse_command_line(args: list[str] | None = None, final: bool = True,
                       exit_on_error: bool | None = None) -> list[str]:
    """Parse the global options from the command line (``sys.argv`` by default)."""
    return options.parse_command_line(args, final=final, exit_on_error=exit_on_error)


def parse_config_file(path: str | os.PathLike[str], final: bool = True) -> None:
    """Parse the global options from a TOML or Tornado-style Python config file."""
    options.parse_config_file(path, final=final)


def parse_environment(environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX,
                      final: bool = True) -> None:
    """Parse the global options from ``MICROWEB_<NAME>`` environment variables."""
    options.parse_environment(environ, prefix, final=final)


def parse_all(args: list[str] | None = None, *, config_file: str | None = None,
              environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX,
              exit_on_error: bool | None = None) -> list[str]:
    """Parse the global options from every source: default < file < env < command line."""
    return options.parse_all(args, config_file=config_file, environ=environ, prefix=prefix,
                             exit_on_error=exit_on_error)


def print_help(file: TextIO | None = None) -> None:
    """Print the global options' help (stdout by default)."""
    options.print_help(file)


def add_parse_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` after each final parse of the global options."""
    options.add_parse_callback(callback)


def define_logging_options(parser: OptionParser | None = None) -> None:
    """Tornado's logging options (``--logging=debug|none``, ``--log-json``, ``--log-file-*``).

    After each final parse they configure :mod:`microweb.log` unless ``logging`` is "none".
    """
    parser = options if parser is None else parser
    parser.define("logging", default="info", group="logging", metavar="LEVEL",
                  help="log level: debug|info|warning|error|none (none leaves logging alone)")
    parser.define("log_json", default=False, group="logging", help="log records as JSON lines")
    parser.define("log_file_prefix", type=str, group="logging", metavar="PATH",
                  help="log to this file (rotated by size) instead of stderr")
    parser.define("log_file_max_size", default=100 * 1000 * 1000, group="logging",
                  help="rotate the log file after this many bytes")
    parser.define("log_file_num_backups", default=10, group="logging",
                  help="number of rotated log files to keep")
    parser.add_parse_callback(lambda: _configure_logging(parser))


def _configure_logging(parser: OptionParser) -> None:
    level = parser.logging
    if level is None or str(level).lower() == "none":
        return
    log.configure(level=str(level).upper(), json=parser.log_json, file=parser.log_file_prefix,
                  max_bytes=parser.log_file_max_size, backups=parser.log_file_num_backups)


define_logging_options()
