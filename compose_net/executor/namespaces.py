"""Network and UTS namespaces the iproute2 way, without forking.

A namespace is made by `unshare(CLONE_NEWNET)` on the calling thread and kept by bind-mounting
`/proc/thread-self/ns/net` onto `/run/netns/NAME`, so `ip netns exec NAME` and `nsenter` find it.
The thread always returns to its home namespace in a `finally`. We never switch mount
namespaces: the bind mount must be visible to every process, which is why `/run/netns` is made a
shared mount point exactly as iproute2 does.

A container's hostname lives in a UTS namespace of its own, kept the same way at
`/run/utsns/NAME` (beside `/run/netns/NAME`, same name: `nsenter --uts=/run/utsns/NAME`); it is
made with its hostname (and NIS domain name) set, so every `exec` that enters it sees the same.
A second name for a namespace (a `network_mode: service:X` container's) is one more bind mount of
the same namespace file: the kernel keeps the namespace while any name or process holds it.

Python 3.11 has no `os.unshare`/`os.setns`, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Callable, Optional, TypeVar

NETNS_RUN_DIR = "/run/netns"
UTSNS_RUN_DIR = "/run/utsns"

CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_libc.setdomainname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)

T = TypeVar("T")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str, target: str, flags: int) -> None:
    _check(_libc.mount(src.encode(), target.encode(), b"none", flags, None), f"mount {target}")


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def uts_path(name: str) -> str:
    return os.path.join(UTSNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def uts_exists(name: str) -> bool:
    return os.path.exists(uts_path(name))


_run_dirs_ready: set[str] = set()


def ensure_run_dir(directory: str = NETNS_RUN_DIR) -> None:
    """Create `directory` as a shared mount point (as `ip netns add` does for /run/netns), once
    per process: a name unmounted here then goes from the copies other mount namespaces (an `ip
    netns exec` running) hold too, so the namespace is freed."""
    if directory in _run_dirs_ready:
        return
    os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        _mount("", directory, MS_SHARED | MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # Not a mount point yet: bind it onto itself, then it can be made shared.
        _mount(directory, directory, MS_BIND | MS_REC)
        _mount("", directory, MS_SHARED | MS_REC)
    _run_dirs_ready.add(directory)


def home_fd() -> int:
    """A descriptor of the calling thread's current network namespace (the caller closes it)."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def open_fd(name: str) -> int:
    return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)


def _setns(fd: int, kind: int = CLONE_NEWNET) -> None:
    _check(_libc.setns(fd, kind), "setns")


def _claim(target: str) -> None:
    """Create the empty file a namespace is mounted on, failing if the name is taken."""
    os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))


def _unclaim(target: str, mounted: bool) -> None:
    if mounted:
        _libc.umount2(target.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def create(name: str, home: int, inside: Callable[[], T]) -> tuple[int, T]:
    """Create namespace NAME and run `inside()` in it (e.g. to open its netlink socket).

    Returns (a descriptor of the new namespace, what `inside` returned). The name is claimed
    exclusively first, so a namespace of the same name that is not ours is never touched."""
    ensure_run_dir()
    target = path(name)
    _claim(target)
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
        _unclaim(target, mounted)
        raise


def create_uts(name: str, hostname: str, domainname: str | None = None) -> None:
    """Create UTS namespace NAME (kept at /run/utsns/NAME) with `hostname` and, if given, the NIS
    `domainname` set in it, as a container's. The name is claimed exclusively first."""
    ensure_run_dir(UTSNS_RUN_DIR)
    target = uts_path(name)
    _claim(target)
    mounted = False
    home = os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWUTS), "unshare")
        try:
            for call, value, what in ((_libc.sethostname, hostname, "sethostname"),
                                      (_libc.setdomainname, domainname, "setdomainname")):
                if value:
                    raw = value.encode()
                    _check(call(raw, len(raw)), what)
            _mount("/proc/thread-self/ns/uts", target, MS_BIND)
            mounted = True
        finally:
            _setns(home, CLONE_NEWUTS)
    except BaseException:
        _unclaim(target, mounted)
        raise
    finally:
        os.close(home)


def alias(name: str, target: str, uts: bool = False) -> None:
    """Give the namespace named `target` a second name `name` (network, or UTS with `uts`)."""
    where = uts_path if uts else path
    ensure_run_dir(UTSNS_RUN_DIR if uts else NETNS_RUN_DIR)
    if not os.path.exists(where(target)):
        raise FileNotFoundError(errno.ENOENT, f"{where(target)} does not exist")
    _claim(where(name))
    try:
        _mount(where(target), where(name), MS_BIND)
    except BaseException:
        _unclaim(where(name), False)
        raise


def enter_uts(name: str) -> None:
    """Move the calling thread into UTS namespace NAME (for a process about to exec)."""
    fd = os.open(uts_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, CLONE_NEWUTS)
    finally:
        os.close(fd)


def delete(name: str) -> bool:
    """Unregister network namespace NAME; False when it was already gone. The kernel frees the
    namespace (and the links still in it) once nothing else holds it."""
    return _unregister(path(name))


def delete_uts(name: str) -> bool:
    """Unregister UTS namespace NAME; False when it was already gone."""
    return _unregister(uts_path(name))


def _unregister(target: str) -> bool:
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


def read_uts(name: str) -> Optional[tuple[int, str, str]]:
    """(inode, hostname, NIS domain name) of UTS namespace NAME as registered under /run/utsns,
    or None when there is no such namespace. Read on a thread of its own, which enters it."""
    try:
        fd = os.open(uts_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    found: list[tuple[int, str, str]] = []

    def look() -> None:  # a thread that ends here: it never needs to go back
        try:
            _setns(fd, CLONE_NEWUTS)
            with open("/proc/sys/kernel/domainname") as fh:
                domain = fh.read().strip()
            found.append((os.fstat(fd).st_ino, os.uname().nodename, domain))
        except OSError:
            pass

    try:
        if os.fstat(fd).st_dev != _nsfs_dev():
            return None
        import threading

        thread = threading.Thread(target=look)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    return found[0] if found else None


def inode(name: str) -> Optional[int]:
    """The namespace inode behind /run/netns/NAME (the same for every name of one namespace)."""
    fd = open_registered(name)
    if fd is None:
        return None
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def spawn(netns: Optional[str], uts: Optional[str], cmd: list[str], log: Optional[str] = None) -> "subprocess.Popen":
    """CMD in a container (`run`): its UTS namespace entered in the child before the exec, then
    `ip netns exec` (network namespace, /etc/netns files). With `log`, detached: its own session,
    stdin from /dev/null, stdout and stderr appended to `log`; else the caller's stdio."""
    import subprocess

    argv = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    preexec = (lambda: enter_uts(uts)) if uts else None
    if log is None:
        return subprocess.Popen(argv, preexec_fn=preexec)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        return subprocess.Popen(argv, preexec_fn=preexec, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                start_new_session=True)
    finally:
        os.close(fd)


def pids(name: str) -> list[int]:
    """Processes in network namespace NAME (as `ip netns pids`: by the namespace's identity)."""
    want = inode(name)
    if want is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if st.st_ino == want and st.st_dev == _nsfs_dev():
            found.append(int(entry))
    return found


def stop(name: str, grace: float = 2.0) -> None:
    """End every process in network namespace NAME: SIGTERM, then SIGKILL after `grace` s."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = pids(name)
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [p for p in left if os.path.exists(f"/proc/{p}")]
        if not left:
            return
