"""Key paths like `services.web.networks.front.ipv4_address` or `services.web.ports[1]`.

`parts` form: a list of str (mapping keys) and int (sequence indexes). `locate` walks a `Loc`
tree (from `loader/source.py`) along a key path and returns the line of the deepest node it can
reach, so a path that exists only after normalization (the map form of a list, a key Compose
fills in by default) still points at its nearest written ancestor.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence, Union

Part = Union[str, int]
_INDEX_RE = re.compile(r"\[(\d+)\]")


def format_path(parts: Iterable[Part]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def parse_path(keypath: str) -> list[Part]:
    parts: list[Part] = []
    for segment in keypath.split("."):
        head, _, _ = segment.partition("[")
        if head:
            parts.append(head)
        parts.extend(int(m) for m in _INDEX_RE.findall(segment))
    return parts


def locate(loc: Any, data: Any, parts: Sequence[Part]) -> tuple[str, int]:
    """(file, line) of the deepest node of `parts` found in the Loc tree `loc` over `data`."""
    best = (loc.file, loc.line)
    i = 0
    while i < len(parts) and loc is not None:
        part = parts[i]
        kids = loc.children
        nxt = None
        step = 1
        if isinstance(kids, dict):
            key = part if isinstance(part, str) else str(part)
            if key in kids:
                nxt = kids[key]
            else:
                # keys may hold dots ("my.service"): try joining the following parts
                joined = key
                for j in range(i + 1, len(parts)):
                    if not isinstance(parts[j], str):
                        break
                    joined += "." + parts[j]
                    if joined in kids:
                        nxt, step = kids[joined], j - i + 1
                        break
                if nxt is not None:
                    key = joined
            data = data.get(key) if isinstance(data, dict) else None
        elif isinstance(kids, list):
            if isinstance(part, int):
                if part < len(kids):
                    nxt = kids[part]
                    data = data[part] if isinstance(data, list) and part < len(data) else None
            elif isinstance(data, list):
                # the list form of a mapping (`networks: [front]`): find the item by its name
                for index, item in enumerate(data):
                    if isinstance(item, str) and (item == part or item.split(":", 1)[0] == part
                                                  or item.split("=", 1)[0] == part):
                        if index < len(kids):
                            nxt = kids[index]
                        data = None
                        break
        if nxt is None:
            break
        loc = nxt
        best = (loc.file, loc.line)
        i += step
    return best
