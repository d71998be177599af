"""Stage 2b: `$VAR` interpolation of values (never keys), as Compose does it.

Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
`${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`, defaults nesting further expressions, `$$` for a
literal `$`. A `$` followed by anything else stays a literal `$`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional

from compose_net.errors import ConfigError, ConfigErrors, ConfigWarning, Where
from compose_net.loader.source import Loc, path_text

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class TemplateError(ValueError):
    """A malformed or failed expression; the caller adds file, line and key path."""


def _read_name(text: str, i: int) -> int:
    j = i
    while j < len(text) and text[j] in _NAME_CHARS:
        j += 1
    return j


_TOKENS = re.compile(r"\$\$|\$\{|\}")
MAX_NESTING = 16


def _find_close(text: str, i: int) -> int:
    """Index of the `}` closing a `${` whose body starts at i (nested `${...}` balanced)."""
    depth = 0
    for m in _TOKENS.finditer(text, i):
        token = m.group()
        if token == "${":
            depth += 1
        elif token == "}":
            if depth == 0:
                return m.start()
            depth -= 1
    return -1


def _max_nesting(text: str) -> int:
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        token = m.group()
        if token == "${":
            depth += 1
            deepest = max(deepest, depth)
        elif token == "}" and depth:
            depth -= 1
    return deepest


def substitute(text: str, lookup: Callable[[str], Optional[str]], on_unset: Callable[[str], None],
               depth: int = 0) -> str:
    """Expand every expression in `text`. Raises TemplateError."""
    if "$" not in text:
        return text
    if depth == 0 and "${" in text and _max_nesting(text) > MAX_NESTING:
        # checked once up front: finding each level's closing brace scans the rest of the text
        raise TemplateError(f"expressions nested more than {MAX_NESTING} levels deep")
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if j + 1 >= n:
            out.append("$")
            break
        nxt = text[j + 1]
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt in _NAME_START:
            end = _read_name(text, j + 1)
            name = text[j + 1 : end]
            value = lookup(name)
            if value is None:
                on_unset(name)
                value = ""
            out.append(value)
            i = end
        elif nxt == "{":
            close = _find_close(text, j + 2)
            if close < 0:
                raise TemplateError(f'invalid interpolation format in "{text}": missing closing brace')
            out.append(_braced(text[j + 2 : close], text, lookup, on_unset, depth))
            i = close + 1
        else:
            out.append("$")
            i = j + 1
    return "".join(out)


def _braced(body: str, whole: str, lookup, on_unset, depth: int) -> str:
    end = _read_name(body, 0)
    name = body[:end]
    if not name or name[0] not in _NAME_START:
        raise TemplateError(f'invalid interpolation format in "{whole}": "${{{body}}}" is not a variable name')
    rest = body[end:]
    value = lookup(name)
    if not rest:
        if value is None:
            on_unset(name)
            return ""
        return value
    for op in _OPERATORS:
        if rest.startswith(op):
            arg = rest[len(op):]
            break
    else:
        raise TemplateError(f'invalid interpolation format in "{whole}": unexpected "{rest}" after ${{{name}')
    empty_counts = op.startswith(":")
    missing = value is None or (empty_counts and value == "")
    kind = op[-1]
    if kind == "-":
        return substitute(arg, lookup, on_unset, depth + 1) if missing else value
    if kind == "+":
        return "" if missing else substitute(arg, lookup, on_unset, depth + 1)
    # "?": required
    if missing:
        message = substitute(arg, lookup, on_unset, depth + 1) if arg else ""
        # Compose's wording, whether the variable is unset or empty
        raise TemplateError(f"required variable {name} is missing a value" + (f": {message}" if message else ""))
    return value


def interpolate(data: Any, loc: Loc, environ: Mapping[str, str]) -> tuple[Any, list[ConfigWarning]]:
    """Interpolate every string value of one parsed file. Raises ConfigErrors with all problems."""
    errors: list[ConfigError] = []
    warnings: list[ConfigWarning] = []
    seen_unset: set[tuple[str, str]] = set()

    def walk(value: Any, node: Loc, parts: list) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value

            def on_unset(name: str) -> None:
                keypath = path_text(parts)
                if (keypath, name) not in seen_unset:
                    seen_unset.add((keypath, name))
                    warnings.append(ConfigWarning(Where(node.file, node.line, keypath),
                                                  f'the "{name}" variable is not set, defaulting to a blank string'))

            try:
                return substitute(value, environ.get, on_unset)
            except TemplateError as e:
                errors.append(ConfigError(node.file, node.line, path_text(parts) or "(top level)", str(e)))
                return value
        if isinstance(value, dict):
            kids = node.children or {}
            return {k: walk(v, kids.get(k, node), parts + [k]) for k, v in value.items()}
        if isinstance(value, list):
            kids = node.children or []
            return [walk(v, kids[i] if i < len(kids) else node, parts + [i]) for i, v in enumerate(value)]
        return value

    result = walk(data, loc, [])
    if errors:
        raise ConfigErrors(errors)
    return result, warnings
