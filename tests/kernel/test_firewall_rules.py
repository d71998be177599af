"""The firewall table against the real kernel, on a topology built here with `ip` commands.

The topology mirrors what a plan builds (bridges with gateways, one namespace per container, veth
pairs, default routes, `route_localnet` on bridges), described by a summary dict in the
project.json format; `firewall.ruleset(summary)` is applied through `executor/nft.py`. Servers in
the namespaces answer "NAME:PORT PEER", so a test sees both who answered and the source address
it saw (masquerade, DNAT). Tests whose expectation is "blocked" also check that the same probe
gets through with the table removed, so they cannot pass on a topology that is merely broken.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import Uplink, sh
from compose_net import firewall
from compose_net.summary import from_data
from compose_net.executor import nft

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
socks = []
for spec in sys.argv[2:]:
    proto, port = spec.split(":")  # tcp, udp (IPv4) or tcp6, udp6 (IPv6 only)
    family = socket.AF_INET6 if proto.endswith("6") else socket.AF_INET
    proto = proto.rstrip("6")
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(port)))
    if proto == "tcp":
        s.listen(64)
    socks.append((proto, int(port), s))
def serve(proto, port, s):
    while True:
        if proto == "tcp":
            c, peer = s.accept()
            c.sendall(f"{name}:{port} {peer[0]}".encode())
            c.close()
        else:
            data, peer = s.recvfrom(512)
            s.sendto(f"{name}:{port} {peer[0]}".encode(), peer)
for item in socks:
    threading.Thread(target=serve, args=item, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

CLIENT = r"""
import socket, sys
proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if proto == "tcp":
        # the kernel completes the handshake: a short timeout tells "blocked" quickly, while
        # the answer, which needs the server process, may take longer on a busy machine
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(5)
        print(s.recv(512).decode())
    else:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(max(timeout, 3))
        s.sendto(b"hi", (host, port))
        print(s.recvfrom(512)[0].decode())
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(f"error {exc.errno}")
"""

TIMEOUT = 0.6


def probe(ns: str | None, proto: str, host: str, port: int, timeout: float = TIMEOUT) -> str:
    """Connect (tcp) or send a datagram (udp) from namespace `ns` (None: the host) and return the
    server's answer "NAME:PORT PEER", or "timeout" / "refused" / "error N". Only a tcp connect
    times out after `timeout`; udp waits 3 s (an answer needs the server process to run)."""
    argv = [sys.executable, "-c", CLIENT, proto, host, str(port), str(timeout)]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()


def ping(ns: str, host: str) -> bool:
    return sh("ping", "-c1", "-W1", "-q", host, ns=ns, check=False).returncode == 0


class Topology:
    """Bridges, namespaces and veths for a fake project, plus its summary and servers."""

    def __init__(self, tag: str, octet: int):
        self.tag = tag
        self.octet = octet
        self.table = f"cn-{tag}"
        self.networks: list[dict] = []
        self.containers: list[dict] = []
        self.servers: list[subprocess.Popen] = []
        self.namespaces: list[str] = []
        self.links: list[str] = []

    def subnet(self, n: int) -> str:
        return f"10.{self.octet}.{n}.0/24"

    def network(self, key: str, n: int, **kw) -> dict:
        net = {"name": f"{self.tag}_{key}", "key": key, "id": uuid.uuid4().hex * 2, "driver": "bridge",
               "bridge": f"cn-{self.tag}{key}"[:15], "parent": None, "mode": None, "internal": False,
               "external": False, "masquerade": not kw.get("internal", False), "icc": True, "mtu": None,
               "enable_ipv6": False, "labels": {},
               "subnets": [{"subnet": self.subnet(n), "gateway": f"10.{self.octet}.{n}.1", "ip_range": None}]}
        net.update(kw)
        br = net["bridge"]
        sh("ip", "link", "add", br, "type", "bridge")
        self.links.append(br)
        sh("ip", "addr", "add", f"10.{self.octet}.{n}.1/24", "dev", br)
        sh("ip", "link", "set", br, "up")
        Path(f"/proc/sys/net/ipv4/conf/{br}/route_localnet").write_text("1")
        self.networks.append(net)
        return net

    def container(self, name: str, net: dict, host: int, ports=(), listen=()) -> dict:
        ns = f"{self.tag}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        veth = f"v{self.tag}{name}"[:15]
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(veth)
        sh("ip", "link", "set", veth, "master", net["bridge"], "up")
        # With br_netfilter a hairpin DNAT back to the sender is bridged out of the port it came
        # in by, which the bridge refuses unless the port is in hairpin mode (Docker sets it too).
        sh("bridge", "link", "set", "dev", veth, "hairpin", "on")
        gw = net["subnets"][0]["gateway"]
        addr = gw.rsplit(".", 1)[0] + f".{host}"
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("ip", "route", "add", "default", "via", gw, ns=ns)
        c = {"name": ns, "service": name, "index": 1, "id": uuid.uuid4().hex * 2, "netns": ns,
             "network_mode": None, "shares": None, "hostname": name, "domainname": None,
             "interfaces": [{"network": net["name"], "ifname": "eth0", "host_ifname": veth, "mac": None,
                             "ipv4": f"{addr}/24", "ipv6": None, "gateway": gw, "default_route": True,
                             "aliases": [name]}],
             "ports": list(ports), "expose": []}
        self.containers.append(c)
        self.serve(name, ns, listen or ("tcp:80",))
        return c

    def serve(self, name: str, ns: str, specs) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, name, *specs],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout.readline().strip() == "ready"

    def summary(self):
        return from_data({"version": 1, "project": self.tag, "group": 0, "table": self.table,
                          "networks": self.networks, "containers": self.containers})

    def apply(self) -> None:
        nft.apply_table("inet", self.table, json.dumps(firewall.ruleset(self.summary())))

    def destroy(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        nft.delete_table("inet", self.table)
        for link in reversed(self.links):
            sh("ip", "link", "del", link, check=False)
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)


def port(published, target, protocol="tcp", host_ip=None, published_end=None, target_end=None):
    return {"protocol": protocol, "host_ip": host_ip, "published": published,
            "published_end": published_end or published, "target": target, "target_end": target_end or target}


@pytest.fixture(scope="module")
def topo(kernel_lock):
    tag = uuid.uuid4().hex[:5]
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    old_forward = forward.read_text().strip()
    uplink = Uplink(tag)
    t = Topology(tag, 213)
    try:
        uplink.create()
        # The uplink routes container subnets back via the host, so only masquerade and the
        # internal rules decide what it sees (without them it would answer 10.213.x.y directly).
        sh("ip", "route", "add", "10.213.0.0/16", "via", uplink.host_ip, ns=uplink.ns)
        t.serve("uplink", uplink.ns, ("tcp:80", "udp:80"))
        forward.write_text("1")
        a = t.network("a", 1)
        b = t.network("b", 2)
        i = t.network("i", 3, internal=True)
        c = t.network("c", 4, icc=False)
        hp = uplink.host_ip
        t.container("a1", a, 2, listen=("tcp:80", "tcp:81", "tcp:100", "tcp:101", "tcp:102", "tcp:443",
                                        "udp:53", "udp:7000", "udp:7001", "udp:7002"), ports=[
            port(18080, 80),
            port(18081, 81, host_ip="127.0.0.1"),
            port(18443, 443, host_ip=hp),
            port(19000, 100, published_end=19002, target_end=102),
            port(7000, 7000, "udp", published_end=7002, target_end=7002),
            port(15353, 53, "udp"),
        ])
        t.container("a2", a, 3)
        t.container("b1", b, 2)
        t.container("i1", i, 2)
        t.container("i2", i, 3)
        t.container("c1", c, 2)
        t.container("c2", c, 3)
        t.apply()
        t.uplink = uplink
        yield t
    finally:
        t.destroy()
        uplink.destroy()
        forward.write_text(old_forward)


def without_table(t: Topology, check):
    """Run `check` with the project's table removed, then put the table back."""
    nft.delete_table("inet", t.table)
    try:
        return check()
    finally:
        t.apply()


