"""Sharing the host with Docker, ufw and firewalld (issue 10), on simulated hosts.

A simulated host is a network namespace and a mount namespace of its own (a held `unshare`
process, with a private /run and /etc/netns), so compose-net's state dir, /run/netns, its
nftables tables and the other tools' rules all live inside it. The other tool's rules are the
exact ones it leaves, loaded with iptables-nft (`iptables-restore`) or nft; the whole
compose-net CLI runs inside the simulated host through nsenter. Killing the held process takes
everything with it, whatever a failing test left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from test_firewall_rules import CLIENT, SERVER

pytestmark = pytest.mark.skipif(shutil.which("iptables-restore") is None, reason="iptables (iptables-nft) is not installed")

REPO = Path(__file__).resolve().parents[2]

# `iptables-save` of a host where dockerd 20.10 runs with no container: docker0 172.17.0.0/16
DOCKER_RULES = """\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
"""

# ufw's filter table (its forward part) with DEFAULT_FORWARD_POLICY="DROP", as `ufw enable`
# leaves it; the other owner's bridge (LXD's lxdbr0) is allowed by a user rule
UFW_RULES = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-forward - [0:0]
:ufw-after-forward - [0:0]
:ufw-user-forward - [0:0]
:ufw-reject-forward - [0:0]
-A FORWARD -j ufw-before-forward
-A FORWARD -j ufw-after-forward
-A FORWARD -j ufw-reject-forward
-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-forward -p icmp -m icmp --icmp-type 3 -j ACCEPT
-A ufw-before-forward -j ufw-user-forward
-A ufw-user-forward -i lxdbr0 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o lxdbr0 -j MASQUERADE
COMMIT
"""

COMPOSE = """
services:
  web:
    image: x
    networks: [front]
    ports: ["18080:80"]
  client:
    image: x
    networks: [front]
  other:
    image: x
    networks: [back]
  legacy:
    image: x
    network_mode: bridge
networks:
  front:
    ipam: {config: [{subnet: 10.217.1.0/24}]}
  back:
    ipam: {config: [{subnet: 10.217.2.0/24}]}
"""

UPLINK = "198.51.100.2"  # the outside world, a namespace inside the simulated host
HOST_UP = "198.51.100.1"


