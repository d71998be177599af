"""The project's DNS server process: sockets in every container namespace, one epoll loop.

For each container namespace in the records, the loop's thread enters the namespace (`setns`),
binds UDP and TCP on 127.0.0.11:53 there and returns home; the sockets stay in that namespace.
The socket a query arrives on names the asking container, so its view answers. UDP is read and
answered in batches (`recvmmsg`/`sendmmsg`); TCP connections are rare and get a short-lived
thread each (bounded). Queries for names that are not the project's are forwarded from the
host's namespace to the asker's upstreams on a fresh socket (random port and ID) in Docker's
order (`forwarding.Exchange`: the next upstream after a timeout, SERVFAIL or REFUSED), within a
bounded time per query (SERVFAIL after it) and a bounded number in flight.

Reload (SIGHUP, or the records file replaced): new containers get sockets, removed or recreated
ones lose theirs (an open socket would keep the namespace and its veth alive), unchanged ones keep
their sockets and whatever queries are queued on them. After every load the server writes
`dns.status` (the digest of the records it serves, the namespaces it listens in); `control`
waits on it.
"""

from __future__ import annotations

import ctypes
import gc
import heapq
import json
import logging
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

from dnslib import RCODE, DNSRecord

from compose_net.dns.forwarding import IGNORE, NEXT, RELAY, Exchange
from compose_net.dns.mmsg import SOCKADDR_IN, Batch
from compose_net.dns.records import View, build
from compose_net.dns.resolver import ANSWER, DROP, FORWARD, Resolver, edns_size, error_reply
from compose_net.errors import RuntimeFailure
from compose_net.summary import from_text

try:  # the builtin module: hashlib would load OpenSSL, 3-4 MB of RSS for one digest
    from _sha256 import sha256
except ImportError:  # pragma: no cover
    from hashlib import sha256

log = logging.getLogger("compose_net.dns")
_monotonic = time.monotonic

LISTEN_ADDR = "127.0.0.11"
PORT = 53
UPSTREAM_PORT = 53
FORWARD_TIMEOUT = 2.0  # seconds per query over all its upstreams; then SERVFAIL
MAX_PENDING = 512  # forwarded UDP queries in flight; more get SERVFAIL at once
MAX_TCP = 64  # TCP connections served at once
TCP_IDLE = 10.0
HOT = 0.0002  # datagrams closer than this on one socket: read it in batches
STAT_INTERVAL = 1.0  # how often the records file is checked for an atomic replacement
STATE_ROOT = Path("/run/compose-net")
NETNS_DIR = Path("/run/netns")

CLONE_NEWNET = 0x40000000
IP_FREEBIND = 15
SO_RCVBUFFORCE = 33  # SO_RCVBUF past net.core.rmem_max (needs CAP_NET_ADMIN, which we have)
# A burst of queries for other names (each parsed by dnslib and sent upstream, ~0.1 ms) waits in
# the socket: the default 208 KiB holds about 200 datagrams, this about 2,000 (memory is taken
# only while they wait).
UDP_RCVBUF = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def state_dir(project: str) -> Path:
    return Path(os.environ.get("COMPOSE_NET_STATE_DIR", STATE_ROOT)) / project


def records_path(project: str) -> Path:
    return state_dir(project) / "project.json"


