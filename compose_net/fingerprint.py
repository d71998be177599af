"""One digest of everything a desired plan is made from, so that an `up` (or `check`, or
`--dry-run`) of a project whose inputs did not change reuses the plan the last `up` made instead
of loading, validating, graphing and planning again: the libraries' work, cached.

The inputs: this code itself, the command line's load options and working directory, the whole
environment (interpolation, COMPOSE_* variables), the host facts the planner reads, and the
content of every path the loader looked at (`loader.inputs`). Each is taken whole rather than
guessed at: a change anywhere costs one full planning, never a stale plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from compose_net import summary as summaries

PACKAGE = Path(__file__).resolve().parent
SCHEMAS = PACKAGE.parent / "schemas"
ABSENT, DIRECTORY = "-", "dir"


def key(options: Sequence[Any], environ: Mapping[str, str], facts: Any) -> str:
    h = hashlib.sha256()
    for part in (_code(), os.getcwd(), repr(tuple(options)), repr(sorted(environ.items())), _canonical(facts)):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def files(paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(path, digest of its content, or that it is absent or a directory), once per path."""
    return tuple((p, _content(p)) for p in dict.fromkeys(paths))


def unchanged(recorded: Iterable[tuple[str, str]]) -> bool:
    return all(_content(path) == digest for path, digest in recorded)


def _content(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except IsADirectoryError:
        return DIRECTORY
    except OSError:
        return ABSENT


def _code() -> str:
    """Where and when each module and schema was last written: an upgrade or an edit of this
    package makes every earlier plan unusable."""
    stats = []
    for path in sorted([*PACKAGE.rglob("*.py"), *SCHEMAS.glob("*.json")]):
        st = path.stat()
        stats.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(stats)


def _canonical(value: Any) -> str:
    """A text for `value` that is the same in every process (sets and mappings sorted; a
    recorded state in its own JSON form)."""
    if isinstance(value, summaries.Summary):
        return summaries.to_text(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + "(" + ",".join(
            f"{f.name}={_canonical(getattr(value, f.name))}" for f in dataclasses.fields(value)) + ")"
    if isinstance(value, Mapping):
        return "{" + ",".join(sorted(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(_canonical(v) for v in value) + ")"
    return repr(value)