class SimHost:
    """A network + mount namespace held by a sleeping process, with a private /run and /etc/netns."""

    def __init__(self, tmp: Path):
        self.etc = tmp / "etc-netns"
        self.etc.mkdir()
        os.makedirs("/etc/netns", exist_ok=True)  # the bind mount's target; iproute2's own directory
        # sysfs shows the links of the namespace that mounts it: the simulated host needs its own
        script = (f"mount -t sysfs sysfs /sys && mount -t tmpfs tmpfs /run && mkdir -p /run/netns /run/utsns && "
                  f"mount --bind {self.etc} /etc/netns && ip link set lo up && echo ready && exec sleep infinity")
        self.proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def argv(self, *args: str, ns: str | None = None) -> list[str]:
        inner = ["ip", "netns", "exec", ns, *args] if ns else list(args)
        return ["nsenter", "-t", str(self.proc.pid), "--net", "--mount", "--", *inner]

    def sh(self, *args: str, ns: str | None = None, check: bool = True, stdin: str | None = None,
           env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args, ns=ns), input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        return proc

    def cli(self, *args: str, project: str, file: Path, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return self.sh(sys.executable, "-m", "compose_net", "-p", project, "-f", str(file), *args,
                       check=check, env=env)

    def veth_ns(self, ns: str, host_if: str, address: str, gateway: str | None, master: str | None = None,
                host_address: str | None = None) -> None:
        """A namespace inside the simulated host, joined to it by a veth pair."""
        self.sh("ip", "netns", "add", ns)
        self.sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        if master:
            self.sh("ip", "link", "set", host_if, "master", master)
        if host_address:
            self.sh("ip", "addr", "add", host_address, "dev", host_if)
        self.sh("ip", "link", "set", host_if, "up")
        self.sh("ip", "link", "set", "lo", "up", ns=ns)
        self.sh("ip", "addr", "add", address, "dev", "eth0", ns=ns)
        self.sh("ip", "link", "set", "eth0", "up", ns=ns)
        if gateway:
            self.sh("ip", "route", "add", "default", "via", gateway, ns=ns)

    def bridge(self, name: str, address: str) -> None:
        self.sh("ip", "link", "add", name, "type", "bridge")
        self.sh("ip", "addr", "add", address, "dev", name)
        self.sh("ip", "link", "set", name, "up")

    def serve(self, ns: str, name: str, *specs: str) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv(sys.executable, "-c", SERVER, name, *specs, ns=ns),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def probe(self, ns: str, host: str, port: int, timeout: float = 1.5) -> str:
        return subprocess.run(self.argv(sys.executable, "-c", CLIENT, "tcp", host, str(port), str(timeout), ns=ns),
                              capture_output=True, text=True, timeout=15).stdout.strip()

    def ruleset(self) -> str:
        """`nft list ruleset` without the counters iptables gives its rules (traffic moves them)."""
        import re

        return re.sub(r"counter packets \d+ bytes \d+ ", "", self.sh("nft", "list", "ruleset").stdout)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def simhost(tmp_path):
    host = SimHost(tmp_path)
    servers: list[subprocess.Popen] = []
    host.servers = servers
    try:
        yield host
    finally:
        for s in servers:
            s.kill()
            s.wait()
        host.close()


def _common(host: SimHost, tmp: Path, foreign_ns: str, foreign_ip: str):
    """The uplink, the compose project up, servers in its containers and in the other tool's
    container, and the checks both sides must pass; returns (project, file, before-ruleset)."""
    host.sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    host.veth_ns("upl", "upl-h", f"{UPLINK}/24", None, host_address=f"{HOST_UP}/24")
    host.servers.append(host.serve("upl", "uplink", "tcp:9000"))
    project = "t" + uuid.uuid4().hex[:8]
    file = tmp / "compose.yml"
    file.write_text(textwrap.dedent(COMPOSE))
    return project, file


def _check_project(host: SimHost, project: str, foreign_ns: str, foreign_ip: str) -> None:
    web, client, other, legacy = (f"{project}-{s}-1" for s in ("web", "client", "other", "legacy"))
    host.servers.append(host.serve(web, "web", "tcp:80"))
    host.servers.append(host.serve(other, "other", "tcp:80"))
    # outbound, masqueraded to the host's uplink address, from a network and from cn0
    assert host.probe(client, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
    assert host.probe(legacy, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
    # the published port, from the outside world
    assert host.probe("upl", HOST_UP, 18080).startswith("web:80 ")
    # isolation between the project's networks holds
    assert host.probe(client, "10.217.2.2", 80) == "timeout"
    assert host.probe(client, "10.217.1.2", 80).startswith("web:80 ")
    # the other tool's container still reaches the outside world; it does not reach ours directly
    assert host.probe(foreign_ns, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
    assert host.probe(foreign_ns, "10.217.1.2", 80) == "timeout"
    # and our containers do not reach its container directly either (its FORWARD still decides)
    assert host.probe(client, foreign_ip, 80) == "timeout"


def test_docker_20_10_host(simhost, tmp_path):
    host = simhost
    host.bridge("docker0", "172.17.0.1/16")
    host.sh("iptables-restore", stdin=DOCKER_RULES)
    host.veth_ns("dk", "vethdk0", "172.17.0.2/16", "172.17.0.1", master="docker0")
    host.servers.append(host.serve("dk", "docker", "tcp:80"))
    project, file = _common(host, tmp_path, "dk", "172.17.0.2")
    before = host.ruleset()
    assert host.probe("dk", UPLINK, 9000) == f"uplink:9000 {HOST_UP}"

    plan = host.cli("up", "--dry-run", project=project, file=file).stdout
    assert "drops forwarded traffic (Docker)" in plan and "iptables -t filter -I DOCKER-USER -i cn-" in plan
    assert "172.17.0.0/16 is in use" in plan and "COMPOSE_NET_BIP" in plan
    assert host.ruleset() == before  # a dry run changes nothing
    try:
        host.cli("up", "--quiet", project=project, file=file)
        # cn0 went elsewhere: docker0 keeps 172.17.0.0/16
        assert "inet 172.18.0.1/16" in host.sh("ip", "-4", "addr", "show", "cn0").stdout
        rules = host.sh("iptables", "-S", "DOCKER-USER").stdout.splitlines()
        ours = [r for r in rules if f"compose-net {project}" in r]
        assert len(ours) == 6 and rules[-1] == "-A DOCKER-USER -j RETURN"
        # Docker's own management of its chain still works (no "chain is incompatible")
        host.sh("iptables", "-L", "DOCKER-USER", "-n")
        host.sh("iptables", "-I", "DOCKER-USER", "-s", "192.0.2.9", "-j", "DROP")
        host.sh("iptables", "-D", "DOCKER-USER", "-s", "192.0.2.9", "-j", "DROP")
        _check_project(host, project, "dk", "172.17.0.2")
        # a second up finds everything in place
        assert host.cli("check", project=project, file=file, check=False).returncode == 0
    finally:
        host.cli("down", project=project, file=file, check=False)
    assert host.ruleset() == before
    assert host.probe("dk", UPLINK, 9000) == f"uplink:9000 {HOST_UP}"


def test_docker_user_rules_are_what_lets_the_project_through(simhost, tmp_path):
    """The control: without the rules in DOCKER-USER, Docker's policy drop stops the project."""
    host = simhost
    host.bridge("docker0", "172.17.0.1/16")
    host.sh("iptables-restore", stdin=DOCKER_RULES)
    project, file = _common(host, tmp_path, "", "")
    try:
        host.cli("up", "--quiet", project=project, file=file)
        client = f"{project}-client-1"
        assert host.probe(client, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
        for line in host.sh("iptables", "-S", "DOCKER-USER").stdout.splitlines():
            if f"compose-net {project}" in line:
                host.sh("sh", "-c", "iptables " + line.replace("-A ", "-D ", 1))
        assert host.probe(client, UPLINK, 9000) == "timeout"
        # up puts them back (reconcile observes them)
        assert host.cli("check", project=project, file=file, check=False).returncode == 1
        host.cli("up", "--quiet", project=project, file=file)
        assert host.probe(client, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
    finally:
        host.cli("down", project=project, file=file, check=False)


def test_ufw_forward_drop_host(simhost, tmp_path):
    host = simhost
    host.bridge("lxdbr0", "172.17.0.1/16")
    host.sh("iptables-restore", stdin=UFW_RULES)
    host.veth_ns("lx", "vethlx0", "172.17.0.2/16", "172.17.0.1", master="lxdbr0")
    host.servers.append(host.serve("lx", "lxd", "tcp:80"))
    project, file = _common(host, tmp_path, "lx", "172.17.0.2")
    before = host.ruleset()
    try:
        host.cli("up", "--quiet", project=project, file=file)
        rules = host.sh("iptables", "-S", "ufw-user-forward").stdout
        assert rules.count(f"compose-net {project}") == 6 and "-A ufw-user-forward -i lxdbr0 -j ACCEPT" in rules
        _check_project(host, project, "lx", "172.17.0.2")
    finally:
        host.cli("down", project=project, file=file, check=False)
    assert host.ruleset() == before


def test_hand_made_forward_drop_host(simhost, tmp_path):
    host = simhost
    host.sh("iptables", "-P", "FORWARD", "DROP")
    host.sh("iptables", "-A", "FORWARD", "-i", "upl-h", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    project, file = _common(host, tmp_path, "", "")
    before = host.ruleset()
    try:
        host.cli("up", "--quiet", project=project, file=file)
        rules = host.sh("iptables", "-S", "FORWARD").stdout.splitlines()
        assert f"compose-net {project}" in rules[1]  # at the head, after the policy line
        client = f"{project}-client-1"
        assert host.probe(client, UPLINK, 9000) == f"uplink:9000 {HOST_UP}"
        host.servers.append(host.serve(f"{project}-web-1", "web", "tcp:80"))
        assert host.probe("upl", HOST_UP, 18080).startswith("web:80 ")
    finally:
        host.cli("down", project=project, file=file, check=False)
    assert host.ruleset() == before


# firewalld 1.3's table (nftables backend) as `nft list ruleset` shows its forward part: interfaces
# in no zone are rejected; the uplink is in zone public, which forwards within itself only
FIREWALLD_TABLE = """
table inet firewalld {
    chain filter_INPUT {
        type filter hook input priority filter + 10; policy accept;
        ct state { established, related } accept
        iifname "lo" accept
    }
    chain filter_FORWARD {
        type filter hook forward priority filter + 10; policy accept;
        ct state { established, related } accept
        ct status dnat accept
        iifname "lo" accept
        ct state invalid drop
        jump filter_FORWARD_POLICIES
        reject with icmpx admin-prohibited
    }
    chain filter_FORWARD_POLICIES {
        iifname "upl-h" oifname "upl-h" accept
    }
}
"""

# stands in for firewall-cmd talking to a running firewalld: records the calls, keeps zones in a file
FAKE_FIREWALL_CMD = """#!/bin/sh
echo "$*" >> {log}
case "$1" in
  --state) echo running; exit 0;;
esac
iface=${{2#*-interface=}}
case "$2" in
  --query-interface=*) grep -qx "$iface" {zones} 2>/dev/null; exit $?;;
  --add-interface=*) echo "$iface" >> {zones}; exit 0;;
  --remove-interface=*) grep -vx "$iface" {zones} > {zones}.new; mv {zones}.new {zones}; exit 0;;
esac
exit 2
"""


def test_firewalld_table_without_firewalld_warns_with_the_command(simhost, tmp_path):
    host = simhost
    host.sh("nft", "-f", "-", stdin=FIREWALLD_TABLE)
    project, file = _common(host, tmp_path, "", "")
    before = host.ruleset()
    plan = host.cli("up", "--dry-run", project=project, file=file).stdout
    assert "firewalld does not run" in plan and "firewall-cmd --zone=trusted --add-interface=cn-" in plan
    assert "firewall-cmd --zone=trusted --add-interface=cn0" in plan
    try:
        host.cli("up", "--quiet", project=project, file=file)
        # what the warning is about: firewalld's table rejects the project's forwarded traffic
        assert host.probe(f"{project}-client-1", UPLINK, 9000) != f"uplink:9000 {HOST_UP}"
    finally:
        host.cli("down", project=project, file=file, check=False)
    assert host.ruleset() == before


def test_firewalld_running_gets_the_bridges_in_trusted_and_back_out(simhost, tmp_path):
    """Plumbing only: a stand-in firewall-cmd (no firewalld runs on the test machine) records
    that up adds each bridge to the zone through firewall-cmd and down takes it out again."""
    host = simhost
    host.sh("nft", "-f", "-", stdin=FIREWALLD_TABLE)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log, zones = tmp_path / "calls", tmp_path / "zones"
    fake = bindir / "firewall-cmd"
    fake.write_text(FAKE_FIREWALL_CMD.format(log=log, zones=zones))
    fake.chmod(0o755)
    project, file = _common(host, tmp_path, "", "")
    env_path = f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    old = os.environ.get("PATH")
    os.environ["PATH"] = env_path
    try:
        plan = host.cli("up", "--dry-run", project=project, file=file).stdout
        assert "firewall-cmd --zone=trusted --add-interface=cn0" in plan and "firewalld runs" in plan
        try:
            host.cli("up", "--quiet", project=project, file=file)
            added = zones.read_text().split()
            assert len(added) == 3 and "cn0" in added and all(a.startswith("cn") for a in added)
            assert all(f"--add-interface={a}" in plan for a in added)
            assert host.cli("check", project=project, file=file, check=False).returncode == 0
        finally:
            host.cli("down", project=project, file=file, check=False)
        assert zones.read_text().split() == []
        assert any(c.startswith("--zone=trusted --remove-interface=cn0") for c in log.read_text().splitlines())
    finally:
        os.environ["PATH"] = old or ""