def records_digest(raw: bytes) -> str:
    return sha256(raw).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _netns_key(netns: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(NETNS_DIR / netns)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Listener:
    """The UDP and TCP sockets in one container namespace and the view they answer with."""

    __slots__ = ("netns", "key", "udp", "tcp", "ufd", "tfd", "vc", "conns", "last")

    def __init__(self, netns: str, key: tuple[int, int], udp: socket.socket, tcp: socket.socket):
        self.netns = netns
        self.key = key
        self.udp = udp
        self.tcp = tcp
        self.ufd = udp.fileno()
        self.tfd = tcp.fileno()
        self.vc: tuple[View, dict] = None  # type: ignore[assignment]  # (view, its reply cache)
        self.conns: dict[socket.socket, threading.Thread] = {}
        self.last = 0.0  # when its last UDP datagram was read


class Pending:
    """One forwarded UDP query: its client and its walk over the upstreams."""

    __slots__ = ("listener", "peer", "exchange", "sock", "done")

    def __init__(self, listener: Listener, peer: tuple[str, int], exchange: Exchange):
        self.listener = listener
        self.peer = peer
        self.exchange = exchange
        self.sock: Optional[socket.socket] = None
        self.done = False


class Server:
    def __init__(
        self,
        project: str,
        records: str | Path,
        state: Optional[Path] = None,
        listen: tuple[str, int] = (LISTEN_ADDR, PORT),
        upstream_port: int = UPSTREAM_PORT,
        forward_timeout: float = FORWARD_TIMEOUT,
    ):
        self.project = project
        self.records = Path(records)
        self.state = Path(state) if state else state_dir(project)
        self.listen = listen
        self.upstream_port = upstream_port
        self.forward_timeout = forward_timeout
        self.resolver = Resolver()
        self.listeners: dict[str, Listener] = {}
        self.handlers: dict[int, Any] = {}
        self.pending: dict[int, Pending] = {}
        self.timers: list = []
        self._seq = 0
        self.batch = Batch()
        self.ep = select.epoll()
        self._stopping = False
        self._file_sig: Optional[tuple] = None
        self._generation = 0
        self._loads = 0  # reloads of the records file; a retry of waiting namespaces is not one
        self._digest = ""
        self._failed: dict[str, str] = {}
        self._waiting: dict[str, View] = {}  # namespaces to listen in once they exist
        self._next_stat = 0.0
        self._tcp_lock = threading.Lock()
        self._tcp_count = 0
        threading.stack_size(256 * 1024)  # TCP threads only read, resolve and write
        self.sync: Any = None  # cluster_sync.ClusterSync when the project spans hosts
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self._wake_r, select.EPOLLIN)
        self.handlers[self._wake_r] = self._on_signal

    # --- files ---------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.state / "dns.pid"

    @property
    def status_file(self) -> Path:
        return self.state / "dns.status"

    def _claim_pid_file(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            other = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            other = 0
        if other and other != os.getpid() and _is_dns_process(other, self.project):
            raise RuntimeFailure(f"the DNS server of {self.project} already runs as pid {other}")
        _write_atomic(self.pid_file, f"{os.getpid()}\n")

    def _write_status(self, digest: str, failed: dict[str, str], error: Optional[str]) -> None:
        self._generation += 1
        status = {
            "pid": os.getpid(),
            "generation": self._generation,
            "loads": self._loads,
            "records": str(self.records),
            "digest": digest,
            "netns": sorted(self.listeners),
            "failed": failed,
            "error": error,
        }
        _write_atomic(self.status_file, json.dumps(status))

    def _remove_files(self) -> None:
        for path in (self.status_file, self.pid_file):
            try:
                if path == self.pid_file and path.read_text().strip() != str(os.getpid()):
                    continue
                path.unlink()
            except OSError:
                pass

    # --- records -------------------------------------------------------------------------

    def _file_signature(self) -> Optional[tuple]:
        try:
            st = os.stat(self.records)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload(self) -> None:
        """Serve the records file as it is now."""
        self._loads += 1
        self._file_sig = self._file_signature()
        try:
            raw = self.records.read_bytes()
        except OSError as exc:
            log.error("cannot read records %s: %s", self.records, exc)
            self._write_status("", {}, f"cannot read {self.records}: {exc.strerror}")
            return
        digest = records_digest(raw)
        try:
            summary = from_text(raw.decode(), str(self.records))
            if self.sync is None and summary.cluster:
                self._start_sync()
            if self.sync is not None:
                summary = self.sync.merge(summary)  # other hosts' endpoints as the store has them
            records = build(summary)
        except Exception as exc:  # a bad file must not stop a serving server
            log.error("bad records %s: %s", self.records, exc)
            self._write_status(digest, {}, f"bad records file: {exc}")
            return
        for warning in records.warnings:
            log.warning("%s", warning)
        resolver = Resolver()
        for netns, lst in list(self.listeners.items()):
            if netns not in records.views or _netns_key(netns) != lst.key:
                self._close_listener(lst)
        self._waiting = {}
        failed: dict[str, str] = {}
        for netns, view in records.views.items():
            lst = self.listeners.get(netns)
            if lst is None:
                try:
                    lst = self._open_listener(netns)
                except OSError as exc:
                    # Perhaps not made yet (an `up` reloads before it adds containers): retried.
                    failed[netns] = exc.strerror or str(exc)
                    self._waiting[netns] = view
                    log.warning("cannot listen in %s yet: %s", netns, exc)
                    continue
            lst.vc = (view, resolver.cache_for(view))
        self.resolver = resolver
        self._digest = digest
        self._failed = failed
        # The records are long-lived and cycle-free: keep the collector from walking them while
        # queries wait (a full collection over them is a latency spike).
        gc.collect()
        gc.freeze()
        log.info("serving %d containers (records %s)", len(self.listeners), digest[:12])
        self._write_status(digest, failed, None)

    def _open_listener(self, netns: str) -> Listener:
        nsfd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(nsfd)
            udp = tcp = None
            _setns(nsfd)
            try:
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                udp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                try:
                    udp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, UDP_RCVBUF)
                except OSError:  # not CAP_NET_ADMIN: as much as rmem_max allows
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                udp.bind(self.listen)
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                tcp.bind(self.listen)
                tcp.listen(64)
            except OSError:
                for s in (udp, tcp):
                    if s is not None:
                        s.close()
                raise
            finally:
                try:
                    _setns(self._home)
                except OSError as exc:
                    # Not an OSError any more: nothing may go on in a container's namespace.
                    raise RuntimeError(f"cannot return to the host's namespace: {exc}") from exc
        finally:
            os.close(nsfd)
        udp.setblocking(False)
        tcp.setblocking(False)
        lst = Listener(netns, (st.st_dev, st.st_ino), udp, tcp)
        self.listeners[netns] = lst
        self.ep.register(lst.ufd, select.EPOLLIN)
        self.ep.register(lst.tfd, select.EPOLLIN)
        self.handlers[lst.ufd] = lambda fd, lst=lst: self._serve_udp(lst)
        self.handlers[lst.tfd] = lambda fd, lst=lst: self._accept(lst)
        return lst

    def _close_listener(self, lst: Listener) -> None:
        self.listeners.pop(lst.netns, None)
        for fd in (lst.ufd, lst.tfd):
            self.handlers.pop(fd, None)
            try:
                self.ep.unregister(fd)
            except OSError:
                pass
        lst.udp.close()
        lst.tcp.close()
        # Accepted TCP connections live in the namespace too: wake their threads and wait.
        for conn, thread in list(lst.conns.items()):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            thread.join(2.0)
        for pending in list(self.pending.values()):
            if pending.listener is lst:
                self._finish(pending)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT. Must run on the main thread (signals)."""
        self._claim_pid_file()
        old = {s: signal.signal(s, _note_signal) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
        old_wake = signal.set_wakeup_fd(self._wake_w)
        try:
            self.reload()
            self._loop()
        finally:
            if self.sync is not None:
                self.sync.stop()
            signal.set_wakeup_fd(old_wake)
            for s, handler in old.items():
                signal.signal(s, handler)
            self.close()
            self._remove_files()

    def _start_sync(self) -> None:
        # imported only for a project that spans hosts: a server without a cluster stays small
        from compose_net.dns.cluster_sync import ClusterSync

        # the change is served by the main loop: the wake pipe carries it as a SIGHUP would
        self.sync = ClusterSync(self.records, lambda: os.write(self._wake_w, bytes([signal.SIGHUP])))
        self.sync.start()

    def _loop(self) -> None:
        poll = self.ep.poll
        handlers = self.handlers
        while not self._stopping:
            timeout = STAT_INTERVAL
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            for fd, _ in poll(timeout):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(fd)
            now = time.monotonic()
            if self.timers and self.timers[0][0] <= now:
                self._expire(now)
            if now >= self._next_stat:
                self._next_stat = now + STAT_INTERVAL
                if self._file_signature() != self._file_sig:
                    self.reload()
                elif self._waiting:
                    self._retry_waiting()

    def _retry_waiting(self) -> None:
        """Listen in the namespaces that did not exist at the last load, once they do."""
        opened = False
        for netns, view in list(self._waiting.items()):
            try:
                lst = self._open_listener(netns)
            except OSError:
                continue
            lst.vc = (view, self.resolver.cache_for(view))
            del self._waiting[netns]
            self._failed.pop(netns, None)
            opened = True
            log.info("now listening in %s", netns)
        if opened:
            self._write_status(self._digest, self._failed, None)

    def _on_signal(self, fd: int) -> None:
        try:
            signums = os.read(fd, 64)
        except BlockingIOError:
            return
        if signal.SIGTERM in signums or signal.SIGINT in signums:
            self._stopping = True
        elif signal.SIGHUP in signums:
            self.reload()

    def close(self) -> None:
        for lst in list(self.listeners.values()):
            self._close_listener(lst)
        for pending in list(self.pending.values()):
            self._finish(pending)
        self.ep.close()
        for fd in (self._wake_r, self._wake_w, self._home):
            os.close(fd)

    # --- UDP -----------------------------------------------------------------------------

    def _serve_udp(self, lst: Listener) -> None:
        # A socket that was quiet gets one plain recvfrom/sendto: fewer steps to the answer at
        # light load. One that is busy (its last datagram came less than HOT ago) is drained in
        # batches: far fewer system calls per query under load.
        now = _monotonic()
        hot = now - lst.last < HOT
        lst.last = now
        if not hot:
            try:
                data, peer = lst.udp.recvfrom(4096)
            except OSError:
                return
            view, cache = lst.vc
            try:
                action, reply = self.resolver.handle(view, data, False, cache)
            except Exception:
                log.exception("query from %s dropped", lst.netns)
                return
            if action == ANSWER:
                try:
                    lst.udp.sendto(reply, peer)
                except OSError:
                    pass
            elif action == FORWARD:
                self._forward(lst, peer, reply)
            return
        batch = self.batch
        fd = lst.ufd
        view, cache = lst.vc
        get = cache.get
        handle = self.resolver.handle
        rview, sview, size = batch.rview, batch.sview, batch.size
        siov, s64, stride, nbase = batch.siov64, batch.s64, batch.stride64, batch.nbase
        for _ in range(8):  # then let other sockets have a turn
            n = batch.recv(fd)
            if not n:
                return
            k = 0
            start = -size
            # The resolver's exact-bytes cache hit, inlined: this loop is the server's hot path.
            for i, length in enumerate(batch.lengths(n)):
                start += size
                if length < 12:
                    continue
                data = bytes(rview[start : start + length])
                hit = get(data[2 : data.find(b"\0", 12) + 5])
                if hit.__class__ is bytes:
                    reply = data[:2] + hit
                else:
                    try:
                        action, reply = handle(view, data, False, cache)
                    except Exception:  # a bug must cost one query, never the server
                        log.exception("query from %s dropped", lst.netns)
                        continue
                    if action != ANSWER:
                        if action == FORWARD:
                            self._forward(lst, batch.peer(i), reply)
                        continue
                m = len(reply)
                if m > size:
                    continue
                off = k * size
                sview[off : off + m] = reply
                siov[2 * k + 1] = m
                s64[k * stride] = nbase + i * SOCKADDR_IN
                k += 1
            if k:
                batch.flush(fd, k)
            if n < batch.count:
                return

    def _forward(self, lst: Listener, peer: tuple[str, int], query: DNSRecord) -> None:
        if len(self.pending) >= MAX_PENDING:
            self._reply(lst, peer, error_reply(query, RCODE.SERVFAIL))
            return
        deadline = time.monotonic() + self.forward_timeout
        exchange = Exchange(query, lst.vc[0].upstreams, deadline, limit=edns_size(query))
        self._send_upstream(Pending(lst, peer, exchange))

    def _send_upstream(self, p: Pending) -> None:
        """Ask the exchange's next upstream; SERVFAIL to the client when none is left."""
        while True:
            step = p.exchange.next(time.monotonic())
            if step is None:
                self._fail(p)
                return
            upstream, packet, until = step
            sock = socket.socket(socket.AF_INET6 if upstream.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect((str(upstream), self.upstream_port))
                sock.send(packet)
            except OSError:
                sock.close()
                continue
            p.sock = sock
            fd = sock.fileno()
            self.pending[fd] = p
            self.handlers[fd] = self._upstream_reply
            self.ep.register(fd, select.EPOLLIN)
            self._seq += 1
            heapq.heappush(self.timers, (until, self._seq, p, p.exchange.attempt))
            return

    def _upstream_reply(self, fd: int) -> None:
        p = self.pending.get(fd)
        if p is None or p.sock is None:
            return
        try:
            data = p.sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:  # ICMP unreachable: try the next upstream now
            self._drop_socket(p)
            self._send_upstream(p)
            return
        verdict, reply = p.exchange.judge(data)
        if verdict == IGNORE:
            return  # not the answer to our question: keep waiting
        self._drop_socket(p)
        if verdict == NEXT:
            self._send_upstream(p)
            return
        p.done = True
        self._reply(p.listener, p.peer, reply)

    def _expire(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, p, attempt = heapq.heappop(self.timers)
            if p.done or p.exchange.attempt != attempt:
                continue
            self._drop_socket(p)
            self._send_upstream(p)

    def _fail(self, p: Pending) -> None:
        self._finish(p)
        self._reply(p.listener, p.peer, p.exchange.failure())

    def _drop_socket(self, p: Pending) -> None:
        if p.sock is not None:
            fd = p.sock.fileno()
            self.pending.pop(fd, None)
            self.handlers.pop(fd, None)
            try:
                self.ep.unregister(fd)
            except OSError:
                pass
            p.sock.close()
            p.sock = None

    def _finish(self, p: Pending) -> None:
        self._drop_socket(p)
        p.done = True

    def _reply(self, lst: Listener, peer: tuple[str, int], reply: bytes) -> None:
        if self.listeners.get(lst.netns) is not lst:
            return
        try:
            lst.udp.sendto(reply, peer)
        except OSError:
            pass

    # --- TCP -----------------------------------------------------------------------------

    def _accept(self, lst: Listener) -> None:
        try:
            conn, _ = lst.tcp.accept()
        except OSError:
            return
        with self._tcp_lock:
            if self._tcp_count >= MAX_TCP:
                conn.close()
                return
            self._tcp_count += 1
        conn.setblocking(True)
        conn.settimeout(TCP_IDLE)
        thread = threading.Thread(target=self._serve_tcp, args=(lst, conn), daemon=True)
        lst.conns[conn] = thread
        thread.start()

    def _serve_tcp(self, lst: Listener, conn: socket.socket) -> None:
        try:
            while True:
                head = _recv_exact(conn, 2)
                if head is None:
                    break
                query = _recv_exact(conn, int.from_bytes(head, "big"))
                if query is None:
                    break
                view, cache = lst.vc
                try:
                    action, reply = self.resolver.handle(view, query, True, cache)
                except Exception:
                    log.exception("TCP query from %s dropped", lst.netns)
                    break
                if action == DROP:
                    break
                if action == FORWARD:
                    reply = self._forward_tcp(view.upstreams, reply)
                # RFC 1035 4.2.2: over TCP each message goes behind its length in two bytes
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            pass
        finally:
            conn.close()
            lst.conns.pop(conn, None)
            with self._tcp_lock:
                self._tcp_count -= 1

    def _forward_tcp(self, upstreams: tuple, query: DNSRecord) -> bytes:
        """The upstreams' answer over TCP, in the same order as over UDP (blocking: a TCP
        connection has a thread of its own)."""
        exchange = Exchange(query, upstreams, time.monotonic() + self.forward_timeout, limit=None)
        while True:
            step = exchange.next(time.monotonic())
            if step is None:
                return exchange.failure()
            upstream, packet, until = step
            try:
                with socket.create_connection((str(upstream), self.upstream_port),
                                              timeout=max(0.01, until - time.monotonic())) as up:
                    up.settimeout(max(0.01, until - time.monotonic()))
                    up.sendall(len(packet).to_bytes(2, "big") + packet)
                    head = _recv_exact(up, 2)
                    data = _recv_exact(up, int.from_bytes(head, "big")) if head else None
            except OSError:
                continue
            # SERVFAIL or REFUSED, or the connection's one answer is not to our question: go on
            verdict, reply = exchange.judge(data) if data is not None else (NEXT, None)
            if verdict == RELAY:
                return reply


def _recv_exact(conn: socket.socket, n: int) -> Optional[bytes]:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _note_signal(signum: int, frame: Any) -> None:
    # The wakeup fd carries the signal number to the loop; nothing else to do here.
    pass


def _is_dns_process(pid: int, project: str) -> bool:
    """Whether `pid` is a live (not zombie) DNS server of `project`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    # `python -m compose_net.dns serve --project P` or the CLI's `compose-net dns -p P`
    return project.encode() in argv and (b"compose_net.dns" in argv or b"dns" in argv)


def serve_forever(project: str, records: Optional[str | Path] = None, state: Optional[Path] = None) -> None:
    """Run the project's DNS server in this process until SIGTERM/SIGINT (the CLI's
    `compose-net dns -p NAME`)."""
    Server(project, records or records_path(project), state).run()