def test_same_network_reaches_by_address_without_nat(topo):
    assert probe(f"{topo.tag}-a2", "tcp", f"10.213.1.2", 80) == "a1:80 10.213.1.3"
    assert probe(f"{topo.tag}-i2", "tcp", f"10.213.3.2", 80) == "i1:80 10.213.3.3"


def test_networks_are_isolated_but_gateways_stay_reachable(topo):
    a1, b1 = f"{topo.tag}-a1", f"{topo.tag}-b1"
    assert probe(a1, "tcp", "10.213.2.2", 80) == "timeout"
    assert probe(b1, "tcp", "10.213.1.2", 80) == "timeout"
    assert probe(a1, "tcp", "10.213.3.2", 80) == "timeout"
    assert ping(a1, "10.213.2.1") and ping(b1, "10.213.1.1")  # the other network's gateway
    assert ping(a1, topo.uplink.host_ip)  # a host address
    # control: without the table the same probe gets through (the topology itself routes)
    assert without_table(topo, lambda: probe(a1, "tcp", "10.213.2.2", 80)) == "b1:80 10.213.1.2"


def test_outbound_is_masqueraded_to_the_host_side_address(topo):
    got = probe(f"{topo.tag}-a1", "tcp", topo.uplink.peer_ip, 80)
    assert got == f"uplink:80 {topo.uplink.host_ip}"
    got = probe(f"{topo.tag}-b1", "udp", topo.uplink.peer_ip, 80)
    assert got == f"uplink:80 {topo.uplink.host_ip}"
    assert without_table(topo, lambda: probe(f"{topo.tag}-a1", "tcp", topo.uplink.peer_ip, 80)) \
        == "uplink:80 10.213.1.2"


