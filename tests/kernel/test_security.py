"""What a container of a real `up` can reach on the host, tried the way an attacker would.

`up` sets `route_localnet=1` on bridges that publish on loopback. A root process in a container
can then route 127.0.0.1 through its gateway and, without the localhost guard, reach services
that listen only on the host's loopback (CVE-2020-8558's class). Each attack is run with the
project's table as planned (it must fail) and, as a control, with the guard's chain flushed (it
must then succeed), so a test cannot pass on a topology that merely fails to route. The listeners
on the host are started here, on free ports, bound to one address each.

Published ports (loopback from the host, hairpin) keep working next to the guard, and the other
doors a container has (gateway and host addresses, IPv6 link-local and ::1, other projects'
networks) are tried too; docs/design.md, "Security", says what a container can reach and why.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from conftest import Uplink, sh
from compose_net.executor import nft
from test_firewall_rules import SERVER, probe
from test_ports import Up, cli

COMPOSE = """
services:
  web:
    image: x
    networks: [front]
    ports: ["127.0.0.1:18181:80", "18182:80"]
  client:
    image: x
    networks: [front]
  attacker:
    image: x
    networks: [front]
  other:
    image: x
    networks: [back]
networks:
  front:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.219.1.0/24}, {subnet: "fd19:219:1::/64"}]}
  back:
    ipam: {config: [{subnet: 10.219.2.0/24}]}
"""

NEIGHBOUR = """
services:
  n1: {image: x}
networks:
  default: {ipam: {config: [{subnet: 10.219.9.0/24}]}}
"""

GATEWAY = "10.219.1.1"
GUARD_CHAIN = "localhost"


class HostListener:
    """A TCP or UDP listener in the host's namespace, bound to `address` on a free port; it
    answers "host PEER" (UDP: to whoever sent) and remembers every peer it saw."""

    def __init__(self, address: str, proto: str = "tcp"):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        # getaddrinfo turns a scoped link-local "fe80::1%dev" into the 4-tuple bind() takes
        self.sock.bind(socket.getaddrinfo(address, 0, family, self.sock.type)[0][4])
        self.port = self.sock.getsockname()[1]
        self.proto = proto
        self.peers: list[str] = []
        if proto == "tcp":
            self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                if self.proto == "tcp":
                    conn, peer = self.sock.accept()
                    self.peers.append(peer[0])
                    conn.sendall(f"host {peer[0]}".encode())
                    conn.close()
                else:
                    _, peer = self.sock.recvfrom(512)
                    self.peers.append(peer[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def loopback_listener():
    listener = HostListener("127.0.0.1")
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def up(kernel_lock, tmp_path_factory):
    tag = uuid.uuid4().hex[:7]
    uplink = Uplink(tag[:6], index=5)
    project = Up(tmp_path_factory.mktemp("security"), COMPOSE, tag)
    neighbour = Up(tmp_path_factory.mktemp("neighbour"), NEIGHBOUR, tag + "n")
    try:
        uplink.create()
        project.start({"web": ("tcp:80",), "client": ("tcp:80",), "other": ("tcp:80",)})
        neighbour.start({"n1": ("tcp:80",)})
        project.uplink = uplink
        project.neighbour = neighbour
        yield project
    finally:
        project.stop()
        neighbour.stop()
        uplink.destroy()


def table(up: Up) -> str:
    return f"cn-{up.project}"


def without_guard(up: Up, check):
    """`check()` with the localhost guard's chain flushed in the tables of both projects up here
    (each table guards every interface), then `up` repairs the tables (a firewall reload's
    damage, mended by reconciling)."""
    projects = (up, up.neighbour)
    for project in projects:
        sh("nft", "flush", "chain", "inet", f"cn-{project.project}", GUARD_CHAIN)
    try:
        return check()
    finally:
        for project in projects:
            cli("up", "--quiet", project=project.project, file=project.file)
            assert cli("up", "--dry-run", "--json", project=project.project, file=project.file).stdout.strip() == "[]"


def route_localhost_via(ns: str, gateway: str, dev: str = "eth0") -> None:
    """What a root process in namespace `ns` does to send 127.0.0.1 out of `dev` through
    `gateway`: a policy rule ahead of the local table, a route in a table of its own,
    `route_localnet` so its kernel lets 127/8 leave on `dev` and `accept_local` so it takes the
    answer from 127.0.0.1, an address its own `lo` holds too."""
    for argv in (
        ("ip", "rule", "add", "pref", "100", "lookup", "local"),
        ("ip", "rule", "del", "pref", "0"),
        ("ip", "rule", "add", "pref", "10", "to", "127.0.0.1/32", "lookup", "77"),
        ("ip", "route", "add", "127.0.0.1/32", "via", gateway, "dev", dev, "table", "77"),
        ("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", f"net.ipv4.conf.{dev}.route_localnet=1",
         f"net.ipv4.conf.{dev}.accept_local=1"),
    ):
        sh(*argv, ns=ns)


@pytest.fixture(scope="module")
def attacker(up):
    ns = up.ns("attacker")
    route_localhost_via(ns, GATEWAY)
    return ns


def guard_rules(up: Up) -> list[dict]:
    listing = nft.list_table("inet", table(up))
    return [x["rule"] for x in listing["nftables"] if "rule" in x and x["rule"]["chain"] == GUARD_CHAIN]


# --- the attack of issue 7 --------------------------------------------------------------------


def test_the_bridge_has_route_localnet_so_the_door_is_there(up):
    bridge = _bridge_of(up, "web")
    assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip() == "1"
    assert len(guard_rules(up)) == 2


def _bridge_of(up: Up, service: str) -> str:
    veth = up.containers[service]["Interfaces"][0]["HostInterface"]
    return Path(f"/sys/class/net/{veth}/master").resolve().name


def test_a_container_cannot_reach_the_hosts_loopback(up, attacker, loopback_listener):
    port = loopback_listener.port
    assert probe(attacker, "tcp", "127.0.0.1", port) == "timeout"
    assert loopback_listener.peers == []
    # control: the same attack without the guard gets through, so the guard is what stops it
    got = without_guard(up, lambda: probe(attacker, "tcp", "127.0.0.1", port))
    assert got.startswith("host 10.219.1."), got
    # and with the table applied again it is stopped again
    assert probe(attacker, "tcp", "127.0.0.1", port) == "timeout"


def test_a_container_cannot_use_a_loopback_only_published_port_through_its_gateway(up, attacker):
    """127.0.0.1:18181 is the host's own way in; through the gateway it would be DNATed."""
    assert probe(attacker, "tcp", "127.0.0.1", 18181) == "timeout"
    assert without_guard(up, lambda: probe(attacker, "tcp", "127.0.0.1", 18181)).startswith("web:80 ")


