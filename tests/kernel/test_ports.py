"""Published ports of a whole compose project brought up by `compose-net up`.

Reachability from the host's 127.0.0.1, from a host address (the uplink's host side, never the
machine's eth0), from another namespace (the uplink), hairpin from containers, a range as one
rule, udp, `host_ip`; then `down` leaves no table behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import Uplink, sh
from compose_net.executor import nft
from test_firewall_rules import SERVER, probe

COMPOSE = """
services:
  web:
    image: x
    networks: [front]
    ports:
      - "18080:80"
      - "127.0.0.1:18081:81"
      - "{host_ip}:18443:443"
      - "19000-19002:100-102"
      - "7000-7002:7000-7002/udp"
      - "15353:5353/udp"
  client:
    image: x
    networks: [front]
  other:
    image: x
    networks: [back]
networks:
  front:
    ipam: {{config: [{{subnet: 10.216.1.0/24}}]}}
  back:
    ipam: {{config: [{{subnet: 10.216.2.0/24}}]}}
"""


def cli(*args: str, project: str, file: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "compose_net", "-p", project]
    if file is not None:
        argv += ["-f", str(file)]
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"compose-net {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


class Up:
    """A project brought up from a compose file, with one test server per container."""

    def __init__(self, tmp: Path, text: str, tag: str):
        self.project = "t" + tag
        self.file = tmp / "compose.yml"
        self.file.write_text(textwrap.dedent(text))
        self.servers: list[subprocess.Popen] = []
        self.containers: dict[str, dict] = {}

    def start(self, listen: dict[str, tuple[str, ...]]) -> None:
        cli("up", "--quiet", project=self.project, file=self.file)
        for c in json.loads(cli("ps", "--format", "json", project=self.project).stdout):
            self.containers[c["Service"]] = c
        for service, specs in listen.items():
            ns = self.containers[service]["Namespace"]
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, service, *specs],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.servers.append(proc)
            assert proc.stdout.readline().strip() == "ready"

    def ns(self, service: str) -> str:
        return self.containers[service]["Namespace"]

    def ip(self, service: str, n: int = 0) -> str:
        return self.containers[service]["Interfaces"][n]["IPv4Address"].split("/")[0]

    def stop(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        cli("down", "--quiet", project=self.project, check=False)


@pytest.fixture(scope="module")
def up(kernel_lock, tmp_path_factory):
    tag = uuid.uuid4().hex[:7]
    uplink = Uplink(tag[:6], index=2)
    project = Up(tmp_path_factory.mktemp("ports"), COMPOSE.format(host_ip=uplink.host_ip), tag)
    try:
        uplink.create()
        project.start({"web": ("tcp:80", "tcp:81", "tcp:443", "tcp:100", "tcp:101", "tcp:102",
                               "udp:7000", "udp:7001", "udp:7002", "udp:5353"),
                       "client": ("tcp:80",), "other": ("tcp:80",)})
        project.uplink = uplink
        yield project
    finally:
        project.stop()
        uplink.destroy()


def test_ps_shows_the_published_ports(up):
    assert up.containers["web"]["Ports"].startswith("0.0.0.0:18080->80/tcp, 127.0.0.1:18081->81/tcp, ")
    assert "0.0.0.0:19000-19002->100-102/tcp" in up.containers["web"]["Ports"]


def test_from_host_loopback(up):
    gw = "10.216.1.1"
    assert probe(None, "tcp", "127.0.0.1", 18080) == f"web:80 {gw}"
    assert probe(None, "tcp", "127.0.0.1", 18081) == f"web:81 {gw}"


def test_from_a_host_address(up):
    hp = up.uplink.host_ip
    assert probe(None, "tcp", hp, 18080) == f"web:80 {hp}"


def test_from_another_namespace(up):
    u = up.uplink
    assert probe(u.ns, "tcp", u.host_ip, 18080) == f"web:80 {u.peer_ip}"
    # a container of another network of the project goes through a host address too
    assert probe(up.ns("other"), "tcp", u.host_ip, 18080) == "web:80 10.216.1.1"


def test_hairpin_from_the_same_network(up):
    hp = up.uplink.host_ip
    assert probe(up.ns("client"), "tcp", hp, 18080) == "web:80 10.216.1.1"
    assert probe(up.ns("client"), "tcp", "10.216.1.1", 18080) == "web:80 10.216.1.1"


def test_hairpin_to_its_own_published_port(up):
    veth = up.containers["web"]["Interfaces"][0]["HostInterface"]
    # with br_netfilter the reply to itself is bridged back out of its own port: the plan sets
    # hairpin mode on the ports of containers that publish
    assert Path(f"/sys/class/net/{veth}/brport/hairpin_mode").read_text().strip() == "1"
    assert probe(up.ns("web"), "tcp", up.uplink.host_ip, 18080) == "web:80 10.216.1.1"


def test_a_range_maps_port_by_port_and_is_one_rule(up):
    u = up.uplink
    for offset in range(3):
        assert probe(u.ns, "tcp", u.host_ip, 19000 + offset) == f"web:{100 + offset} {u.peer_ip}"
        assert probe(u.ns, "udp", u.host_ip, 7000 + offset) == f"web:{7000 + offset} {u.peer_ip}"
    listing = nft.list_table("inet", f"cn-{up.project}")
    rules = [x["rule"] for x in listing["nftables"] if "rule" in x and x["rule"]["chain"] == "ports"]
    assert len(rules) == 6


def test_udp(up):
    u = up.uplink
    assert probe(u.ns, "udp", u.host_ip, 15353) == f"web:5353 {u.peer_ip}"


def test_host_ip_restricts(up):
    u = up.uplink
    assert probe(u.ns, "tcp", u.host_ip, 18081) == "refused"  # loopback only
    assert probe(u.ns, "tcp", u.host_ip, 18443) == f"web:443 {u.peer_ip}"
    assert probe(None, "tcp", "127.0.0.1", 18443) == "refused"  # that address only


def test_only_the_target_port_is_open_on_the_container(up):
    # Docker: container -> service:published-port is refused, only the target port listens
    assert probe(up.ns("client"), "tcp", up.ip("web"), 18080) == "refused"
    assert probe(up.ns("client"), "tcp", up.ip("web"), 80) == f"web:80 {up.ip('client')}"


COMPOSE6 = """
services:
  web6:
    image: x
    networks: [dual]
    ports: ["18085:80", "18086:86/udp"]