def test_internal_network_cannot_leave_its_bridge(topo):
    i1 = f"{topo.tag}-i1"
    assert probe(i1, "tcp", topo.uplink.peer_ip, 80) == "timeout"
    assert probe(i1, "tcp", "10.213.1.2", 80) == "timeout"
    assert probe(f"{topo.tag}-a1", "tcp", "10.213.3.2", 80) == "timeout"
    assert ping(i1, "10.213.3.1")  # its gateway, like Docker's internal networks
    assert without_table(topo, lambda: probe(i1, "tcp", topo.uplink.peer_ip, 80)) == "uplink:80 10.213.3.2"


def test_icc_off_blocks_containers_of_the_same_bridge(topo):
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() != "1":
        pytest.skip("enable_icc: false is enforced in inet hooks only with br_netfilter calling them")
    c1 = f"{topo.tag}-c1"
    assert probe(c1, "tcp", "10.213.4.3", 80) == "timeout"
    assert ping(c1, "10.213.4.1")
    assert probe(c1, "tcp", topo.uplink.peer_ip, 80) == f"uplink:80 {topo.uplink.host_ip}"
    assert without_table(topo, lambda: probe(c1, "tcp", "10.213.4.3", 80)) == "c2:80 10.213.4.2"


def test_published_port_from_host_loopback_and_host_address(topo):
    assert probe(None, "tcp", "127.0.0.1", 18080) == "a1:80 10.213.1.1"
    assert probe(None, "tcp", topo.uplink.host_ip, 18080) == f"a1:80 {topo.uplink.host_ip}"


def test_published_port_from_another_namespace(topo):
    up = topo.uplink
    assert probe(up.ns, "tcp", up.host_ip, 18080) == f"a1:80 {up.peer_ip}"
    # containers of other networks use published ports too (Docker's userland proxy allows it);
    # b's masquerade (`saddr B oifname != cn-b`) gives them a's gateway address, as in Docker
    assert probe(f"{topo.tag}-b1", "tcp", up.host_ip, 18080) == "a1:80 10.213.1.1"


