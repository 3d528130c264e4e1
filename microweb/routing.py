"""Routes: ``url()`` rules, per-host rule sets, mounts, and a lookup that stays flat as routes grow.

A rule's pattern is a regex matched against the whole decoded path (Tornado appends ``$``; we
use ``fullmatch``). Its target is a handler class, a list of rules (flattened under the prefix
at registration), or any WSGI callable (another ``Application``, Flask...) mounted under the
prefix with ``SCRIPT_NAME``/``PATH_INFO`` shifted.

PERF: everything is resolved when rules are registered. Literal patterns go into a dict;
the others are filed in a trie under the complete path segments their pattern starts with, and
every trie node keeps the ordered list of rules that can match below it. A lookup is one dict
probe, a walk of a few segments and a handful of regex matches, whatever the number of routes,
while the first matching rule (in registration order) still wins, as in Tornado.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

__all__ = ["Router", "RuleSet", "URLSpec", "url"]

log = logging.getLogger("microweb.application")

_SPECIAL = set(".^$*+?{}[]|()\\")
_QUANTIFIERS = set("*+?{")


def _literal_prefix(pattern: str) -> tuple[str, bool]:
    """The literal text every match must start with, and whether the whole pattern is literal."""
    if _has_top_level_alternation(pattern):
        return "", False
    out: list[str] = []
    i, n = (1 if pattern.startswith("^") else 0), len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n and not pattern[i + 1].isalnum():
            lit, step = pattern[i + 1], 2
        elif ch == "$" and i == n - 1:
            return "".join(out), True
        elif ch in _SPECIAL:
            break
        else:
            lit, step = ch, 1
        if i + step < n and pattern[i + step] in _QUANTIFIERS:
            break  # the last literal is optional or repeated: not part of the prefix
        out.append(lit)
        i += step
    return "".join(out), i >= n


def _has_top_level_alternation(pattern: str) -> bool:
    depth, i = 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            i = pattern.find("]", i + 2) + 1 or len(pattern)
            continue
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            return True
        i += 1
    return False


def _segments(prefix: str) -> list[str]:
    """The complete path segments of a literal prefix: ``/api/v1/us`` -> ``["api", "v1"]``."""
    if not prefix.startswith("/"):
        return []
    return [s for s in prefix[1 : prefix.rfind("/")].split("/")] if prefix.count("/") > 1 else []


def _re_unescape(s: str) -> str:
    """Undo regex escaping of punctuation; a class escape like ``\\d`` cannot be reversed."""
    def repl(m: re.Match[str]) -> str:
        if m.group(1).isalnum():
            raise ValueError("cannot unescape '\\\\" + m.group(1) + "'")
        return m.group(1)
    return re.sub(r"\\(.)", repl, s)


class URLSpec:
    """One rule: a path regex, its target, the ``initialize()`` kwargs and an optional name."""

    def __init__(self, pattern: str, handler: Any, kwargs: dict[str, Any] | None = None,
                 name: str | None = None) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"route pattern must be a str, not {type(pattern).__name__}")
        self.pattern = pattern
        self.target = handler
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.name = name
        self.is_mount = not isinstance(handler, type | list | tuple)
        self.handler_class = None if self.is_mount else handler
        body = pattern[1:] if pattern.startswith("^") else pattern
        if self.is_mount:
            body = body[:-1] if body.endswith("$") else body
            body = body[:-1] if body.endswith("/") else body
            self.regex = re.compile(f"(?:{body})(?=/|\\Z)")
            self.match: Callable[[str], re.Match[str] | None] = self.regex.match
            self.literal = None
        else:
            self.regex = re.compile(pattern if pattern.endswith("$") else pattern + "$")
            self.match = re.compile(body[:-1] if body.endswith("$") else body).fullmatch
        prefix, whole = _literal_prefix(pattern)
        self.prefix = prefix
        self.literal = prefix if whole and not self.is_mount else None
        self.named = bool(self.regex.groupindex)
        self._path, self._group_count = self._find_groups()

    def _find_groups(self) -> tuple[str | None, int | None]:
        """A ``%s`` template for ``reverse()`` (Tornado's algorithm), or None if too complex."""
        pattern = self.pattern[1:] if self.pattern.startswith("^") else self.pattern
        pattern = pattern[:-1] if pattern.endswith("$") else pattern
        if self.regex.groups != pattern.count("("):
            return None, None
        pieces = []
        try:
            for fragment in pattern.split("("):
                if ")" in fragment:
                    pieces.append("%s" + _re_unescape(fragment[fragment.index(")") + 1 :]))
                else:
                    pieces.append(_re_unescape(fragment))
        except ValueError:
            return None, None
        return "".join(pieces), self.regex.groups

    def reverse(self, *args: Any) -> str:
        """Build a path from this rule, quoting each argument."""
        if self._path is None:
            raise ValueError(f"cannot reverse url regex {self.pattern!r}")
        if len(args) != self._group_count:
            raise ValueError(f"{self.pattern!r} needs {self._group_count} arguments, "
                             f"got {len(args)}")
        if not args:
            return self._path
        quoted = [quote(a if isinstance(a, bytes | str) else str(a)) for a in args]
        return self._path % tuple(quoted)

    def __repr__(self) -> str:
        target = getattr(self.target, "__name__", type(self.target).__name__)
        return f"{type(self).__name__}({self.pattern!r}, {target}, name={self.name!r})"


def url(pattern: str, handler: Any, kwargs: dict[str, Any] | None = None,
        name: str | None = None) -> URLSpec:
    """A rule: ``url(r"/story/([0-9]+)", StoryHandler, dict(db=db), name="story")``."""
    return URLSpec(pattern, handler, kwargs, name)


def _to_spec(rule: Any) -> URLSpec:
    if isinstance(rule, URLSpec):
        return rule
    if isinstance(rule, tuple | list) and 2 <= len(rule) <= 4:
        return URLSpec(*rule)
    raise TypeError(f"a route is url(...) or (pattern, target[, kwargs[, name]]), not {rule!r}")


def _pattern_and_target(rule: Any) -> tuple[str, Any]:
    if isinstance(rule, URLSpec):
        return rule.pattern, rule.target
    if isinstance(rule, tuple | list) and 2 <= len(rule) <= 4:
        return rule[0], rule[1]
    raise TypeError(f"a route is url(...) or (pattern, target[, kwargs[, name]]), not {rule!r}")


def expand_rules(rules: Iterable[Any], prefix: str = "") -> list[URLSpec]:
    """Normalize rules, flattening nested rule lists under their prefix."""
    specs: list[URLSpec] = []
    for rule in rules:
        pattern, target = _pattern_and_target(rule)
        if isinstance(target, list | tuple):
            sub = pattern[1:] if pattern.startswith("^") else pattern
            sub = sub[:-1] if sub.endswith("/") else sub
            specs.extend(expand_rules(target, _join(prefix, sub)))
            continue
        spec = _to_spec(rule)
        if prefix:
            spec = URLSpec(_join(prefix, spec.pattern), spec.target, spec.kwargs, spec.name)
        specs.append(spec)
    return specs


def _join(prefix: str, pattern: str) -> str:
    return prefix + (pattern[1:] if pattern.startswith("^") else pattern)


class _Node:
    __slots__ = ("children", "own", "candidates")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.own: list[tuple[int, URLSpec]] = []
        self.candidates: tuple[URLSpec, ...] = ()


class RuleSet:
    """The ordered rules of one host, compiled for lookup (see the module docstring)."""

    def __init__(self, rules: Iterable[Any] = ()) -> None:
        self.rules: list[URLSpec] = []
        self._exact: dict[str, URLSpec] = {}
        self._root = _Node()
        self._depth = 0
        self.add(rules)

    def add(self, rules: Iterable[Any]) -> None:
        self.rules.extend(expand_rules(rules))
        self._compile()

    def _compile(self) -> None:
        self._exact, root, depth = {}, _Node(), 0
        patterned: list[URLSpec] = []  # rules before this one that are not plain literals
        for index, spec in enumerate(self.rules):
            if spec.literal is not None and not any(p.match(spec.literal) for p in patterned):
                self._exact.setdefault(spec.literal, spec)
                continue
            patterned.append(spec)
            node = root
            segments = _segments(spec.prefix)
            depth = max(depth, len(segments))
            for seg in segments:
                node = node.children.setdefault(seg, _Node())
            node.own.append((index, spec))
        _fill_candidates(root, [])
        self._root, self._depth = root, depth

    def find(self, path: str) -> tuple[URLSpec, re.Match[str] | None] | None:
        """The first rule matching ``path`` and its match (None for a literal rule)."""
        spec = self._exact.get(path)
        if spec is not None:
            return spec, None
        node = self._root
        if node.children:
            for seg in path.split("/", self._depth + 1)[1:]:
                child = node.children.get(seg)
                if child is None:
                    break
                node = child
        for spec in node.candidates:
            m = spec.match(path)
            if m is not None:
                return spec, m
        return None


def _fill_candidates(node: _Node, inherited: list[tuple[int, URLSpec]]) -> None:
    merged = sorted(inherited + node.own, key=lambda item: item[0])
    node.candidates = tuple(spec for _, spec in merged)
    for child in node.children.values():
        _fill_candidates(child, merged)


class Router:
    """Host rule sets (Tornado's ``add_handlers``) in front of the default rules."""

    def __init__(self, rules: Sequence[Any] = (), default_host: str | None = None) -> None:
        self.default = RuleSet(rules)
        self.default_host = default_host
        self.hosts: list[tuple[re.Pattern[str], RuleSet]] = []
        self.named: dict[str, URLSpec] = {}
        self._index_names(self.default.rules)

    def add_host(self, host_pattern: str, rules: Sequence[Any]) -> None:
        """Rules for hosts matching ``host_pattern`` (a regex; ``$`` is implied)."""
        if not host_pattern.endswith("$"):
            host_pattern += "$"
        rule_set = RuleSet(rules)
        self.hosts.append((re.compile(host_pattern, re.IGNORECASE), rule_set))
        self._index_names(rule_set.rules)

    def add_default(self, rules: Sequence[Any]) -> None:
        before = len(self.default.rules)
        self.default.add(rules)
        self._index_names(self.default.rules[before:])

    def _index_names(self, specs: Iterable[URLSpec]) -> None:
        for spec in specs:
            if spec.name:
                if spec.name in self.named:
                    log.warning("Multiple handlers named %s; replacing previous value", spec.name)
                self.named[spec.name] = spec

    def find(self, path: str, host_name: Callable[[], str],
             behind_proxy: Callable[[], bool]) -> tuple[URLSpec, re.Match[str] | None] | None:
        """First rule set matching the host whose rules match the path, else the default."""
        if not self.hosts:
            return self.default.find(path)
        name = host_name()
        for pattern, rule_set in self.hosts:
            if pattern.match(name):
                found = rule_set.find(path)
                if found is not None:
                    return found
        found = self.default.find(path)
        if found is not None or self.default_host is None or behind_proxy():
            return found
        for pattern, rule_set in self.hosts:
            if pattern.match(self.default_host):
                found = rule_set.find(path)
                if found is not None:
                    return found
        return None

    def reverse(self, name: str, *args: Any) -> str:
        if name not in self.named:
            raise KeyError(f"{name} not found in named urls")
        return self.named[name].reverse(*args)
