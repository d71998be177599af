"""Files the plan writes: /etc/netns/NAME/{resolv.conf,hosts} and the project summary.

Writes are atomic (a temporary file in the same directory, then rename), so a reader such as
`ip netns exec` or the DNS server never sees half a file. No fsync: these files are rebuilt from
the plan on the next `up`, and only the journal needs to survive a crash.
"""

from __future__ import annotations

import contextlib
import os

NETNS_ETC_DIR = "/etc/netns"


def write_atomic(path: str, content: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, content.encode())
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove(path: str) -> bool:
    """Remove `path` (False when already gone), then its directory if it is a now-empty
    /etc/netns/NAME, which `ip netns exec` would otherwise keep bind-mounting from."""
    try:
        os.unlink(path)
        removed = True
    except FileNotFoundError:
        removed = False
    parent = os.path.dirname(path)
    # a writer killed between its temporary file and the rename leaves that file behind
    prefix, suffix = f".{os.path.basename(path)}.", ".tmp"
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            if name.startswith(prefix) and name.endswith(suffix):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(parent, name))
    if os.path.dirname(parent) == NETNS_ETC_DIR:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(parent)  # fails harmlessly while other files remain
    return removed