networks:
  dual:
    enable_ipv6: true
    ipam:
      config: [{subnet: 10.216.6.0/24}, {subnet: "fd17:216:6::/64"}]
"""


@pytest.fixture(scope="module")
def up6(kernel_lock, tmp_path_factory):
    tag = uuid.uuid4().hex[:7]
    uplink = Uplink(tag[:6], index=4)
    project = Up(tmp_path_factory.mktemp("ports6"), COMPOSE6, tag)
    try:
        uplink.create()
        uplink.host_ip6, uplink.peer_ip6 = "fd17:218::1", "fd17:218::2"
        sh("ip", "-6", "addr", "add", f"{uplink.host_ip6}/64", "dev", uplink.host_if, "nodad")
        sh("ip", "-6", "addr", "add", f"{uplink.peer_ip6}/64", "dev", uplink.peer_if, "nodad", ns=uplink.ns)
        project.start({"web6": ("tcp6:80", "udp6:86", "tcp:80")})
        srv = subprocess.Popen(["ip", "netns", "exec", uplink.ns, sys.executable, "-c", SERVER, "uplink", "tcp6:80"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        project.servers.append(srv)
        assert srv.stdout.readline().strip() == "ready"
        project.uplink = uplink
        yield project
    finally:
        project.stop()
        uplink.destroy()


def test_ipv6_published_port_and_masquerade(up6):
    u = up6.uplink
    web6 = up6.containers["web6"]
    v6 = web6["Interfaces"][0]["IPv6Address"].split("/")[0]
    assert v6.startswith("fd17:216:6::")
    assert ":::18085->80/tcp" in web6["Ports"]
    # outbound over IPv6 is masqueraded to the host side's address
    assert probe(up6.ns("web6"), "tcp", u.peer_ip6, 80) == f"uplink:80 {u.host_ip6}"
    # the published port over IPv6, from another namespace and from the host itself
    assert probe(u.ns, "tcp", u.host_ip6, 18085) == f"web6:80 {u.peer_ip6}"
    assert probe(u.ns, "udp", u.host_ip6, 18086) == f"web6:86 {u.peer_ip6}"
    assert probe(None, "tcp", u.host_ip6, 18085) == f"web6:80 {u.host_ip6}"
    # and over IPv4 as well
    assert probe(u.ns, "tcp", u.host_ip, 18085) == f"web6:80 {u.peer_ip}"


def test_legacy_bridge_publishes_and_is_isolated(kernel_lock, tmp_path, uplink):
    """network_mode: bridge (the shared cn0) publishes like a project network."""
    tag = uuid.uuid4().hex[:7]
    legacy = Up(tmp_path, """
services:
  old:
    image: x
    network_mode: bridge
    ports: ["18095:80"]
  new:
    image: x
    networks: [own]
networks:
  own: {ipam: {config: [{subnet: 10.216.7.0/24}]}}
""", tag)
    try:
        legacy.start({"old": ("tcp:80",), "new": ("tcp:80",)})
        old_ip = legacy.ip("old")
        assert old_ip.startswith("172.17.")
        assert probe(uplink.ns, "tcp", uplink.host_ip, 18095) == f"old:80 {uplink.peer_ip}"
        assert probe(None, "tcp", uplink.host_ip, 18095) == f"old:80 {uplink.host_ip}"
        # cn0 is isolated from the project's own networks, both ways
        assert probe(legacy.ns("new"), "tcp", old_ip, 80) == "timeout"
        assert probe(legacy.ns("old"), "tcp", legacy.ip("new"), 80) == "timeout"
    finally:
        legacy.stop()


def test_the_table_explains_itself(up):
    """Each rule's comment carries the plan's words for it, through the JSON path and back, and
    the text listing loads again (no comment too long for nft's parser, no stray quote)."""
    from compose_net import state

    # the table the project's up applied, as its journal records it
    (fw,) = [op.to_json() for op in state.Journal(up.project).read().ops if op.kind == "nft_apply"]
    assert isinstance(fw["ruleset"], dict)
    listing = nft.list_table("inet", fw["table"])
    comments = [x["rule"].get("comment") for x in listing["nftables"] if "rule" in x]
    assert sorted(comments) == sorted(f"{group}: {words}" for group, words in fw["rules"])
    assert "published ports: 0.0.0.0:18080 -> " + f"{up.project}-web-1 10.216.1.2:80/tcp" in comments
    text = sh("nft", "list", "table", "inet", fw["table"]).stdout
    assert 'comment "localhost guard: to 127.0.0.0/8 through any interface but lo: dropped"' in text
    assert sh("nft", "-c", "-f", "-", input=text, check=False).returncode == 0
