"""Isolation, internal networks, icc and masquerade of compose projects brought up by `up`.

Every "blocked" expectation is checked against a control: the same probe with the project's
table removed gets through, so the firewall, not a broken topology, is what blocks it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import Uplink, sh
from compose_net.executor import nft
from test_firewall_rules import SERVER, ping, probe
from test_ports import Up, cli

MAIN = """
services:
  a1: {image: x, networks: [front]}
  a2: {image: x, networks: [front]}
  b1: {image: x, networks: [back]}
  i1: {image: x, networks: [isolated]}
  i2: {image: x, networks: [isolated]}
  c1: {image: x, networks: [quiet]}
  c2: {image: x, networks: [quiet], ports: ["18097:80"]}
  p1: {image: x, networks: [plain]}
networks:
  front: {ipam: {config: [{subnet: 10.217.1.0/24}]}}
  back: {ipam: {config: [{subnet: 10.217.2.0/24}]}}
  isolated:
    internal: true
    ipam: {config: [{subnet: 10.217.3.0/24}]}
  quiet:
    driver_opts: {com.docker.network.bridge.enable_icc: "false"}
    ipam: {config: [{subnet: 10.217.4.0/24}]}
  plain:
    driver_opts: {com.docker.network.bridge.enable_ip_masquerade: "false"}
    ipam: {config: [{subnet: 10.217.5.0/24}]}
"""

NEIGHBOUR = """
services:
  x1: {image: x}
networks:
  default: {ipam: {config: [{subnet: 10.217.9.0/24}]}}
"""


@pytest.fixture(scope="module")
def world(kernel_lock, tmp_path_factory):
    tag = uuid.uuid4().hex[:7]
    uplink = Uplink(tag[:6], index=3)
    main = Up(tmp_path_factory.mktemp("main"), MAIN, tag)
    neighbour = Up(tmp_path_factory.mktemp("neighbour"), NEIGHBOUR, tag + "n")
    try:
        uplink.create()
        # Routes back to the container subnets: without masquerade the uplink could answer.
        sh("ip", "route", "add", "10.217.0.0/16", "via", uplink.host_ip, ns=uplink.ns)
        main.start({s: ("tcp:80",) for s in ("a1", "a2", "b1", "i1", "i2", "c1", "c2", "p1")})
        neighbour.start({"x1": ("tcp:80",)})
        srv = subprocess.Popen(["ip", "netns", "exec", uplink.ns, sys.executable, "-c", SERVER, "uplink", "tcp:80"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        main.servers.append(srv)
        assert srv.stdout.readline().strip() == "ready"
        main.uplink = uplink
        main.neighbour = neighbour
        yield main
    finally:
        main.stop()
        neighbour.stop()
        uplink.destroy()


def without_table(up: Up, check):
    """`check()` with the project's table deleted (a firewall reload), then `up` repairs it."""
    table = f"cn-{up.project}"
    nft.delete_table("inet", table)
    try:
        return check()
    finally:
        cli("up", project=up.project, file=up.file)
        assert nft.table_exists("inet", table)


def test_same_network_reaches_without_nat(world):
    assert probe(world.ns("a2"), "tcp", world.ip("a1"), 80) == f"a1:80 {world.ip('a2')}"


def test_networks_of_a_project_are_isolated_gateways_are_not(world):
    assert probe(world.ns("a1"), "tcp", world.ip("b1"), 80) == "timeout"
    assert probe(world.ns("b1"), "tcp", world.ip("a1"), 80) == "timeout"
    assert ping(world.ns("a1"), "10.217.2.1")  # the other network's gateway
    assert ping(world.ns("a1"), world.uplink.host_ip)  # a host address
    assert without_table(world, lambda: probe(world.ns("a1"), "tcp", world.ip("b1"), 80)) \
        == f"b1:80 {world.ip('a1')}"


def test_projects_are_isolated_from_each_other(world):
    x1 = world.neighbour
    assert probe(x1.ns("x1"), "tcp", world.ip("a1"), 80) == "timeout"
    assert probe(world.ns("a1"), "tcp", x1.ip("x1"), 80) == "timeout"
    assert ping(x1.ns("x1"), "10.217.1.1")


