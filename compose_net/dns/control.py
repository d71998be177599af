"""Start, reload and stop a project's DNS server process (used by the executor and the CLI).

The server runs as `python -m compose_net.dns serve --project P --records PATH` in its own
session. Its files live in the project's state directory: `dns.pid` (written by the server),
`dns.status` (what it serves: records digest, namespaces, errors; rewritten after every load) and
`dns.log` (its stderr). A pid file whose process is gone, or is some other process now (after a
crash or a reboot), is stale and simply replaced.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dnslib import DNSError, DNSHeader, DNSRecord

from compose_net.dns.server import LISTEN_ADDR, NETNS_DIR, PORT, STATE_ROOT, _is_dns_process, _setns, records_digest
from compose_net.errors import RuntimeFailure

if TYPE_CHECKING:  # pragma: no cover
    from compose_net.observe import DnsFacts

START_TIMEOUT = 10.0
FILES = ("dns.pid", "dns.status", "dns.log")

_children: dict[str, subprocess.Popen] = {}


def _state(project: str, state: Optional[Path]) -> Path:
    return Path(state) if state else Path(os.environ.get("COMPOSE_NET_STATE_DIR", STATE_ROOT)) / project


def _read_pid(state: Path) -> int:
    try:
        return int((state / "dns.pid").read_text().strip())
    except (OSError, ValueError):
        return 0


def _read_status(state: Path) -> dict[str, Any]:
    try:
        return json.loads((state / "dns.status").read_text())
    except (OSError, ValueError):
        return {}


def _digest(path: Path) -> str:
    try:
        return records_digest(path.read_bytes())
    except OSError:
        return ""


def _log_tail(state: Path) -> str:
    try:
        return (state / "dns.log").read_text(errors="replace")[-2000:].strip()
    except OSError:
        return ""


def _server_path() -> list[str]:
    """Where the server process finds what it imports beyond the standard library: this package
    and dnslib. It runs with -S (no site: the site hooks of a virtualenv alone cost about 4 MB of
    its RSS), so their directories are named here; nothing else in them is imported."""
    roots = [str(Path(__file__).resolve().parents[2])]
    spec = importlib.util.find_spec("dnslib")
    if spec is not None and spec.submodule_search_locations:
        roots += [str(Path(d).parent) for d in spec.submodule_search_locations]
    return roots


def running_pid(project: str, state: Optional[Path] = None) -> int:
    """The server's pid, or 0 when it does not run (a stale pid file counts as not running)."""
    pid = _read_pid(_state(project, state))
    return pid if pid and _is_dns_process(pid, project) else 0


def is_running(project: str, state: Optional[Path] = None) -> bool:
    return bool(running_pid(project, state))


