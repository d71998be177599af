"""Every path a load looked at, read or only asked about (a compose file not found in a parent
directory matters as much as one read): with the environment and the command line, what the
loaded project depends on. `fingerprint` turns them into the key of a reusable plan."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

_seen: Optional[list[str]] = None


def note(path: str) -> None:
    if _seen is not None:
        _seen.append(os.path.abspath(path))


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """Collect the paths noted while the block runs (nested recordings see their own only)."""
    global _seen
    outer, _seen = _seen, []
    try:
        yield _seen
    finally:
        _seen = outer
