"""The DNS server against the real kernel: real queries from inside container namespaces.

Each test makes its own namespaces (a veth pair each, so a namespace kept alive by a stray socket
shows up as a host-side veth that does not go away), writes a project summary for them, starts the
server with `control.start` and asks 127.0.0.11 from inside the namespaces, with a Python socket
born in the namespace or with `dig` under `ip netns exec`. Forwarding goes to stub upstreams the
test runs on 127.0.0.153/154 in the host namespace, never to the machine's resolver.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import socket
import threading
import time
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from compose_net.dns import control
from compose_net.errors import RuntimeFailure

from conftest import sh

pytestmark = pytest.mark.kernel

STUB = "127.0.0.153"
SILENT = "127.0.0.154"
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn):
    """Run fn() on a fresh thread inside namespace `ns` (sockets it makes stay there)."""
    out: dict = {}

    def inner():
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            assert _libc.setns(fd, 0x40000000) == 0
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    t = threading.Thread(target=inner)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def query(ns: str, name: str, qtype: str = "A", tcp: bool = False, timeout: float = 2.0) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    packet = bytes(q.pack())

    def ask():
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.settimeout(timeout)
            s.connect(("127.0.0.11", 53))
            if tcp:
                s.sendall(len(packet).to_bytes(2, "big") + packet)
                size = int.from_bytes(_recv_exact(s, 2), "big")
                return _recv_exact(s, size)
            s.send(packet)
            return s.recv(65535)

    reply = DNSRecord.parse(in_netns(ns, ask))
    assert reply.header.id == q.header.id and reply.header.qr == 1
    assert str(reply.q.qname) == str(q.q.qname)  # the asker's letter case, as sent
    return reply


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, "connection closed early"
        buf += chunk
    return buf


def ips(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


class StubUpstream:
    """A DNS server on STUB:53 (UDP and TCP) in the host namespace. Answers every A question with
    198.51.100.7 (names starting with "big" get 60 addresses); records what it was asked."""

    def __init__(self):
        self.asked: list[str] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((STUB, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((STUB, 53))
        self.tcp.listen(8)
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind((SILENT, 53))  # bound, never read: an upstream that never answers
        self._stop = False
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def answer(self, data: bytes) -> bytes:
        q = DNSRecord.parse(data)
        name = str(q.q.qname)
        self.asked.append(name.lower())
        r = q.reply()
        count = 60 if name.lower().startswith("big") else 1
        for i in range(count):
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(f"198.51.100.{7 + i}"), ttl=60))
        return bytes(r.pack())

    def _serve_udp(self):
        self.udp.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self.answer(data)
            except Exception:  # the fuzz test's garbage reaches us too: ignore it, as a resolver would
                continue
            self.udp.sendto(reply, peer)

    def _serve_tcp(self):
        self.tcp.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                size = int.from_bytes(_recv_exact(conn, 2), "big")
                reply = self.answer(_recv_exact(conn, size))
                conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def close(self):
        self._stop = True
        for t in self.threads:
            t.join()
        for s in (self.udp, self.tcp, self.silent):
            s.close()


class Project:
    """Container namespaces (lo up, one veth pair each: host end `vd<tag><i>`) and their summary."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.tmp = tmp
        self.state = tmp / "state"
        self.records = tmp / "project.json"
        self.tag = name[-6:]
        self.containers: list[dict] = []
        self.netns: list[str] = []
        self.veths: list[str] = []
        self.networks = [
            {"name": f"{name}_front", "internal": False, "enable_ipv6": False},
            {"name": f"{name}_back", "internal": False, "enable_ipv6": False},
            {"name": f"{name}_priv", "internal": True, "enable_ipv6": False},
            {"name": f"{name}_v6", "internal": False, "enable_ipv6": True},
        ]
        self.host_nameservers = [STUB]

    def add(self, service: str, index: int, ifaces, **extra) -> dict:
        cname = f"{self.name}-{service}-{index}"
        ns = f"{self.name}-{service}{index}"
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        veth = f"vd{self.tag}{len(self.veths)}"
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.veths.append(veth)
        ctr = {"name": cname, "service": service, "index": index, "id": os.urandom(32).hex(), "netns": ns,
               "network_mode": None, "shares": None, "hostname": None, "dns": [], "dns_search": [],
               "dns_opt": [], "links": [], "interfaces": []}
        for i, (net, v4, aliases, *v6) in enumerate(ifaces):
            ctr["interfaces"].append({"network": f"{self.name}_{net}", "ifname": f"eth{i}", "ipv4": f"{v4}/16",
                                      "ipv6": f"{v6[0]}/64" if v6 else None,
                                      "aliases": [service, cname, *aliases]})
        ctr.update(extra)
        self.containers.append(ctr)
        return ctr

    def ns(self, service: str, index: int = 1) -> str:
        return f"{self.name}-{service}{index}"

    def write(self) -> None:
        summary = {"version": 1, "project": self.name, "dns_ttl": 600, "host_nameservers": self.host_nameservers,
                   "networks": self.networks, "containers": self.containers}
        tmp = self.records.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary))
        os.replace(tmp, self.records)  # atomically, as the executor writes it

    def remove(self, service: str, index: int = 1) -> None:
        cname = f"{self.name}-{service}-{index}"
        self.containers = [c for c in self.containers if c["name"] != cname]

    def start(self) -> int:
        self.write()
        return control.start(self.name, self.records, state=self.state)

    def destroy(self) -> None:
        control.stop(self.name, state=self.state)
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)
        for veth in self.veths:
            sh("ip", "link", "del", veth, check=False)  # normally gone with its namespace already


