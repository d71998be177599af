"""Stage 4: check each file against `schemas/compose-spec.json`, reporting every problem.

jsonschema is the judge. Its validator is built once per process, on first use (importing
jsonschema costs more than parsing a small file), for the draft the schema declares, with a
format checker only when the schema uses `format`. A valid file costs one `is_valid` walk; only
an invalid one is walked again by `iter_errors`. Each jsonschema error becomes one `ConfigError`
at the line of the offending key, with a human message that names the value as it was written
("must be at most 65535, not 70000", "unknown key", 'must be a list, not the string "80"')
instead of jsonschema's Python repr of the instance.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from typing import Any, Callable

from compose_net.errors import ConfigError, one_line
from compose_net.keypath import format_path, locate
from compose_net.loader.checks import shown
from compose_net.loader.source import Loc

# `compose_net/schemas` links to the checkout's `schemas/`, so a wheel carries the schema too
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "schemas", "compose-spec.json")

SHOWN_MAX = 80  # characters of a list or mapping named in a message, as `shown` cuts a string

_validator: Any = None

_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "a boolean (true or false)", "null": "empty (null)"}
# what a value failing a pattern of compose-spec.json gets told, in words
_PATTERN_WORDS = {
    "^[a-zA-Z0-9._-]+$": 'invalid name {value}: use only letters, digits, ".", "_" and "-"',
    # unanchored, as in the Compose Specification; checks.py judges the whole name afterwards
    "[a-zA-Z0-9][a-zA-Z0-9_.-]+": 'invalid container name {value}: use at least two characters, letters, '
                                  'digits, "_", "." and "-", starting with a letter or digit',
}
_FORMAT_WORDS = {"ipv4": "IPv4 address", "ipv6": "IPv6 address", "hostname": "host name",
                 "uri": "URI", "email": "e-mail address", "date-time": "date and time", "regex": "regular expression"}
# keywords whose value is data, not a schema
_DATA_KEYWORDS = ("enum", "const", "default", "examples")
# keywords whose value is a map of names to schemas, not a schema (a property may be called "format")
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "dependencies")


def schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def validator() -> Any:
    """The process's one validator for our schema, built on first use."""
    global _validator
    if _validator is None:
        _validator = build(schema())
    return _validator


def build(sch: dict) -> Any:
    """A jsonschema validator for `sch`, of the draft its `$schema` declares."""
    from jsonschema.validators import validator_for

    cls = validator_for(sch)
    checker = cls.FORMAT_CHECKER if _uses_format(sch) else None
    return cls(_refs_resolved_once(sch, cls), format_checker=checker)


def _refs_resolved_once(sch: dict, cls: Any) -> dict:
    """`sch` with each `$ref` replaced by the subschema it names, as `referencing` resolves it.

    jsonschema (4.18+, through `referencing`) looks a `$ref` up again every time a value meets
    it: walking the JSON pointer, building resources and resolvers. On a 1,000-service file
    that is ~1,500 lookups and a quarter of `is_valid`. Resolving each once here is exact for
    drafts 6 and 7, where a `$ref` replaces its siblings and only `$id` moves the base URI; a
    schema with an inner `$id`, a later draft, or a reference back into itself keeps its `$ref`s
    for jsonschema to resolve."""
    import jsonschema
    from referencing import Registry, Resource

    if cls not in (jsonschema.Draft6Validator, jsonschema.Draft7Validator) or _inner_id(sch):
        return sch
    resolver = Registry().resolver_with_root(Resource.from_contents(sch))
    done: dict[str, Any] = {}
    open_refs: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return {k: v if k in _DATA_KEYWORDS else walk(v) for k, v in node.items()}
        if ref not in done:
            if ref in open_refs:  # a cycle: jsonschema follows this one at run time
                return node
            open_refs.add(ref)
            done[ref] = walk(resolver.lookup(ref).contents)
            open_refs.discard(ref)
        return done[ref]

    # the root keeps its own keys even beside a `$ref`: its definitions are what refs point into
    return {k: v if k in _DATA_KEYWORDS else walk(v) for k, v in sch.items()}


