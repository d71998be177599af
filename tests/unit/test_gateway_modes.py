"""Docker 27-29's bridge options in plans (no root): gateway modes, IPv6-only networks, host
binding, trusted host interfaces, each as Docker's docs ("Port publishing and mapping", "Bridge
network driver") describe it. The kernel tests show the modes on real traffic
(tests/kernel/test_gateway_modes_traffic.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from pathlib import Path

import pytest

from compose_net import firewall
from compose_net.loader import LoadOptions, load
from compose_net.plan.planner import plan_up
from compose_net.probe import HostFacts
from compose_net.summary import from_text

OPT = "com.docker.network.bridge."


def planned(tmp_path: Path, text: str):
    (tmp_path / "compose.yml").write_text(text)
    result = load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}, project_name="gm"))
    return plan_up(result.project, HostFacts())


def state(plan):
    return next(from_text(o.content) for o in plan.ops if o.kind == "file_write" and o.unit == "state")


def words(plan) -> list[str]:
    return [w for _, w in firewall.table(state(plan)).rules]


def exprs(plan, chain: str) -> list[list]:
    doc = firewall.ruleset(state(plan))
    return [i["add"]["rule"]["expr"] for i in doc["nftables"]
            if "rule" in i.get("add", {}) and i["add"]["rule"]["chain"] == chain]


def nft_check(plan):
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("nft -c needs nft and CAP_NET_ADMIN")
    from compose_net.executor import nft
    nft.check(json.dumps(firewall.ruleset(state(plan))))


def web(opts: dict, ports: str = '["8080:80"]', extra: str = "") -> str:
    lines = "".join(f"      {OPT}{k}: {v}\n" for k, v in opts.items())
    return (f"services:\n  web:\n    image: nginx\n    networks: [n]\n    ports: {ports}\n"
            f"networks:\n  n:\n{extra}" + (f"    driver_opts:\n{lines}" if lines else "    {}\n"))


def test_nat_is_the_default_and_unchanged(tmp_path):
    plan = planned(tmp_path, web({}))
    w = words(plan)
    assert any("masqueraded" in x and "172.18.0.0/16" in x for x in w)
    assert any(x.startswith("0.0.0.0:8080 -> gm-web-1 172.18.0.2:80/tcp") for x in w)
    assert not any("gateway mode" in x for x in w)


def test_routed_no_masquerade_no_dnat_only_published_container_ports_open(tmp_path):
    plan = planned(tmp_path, web({"gateway_mode_ipv4": "routed"}, ports='["8080:80", "9000-9001:9000-9001/udp"]'))
    w = words(plan)
    assert not any("masqueraded" in x and "172.18.0.0/16 (gm_n)" in x for x in w)
    assert not any(x.startswith("0.0.0.0:8080") for x in w)  # the host port is not used
    assert "gm-web-1 172.18.0.2:80/tcp (gateway mode routed): open to direct routing from anywhere" in w
    assert "gm-web-1 172.18.0.2:9000-9001/udp (gateway mode routed): open to direct routing from anywhere" in w
    # the open ports come before isolation (other networks may route to them, as in Docker)
    # and every other new connection into the bridge is still dropped at the end
    forward = [x for _, x in firewall.table(state(plan)).rules]
    assert any(x.startswith("anywhere else -> gm_n") for x in forward)
    chain = exprs(plan, "forward")
    open_at = next(i for i, e in enumerate(chain) if {"accept": None} in e and any(
        "daddr" in json.dumps(x) for x in e))
    isolation_at = next(i for i, e in enumerate(chain) if "cn-*" in json.dumps(e))
    assert open_at < isolation_at
    assert not any(r for r in exprs(plan, "ports"))
    assert any("gateway mode routed" in n for n in plan.notes)
    nft_check(plan)


def test_docker_docs_example_ipv6_routed_ipv4_nat(tmp_path):
    plan = planned(tmp_path, web({"gateway_mode_ipv6": "routed"}, extra="    enable_ipv6: true\n"))
    w = words(plan)
    assert any(x.startswith("0.0.0.0:8080 -> gm-web-1 172.18.0.2:80/tcp") for x in w)
    assert not any(x.startswith("[::]:8080") for x in w)
    assert any(x.endswith(":80/tcp (gateway mode routed): open to direct routing from anywhere") and "[fd" in x
               for x in w)
    assert any("masqueraded" in x and "172.18.0.0/16" in x for x in w)
    assert not any("masqueraded" in x and "fd" in x.split()[0] for x in w if "back into" not in x)
    nft_check(plan)


def test_nat_unprotected_opens_every_port_to_direct_routing_but_not_to_other_networks(tmp_path):
    plan = planned(tmp_path, web({"gateway_mode_ipv4": "nat-unprotected"}))
    w = words(plan)
    assert any(x.startswith("0.0.0.0:8080 -> gm-web-1") for x in w)  # still NAT
    text = "gm_n gateway mode nat-unprotected (IPv4): every container port open to direct routing from outside"
    assert text in w
    rules = [x for _, x in firewall.table(state(plan)).rules]
    chain = exprs(plan, "forward")
    accept_at = next(i for i, e in enumerate(chain) if {"meta": {"key": "nfproto"}} in [
        x.get("match", {}).get("left") for x in e])
    isolation_at = max(i for i, e in enumerate(chain) if "cn-*" in json.dumps(e))
    final_drop = len(chain) - 1
    assert isolation_at < accept_at < final_drop and rules
    nft_check(plan)


def test_isolated_internal_network_has_no_bridge_address_and_the_host_drops_its_traffic(tmp_path):
    plan = planned(tmp_path, "services:\n  db: {image: x, networks: [n]}\nnetworks:\n  n:\n    internal: true\n"
                             f"    driver_opts:\n      {OPT}gateway_mode_ipv4: isolated\n")
    bridge_addrs = [o for o in plan.ops if o.kind == "addr_add" and o.ns is None]
    assert bridge_addrs == []
    addrs = [o for o in plan.ops if o.kind == "addr_add" and o.ns is not None]
    assert [str(o.address) for o in addrs] == ["172.18.0.2/16"]  # the gateway's address stays reserved
    assert "gm_n gateway mode isolated (IPv4): nothing from " in " ".join(words(plan))
    assert "input" in {i["add"]["chain"]["name"] for i in firewall.ruleset(state(plan))["nftables"]
                       if "chain" in i.get("add", {})}
    assert not [o for o in plan.ops if o.kind == "route_add"]
    nft_check(plan)


def test_inspect_shows_the_modes(tmp_path):
    from compose_net import drivers
    plan = planned(tmp_path, web({"gateway_mode_ipv4": "routed", "trusted_host_interfaces": "eth3:vxlan.1"}))
    net = state(plan).networks[0]
    assert drivers.get("bridge").inspect_options(net) == {
        f"{OPT}gateway_mode_ipv4": "routed", f"{OPT}trusted_host_interfaces": "eth3:vxlan.1"}


# --- host binding and trusted interfaces --------------------------------------------------------


def test_host_binding_is_the_default_host_address_of_ports(tmp_path):
    plan = planned(tmp_path, web({"host_binding_ipv4": "127.0.0.1"}, ports='["8080:80", "192.0.2.7:8081:81"]'))
    ports = {p.target: p.host_ip for p in state(plan).containers[0].ports}
    assert ports == {80: ipaddress.ip_address("127.0.0.1"), 81: ipaddress.ip_address("192.0.2.7")}
    w = words(plan)
    assert "127.0.0.1:8080 -> gm-web-1 172.18.0.2:80/tcp" in w
    # a loopback binding is what makes the bridge DNAT loopback traffic
    assert any(o.kind == "sysctl" and o.key.endswith("route_localnet") for o in plan.ops)


def test_host_binding_any_ipv4_is_every_address_and_ipv6_any_is_ipv6_only(tmp_path):
    plan = planned(tmp_path, web({"host_binding_ipv4": "0.0.0.0"}))
    assert state(plan).containers[0].ports[0].host_ip is None
    plan = planned(tmp_path, web({"host_binding_ipv4": "'::'"}, extra="    enable_ipv6: true\n"))
    assert str(state(plan).containers[0].ports[0].host_ip) == "::"
    assert not any(x.startswith("0.0.0.0:8080") for x in words(plan))


def test_trusted_host_interfaces_reach_published_container_ports_directly(tmp_path):
    plan = planned(tmp_path, web({"trusted_host_interfaces": "eth3:vxlan.1"}, ports='["127.0.0.1:8080:80"]'))
    w = words(plan)
    assert "gm-web-1 172.18.0.2:80/tcp: open directly from trusted host interface eth3" in w
    assert "gm-web-1 172.18.0.2:80/tcp: open directly from trusted host interface vxlan.1" in w
    nft_check(plan)


# --- IPv6-only networks -------------------------------------------------------------------------


def test_ipv6_only_network_has_no_ipv4_anywhere_and_an_ipv6_default_route(tmp_path):
    plan = planned(tmp_path, "services:\n  a: {image: x, networks: [n], ports: ['8080:80']}\n  b: {image: x, networks: [n]}\n"
                             "networks:\n  n:\n    enable_ipv4: false\n    enable_ipv6: true\n")
    s = state(plan)
    assert [str(x.subnet.version) for x in s.networks[0].subnets] == ["6"]
    for c in s.containers:
        (i,) = c.interfaces
        assert i.ipv4 is None and i.ipv6 is not None and i.default_route6
    for op in plan.ops:
        for field in ("address", "dst", "gateway"):
            value = getattr(op, field, None)
            assert not (value is not None and hasattr(value, "version") and value.version == 4), op
    routes = [o for o in plan.ops if o.kind == "route_add"]
    assert routes and all(str(o.dst) == "::/0" for o in routes)
    assert not any(x.startswith("0.0.0.0:") for x in words(plan))
    assert any(x.startswith("[::]:8080 -> gm-a-1 [fd") for x in words(plan))
    nft_check(plan)


def test_routed_warns_that_the_host_port_is_not_used(tmp_path):
    plan = planned(tmp_path, web({"gateway_mode_ipv4": "routed"}))
    assert any("host port 8080 of services.web.ports[0] is not used: network gm_n is in gateway mode routed" in w
               for w in plan.warnings)
    assert not planned(tmp_path, web({"gateway_mode_ipv4": "routed"}, ports='["80"]')).warnings