def start(project: str, records_path: str | Path, state: Optional[Path] = None, timeout: float = START_TIMEOUT) -> int:
    """Make the project's server serve `records_path`: start it, or reload it when it already
    runs. Returns once it listens in every container namespace of the records and answers a
    probe in one of them; its pid."""
    st = _state(project, state)
    records_path = Path(records_path).resolve()
    pid = running_pid(project, st)
    if pid:
        if _read_status(st).get("records") == str(records_path):
            reload(project, st, timeout)
            return pid
        stop(project, st)
    for name in ("dns.pid", "dns.status"):
        (st / name).unlink(missing_ok=True)
    st.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in (*_server_path(), env.get("PYTHONPATH")) if p))
    argv = [sys.executable, "-S", "-m", "compose_net.dns", "serve", "--project", project,
            "--records", str(records_path), "--state-dir", str(st)]
    with open(st / "dns.log", "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True, cwd="/", env=env)
    _children[project] = proc
    deadline = time.monotonic() + timeout
    while True:
        status = _read_status(st)
        if status.get("pid") == proc.pid and status.get("digest") == _digest(records_path):
            if status.get("error"):
                stop(project, st)
                raise RuntimeFailure(f"DNS server of {project}: {status['error']}")
            if not status.get("netns") or probe(status["netns"][0]):
                return proc.pid
        if proc.poll() is not None:
            tail = _log_tail(st)
            _children.pop(project, None)
            raise RuntimeFailure(f"DNS server of {project} exited with status {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            stop(project, st)
            raise RuntimeFailure(f"DNS server of {project} did not start within {timeout:.0f} s")
        time.sleep(0.01)


def ensure_running(project: str, records_path: str | Path, state: Optional[Path] = None,
                   timeout: float = START_TIMEOUT) -> bool:
    """Start the server when it does not run (it crashed, was killed, or the host rebooted);
    a running one is left alone. For an `up` that finds nothing else to change. True when it
    had to start it."""
    if running_pid(project, state):
        return False
    start(project, records_path, state, timeout)
    return True


def probe(netns: str, timeout: float = 0.5) -> bool:
    """Whether the server answers at 127.0.0.11:53 inside `netns`. The probe is a bare header
    (no question): the server answers it FORMERR itself, so nothing goes upstream."""
    answered: list[bool] = []

    def ask() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)  # this thread only, and it ends here
            finally:
                os.close(fd)
            probe = DNSRecord(DNSHeader(id=int.from_bytes(os.urandom(2), "big")))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.connect((LISTEN_ADDR, PORT))
                s.send(probe.pack())
                reply = DNSRecord.parse(s.recv(512)).header
            answered.append(reply.id == probe.header.id and bool(reply.qr))
        except (OSError, DNSError):
            answered.append(False)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    return bool(answered and answered[0])


def reload(project: str, state: Optional[Path] = None, timeout: float = START_TIMEOUT) -> None:
    """Block until the server serves the records file as it is now, and has closed the sockets
    of containers no longer in it (so their namespaces can go)."""
    st = _state(project, state)
    pid = running_pid(project, st)
    if not pid:
        # It died (a crash, kill -9, an OOM kill): a later `up` must not fail on that, so start
        # it afresh on the records it served, which is what a reload would have made it serve.
        records = _read_status(st).get("records") or str(st / "project.json")
        if Path(records).is_file():
            start(project, records, st, timeout)
            return
        raise RuntimeFailure(f"the DNS server of {project} does not run")
    records = _read_status(st).get("records")
    if not records:
        raise RuntimeFailure(f"the DNS server of {project} has not reported its records file")
    # Only a load of the records file begun after our signal counts: the server also rewrites
    # its status when it retries namespaces that did not exist yet, with the same digest.
    before = _read_status(st).get("loads", 0)
    deadline = time.monotonic() + timeout
    os.kill(pid, signal.SIGHUP)
    signalled = time.monotonic()
    while True:
        status = _read_status(st)
        # A load later than our signal, of the records as they are now.
        if status.get("pid") == pid and status.get("loads", 0) > before and status.get("digest") == _digest(Path(records)):
            if status.get("error"):
                raise RuntimeFailure(f"DNS server of {project}: {status['error']}")
            return
        if not _is_dns_process(pid, project):
            raise RuntimeFailure(f"the DNS server of {project} exited during reload: {_log_tail(st)}")
        now = time.monotonic()
        if now > deadline:
            raise RuntimeFailure(f"the DNS server of {project} did not reload within {timeout:.0f} s")
        if now - signalled > 0.5:  # the file changed again while it loaded: ask once more
            os.kill(pid, signal.SIGHUP)
            signalled = now
        time.sleep(0.005)


def stop(project: str, state: Optional[Path] = None, timeout: float = 5.0) -> None:
    """Stop the server by its pid and remove its files. Not running counts as done."""
    st = _state(project, state)
    pid = running_pid(project, st)
    if pid:
        _signal_and_wait(pid, project, signal.SIGTERM, timeout)
        if _is_dns_process(pid, project):
            _signal_and_wait(pid, project, signal.SIGKILL, timeout)
    child = _children.pop(project, None)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    for name in FILES:
        (st / name).unlink(missing_ok=True)


def _signal_and_wait(pid: int, project: str, sig: int, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _is_dns_process(pid, project) and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child: reap it, so no zombie stays
    except ChildProcessError:
        pass


def observe(project: str, state: Optional[Path] = None) -> "DnsFacts":
    """What the project's server is doing now: its pid (0 when it does not run), the records it
    serves, and the namespaces in which it really holds a socket on 127.0.0.11:53 (a namespace
    deleted and made again under the same name has none of its sockets)."""
    from compose_net.observe import DnsFacts

    st = _state(project, state)
    pid = running_pid(project, st)
    if not pid:
        return DnsFacts()
    status = _read_status(st)
    inodes = _socket_inodes(pid)
    listening = _listening(list(status.get("netns") or ()), inodes)
    return DnsFacts(pid=pid, records=str(status.get("records") or ""), digest=str(status.get("digest") or ""),
                    listening=listening)


_LISTEN_HEX = "0B00007F:0035"  # 127.0.0.11:53 as /proc/net/udp writes it


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _listening(namespaces: list[str], inodes: set[str]) -> frozenset[str]:
    """The namespaces in which one of `inodes` is a UDP socket bound to 127.0.0.11:53."""
    found: set[str] = set()

    def look() -> None:  # on a thread of its own, which ends here: it never goes home
        for netns in namespaces:
            try:
                fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                with open("/proc/thread-self/net/udp") as fh:
                    for line in fh:
                        parts = line.split()
                        if len(parts) > 9 and parts[1] == _LISTEN_HEX and parts[9] in inodes:
                            found.add(netns)
                            break
            except OSError:
                continue

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return frozenset(found)