def test_hairpin_to_own_published_port(topo):
    hp = topo.uplink.host_ip
    assert probe(f"{topo.tag}-a1", "tcp", hp, 18080) == "a1:80 10.213.1.1"
    assert probe(f"{topo.tag}-a2", "tcp", hp, 18080) == "a1:80 10.213.1.1"
    assert probe(f"{topo.tag}-a1", "tcp", "10.213.1.1", 18080) == "a1:80 10.213.1.1"


def test_port_ranges_are_one_rule_each(topo):
    up = topo.uplink
    for offset in range(3):
        assert probe(up.ns, "tcp", up.host_ip, 19000 + offset) == f"a1:{100 + offset} {up.peer_ip}"
        assert probe(up.ns, "udp", up.host_ip, 7000 + offset) == f"a1:{7000 + offset} {up.peer_ip}"
    listing = nft.list_table("inet", topo.table)
    rules = [x["rule"] for x in listing["nftables"] if "rule" in x and x["rule"]["chain"] == "ports"]
    assert len(rules) == 6  # one per ports: entry, ranges included


def test_udp_published_port(topo):
    up = topo.uplink
    assert probe(up.ns, "udp", up.host_ip, 15353) == f"a1:53 {up.peer_ip}"
    assert probe(None, "udp", "127.0.0.1", 15353) == "a1:53 10.213.1.1"


def test_host_ip_restricts_where_a_port_answers(topo):
    up = topo.uplink
    assert probe(None, "tcp", "127.0.0.1", 18081) == "a1:81 10.213.1.1"
    assert probe(up.ns, "tcp", up.host_ip, 18081) == "refused"  # nobody listens on the host
    assert probe(up.ns, "tcp", up.host_ip, 18443) == f"a1:443 {up.peer_ip}"
    assert probe(None, "tcp", "127.0.0.1", 18443) == "refused"


def test_reapply_replaces_the_table_and_delete_removes_only_it(kernel_lock):
    tag = uuid.uuid4().hex[:6]
    mine, other = f"cn-{tag}", f"keep{tag}"
    sh("nft", "add", "table", "inet", other)
    try:
        sh("nft", "add", "chain", "inet", other, "c")
        sh("nft", "add", "rule", "inet", other, "c", "accept")
        before_other = sh("nft", "list", "table", "inet", other).stdout
        net = {"name": "n", "bridge": f"cn-{tag}x", "internal": False, "masquerade": True, "icc": True,
               "subnets": [{"subnet": "10.214.1.0/24", "gateway": "10.214.1.1"}]}
        doc = firewall.ruleset(from_data({"project": tag, "table": mine, "networks": [net], "containers": []}))
        nft.apply_table("inet", mine, json.dumps(doc))
        first = sh("nft", "list", "table", "inet", mine).stdout
        nft.apply_table("inet", mine, doc)  # again: replaced, not duplicated
        assert sh("nft", "list", "table", "inet", mine).stdout == first
        assert first.count(" masquerade comment ") == 1  # the statement, not the words
        # an edited summary replaces the table whole: the old subnet's rule is gone
        net2 = dict(net, subnets=[{"subnet": "10.214.2.0/24", "gateway": "10.214.2.1"}])
        nft.apply_table("inet", mine, json.dumps(firewall.ruleset(
            from_data({"project": tag, "table": mine, "networks": [net2], "containers": []}))))
        edited = sh("nft", "list", "table", "inet", mine).stdout
        assert "10.214.2.0/24" in edited and "10.214.1.0/24" not in edited
        nft.apply_table("inet", mine, doc)
        assert nft.table_exists("inet", mine)
        nft.delete_table("inet", mine)
        assert not nft.table_exists("inet", mine)
        nft.delete_table("inet", mine)  # already gone: done
        assert sh("nft", "list", "table", "inet", other).stdout == before_other
    finally:
        sh("nft", "delete", "table", "inet", other, check=False)
        sh("nft", "delete", "table", "inet", mine, check=False)