def wait_gone(link: str, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh("ip", "link", "show", link, check=False).returncode != 0:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def stub():
    s = StubUpstream()
    yield s
    s.close()


@pytest.fixture
def project(project_name, tmp_path):
    p = Project(project_name, tmp_path)
    try:
        yield p
    finally:
        p.destroy()


def three_tier(p: Project) -> None:
    p.add("web", 1, [("front", "172.20.0.2", ["webfront"]), ("back", "172.21.0.2", [])],
          hostname="webhost", links=[{"service": "db", "alias": "database"}], dns_search=["corp.example"])
    for i in (1, 2, 3):
        p.add("api", i, [("back", f"172.21.0.{2 + i}", [])])
    p.add("db", 1, [("back", "172.21.0.10", ["dbback"]), ("priv", "172.22.0.2", ["dbpriv"])])
    p.add("proxy", 1, [("front", "172.20.0.3", [])])
    p.add("secret", 1, [("priv", "172.22.0.3", [])])
    p.add("six", 1, [("v6", "172.23.0.2", [], "fd00:6::2")])
    p.add("six", 2, [("v6", "172.23.0.3", [], "fd00:6::3")])


def test_names_scoping_replicas_ipv6_ptr_from_inside_namespaces(project, stub):
    three_tier(project)
    project.start()
    web, db, proxy, secret = (project.ns(s) for s in ("web", "db", "proxy", "secret"))
    name = project.name
    # service, container name, hostname, alias, link alias, short id, case, trailing dot, search suffix
    assert ips(query(web, "db")) == ["172.21.0.10"]
    assert ips(query(web, f"{name}-db-1")) == ["172.21.0.10"]
    assert ips(query(web, "DataBase.")) == ["172.21.0.10"]
    assert ips(query(web, "db.corp.example")) == ["172.21.0.10"]
    assert ips(query(proxy, "webhost")) == ["172.20.0.2"]
    assert ips(query(proxy, "webfront")) == ["172.20.0.2"]
    db_id = next(c["id"] for c in project.containers if c["service"] == "db")
    assert ips(query(web, db_id[:12])) == ["172.21.0.10"]
    # a target on two shared networks: the asker's first network (web's eth0 is front)
    assert ips(query(db, "web")) == ["172.21.0.2"]
    assert ips(query(proxy, "web")) == ["172.20.0.2"]
    # network-scoped aliases
    assert ips(query(db, "dbpriv")) == ["172.22.0.2"]
    assert ips(query(secret, "db")) == ["172.22.0.2"]
    # names on networks the asker does not share get no answer from the project (the stub
    # upstream answers 198.51.100.7 for anything it is asked; secret gets NXDOMAIN, no upstream)
    assert ips(query(proxy, "db")) == ["198.51.100.7"]
    assert ips(query(web, "dbpriv")) == ["198.51.100.7"]
    assert ips(query(proxy, "database")) == ["198.51.100.7"]  # links are the declaring container's
    r = query(secret, "dbback")
    assert r.header.rcode == RCODE.NXDOMAIN and not r.rr
    assert "dbback." not in stub.asked
    # replicas: all addresses, order varies over queries
    orders = set()
    for _ in range(40):
        got = ips(query(web, "api"))
        assert sorted(got) == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]
        orders.add(tuple(got))
    assert len(orders) >= 2
    assert ips(query(web, f"{name}-api-2")) == ["172.21.0.4"]
    # AAAA on an IPv6 network; empty NOERROR for AAAA of an IPv4-only name, never forwarded
    assert ips(query(project.ns("six", 2), "six", "AAAA")) in (["fd00:6::2", "fd00:6::3"], ["fd00:6::3", "fd00:6::2"])
    assert ips(query(project.ns("six", 2), f"{name}-six-1", "AAAA")) == ["fd00:6::2"]
    asked = len(stub.asked)
    r = query(web, "db", "AAAA")
    assert r.header.rcode == RCODE.NOERROR and r.rr == []
    assert len(stub.asked) == asked
    # PTR for container addresses
    assert ips(query(web, "10.0.21.172.in-addr.arpa", "PTR")) == [f"{name}-db-1.{name}_back."]