def test_outbound_is_masqueraded_unless_disabled(world):
    u = world.uplink
    assert probe(world.ns("a1"), "tcp", u.peer_ip, 80) == f"uplink:80 {u.host_ip}"
    assert probe(world.neighbour.ns("x1"), "tcp", u.peer_ip, 80) == f"uplink:80 {u.host_ip}"
    # enable_ip_masquerade: false: forwarded, but with the container's own source
    assert probe(world.ns("p1"), "tcp", u.peer_ip, 80) == f"uplink:80 {world.ip('p1')}"


def test_no_direct_connections_from_outside(world):
    """Another host routing to container addresses reaches nothing but published ports (Docker's
    FORWARD policy drop), with or without masquerade; the host itself still reaches them."""
    u = world.uplink
    assert probe(u.ns, "tcp", world.ip("a1"), 80) == "timeout"
    assert probe(u.ns, "tcp", world.ip("p1"), 80) == "timeout"
    assert probe(None, "tcp", world.ip("a1"), 80) == f"a1:80 10.217.1.1"
    assert without_table(world, lambda: probe(u.ns, "tcp", world.ip("a1"), 80)) == f"a1:80 {u.peer_ip}"


def test_internal_network_stays_inside(world):
    u, i1 = world.uplink, world.ns("i1")
    assert probe(i1, "tcp", u.peer_ip, 80) in ("timeout", "error 101")  # no route out at all
    assert probe(i1, "tcp", world.ip("i2"), 80) == f"i2:80 {world.ip('i1')}"
    assert ping(i1, "10.217.3.1")
    # Even with a default route (Docker 20.10 gives internal networks one) nothing leaves or
    # enters the bridge: the firewall, not the missing route, keeps it inside.
    sh("ip", "route", "add", "default", "via", "10.217.3.1", ns=i1)
    try:
        assert probe(i1, "tcp", u.peer_ip, 80) == "timeout"
        assert probe(i1, "tcp", world.ip("a1"), 80) == "timeout"
        assert probe(world.ns("a1"), "tcp", world.ip("i1"), 80) == "timeout"
        assert probe(u.ns, "tcp", world.ip("i1"), 80) == "timeout"
        assert without_table(world, lambda: probe(i1, "tcp", u.peer_ip, 80)) == f"uplink:80 {world.ip('i1')}"
    finally:
        sh("ip", "route", "del", "default", ns=i1, check=False)


def test_icc_off(world):
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() != "1":
        pytest.skip("enable_icc: false is enforced in inet hooks only with br_netfilter calling them")
    assert probe(world.ns("c1"), "tcp", world.ip("c2"), 80) == "timeout"
    assert ping(world.ns("c1"), "10.217.4.1")
    assert probe(world.ns("c1"), "tcp", world.uplink.peer_ip, 80) == f"uplink:80 {world.uplink.host_ip}"
    # a published port stays open to the neighbours, as through Docker's userland proxy
    assert probe(world.ns("c1"), "tcp", world.uplink.host_ip, 18097) == "c2:80 10.217.4.1"
    assert without_table(world, lambda: probe(world.ns("c1"), "tcp", world.ip("c2"), 80)) \
        == f"c2:80 {world.ip('c1')}"


def test_down_removes_the_table_and_nothing_else(kernel_lock, tmp_path):
    tag = uuid.uuid4().hex[:7]
    other = f"keep{tag}"
    sh("nft", "add", "table", "inet", other)
    try:
        sh("nft", "add", "chain", "inet", other, "c1", "{ type filter hook forward priority 0 ; policy accept ; }")
        sh("nft", "add", "rule", "inet", other, "c1", "iifname", "lo", "counter", "accept")
        before = sh("nft", "list", "ruleset").stdout
        project = Up(tmp_path, NEIGHBOUR.replace("10.217.9.0", "10.217.10.0")
                     .replace("x1: {}", "x1: {ports: ['18090:80']}"), tag)
        try:
            project.start({})
            table = f"cn-{project.project}"
            assert nft.table_exists("inet", table)
            assert sh("nft", "list", "table", "inet", other).stdout in sh("nft", "list", "ruleset").stdout
        finally:
            project.stop()
        assert not nft.table_exists("inet", table)
        assert sh("nft", "list", "ruleset").stdout == before
        cli("down", project=project.project)  # twice: a no-op
    finally:
        sh("nft", "delete", "table", "inet", other, check=False)