def _inner_id(node: Any, root: bool = True) -> bool:
    if isinstance(node, list):
        return any(_inner_id(x, False) for x in node)
    if not isinstance(node, dict):
        return False
    if not root and isinstance(node.get("$id"), str):
        return True
    return any(_inner_id(v, False) for k, v in node.items() if k not in _DATA_KEYWORDS)


def _uses_format(sch: Any) -> bool:
    if isinstance(sch, list):
        return any(_uses_format(x) for x in sch)
    if not isinstance(sch, dict):
        return False
    for key, value in sch.items():
        if key == "format" and isinstance(value, str):
            return True
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            if any(_uses_format(x) for x in value.values()):
                return True
        elif key not in _DATA_KEYWORDS and _uses_format(value):
            return True
    return False


# --- naming values ---------------------------------------------------------------------------


def show(value: Any) -> str:
    """A value as YAML wrote it, on one line: strings quoted as every loader message quotes
    them (`checks.shown`), true/false, null, .inf."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = one_line(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "..."


def given(value: Any) -> str:
    """What was given, for a type error: the value itself when it is a scalar."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, int):
        return f"the integer {show(value)}"
    if isinstance(value, float):
        return f"the number {show(value)}"
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _words(types: Any) -> str:
    if isinstance(types, str):
        types = [types]
    words = [_TYPE_WORDS.get(t, t) for t in types]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _count(n: int, word: str, words: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


# --- one message per problem -----------------------------------------------------------------

Problem = tuple[list, str]  # (key path parts, message)


def _additional(error: Any, path: list) -> list[Problem]:
    if error.validator_value is not False:
        return [(path, _judged(error))]
    props = error.schema.get("properties", {})
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    extras = [k for k in error.instance if k not in props and not any(p.search(k) for p in patterns)]
    where = format_path(path) or "the top level"
    out = []
    for key in extras:
        hint = difflib.get_close_matches(key, sorted(props), n=1, cutoff=0.75)
        msg = f"unknown key {show(key)} in {where}"
        if hint:
            msg += f' (did you mean "{hint[0]}"?)'
        out.append((path + [key], msg))
    return out


def _name(error: Any, path: list) -> list[Problem]:
    """A key of a mapping (a service, network, ... name) fails `propertyNames`."""
    name = error.instance
    if error.validator == "pattern" and error.validator_value in _PATTERN_WORDS:
        message = _pattern(error.validator_value, name)
    else:
        message = f"invalid name {show(name)}: {_judged(error)}"
    return [(path + [str(name)], message)]


def _required(error: Any, path: list) -> list[Problem]:
    inst = error.instance if isinstance(error.instance, dict) else {}
    return [(path, f'missing required key "{k}"') for k in error.validator_value if k not in inst]


def _unique(error: Any, path: list) -> list[Problem]:
    seen: list = []
    for index, item in enumerate(error.instance):
        if any(item == s and isinstance(item, bool) == isinstance(s, bool) for s in seen):
            return [(path + [index], f"duplicate entry {show(item)}")]
        seen.append(item)
    return [(path, "has duplicate entries")]


def _dependencies(error: Any, path: list) -> list[Problem]:
    inst = error.instance if isinstance(error.instance, dict) else {}
    out = []
    for key, needs in error.validator_value.items():
        if key in inst and isinstance(needs, list):
            out += [(path + [key], f'{show(key)} needs "{n}" in {format_path(path) or "the top level"} too')
                    for n in needs if n not in inst]
    return out or [(path, _judged(error))]


def _choice(error: Any, path: list) -> list[Problem]:
    """`oneOf`/`anyOf`: judge the value by the forms of its own type; when none is, name them all."""
    if not error.context:
        return [(path, f"{show(error.instance)} matches more than one of the allowed forms")]
    branches: dict[Any, list] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    wrong_form = [b for b in branches.values() if any(e.validator == "type" and not e.relative_path for e in b)]
    fitting = [e for b in branches.values() if b not in wrong_form for e in b]
    if not fitting:
        wanted: list = []
        for b in wrong_form:
            for e in b:
                if e.validator == "type" and not e.relative_path:
                    want = e.validator_value
                    wanted += [t for t in ([want] if isinstance(want, str) else want) if t not in wanted]
        return [(path, f"must be {_words(wanted)}, not {given(error.instance)}")]
    from jsonschema.exceptions import best_match

    return _message(best_match(fitting), None)


def _listed(value: Any) -> str:
    return value if isinstance(value, str) else show(value)


def _versus(words: str) -> Callable[[Any, Any], str]:
    """`must be at most 65535, not 70000`: the schema's bound, then the value."""
    return lambda bound, inst: f"{words} {show(bound)}, not {show(inst)}"


def _length(most: str) -> Callable[[Any, Any], str]:
    return lambda n, inst: f"must be {most} {_count(n, 'character')} long, not {show(inst)} ({len(inst)})"


def _size(most: str, word: str, words: str = "") -> Callable[[Any, Any], str]:
    return lambda n, inst: f"must have {most} {_count(n, word, words)}, not {len(inst)}"


def _pattern(rx: str, inst: Any) -> str:
    if rx in _PATTERN_WORDS:
        return _PATTERN_WORDS[rx].replace("{value}", show(inst))
    return f"{show(inst)} does not match {rx}"


# keywords that judge the value itself: (the keyword's value, the instance) -> message
_SIMPLE: dict[str, Callable[[Any, Any], str]] = {
    "type": lambda want, inst: f"must be {_words(want)}, not {given(inst)}",
    "enum": lambda allowed, inst: f"{show(inst)} is not one of: {', '.join(_listed(x) for x in allowed)}",
    "const": _versus("must be"),
    "minimum": _versus("must be at least"),
    "maximum": _versus("must be at most"),
    "exclusiveMinimum": _versus("must be more than"),
    "exclusiveMaximum": _versus("must be less than"),
    "multipleOf": _versus("must be a multiple of"),
    "minLength": _length("at least"),
    "maxLength": _length("at most"),
    "pattern": _pattern,
    "format": lambda fmt, inst: f"{show(inst)} is not a valid {_FORMAT_WORDS.get(fmt, fmt)}",
    "minItems": _size("at least", "entry", "entries"),
    "maxItems": _size("at most", "entry", "entries"),
    "minProperties": _size("at least", "key"),
    "maxProperties": _size("at most", "key"),
    "not": lambda _, inst: f"{show(inst)} is not allowed here",
}


_STRUCTURAL: dict[str, Callable[[Any, list], list[Problem]]] = {
    "additionalProperties": _additional, "required": _required, "uniqueItems": _unique,
    "oneOf": _choice, "anyOf": _choice, "dependencies": _dependencies,
}


def _judged(error: Any) -> str:
    """The message of a keyword that judges the value itself (jsonschema's words, on one line,
    for a keyword our schema does not use)."""
    simple = _SIMPLE.get(error.validator)
    return simple(error.validator_value, error.instance) if simple else " ".join(error.message.split())


def _message(error: Any, path: Any) -> list[Problem]:
    """[(path parts, message)] for one jsonschema error."""
    if path is None:
        path = list(error.absolute_path)
    schema_path = error.relative_schema_path
    if len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
        return _name(error, path)
    if error.validator is None:  # a `false` schema: nothing is allowed here
        return [(path, f"{format_path(path) or 'this key'} is not allowed")]
    structural = _STRUCTURAL.get(error.validator)
    if structural is not None:
        return structural(error, path)
    return [(path, _judged(error))]


def validate(data: dict, loc: Loc) -> list[ConfigError]:
    """Every schema problem of one file's data (after interpolation), as ConfigErrors."""
    check = validator()
    if check.is_valid(data):
        return []
    found: list = list(check.iter_errors(data))
    # `type: string, enum: [...]` fails twice on 7; the list of allowed values says more
    listed = {tuple(e.absolute_path) for e in found if e.validator in ("enum", "const")}
    errors: list[ConfigError] = []
    seen: set[tuple[str, str]] = set()
    for error in found:
        if error.validator == "type" and tuple(error.absolute_path) in listed:
            continue
        for parts, message in _message(error, None):
            keypath = format_path(parts) or "(top level)"
            if (keypath, message) in seen:
                continue
            seen.add((keypath, message))
            file, line = locate(loc, data, parts)
            errors.append(ConfigError(file, line, keypath, message))
    errors.sort(key=lambda e: (e.file, e.line, e.keypath))
    return errors