def test_dig_and_tcp(project, stub):
    three_tier(project)
    project.start()
    web = project.ns("web")
    out = sh("dig", "+short", "@127.0.0.11", "db", ns=web).stdout.split()
    assert out == ["172.21.0.10"]
    out = sh("dig", "+tcp", "+short", "@127.0.0.11", "api", ns=web).stdout.split()
    assert sorted(out) == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]
    r = query(web, "Api", tcp=True)
    assert sorted(ips(r)) == ["172.21.0.3", "172.21.0.4", "172.21.0.5"] and str(r.q.qname) == "Api."
    assert ips(query(web, "db", tcp=True)) == ["172.21.0.10"]
    assert ips(query(web, "elsewhere.example", tcp=True)) == ["198.51.100.7"]  # forwarded over TCP
    # resolv.conf-style resolution the way a program in the container does it
    out = sh("dig", "+short", "@127.0.0.11", "-x", "172.21.0.3", ns=web).stdout.split()
    assert out == [f"{project.name}-api-1.{project.name}_back."]


def test_forwarding_truncation_and_silent_upstream(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.add("lonely", 1, [("priv", "172.22.0.9", [])])
    project.add("mute", 1, [("front", "172.20.0.5", [])], dns=[SILENT])
    project.start()
    web = project.ns("web")
    r = query(web, "Example.ORG")
    assert ips(r) == ["198.51.100.7"] and str(r.q.qname) == "Example.ORG."
    assert "example.org." in stub.asked
    # too large for UDP: TC set, the client retries over TCP and gets it whole
    r = query(web, "big.example")
    assert r.header.tc == 1 and r.rr == []
    r = query(web, "big.example", tcp=True)
    assert r.header.tc == 0 and len(r.rr) == 60
    # internal-only container: no forwarding
    before = len(stub.asked)
    r = query(project.ns("lonely"), "example.org")
    assert r.header.rcode == RCODE.NXDOMAIN
    assert len(stub.asked) == before
    # an upstream that never answers: SERVFAIL within the forward timeout (2 s)
    start = time.monotonic()
    r = query(project.ns("mute"), "example.net", timeout=5)
    assert r.header.rcode == RCODE.SERVFAIL
    assert time.monotonic() - start < 3.5
    start = time.monotonic()
    r = query(project.ns("mute"), "example.net", tcp=True, timeout=5)
    assert r.header.rcode == RCODE.SERVFAIL and time.monotonic() - start < 3.5
    # and the server goes on answering
    assert ips(query(web, "web")) == ["172.20.0.2"]


def test_reload_adds_a_container_while_a_query_loop_runs(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.add("db", 1, [("front", "172.20.0.3", [])])
    pid = project.start()
    web = project.ns("web")
    lost: list[str] = []
    answered = [0]
    stop = threading.Event()

    def loop():
        def ask_many():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(1.0)
                s.connect(("127.0.0.11", 53))
                while not stop.is_set():
                    q = DNSRecord.question("db")
                    s.send(bytes(q.pack()))
                    try:
                        r = DNSRecord.parse(s.recv(4096))
                    except socket.timeout:
                        lost.append("timeout")
                        continue
                    if r.header.id != q.header.id or ips(r) != ["172.20.0.3"]:
                        lost.append(str(r))
                    answered[0] += 1
        in_netns(web, ask_many)

    t = threading.Thread(target=loop)
    t.start()
    try:
        time.sleep(0.2)
        project.add("cache", 1, [("front", "172.20.0.4", ["redis"])])
        project.write()
        control.reload(project.name, state=project.state)
        assert ips(query(web, "redis")) == ["172.20.0.4"]
        assert ips(query(project.ns("cache"), "db")) == ["172.20.0.3"]
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert not lost
    assert answered[0] > 50
    assert control.running_pid(project.name, state=project.state) == pid  # no restart


def test_reload_closes_sockets_of_removed_containers(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.add("db", 1, [("front", "172.20.0.3", [])])
    project.start()
    project.remove("db")
    project.write()
    control.reload(project.name, state=project.state)
    status = json.loads((project.state / "dns.status").read_text())
    assert status["netns"] == [project.ns("web")]
    db_ns, db_veth = project.ns("db"), project.veths[1]
    sh("ip", "netns", "del", db_ns)
    assert wait_gone(db_veth), "the server still holds a socket in the removed namespace"
    r = query(project.ns("web"), "db")
    assert ips(r) == ["198.51.100.7"]  # not ours any more: forwarded


def test_reload_without_change_and_bad_records(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.start()
    control.reload(project.name, state=project.state)  # nothing changed: returns, still serving
    project.records.write_text("{not json")
    with pytest.raises(RuntimeFailure, match="bad records"):
        control.reload(project.name, state=project.state, timeout=3)
    assert ips(query(project.ns("web"), "web")) == ["172.20.0.2"]  # keeps serving the last good ones
    project.write()
    control.reload(project.name, state=project.state)
    # a changed address replaces the cached answer at once
    for _ in range(3):
        assert ips(query(project.ns("web"), "WEB")) == ["172.20.0.2"]
    project.containers[0]["interfaces"][0]["ipv4"] = "172.20.0.99/16"
    project.write()
    control.reload(project.name, state=project.state)
    assert ips(query(project.ns("web"), "WEB")) == ["172.20.0.99"]
    assert ips(query(project.ns("web"), "web", tcp=True)) == ["172.20.0.99"]


def test_stop_removes_process_files_and_frees_namespaces(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.add("db", 1, [("front", "172.20.0.3", [])])
    pid = project.start()
    assert control.is_running(project.name, state=project.state)
    assert control.probe(project.ns("db"))
    assert control.start(project.name, project.records, state=project.state) == pid  # already up: reload
    control.stop(project.name, state=project.state)
    assert not Path(f"/proc/{pid}").exists()
    assert not control.is_running(project.name, state=project.state)
    assert sorted(p.name for p in project.state.iterdir()) == []
    assert not control.probe(project.ns("db"), timeout=0.2)
    control.stop(project.name, state=project.state)  # not running: done
    for ns, veth in zip(project.netns, project.veths):
        sh("ip", "netns", "del", ns)
        assert wait_gone(veth), f"{veth} kept alive after stop"


def test_stale_pid_file_is_replaced(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    project.state.mkdir(parents=True)
    (project.state / "dns.pid").write_text(f"{os.getpid()}\n")  # alive, but not a DNS server
    pid = project.start()
    assert pid != os.getpid()
    assert ips(query(project.ns("web"), "web")) == ["172.20.0.2"]
    os.kill(pid, 9)  # a crash: its pid file stays behind
    deadline = time.monotonic() + 3
    while control.is_running(project.name, state=project.state) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (project.state / "dns.pid").exists()
    pid2 = project.start()
    assert pid2 != pid
    assert ips(query(project.ns("web"), "web")) == ["172.20.0.2"]


def test_reload_of_a_crashed_server_starts_it_again(project, stub):
    # A later `up` reloads the server; it must not fail because the server was killed meanwhile.
    project.add("web", 1, [("front", "172.20.0.2", [])])
    pid = project.start()
    os.kill(pid, 9)
    deadline = time.monotonic() + 3
    while control.is_running(project.name, state=project.state) and time.monotonic() < deadline:
        time.sleep(0.01)
    project.add("db", 1, [("front", "172.20.0.3", [])])
    project.write()
    control.reload(project.name, state=project.state)
    pid2 = control.running_pid(project.name, state=project.state)
    assert pid2 and pid2 != pid
    assert ips(query(project.ns("web"), "db")) == ["172.20.0.3"]
    assert ips(query(project.ns("db"), "web")) == ["172.20.0.2"]


def test_ensure_running_starts_only_a_dead_server(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    pid = project.start()
    assert control.ensure_running(project.name, project.records, state=project.state) is False
    assert control.running_pid(project.name, state=project.state) == pid
    os.kill(pid, 9)
    deadline = time.monotonic() + 3
    while control.is_running(project.name, state=project.state) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.ensure_running(project.name, project.records, state=project.state) is True
    assert control.running_pid(project.name, state=project.state) not in (0, pid)
    assert ips(query(project.ns("web"), "web")) == ["172.20.0.2"]


def test_forwarding_concurrency_is_bounded(project, stub):
    # More queries than MAX_PENDING for an upstream that never answers: the ones over the bound
    # get SERVFAIL at once, the others when the forward timeout ends; the server never holds
    # more than MAX_PENDING upstream sockets, and every query gets its answer.
    from compose_net.dns.server import FORWARD_TIMEOUT, MAX_PENDING

    project.add("mute", 1, [("front", "172.20.0.5", [])], dns=[SILENT])
    pid = project.start()
    total = MAX_PENDING + 60
    sockets_at_start = sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                           for fd in os.listdir(f"/proc/{pid}/fd"))

    def flood():
        got: dict[int, tuple[int, float]] = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: a burst of replies
            s.connect(("127.0.0.11", 53))
            start = time.monotonic()
            for i in range(total):
                q = DNSRecord.question(f"n{i}.example.net")
                q.header.id = i
                s.send(bytes(q.pack()))
                if i % 64 == 63:
                    time.sleep(0.002)
            sent = time.monotonic()
            held = sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                       for fd in os.listdir(f"/proc/{pid}/fd"))
            s.settimeout(FORWARD_TIMEOUT + 1.5)
            while len(got) < total:
                r = DNSRecord.parse(s.recv(4096))
                got[r.header.id] = (r.header.rcode, time.monotonic() - sent)
        return got, held, sent - start

    got, held, sending = in_netns(project.ns("mute"), flood)
    assert sending < 0.5
    assert sorted(got) == list(range(total))
    assert {rcode for rcode, _ in got.values()} == {RCODE.SERVFAIL}
    quick = [t for _, t in got.values() if t < FORWARD_TIMEOUT / 2]
    assert len(quick) >= total - MAX_PENDING
    assert held - sockets_at_start <= MAX_PENDING
    assert max(t for _, t in got.values()) < FORWARD_TIMEOUT + 1.0
    assert ips(query(project.ns("mute"), "mute")) == ["172.20.0.5"]


def test_hostile_packets_never_stop_the_server(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    pid = project.start()
    web = project.ns("web")
    rng = random.Random(7)
    seed = bytes(DNSRecord.question("web").pack())

    def flood():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.11", 53))
            s.setblocking(False)
            for i in range(3000):
                if i % 2:
                    packet = rng.randbytes(rng.randint(0, 700))
                else:
                    packet = bytearray(seed)
                    for _ in range(rng.randint(1, 3)):
                        packet[rng.randrange(len(packet))] = rng.randrange(256)
                    packet = bytes(packet)
                try:
                    s.send(packet)
                except OSError:
                    pass
            # replies are never responses to responses: drain whatever came back
            time.sleep(0.2)
            got = 0
            while True:
                try:
                    reply = s.recv(65535)
                except OSError:
                    break
                assert reply[2] & 0x80
                got += 1
            return got

    in_netns(web, flood)
    # TCP garbage too: a length prefix with nothing after it, then a closed connection
    def tcp_garbage():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("127.0.0.11", 53))
            s.sendall(b"\xff\xff\x00")
    in_netns(web, tcp_garbage)
    assert ips(query(web, "web")) == ["172.20.0.2"]
    assert ips(query(web, "web", tcp=True)) == ["172.20.0.2"]
    assert control.running_pid(project.name, state=project.state) == pid


def test_a_namespace_made_after_the_load_is_picked_up(project, stub):
    project.add("web", 1, [("front", "172.20.0.2", [])])
    late_ns = f"{project.name}-late1"
    project.containers.append({
        "name": f"{project.name}-late-1", "service": "late", "index": 1, "id": os.urandom(32).hex(),
        "netns": late_ns, "dns": [], "dns_search": [], "links": [],
        "interfaces": [{"network": f"{project.name}_front", "ifname": "eth0", "ipv4": "172.20.0.9/16",
                        "ipv6": None, "aliases": ["late"]}]})
    project.start()
    status = json.loads((project.state / "dns.status").read_text())
    assert late_ns in status["failed"] and status["netns"] == [project.ns("web")]
    assert ips(query(project.ns("web"), "late")) == ["172.20.0.9"]
    sh("ip", "netns", "add", late_ns)
    project.netns.append(late_ns)
    sh("ip", "-n", late_ns, "link", "set", "lo", "up")
    deadline = time.monotonic() + 5
    while late_ns not in json.loads((project.state / "dns.status").read_text())["netns"]:
        assert time.monotonic() < deadline, "the server never listened in the new namespace"
        time.sleep(0.05)
    assert ips(query(late_ns, "web")) == ["172.20.0.2"]
    assert not json.loads((project.state / "dns.status").read_text())["failed"]
