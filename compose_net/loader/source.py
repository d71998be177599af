"""Stage 1: YAML text → plain data plus a location tree, the way Compose reads YAML.

We compose the document ourselves from libyaml's event stream instead of using PyYAML's
composer and constructor, because that gives us, in one iterative pass:
- YAML 1.2 core-schema scalars (Compose uses go-yaml v3): `2222:22`, `on`, `yes`, `1:30`
  and timestamps stay strings; only true/false in their three spellings are booleans;
- a line for every key and sequence item (the `Loc` tree), so every later stage can say
  `FILE:LINE: key.path: message`;
- duplicate keys rejected with both lines (PyYAML silently keeps the last one);
- hostile input bounded: depth is checked per event (PyYAML's composer recurses and dies with
  RecursionError on deep nesting), and alias expansion is counted without materialising it,
  so a billion-laughs file fails after a few hundred events.

Aliases share the anchored object: no later stage mutates data in place, so sharing is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import yaml

from compose_net.errors import ConfigError, ConfigErrors
from compose_net.keypath import format_path
from compose_net.loader import inputs

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 256
# Nodes produced through aliases (each alias counts the full size of what it stands for).
MAX_ALIAS_NODES = 200_000
# Nodes written in one file. A 10 MiB file of one-line services would otherwise take half a
# minute and a gigabyte to load; 300,000 nodes is ~9,000 services, far beyond any real project.
MAX_NODES = 300_000
MAX_DUPLICATES = 100  # a file of nothing but duplicate keys reports the first hundred

try:  # libyaml's event parser is ~10x faster; the pure-Python one behaves the same
    _Parser = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Parser = yaml.SafeLoader


class Loc(NamedTuple):
    """Where a key or item was written. `children` mirrors the value: dict for a mapping
    (key → Loc), list for a sequence, None for a scalar. `tag` keeps `!reset`/`!override`."""

    file: str
    line: int
    children: Any = None
    tag: Optional[str] = None


@dataclass(frozen=True)
class Source:
    file: str  # the name as the user gave it (used in every message)
    data: dict
    loc: Loc


_INT_RE = re.compile(r"[-+]?[0-9]+\Z")
_OCT_RE = re.compile(r"0o[0-7]+\Z")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF_RE = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN_RE = re.compile(r"\.(nan|NaN|NAN)\Z")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUES = frozenset(("true", "True", "TRUE"))
_FALSES = frozenset(("false", "False", "FALSE"))
_PASS_TAGS = frozenset(("!reset", "!override"))


def _int64(text: str, value: Optional[int]) -> Any:
    """Compose (Go) reads integers as 64-bit; a longer digit string stays text (and Python's
    int-to-str limit never sees a 5,000-digit number)."""
    if value is None or not -(2**63) <= value < 2**64:
        return text
    return value


def resolve_plain(text: str) -> Any:
    """The YAML 1.2 core schema for an untagged plain scalar."""
    if not text:
        return None
    first = text[0]
    # Most scalars are words: skip the regexes unless the first character could start a number.
    if first.isalpha() and first not in "tTfFnN":
        return text
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _INT_RE.match(text):
        return _int64(text, int(text, 10) if len(text) <= 30 else None)
    if _OCT_RE.match(text):
        return _int64(text, int(text[2:], 8) if len(text) <= 30 else None)
    if _HEX_RE.match(text):
        return _int64(text, int(text[2:], 16) if len(text) <= 30 else None)
    if _FLOAT_RE.match(text):
        return float(text)
    if _INF_RE.match(text):
        return float("-inf") if text[0] == "-" else float("inf")
    if _NAN_RE.match(text):
        return float("nan")
    return text


def _resolve_tagged(tag: str, text: str, where: tuple[str, int, str]) -> Any:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    try:
        if short == "!!str":
            return text
        if short == "!!int":
            value = resolve_plain(text)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif short == "!!float":
            value = resolve_plain(text)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif short == "!!bool":
            value = resolve_plain(text)
            if isinstance(value, bool):
                return value
        elif short == "!!null":
            if text in _NULLS:
                return None
        elif short in _PASS_TAGS:
            return resolve_plain(text)
        else:
            raise ConfigError(*where, f"unsupported YAML tag {short}")
    except ValueError:
        pass
    raise ConfigError(*where, f"{text!r} is not a valid {short}")


path_text = format_path


class _Frame:
    __slots__ = ("is_map", "data", "locs", "key", "key_line", "key_tag", "merges", "anchor", "size", "line", "tag", "path_key")

    def __init__(self, is_map: bool, anchor, line: int, tag, path_key):
        self.is_map = is_map
        self.data: Any = {} if is_map else []
        self.locs: Any = {} if is_map else []
        self.key = _NO_KEY
        self.key_line = 0
        self.key_tag = None
        self.merges: list = []
        self.anchor = anchor
        self.size = 1
        self.line = line
        self.tag = tag
        self.path_key = path_key  # the key or index this node sits under in its parent


_NO_KEY = object()
_MERGE = "<<"


def _scalar_loc(file: str, line: int) -> "Loc":
    return Loc(file, line, None, None)


def read_text(file: str, display: str) -> str:
    """Read a compose file with the size and encoding guards."""
    inputs.note(file)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(display, 0, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(display, 0, "", "is a directory, not a compose file") from None
    except OSError as e:
        raise ConfigError(display, 0, "", f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(display, 0, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return decode(raw, display)


def decode(raw: bytes, display: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(display, 0, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in raw:
        raise ConfigError(display, 0, "", "binary file (NUL bytes), not a YAML compose file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(display, line, "(file)", "not valid UTF-8 text") from None
    return text[1:] if text.startswith("\ufeff") else text


def parse(text: str, display: str) -> list[tuple[Any, Loc]]:
    """Every YAML document of `text` as (data, loc). Raises ConfigError."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(display, 0, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if "\x00" in text:
        raise ConfigError(display, 0, "", "binary file (NUL bytes), not a YAML compose file")
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, Loc, int]] = {}
    docs: list[tuple[Any, Loc]] = []
    alias_nodes = 0
    duplicates: list[ConfigError] = []  # every duplicate key is reported, not just the first
    root: list = []  # [value, loc] of the current document
    file = display

    def where_path() -> str:
        parts = [f.path_key for f in stack[1:]]
        if stack and stack[-1].is_map and stack[-1].key is not _NO_KEY:
            parts.append(stack[-1].key)
        if len(parts) > 12:  # a runaway nesting: the start of the path is enough
            return path_text(parts[:6]) + ".(...)"
        return path_text(parts) or "(top level)"

    def attach(value: Any, loc: Loc, size: int, line: int) -> None:
        if not stack:
            root[:] = [value, loc]
            return
        top = stack[-1]
        top.size += size
        if not top.is_map:
            top.data.append(value)
            top.locs.append(loc)
            return
        if top.key is _NO_KEY:  # this node is a key
            if isinstance(value, (dict, list)):
                raise ConfigError(file, line, where_path(), "a mapping key must be a plain value, not a mapping or list")
            if value is None:
                key = ""
            elif isinstance(value, bool):
                key = "true" if value else "false"
            else:
                key = str(value)
            top.key = key
            top.key_line = line
            top.key_tag = loc.tag
            return
        key = top.key
        top.key = _NO_KEY
        if key == _MERGE and top.key_tag is None:
            sources = value if isinstance(value, list) else [value]
            src_locs = loc.children if isinstance(value, list) else [loc]
            for src, src_loc in zip(sources, src_locs):
                if not isinstance(src, dict):
                    raise ConfigError(file, top.key_line, where_path() + ".<<", "merge key << needs a mapping or a list of mappings")
                top.merges.append((src, src_loc))
            return
        if key in top.data:
            first = top.locs[key].line
            duplicates.append(ConfigError(file, top.key_line, path_text([f.path_key for f in stack[1:]] + [key]),
                                          f'duplicate key "{key}" (first defined at line {first})'))
            if len(duplicates) >= MAX_DUPLICATES:
                raise ConfigErrors(duplicates)
        top.data[key] = value
        top.locs[key] = Loc(file, top.key_line, loc.children, loc.tag)

    try:
        for count, event in enumerate(yaml.parse(text, Loader=_Parser)):
            if count > MAX_NODES:
                raise ConfigError(file, event.start_mark.line + 1, where_path(),
                                  f"more than {MAX_NODES} YAML nodes: too large for a compose file")
            cls = type(event)
            if cls is yaml.ScalarEvent:
                line = event.start_mark.line + 1
                tag = event.tag
                if stack and not event.anchor and tag is None:
                    top = stack[-1]
                    if top.is_map and top.key is _NO_KEY:
                        # a key: Compose's keys are strings, kept as written ("1e3", "on", "~")
                        top.key = event.value if (event.value or not event.implicit[0]) else ""
                        top.key_line = line
                        top.key_tag = None
                        top.size += 1
                        continue
                if tag is None or tag == "!":
                    # implicit[0]: plain (unquoted); "!" forces a string
                    value = resolve_plain(event.value) if tag is None and event.implicit[0] else event.value
                else:
                    value = _resolve_tagged(tag, event.value, (file, line, where_path()))
                if stack and not event.anchor and tag is None:
                    top = stack[-1]
                    key = top.key
                    if top.is_map and key is not _NO_KEY and key != _MERGE:
                        # the common case, inlined: a plain value for a key
                        if key in top.data:
                            attach(value, _scalar_loc(file, line), 1, line)  # reports the duplicate
                        top.data[key] = value
                        top.locs[key] = Loc(file, top.key_line, None, top.key_tag)
                        top.key = _NO_KEY
                        top.size += 1
                        continue
                loc = Loc(file, line, None, tag if tag in _PASS_TAGS else None)
                if event.anchor:
                    anchors[event.anchor] = (value, loc, 1)
                attach(value, loc, 1, line)
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                line = event.start_mark.line + 1
                if len(stack) >= MAX_DEPTH:
                    raise ConfigError(file, line, where_path(), f"nesting deeper than {MAX_DEPTH} levels")
                tag = event.tag
                if tag is not None and tag != "!" and tag not in _PASS_TAGS:
                    short = tag.replace("tag:yaml.org,2002:", "!!")
                    if short not in ("!!map", "!!seq", "!!omap"):
                        raise ConfigError(file, line, where_path(), f"unsupported YAML tag {short}")
                if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                    raise ConfigError(file, line, where_path(), "a mapping key must be a plain value, not a mapping or list")
                if stack:
                    top = stack[-1]
                    path_key = top.key if top.is_map else len(top.data)
                else:
                    path_key = None
                stack.append(_Frame(cls is yaml.MappingStartEvent, event.anchor, line, tag if tag in _PASS_TAGS else None, path_key))
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                frame = stack.pop()
                data, locs = frame.data, frame.locs
                if frame.merges:
                    merged: dict = {}
                    merged_locs: dict = {}
                    # Explicit keys win over merged ones; among merged maps the first wins.
                    for src, src_loc in reversed(frame.merges):
                        merged.update(src)
                        merged_locs.update(src_loc.children or {})
                    merged.update(data)
                    merged_locs.update(locs)
                    data, locs = merged, merged_locs
                loc = Loc(file, frame.line, locs, frame.tag)
                if frame.anchor:
                    anchors[frame.anchor] = (data, loc, frame.size)
                attach(data, loc, frame.size, frame.line)
            elif cls is yaml.AliasEvent:
                line = event.start_mark.line + 1
                if event.anchor not in anchors:
                    raise ConfigError(file, line, where_path(), f"unknown alias *{event.anchor}")
                value, aloc, size = anchors[event.anchor]
                alias_nodes += size
                if alias_nodes > MAX_ALIAS_NODES:
                    raise ConfigError(file, line, where_path(),
                                      f"aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)")
                attach(value, Loc(file, line, aloc.children, aloc.tag), size, line)
            elif cls is yaml.DocumentEndEvent:
                if root:
                    docs.append((root[0], root[1]))
                root = []
                anchors = {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        message = (e.problem or e.context or "invalid YAML").strip()
        raise ConfigError(file, line, where_path(), f"invalid YAML: {message}") from None
    except yaml.YAMLError as e:
        raise ConfigError(file, 0, "", f"invalid YAML: {e}") from None
    except (RecursionError, MemoryError):
        raise ConfigError(file, 0, "", "input too complex to parse") from None
    if duplicates:
        raise duplicates[0] if len(duplicates) == 1 else ConfigErrors(duplicates)
    return docs


def load_source(file: str, display: Optional[str] = None, text: Optional[str] = None) -> list[Source]:
    """Read and parse one compose file into one Source per YAML document."""
    display = display or file
    if text is None:
        text = read_text(file, display)
    docs = parse(text, display)
    sources = []
    for data, loc in docs:
        if data is None:
            continue
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"the value {data!r}"
            raise ConfigError(display, loc.line, "(top level)", f"the top level must be a mapping, not {kind}")
        sources.append(Source(display, data, loc))
    if not sources:
        raise ConfigError(display, 0, "", "empty compose file")
    return sources
