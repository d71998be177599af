"""Docker 27-29's network options on real traffic: gateway modes `routed` and `isolated`, an
IPv6-only network, per-endpoint sysctls (issue 13).

The outside world is a throwaway namespace (the uplink) that routes the routed network's subnet
via the host, as "direct routing" needs; the machine's own interfaces are never touched."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from conftest import Uplink, sh
from test_firewall_rules import SERVER, ping, probe
from test_ports import Up

COMPOSE = """
services:
  web:
    image: x
    networks: [routed]
    ports: ["18190:80"]
  nat:
    image: x
    networks: [plain]
  tr:
    image: x
    networks: [trusting]
    ports: ["18192:80"]
  lo:
    image: x
    networks: [local]
    ports: ["18193:80"]
  vault:
    image: x
    networks: [closed]
  v6a:
    image: x
    networks:
      v6only:
        driver_opts:
          com.docker.network.endpoint.sysctls: "net.ipv6.conf.IFNAME.hop_limit=33,net.ipv4.conf.IFNAME.log_martians=1"
  v6b:
    image: x
    networks: [v6only]
networks:
  routed:
    ipam: {{config: [{{subnet: 10.219.1.0/24}}]}}
    driver_opts: {{com.docker.network.bridge.gateway_mode_ipv4: routed}}
  plain:
    ipam: {{config: [{{subnet: 10.219.4.0/24}}]}}
  trusting:
    ipam: {{config: [{{subnet: 10.219.5.0/24}}]}}
    driver_opts: {{com.docker.network.bridge.trusted_host_interfaces: "{trusted}"}}
  local:
    ipam: {{config: [{{subnet: 10.219.6.0/24}}]}}
    driver_opts: {{com.docker.network.bridge.host_binding_ipv4: 127.0.0.1}}
  closed:
    internal: true
    ipam: {{config: [{{subnet: 10.219.2.0/24}}]}}
    driver_opts: {{com.docker.network.bridge.gateway_mode_ipv4: isolated}}
  v6only:
    enable_ipv4: false
    enable_ipv6: true
    ipam: {{config: [{{subnet: "fd17:219:3::/64"}}]}}
"""

HOST_PORT = 18191  # a host service on every address, started by the test
SINK_PORT = 18194  # a host UDP sink that never answers (so nothing is sent back anywhere)

SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(512)
    print(data.decode(), peer[0], flush=True)
"""


def sent(ns: str, host: str, port: int, word: str) -> None:
    code = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))")
    sh(sys.executable, "-c", code, host, str(port), word, ns=ns, check=False)


def received(sink: subprocess.Popen, wait: float = 1.0) -> str:
    import os
    import select
    import time

    out, end = "", time.monotonic() + wait
    while time.monotonic() < end:
        if select.select([sink.stdout], [], [], 0.1)[0]:
            out += os.read(sink.stdout.fileno(), 4096).decode()
    return out