def test_a_neighbour_cannot_reach_a_loopback_only_published_port(up):
    """Another host on a link of this one, sending to 127.0.0.1 (CVE-2020-8558 as reported)."""
    u = up.uplink
    route_localhost_via(u.ns, u.host_ip, u.peer_if)
    assert probe(u.ns, "tcp", "127.0.0.1", 18181) == "timeout"
    assert without_guard(up, lambda: probe(u.ns, "tcp", "127.0.0.1", 18181)) == f"web:80 {u.peer_ip}"


def test_a_container_cannot_pass_as_the_hosts_loopback(up, attacker):
    """Spoofing a 127/8 source towards a host address (what a service trusting 127.0.0.0/8 sees)."""
    listener = HostListener(GATEWAY, "udp")
    send = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('127.0.0.2', 0)); s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))")

    def spoof() -> list[str]:
        sh(sys.executable, "-c", send, GATEWAY, str(listener.port), ns=attacker)
        # UDP: give the datagram a moment to arrive before reading what the listener saw
        deadline = threading.Event()
        deadline.wait(0.5)
        return list(listener.peers)

    try:
        assert spoof() == []
        assert without_guard(up, spoof) == ["127.0.0.2"]
    finally:
        listener.close()


def test_published_ports_and_hairpin_still_work(up):
    u = up.uplink
    # from the host's own loopback (the path route_localnet is for)
    assert probe(None, "tcp", "127.0.0.1", 18181) == f"web:80 {GATEWAY}"
    assert probe(None, "tcp", "127.0.0.1", 18182) == f"web:80 {GATEWAY}"
    # hairpin: a neighbour on the bridge, and the container itself, through a host address
    assert probe(up.ns("client"), "tcp", u.host_ip, 18182) == f"web:80 {GATEWAY}"
    assert probe(up.ns("web"), "tcp", u.host_ip, 18182) == f"web:80 {GATEWAY}"
    # from outside, the port published on every address, not the loopback one
    assert probe(u.ns, "tcp", u.host_ip, 18182) == f"web:80 {u.peer_ip}"
    assert probe(u.ns, "tcp", u.host_ip, 18181) == "refused"


# --- the other doors ----------------------------------------------------------------------------


def test_host_addresses_are_reachable_as_behind_docker(up):
    """The gateway of its own network, of another network and any host address are the host's
    own: INPUT, which Docker does not filter either. A service bound to one answers."""
    for address in (GATEWAY, "10.219.2.1", up.uplink.host_ip):
        listener = HostListener(address)
        try:
            assert probe(up.ns("client"), "tcp", address, listener.port) == f"host {up.ip('client')}"
        finally:
            listener.close()


def test_other_networks_and_other_projects_stay_out_of_reach(up):
    n1 = up.neighbour
    assert probe(up.ns("client"), "tcp", up.ip("other"), 80) == "timeout"
    assert probe(up.ns("client"), "tcp", n1.ip("n1"), 80) == "timeout"
    assert probe(n1.ns("n1"), "tcp", up.ip("client"), 80) == "timeout"


