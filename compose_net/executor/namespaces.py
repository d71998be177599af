"""Network namespaces the iproute2 way, without forking.

A namespace is made by `unshare(CLONE_NEWNET)` on the calling thread and kept by bind-mounting
`/proc/thread-self/ns/net` onto `/run/netns/NAME`, so `ip netns exec NAME` and `nsenter` find it.
The thread always returns to its home namespace in a `finally`. We never switch mount
namespaces: the bind mount must be visible to every process, which is why `/run/netns` is made a
shared mount point exactly as iproute2 does.

Python 3.11 has no `os.unshare`/`os.setns`, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Callable, Optional, TypeVar

NETNS_RUN_DIR = "/run/netns"

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)

T = TypeVar("T")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str, target: str, flags: int) -> None:
    _check(_libc.mount(src.encode(), target.encode(), b"none", flags, None), f"mount {target}")


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


_run_dir_ready = False


def ensure_run_dir() -> None:
    """Create /run/netns as a shared mount point (as `ip netns add` does), once per process."""
    global _run_dir_ready
    if _run_dir_ready:
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        _mount("", NETNS_RUN_DIR, MS_SHARED | MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # Not a mount point yet: bind it onto itself, then it can be made shared.
        _mount(NETNS_RUN_DIR, NETNS_RUN_DIR, MS_BIND | MS_REC)
        _mount("", NETNS_RUN_DIR, MS_SHARED | MS_REC)
    _run_dir_ready = True


def home_fd() -> int:
    """A descriptor of the calling thread's current network namespace (the caller closes it)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def open_fd(name: str) -> int:
    return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def create(name: str, home: int, inside: Callable[[], T]) -> tuple[int, T]:
    """Create namespace NAME and run `inside()` in it (e.g. to open its netlink socket).

    Returns (a descriptor of the new namespace, what `inside` returned). The name is claimed
    exclusively first, so a namespace of the same name that is not ours is never touched."""
    ensure_run_dir()
    target = path(name)
    os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    mounted = False
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        try:
            _mount("/proc/thread-self/ns/net", target, MS_BIND)
            mounted = True
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                value = inside()
            except BaseException:
                os.close(fd)
                raise
        finally:
            _setns(home)
        return fd, value
    except BaseException:
        if mounted:
            _libc.umount2(target.encode(), MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        raise


def delete(name: str) -> bool:
    """Unregister namespace NAME; False when it was already gone. The kernel frees the
    namespace (and the links still in it) once nothing else holds it."""
    target = path(name)
    if not os.path.lexists(target):
        return False
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: a stale file that is no mount
            raise OSError(err, f"umount {target}: {os.strerror(err)}")
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    return True


def run_inside(fd: int, home: int, fn: Callable[[], T]) -> T:
    """Call `fn` with the calling thread inside the namespace of descriptor `fd`."""
    _setns(fd)
    try:
        return fn()
    finally:
        _setns(home)


def open_registered(name: str) -> Optional[int]:
    """A descriptor of namespace NAME as registered under /run/netns, or None when there is no
    such namespace (no file, or a file that is not a namespace: a stale name left by a crash)."""
    try:
        fd = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    if os.fstat(fd).st_dev != _nsfs_dev():
        os.close(fd)
        return None
    return fd


_NSFS_DEV: list[int] = []


def _nsfs_dev() -> int:
    """The device of the namespace filesystem: every namespace file lives on it."""
    if not _NSFS_DEV:
        _NSFS_DEV.append(os.stat("/proc/self/ns/net").st_dev)
    return _NSFS_DEV[0]