def serve(ns: str | None, name: str, *specs: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", SERVER, name, *specs]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture(scope="module")
def up(kernel_lock, tmp_path_factory):
    tag = uuid.uuid4().hex[:7]
    uplink = Uplink(tag[:6], index=7)
    project = Up(tmp_path_factory.mktemp("gwmodes"), COMPOSE.format(trusted=uplink.host_if), tag)
    try:
        uplink.create()
        # direct routing: the outside world routes the routed network's subnet via the host
        sh("ip", "route", "add", "10.219.1.0/24", "via", uplink.host_ip, ns=uplink.ns)
        for n in (4, 5):
            sh("ip", "route", "add", f"10.219.{n}.0/24", "via", uplink.host_ip, ns=uplink.ns)
        project.start({"web": ("tcp:80", "tcp:81"), "nat": ("tcp:80",), "tr": ("tcp:80", "tcp:81"), "lo": ("tcp:80",), "vault": ("tcp:80",),
                       "v6a": ("tcp6:80",), "v6b": ("tcp6:80",)})
        project.servers.append(serve(uplink.ns, "uplink", "tcp:80"))
        project.servers.append(serve(None, "host", f"tcp:{HOST_PORT}"))
        project.uplink = uplink
        yield project
    finally:
        project.stop()
        uplink.destroy()


def test_routed_is_reached_at_the_container_address_only_on_published_ports(up):
    u, web = up.uplink, up.ip("web")
    # published container port 80: open at the container's own address, the peer not translated
    assert probe(u.ns, "tcp", web, 80) == f"web:80 {u.peer_ip}"
    # port 81 listens too, but is not published: dropped
    assert probe(u.ns, "tcp", web, 81) == "timeout"
    # the host port of the mapping is not used in routed mode
    assert not probe(u.ns, "tcp", u.host_ip, 18190).startswith("web:")
    # control: a nat network's container is not reachable directly, published or not
    assert probe(u.ns, "tcp", up.ip("nat"), 80) == "timeout"


def test_routed_goes_out_with_the_container_address_no_masquerade(up):
    u = up.uplink
    assert probe(up.ns("web"), "tcp", u.peer_ip, 80) == f"uplink:80 {up.ip('web')}"
    # control: the nat network is masqueraded to the host's address on the uplink
    assert probe(up.ns("nat"), "tcp", u.peer_ip, 80) == f"uplink:80 {u.host_ip}"


def test_isolated_bridge_has_no_address_and_the_host_is_unreachable(up):
    u = up.uplink
    vault_ns = up.ns("vault")
    link = sh("ip", "-o", "link", "show", "dev", "eth0", ns=vault_ns).stdout
    peer_index = link.split("@if")[1].split(":")[0]
    host_veth = next(line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link").stdout.splitlines()
                     if line.startswith(f"{peer_index}:"))
    bridge = sh("cat", f"/sys/class/net/{host_veth}/master/uevent").stdout.split("INTERFACE=")[1].split()[0]
    assert sh("ip", "-o", "addr", "show", "dev", bridge).stdout.count(" inet ") == 0
    assert not ping(vault_ns, "10.219.2.1")
    # a root process in the container routes a host address onto its own link; the host would
    # answer ARP for it, but nothing from the isolated bridge is delivered to the host
    sh("ip", "route", "add", f"{u.host_ip}/32", "dev", "eth0", ns=vault_ns)
    assert probe(vault_ns, "tcp", u.host_ip, HOST_PORT) in ("timeout", "error 113")
    # control: the same host service answers a container of a network with a gateway
    assert probe(up.ns("nat"), "tcp", u.host_ip, HOST_PORT).startswith(f"host:{HOST_PORT} ")
    # containers of the isolated network still reach each other's addresses on their link: vault alone here
    assert probe(vault_ns, "tcp", up.ip("vault"), 80).startswith("vault:80")


def test_isolated_drops_at_the_host_what_a_container_routes_to_it(up):
    """One-way UDP to a host sink (nothing answers, so nothing leaves through the host's own
    routes): dropped from the isolated network, delivered from a nat one; and, the control,
    delivered from the isolated network too once the input rule is flushed (`up` repairs it)."""
    from test_ports import cli

    u, vault_ns = up.uplink, up.ns("vault")
    sh("ip", "route", "replace", f"{u.host_ip}/32", "dev", "eth0", ns=vault_ns)
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(SINK_PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        sent(vault_ns, u.host_ip, SINK_PORT, "from-isolated")
        sent(up.ns("nat"), u.host_ip, SINK_PORT, "from-nat")
        got = received(sink)
        assert "from-nat" in got and "from-isolated" not in got
        table = f"cn-{up.project}"
        sh("nft", "flush", "chain", "inet", table, "input")
        try:
            sent(vault_ns, u.host_ip, SINK_PORT, "unguarded")
            assert f"unguarded {up.ip('vault')}" in received(sink)
        finally:
            cli("up", "--quiet", project=up.project, file=up.file)
        assert "gateway mode isolated" in sh("nft", "list", "chain", "inet", table, "input").stdout
        sent(vault_ns, u.host_ip, SINK_PORT, "again")
        assert "again" not in received(sink)
    finally:
        sink.kill()
        sink.wait()


def test_ipv6_only_network_carries_traffic_without_ipv4(up):
    a, b = up.ns("v6a"), up.ns("v6b")
    assert sh("ip", "-4", "-o", "addr", "show", "dev", "eth0", ns=a).stdout.strip() == ""
    assert "default via fd17:219:3::1" in sh("ip", "-6", "route", "show", ns=a).stdout
    b6 = up.containers["v6b"]["Interfaces"][0]["IPv6Address"].split("/")[0]
    a6 = up.containers["v6a"]["Interfaces"][0]["IPv6Address"].split("/")[0]
    assert b6.startswith("fd17:219:3::") and not up.containers["v6b"]["Interfaces"][0].get("IPv4Address")
    assert probe(a, "tcp", b6, 80) == f"v6b:80 {a6}"
    # the host reaches it over IPv6 through its gateway address
    assert probe(None, "tcp", b6, 80) == "v6b:80 fd17:219:3::1"


def test_endpoint_sysctls_are_set_on_that_interface_inside(up):
    ns = up.ns("v6a")
    assert sh("cat", "/proc/sys/net/ipv6/conf/eth0/hop_limit", ns=ns).stdout.strip() == "33"
    assert sh("cat", "/proc/sys/net/ipv4/conf/eth0/log_martians", ns=ns).stdout.strip() == "1"
    # only that interface: lo and the namespace's defaults keep theirs
    assert sh("cat", "/proc/sys/net/ipv6/conf/lo/hop_limit", ns=ns).stdout.strip() == "64"
    assert sh("cat", "/proc/sys/net/ipv6/conf/default/hop_limit", ns=ns).stdout.strip() == "64"
    # and not on the host
    assert sh("cat", "/proc/sys/net/ipv6/conf/default/hop_limit").stdout.strip() != "33"


def test_trusted_host_interface_reaches_published_ports_at_the_container_address(up):
    u, tr = up.uplink, up.ip("tr")
    assert probe(u.ns, "tcp", tr, 80) == f"tr:80 {u.peer_ip}"
    assert probe(u.ns, "tcp", tr, 81) == "timeout"  # not published
    assert probe(u.ns, "tcp", u.host_ip, 18192) == f"tr:80 {u.peer_ip}"  # still NAT through the host


def test_host_binding_keeps_ports_without_a_host_address_on_loopback(up):
    u = up.uplink
    assert probe(None, "tcp", "127.0.0.1", 18193) == "lo:80 10.219.6.1"
    assert not probe(u.ns, "tcp", u.host_ip, 18193).startswith("lo:")
    assert "127.0.0.1:18193->80/tcp" in up.containers["lo"]["Ports"]


def test_up_again_and_check_find_nothing_to_change(up):
    """The new objects (the input chain, sysctls named by path, IPv6-only interfaces) read back
    from the kernel as planned."""
    from test_ports import cli

    proc = cli("check", project=up.project, file=up.file, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
