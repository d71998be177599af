"""What `up` builds, checked from inside the namespaces it made: real TCP/UDP traffic, the
interfaces' names, addresses, MACs and MTUs, the default route, sysctls and /etc/netns files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from compose_net import executor
from compose_net.plan import ops as O
from conftest import sh

ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 7007)); tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 7007))
    def serve_udp():
        while True:
            data, peer = udp.recvfrom(2048); udp.sendto(b"udp:" + data, peer)
    threading.Thread(target=serve_udp, daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, peer = tcp.accept()
        conn.sendall(b"tcp:" + conn.recv(2048) + b" from " + peer[0].encode()); conn.close()
    """
)

CLIENT = textwrap.dedent(
    """
    import socket, sys
    host = sys.argv[1]
    t = socket.create_connection((host, 7007), timeout=3); t.sendall(b"hello"); print(t.recv(2048).decode())
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
    u.sendto(b"hello", (host, 7007)); print(u.recvfrom(2048)[0].decode())
    """
)


@pytest.fixture
def echo_server():
    procs = []

    def start(ns: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", ECHO_SERVER],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"

    yield start
    for proc in procs:
        proc.kill()  # by pid: only the process this test started
        proc.wait()


def _addrs(ns: str) -> dict:
    return {link["ifname"]: link for link in json.loads(sh("ip", "-j", "addr", "show", ns=ns).stdout)}


def test_tcp_and_udp_between_containers_on_a_shared_network(builder, executor_guard, echo_server):
    builder.network("front", "10.241.0.0/24")
    a = f"{builder.project}-a-1"
    b = f"{builder.project}-b-1"
    ip_a = builder.container(a, ["front"])["front"].ip
    ip_b = builder.container(b, ["front"])["front"].ip
    result = executor.up(builder.plan())
    assert result.changed

    echo_server(b)
    out = sh(sys.executable, "-c", CLIENT, str(ip_b), ns=a).stdout.splitlines()
    assert out == [f"tcp:hello from {ip_a}", "udp:hello"]


def test_interfaces_macs_mtu_names_and_default_route(builder, executor_guard):
    builder.network("front", "10.242.0.0/24")
    builder.network("back", "10.242.1.0/24", mtu=1400)
    name = f"{builder.project}-web-1"
    builder.container(
        name,
        ["front", "back"],
        ips={"back": "10.242.1.50/24"},
        macs={"front": "02:aa:bb:cc:dd:01"},
        ifnames={"back": "data0"},
        default="back",
    )
    other = f"{builder.project}-db-1"
    builder.container(other, ["back"])
    executor.up(builder.plan())

    links = _addrs(name)
    assert set(links) == {"lo", "eth0", "data0"}
    assert links["lo"]["operstate"] == "UNKNOWN" and "UP" in links["lo"]["flags"]
    assert links["eth0"]["address"] == "02:aa:bb:cc:dd:01"
    assert links["eth0"]["mtu"] == 1500
    assert links["data0"]["mtu"] == 1400
    # Docker's MAC for an address it did not get one for: 02:42 + the IPv4 bytes.
    assert links["data0"]["address"] == "02:42:0a:f2:01:32"
    assert [(a["local"], a["prefixlen"]) for a in links["data0"]["addr_info"] if a["family"] == "inet"] == [("10.242.1.50", 24)]
    routes = json.loads(sh("ip", "-j", "route", "show", ns=name).stdout)
    default = [r for r in routes if r["dst"] == "default"]
    assert default == [{**default[0], "gateway": "10.242.1.1", "dev": "data0"}]
    # The bridge's MTU follows driver_opts; the host end of the veth matches it.
    bridge = builder.networks["back"]["bridge"]
    assert json.loads(sh("ip", "-j", "link", "show", bridge).stdout)[0]["mtu"] == 1400
    # Reachable across the 1400-MTU network, by address, with a full-size packet.
    sh("ping", "-c1", "-W2", "-M", "do", "-s", "1372", "10.242.1.50", ns=other)


def test_netns_files_are_what_programs_see(builder, executor_guard):
    builder.network("n", "10.243.0.0/24")
    name = f"{builder.project}-app-1"
    builder.container(name, ["n"])
    executor.up(builder.plan())
    assert sh("cat", "/etc/resolv.conf", ns=name).stdout == "nameserver 127.0.0.11\noptions ndots:0\n"
    hosts = sh("cat", "/etc/hosts", ns=name).stdout
    assert f"10.243.0.2\t{name}" in hosts
    assert os.stat(f"/etc/netns/{name}").st_mode & 0o777 == 0o755


def test_namespace_sysctls_are_set_inside_only(builder, executor_guard):
    name = f"{builder.project}-sys-1"
    builder.network("n", "10.244.0.0/24")
    builder.container(name, ["n"], sysctls={"net.ipv4.ip_unprivileged_port_start": "80", "net.ipv4.conf.eth0.rp_filter": "2"})
    host_before = open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()
    executor.up(builder.plan())
    assert sh("cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", ns=name).stdout.strip() == "80"
    assert sh("cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter", ns=name).stdout.strip() == "2"
    assert open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read() == host_before


def test_network_mode_none_has_only_lo(builder, executor_guard):
    name = f"{builder.project}-none-1"
    unit = f"container:{name}"
    builder.add(O.NetnsCreate(unit, name))
    builder.add(O.FileWrite(unit, f"/etc/netns/{name}/resolv.conf", "nameserver 192.0.2.53\n"))
    executor.up(builder.plan())
    links = _addrs(name)
    assert list(links) == ["lo"] and "UP" in links["lo"]["flags"]
    assert sh("ip", "route", "show", ns=name).stdout == ""
    sh("ping", "-c1", "-W1", "127.0.0.1", ns=name)


def test_service_mode_shares_the_namespace(builder, executor_guard, echo_server):
    """`network_mode: service:X`: the sharer has no ops of its own; a program started in X's
    namespace (as the sharer would be) is reachable at X's address."""
    builder.network("n", "10.245.0.0/24")
    x = f"{builder.project}-x-1"
    ip_x = builder.container(x, ["n"])["n"].ip
    client = f"{builder.project}-c-1"
    builder.container(client, ["n"])
    executor.up(builder.plan())
    echo_server(x)  # the sharing service's process
    out = sh(sys.executable, "-c", CLIENT, str(ip_x), ns=client).stdout.splitlines()
    assert out[1] == "udp:hello"