def test_the_dns_servers_sockets_answer_only_inside_their_own_namespace(up):
    """The embedded DNS server listens on 127.0.0.11:53 in each container's namespace: nothing
    of it is reachable at a container's address, from a neighbour or through the gateway."""
    query = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); "
             "s.sendto(bytes.fromhex('12340100000100000000000003776562000001 0001'.replace(' ', '')), "
             "(sys.argv[1], 53)); print(len(s.recvfrom(512)[0]) > 12)")
    # inside its own namespace it answers (the control)
    assert sh(sys.executable, "-c", query, "127.0.0.11", ns=up.ns("web")).stdout.strip() == "True"
    # at the container's address, from its neighbour: nobody listens
    assert probe(up.ns("client"), "tcp", up.ip("web"), 53) == "refused"
    assert sh(sys.executable, "-c", query, up.ip("web"), ns=up.ns("client"), check=False).returncode != 0


VICTIM = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"x")
print(s.getsockname()[1], flush=True)
s.settimeout(float(sys.argv[3]))
try:
    s.recv(100)
    print("data")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""

SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""

# An ICMP port unreachable about the datagram INNER_SRC:SPORT -> INNER_DST:DPORT, sent to TO
# from a raw socket (what a root process in a container can send).
FORGE = r"""
import socket, struct, sys
def csum(b):
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xffff)
    return ~(total + (total >> 16)) & 0xffff
to, src, dst, sport, dport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
icmp = struct.pack("!BBHI", 3, 3, 0, 0) + ip + struct.pack("!HHHH", sport, dport, 8, 0)
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(icmp, (to, 0))
"""


def forged_error_reaches(up: Up, sender_ns: str) -> str:
    """`other` (network back) has a UDP flow to the uplink, masqueraded to the uplink's host
    address; `sender_ns` forges the ICMP error the uplink would send about it. What does the
    victim's socket see: "refused" (the error reached it) or "timeout"?"""
    u = up.uplink
    sink = subprocess.Popen(["ip", "netns", "exec", u.ns, sys.executable, "-c", SINK, u.peer_ip],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    victim = None
    try:
        port = sink.stdout.readline().strip()
        victim = subprocess.Popen(["ip", "netns", "exec", up.ns("other"), sys.executable, "-c", VICTIM,
                                   u.peer_ip, port, "2"], stdout=subprocess.PIPE, text=True)
        source_port = victim.stdout.readline().strip()  # masquerade keeps a free source port
        threading.Event().wait(0.2)  # the datagram is out: conntrack has the flow
        sh(sys.executable, "-c", FORGE, u.host_ip, u.host_ip, u.peer_ip, source_port, port, ns=sender_ns)
        return victim.communicate(timeout=10)[0].strip()
    finally:
        for proc in (victim, sink):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_no_forged_icmp_error_crosses_from_another_network(up):
    """Conntrack calls an ICMP error about a known flow "related"; isolation must still hold for
    it (Docker's isolation chains come before its established/related accept)."""
    # control: from where the flow really goes, the same error is taken (the forgery is good)
    assert forged_error_reaches(up, up.uplink.ns) == "refused"
    # from a container of another network of the project, and of another project: dropped
    assert forged_error_reaches(up, up.ns("client")) == "timeout"
    assert forged_error_reaches(up, up.neighbour.ns("n1")) == "timeout"


def _link_local(ifname: str, ns: str | None = None) -> str:
    out = sh("ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link", ns=ns).stdout.split()
    return out[out.index("inet6") + 1].split("/")[0]


def test_ipv6_loopback_and_link_local(up):
    client = up.ns("client")
    bridge = _bridge_of(up, "client")
    # the bridge's link-local address is the host's, like the gateway: reachable
    bridge_ll = _link_local(bridge)
    listener = HostListener(f"{bridge_ll}%{bridge}")
    try:
        got = probe(client, "tcp", f"{bridge_ll}%eth0", listener.port)
        assert got.startswith("host fe80:"), got
    finally:
        listener.close()
    # another interface's link-local address is not on this link: never reached
    uplink_ll = _link_local(up.uplink.host_if)
    listener = HostListener(f"{uplink_ll}%{up.uplink.host_if}")
    try:
        assert probe(client, "tcp", f"{uplink_ll}%eth0", listener.port) in ("timeout", "refused")
        assert listener.peers == []
    finally:
        listener.close()
    # ::1 through the gateway, moved ahead of the local table as for 127.0.0.1: the host's kernel
    # drops a loopback destination arriving on any link but lo (RFC 4291 2.5.3), guard or not
    listener = HostListener("::1")
    try:
        attacker = up.ns("attacker")
        for argv in (("ip", "-6", "rule", "add", "pref", "100", "lookup", "local"),
                     ("ip", "-6", "rule", "del", "pref", "0"),
                     ("ip", "-6", "rule", "add", "pref", "10", "to", "::1/128", "lookup", "77"),
                     ("ip", "-6", "route", "add", "::1/128", "via", "fd19:219:1::1", "dev", "eth0", "table", "77")):
            sh(*argv, ns=attacker)
        got = probe(attacker, "tcp", "::1", listener.port)
        assert not got.startswith("host"), got
        assert without_guard(up, lambda: probe(attacker, "tcp", "::1", listener.port)) == got
        assert listener.peers == []
    finally:
        listener.close()
