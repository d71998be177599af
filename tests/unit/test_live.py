"""Live edits planned by the ordinary planner (`plan.live`): connect, disconnect, ad-hoc and
one-off containers as graph edits; the edit plan is exactly the difference (`plan_edit`); the
input checks of `liveops` (pure parts)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from compose_net import liveops
from compose_net.errors import ConfigError, RuntimeFailure
from compose_net.observe import Observed
from compose_net.plan.planner import edit_scope, plan_up
from compose_net.probe import HostFacts
from compose_net.summary import AdHoc, Connection, Disconnection, Live, from_text, to_text
from planning_projects import att, net, pool, project, svc


def shop():
    return project("shop", [svc("a", att("n1")), svc("b", att("n2")), svc("c", att("n1"), att("n2", order=1))],
                   [net("n1", ipam_pools=(pool("10.50.1.0/24"),)), net("n2")])


def up(p, live=Live(), facts=None):
    """The plan with `live`, and facts saying the project is up as that plan records."""
    plan = plan_up(p, facts or HostFacts(), live=live)
    return plan, HostFacts(projects={p.name: plan.state})


def ifaces(plan, name):
    return {i.network: (i.ifname, i.ipv4) for i in plan.state.container(name).interfaces}


def test_connect_adds_the_next_eth_with_the_next_address_and_names():
    p = shop()
    base, facts = up(p)
    live = Live(connections=(Connection("shop-a-1", "shop_n2", "eth1", aliases=("extra",)),))
    plan, _ = up(p, live, facts)
    got = ifaces(plan, "shop-a-1")
    assert got["shop_n1"] == ifaces(base, "shop-a-1")["shop_n1"] and got["shop_n2"][0] == "eth1"
    taken = {i.ipv4 for c in base.state.containers for i in c.interfaces if i.network == "shop_n2"}
    assert got["shop_n2"][1] not in taken
    aliases = next(i.aliases for i in plan.state.container("shop-a-1").interfaces if i.network == "shop_n2")
    assert "extra" in aliases and "shop-a-1" in aliases
    # nobody else moves; the edit is recorded with the state
    for c in base.state.containers:
        if c.name != "shop-a-1":
            assert plan.state.container(c.name) == c
    assert plan.state.live == live
    assert from_text(to_text(plan.state)).live == live
    # an up of the unchanged file plans the same ops (the recorded edit is applied by default)
    again = plan_up(p, HostFacts(projects={p.name: plan.state}))
    assert again.ops == plan.ops


def test_the_edit_plan_is_its_difference():
    p = shop()
    base, facts = up(p)
    live = Live(connections=(Connection("shop-a-1", "shop_n2", "eth1"),))
    plan, _ = up(p, live, facts)
    scope = edit_scope(plan, base.ops)
    kinds = sorted({op.kind for op in scope})
    assert "veth_create" in kinds and "netns_create" not in kinds and "bridge_create" not in kinds
    assert all(op.unit in ("container:shop-a-1", "container:shop-b-1", "container:shop-c-1", "state",
                           "firewall", "dns") for op in scope)


def test_disconnect_of_a_file_network_keeps_the_other_names():
    p = shop()
    base, facts = up(p)
    plan, _ = up(p, Live(disconnections=(Disconnection("shop-c-1", "shop_n1"),)), facts)
    assert {k: v[0] for k, v in ifaces(plan, "shop-c-1").items()} == {"shop_n2": "eth1"}
    # an edit that no longer applies is dropped (not recorded)
    plan, _ = up(p, Live(disconnections=(Disconnection("shop-a-1", "shop_n2"),)), facts)
    assert plan.state.live == Live()


def test_ad_hoc_and_one_off_containers():
    p = shop()
    base, facts = up(p)
    live = Live(containers=(AdHoc("tool", ("shop_n1",), hostname="tool-host", aliases=("t",),
                                  ipv4=ipaddress.ip_address("10.50.1.77")),
                            AdHoc("shop-b-run-abcdef", service="b")))
    plan, _ = up(p, live, facts)
    tool = plan.state.container("tool")
    assert tool.hostname == "tool-host" and tool.interfaces[0].ipv4 == ipaddress.ip_interface("10.50.1.77/24")
    assert {"tool", "t"} <= set(tool.interfaces[0].aliases)
    one_off = plan.state.container("shop-b-run-abcdef")
    assert one_off.service == "b" and [i.network for i in one_off.interfaces] == ["shop_n2"]
    assert "b" in one_off.interfaces[0].aliases and one_off.ports == ()
    assert plan.state.containers[:3] == base.state.containers


def test_created_network_is_external_in_a_project_that_connects_to_it():
    from compose_net import netadmin

    created = netadmin.plan_create("shared", subnet="10.60.0.0/24", facts=HostFacts(), created="t")
    assert created.state.networks[0].user_subnet
    p = shop()
    base, facts = up(p, facts=HostFacts(projects={"net.shared": created.state}))
    facts = HostFacts(projects={"net.shared": created.state, p.name: base.state})
    plan, _ = up(p, Live(connections=(Connection("shop-a-1", "shared", "eth1"),)), facts)
    (iface,) = [i for i in plan.state.container("shop-a-1").interfaces if i.network == "shared"]
    assert iface.ipv4 in ipaddress.ip_network("10.60.0.0/24") and plan.state.network("shared").external
    # the standalone network plans its ad-hoc containers again from its recorded state
    project = netadmin.recorded_project(created.state)
    assert project.networks["shared"].ipam_pools[0].subnet == ipaddress.ip_network("10.60.0.0/24")


@pytest.mark.parametrize("text, want", [
    ("8080:80", (80, 8080, None, "tcp")),
    ("127.0.0.1:8080:80/udp", (80, 8080, "127.0.0.1", "udp")),
    ("[::1]:8080:80", (80, 8080, "::1", "tcp")),
    ("80", (80, None, None, "tcp")),
])
def test_parse_publish(text, want):
    p = liveops.parse_publish(text)
    assert (p.target, p.published, str(p.host_ip) if p.host_ip else None, p.protocol) == want


@pytest.mark.parametrize("text", ["x:80", "80/icmp", "70000:80", "1:2:3:4"])
def test_parse_publish_refuses(text):
    with pytest.raises(ConfigError):
        liveops.parse_publish(text)


def test_connect_checks_before_anything():
    p = shop()
    base, facts = up(p)
    with pytest.raises(RuntimeFailure, match="no such container: nope"):
        liveops.connect("shop_n2", "nope", facts=facts)
    with pytest.raises(RuntimeFailure, match="network nope not found"):
        liveops.connect("nope", "shop-a-1", facts=facts)
    with pytest.raises(RuntimeFailure, match="already exists in network shop_n1"):
        liveops.connect("shop_n1", "shop-a-1", facts=facts)
    with pytest.raises(ConfigError, match="user configured subnet"):
        liveops.connect("shop_n2", "shop-a-1", ip="10.0.0.5", facts=facts)
    taken = str(ifaces(base, "shop-c-1")["shop_n1"][1].ip)
    with pytest.raises(ConfigError, match="already in use on network shop_n1 by container shop-c-1"):
        liveops.connect("shop_n1", "shop-b-1", ip=taken, facts=facts)
    with pytest.raises(ConfigError, match="not a usable address"):
        liveops.connect("shop_n1", "shop-b-1", ip="10.50.1.255", facts=facts)
    with pytest.raises(RuntimeFailure, match="is not connected"):
        liveops.disconnect("shop_n2", "shop-a-1", facts=facts)
    with pytest.raises(ConfigError, match="invalid DNS name"):
        liveops.connect("shop_n2", "shop-a-1", aliases=["a b"], facts=facts)


def test_a_default_route_through_a_removed_link_is_not_deleted_again():
    """Disconnecting the default route's network: the old route goes with its veth (removed
    first), so the new default route is added without a delete of the old one (which would fail:
    its link is gone)."""
    from compose_net.observe import LinkFacts, NamespaceFacts, RouteFacts
    from compose_net.plan import ops as O
    from compose_net.plan.planner import plan_edit

    p = shop()
    base, facts = up(p)
    live = Live(connections=(Connection("shop-a-1", "shop_n2", "eth1"),))
    connected, facts = up(p, live, facts)
    live = dataclasses.replace(live, disconnections=(Disconnection("shop-a-1", "shop_n1"),))
    desired, _ = up(p, live, facts)
    old = next(op for op in connected.ops if isinstance(op, O.RouteAdd) and op.ns == "shop-a-1")
    veths = [op for op in connected.ops if isinstance(op, O.VethCreate) and op.peer_ns == "shop-a-1"]
    links = {v.peer_name: LinkFacts(v.peer_name, "veth", up=True) for v in veths}
    observed = Observed(host=NamespaceFacts(links={v.name: LinkFacts(v.name, "veth", up=True) for v in veths}),
                        namespaces={"shop-a-1": NamespaceFacts(links=links, routes=frozenset(
                            {RouteFacts(old.dst, old.dev, old.gateway)}))})
    plan = plan_edit("shop", facts, desired, connected.ops, observed)
    kinds = [op.kind for op in plan.ops if getattr(op, "ns", None) == "shop-a-1" or op.unit == "container:shop-a-1"]
    assert "route_del" not in kinds and "route_add" in kinds


def test_ad_hoc_ports_are_published_and_none_mode_has_no_interfaces():
    from compose_net.model import Project

    p = shop()
    base, facts = up(p)
    live = Live(containers=(AdHoc("web-x", ("shop_n1",), ports=(liveops.parse_publish("127.0.0.1:18080:80"),)),))
    plan, _ = up(p, live, facts)
    (port,) = plan.state.container("web-x").ports
    assert (port.published, port.target, str(port.host_ip)) == (18080, 80, "127.0.0.1")
    table = next(op for op in plan.ops if op.kind == "nft_apply")
    assert "18080" in str(table.ruleset)
    empty = Project(name="run.solo", working_dir="/", services={}, networks={}, containers=())
    plan = plan_up(empty, HostFacts(), live=Live(containers=(AdHoc("solo", ("none",)),)))
    solo = plan.state.container("solo")
    assert solo.netns == "solo" and solo.interfaces == () and solo.network_mode == "none"
    assert {op.kind for op in plan.ops} >= {"netns_create", "uts_create"}
    plan = plan_up(dataclasses.replace(empty, name="run.h"), HostFacts(), live=Live(containers=(AdHoc("h", ("host",)),)))
    assert plan.state.container("h").netns is None


def test_run_refuses_before_anything():
    p = shop()
    _, facts = up(p)
    with pytest.raises(ConfigError, match="give the network"):
        liveops.run([], facts=facts)
    with pytest.raises(ConfigError, match="cannot be combined"):
        liveops.run(["host", "shop_n1"], facts=facts)
    with pytest.raises(RuntimeFailure, match="already in use"):
        liveops.run(["shop_n1"], name="shop-a-1", facts=facts)
    with pytest.raises(ConfigError, match="invalid name"):
        liveops.run(["shop_n1"], name="-x", facts=facts)
    with pytest.raises(ConfigError, match="not possible with --network none"):
        liveops.run(["none"], ip="10.0.0.1", facts=facts)


def test_an_edit_that_would_change_other_containers_is_refused():
    from compose_net.summary import ContainerState, Summary

    owner = Summary("shop", containers=(ContainerState("shop-a-1", "a"), ContainerState("shop-b-1", "b")))
    liveops._unchanged_besides(owner, dataclasses.replace(owner, containers=owner.containers[1:] + (
        ContainerState("shop-a-1", "a", hostname="x"),)), "shop-a-1")
    with pytest.raises(RuntimeFailure, match="plans container shop-b-1 differently"):
        liveops._unchanged_besides(owner, dataclasses.replace(owner, containers=owner.containers[:1]), "shop-a-1")
