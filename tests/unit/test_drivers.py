import ipaddress

from compose_net import drivers, naming
from compose_net.drivers.base import InterfaceLayout, NetworkLayout
from compose_net.ipam import Subnet
from compose_net.plan import ops as O
from compose_net.plan.planner import plan_up, summary
from compose_net.probe import HostFacts
from compose_net.summary import VxlanState
from planning_projects import att, net, pool, project, svc

SUB = Subnet(ipaddress.ip_network("10.7.0.0/24"), ipaddress.ip_address("10.7.0.1"))
IFACE = InterfaceLayout("c1", "container:c1", "c1", "n", "eth0", "veth12345678", "02:42:0a:07:00:02",
                        ipaddress.IPv4Interface("10.7.0.2/24"))
HERE = HostFacts(links={"eth0": 0, "lo": 0, "cnmv0": 0}, features=frozenset({"bridge", "veth", "macvlan", "vxlan"}),
                 features_known=True)


def layout(**kw):
    base = dict(key="n", name="p_n", driver="bridge", unit="network:p_n", group=42, subnets=(SUB,), bridge="cn-aaaa")
    base.update(kw)
    return NetworkLayout(**base)


def test_bridge_network_and_attachment_ops():
    d = drivers.get("bridge")
    ops, warnings = d.network_ops(layout(mtu=1400), HERE)
    assert warnings == []
    assert ops == [O.BridgeCreate("network:p_n", "cn-aaaa", 42, mtu=1400),
                   O.AddrAdd("network:p_n", None, "cn-aaaa", ipaddress.ip_interface("10.7.0.1/24"))]
    att_ops = d.attach_ops(layout(mtu=1400), IFACE)
    assert att_ops == [O.VethCreate("container:c1", "veth12345678", "eth0", "c1", 42, master="cn-aaaa", mtu=1400,
                                    peer_mac="02:42:0a:07:00:02"),
                       O.LinkUp("container:c1", "c1", "eth0"),
                       O.AddrAdd("container:c1", "c1", "eth0", ipaddress.ip_interface("10.7.0.2/24"))]


def test_overlay_is_a_bridge_plus_vxlan():
    ops, warnings = drivers.get("overlay").network_ops(layout(driver="overlay", vxlan="cnvx-1", vni=5000), HERE)
    assert [o.kind for o in ops] == ["bridge_create", "vxlan_create", "addr_add"]
    assert ops[1].master == "cn-aaaa" and ops[1].vni == 5000 and ops[1].group == 42 and warnings == []
    _, warnings = drivers.get("overlay").network_ops(layout(driver="overlay", vxlan="x", vni=1),
                                                     HostFacts(features=frozenset({"bridge"}), features_known=True))
    assert any("VXLAN" in w for w in warnings)


def test_macvlan_parent_present_missing_and_vlan():
    d = drivers.get("macvlan")
    ml = layout(driver="macvlan", bridge=None, parent="cnmv0", mode="private")
    assert d.network_ops(ml, HERE) == ([], [])
    assert d.attach_ops(ml, IFACE)[0] == O.MacvlanCreate("container:c1", "eth0", "c1", "cnmv0", mode="private",
                                                         mac="02:42:0a:07:00:02")
    ops, warnings = d.network_ops(layout(driver="macvlan", bridge=None, parent="nosuch0"), HERE)
    assert ops == [] and any("nosuch0 does not exist" in w for w in warnings)
    ops, warnings = d.network_ops(layout(driver="macvlan", bridge=None, parent="eth0.10"), HERE)
    assert ops == [O.VlanCreate("network:p_n", "eth0.10", "eth0", 10, 42)]
    assert any("802.1q" in w for w in warnings)  # this HostFacts has no 8021q


def test_ipvlan_missing_kernel_support_only_warns():
    d = drivers.get("ipvlan")
    il = layout(driver="ipvlan", bridge=None, parent="cnmv0", mode="l3", flag="private")
    ops, warnings = d.network_ops(il, HERE)
    assert ops == [] and any("ipvlan support" in w for w in warnings)
    assert d.attach_ops(il, IFACE)[0] == O.IpvlanCreate("container:c1", "eth0", "c1", "cnmv0", mode="l3", flag="private")


def test_host_and_none_drivers_create_nothing():
    for name in ("host", "none"):
        assert drivers.get(name).network_ops(layout(driver=name), HERE) == ([], [])
        assert drivers.get(name).attach_ops(layout(driver=name), IFACE) == []


def test_planned_macvlan_and_ipvlan_projects():
    p = project("p", [svc("s", att("lan", ipv4_address="192.0.2.50"), att("l3"))],
                [net("lan", "p", driver="macvlan", driver_opts={"parent": "cnmv0"},
                     ipam_pools=(pool("192.0.2.0/24", gateway="192.0.2.254"),)),
                 net("l3", "p", driver="ipvlan", driver_opts={"parent": "cnmv0", "ipvlan_mode": "l3"},
                     ipam_pools=(pool("10.77.0.0/24"),))])
    plan = plan_up(p, HERE)  # no ipvlan in this kernel: planned anyway, with a warning
    assert any("ipvlan" in w for w in plan.warnings)
    kinds = [o.kind for o in plan.ops if o.unit == "container:p-s-1"]
    assert kinds[:4] == ["netns_create", "uts_create", "macvlan_create", "link_up"] and "ipvlan_create" in kinds
    assert not [o for o in plan.ops if o.kind == "bridge_create"]
    routes = [o for o in plan.ops if o.kind == "route_add"]
    assert len(routes) == 1 and str(routes[0].gateway) == "192.0.2.254" and routes[0].dev == "eth0"
    s = summary(p, HERE)
    l3 = [n for n in s.networks if n.driver == "ipvlan"][0]
    assert l3.subnets[0].gateway is None and l3.mode == "l3" and l3.bridge is None
    assert s.containers[0].interfaces[0].host_ifname is None
    # the plan's explanation says there is no gateway, as the summary does
    l3_notes = [n for n in plan.notes if n.startswith("p_l3:")]
    assert l3_notes == ["p_l3: subnet 10.77.0.0/24 as configured, no gateway (ipvlan l3: the parent routes)"]


def test_overlay_project_has_vni_in_summary():
    p = project("p", [svc("s", att("o"))], [net("o", "p", driver="overlay")])
    s = summary(p)
    assert s.networks[0].vxlan == VxlanState(naming.vxlan_name("p_o"), naming.vxlan_vni("p_o"))
    assert [o.kind for o in plan_up(p).ops if o.unit == "network:p_o"] == ["bridge_create", "vxlan_create", "addr_add"]


def test_macvlan_without_parent_gets_a_private_parent_link():
    p = project("p", [svc("s", att("lan"), replicas=2)], [net("lan", "p", driver="macvlan")])
    plan = plan_up(p, HERE)
    parent = naming.dummy_parent_name("p_lan")
    assert naming.fits(parent)
    (br,) = [o for o in plan.ops if o.kind == "bridge_create"]
    assert br.name == parent and br.unit == "network:p_lan"
    links = [o for o in plan.ops if o.kind == "macvlan_create"]
    assert [o.parent for o in links] == [parent, parent]
    assert summary(p, HERE).networks[0].parent == parent
    (gdel,) = [o for o in O.teardown(plan.ops) if o.kind == "link_group_delete"]
    assert parent in gdel.names


def _cluster_facts(**kw):
    from compose_net.cluster import ClusterFacts, NetworkClaim, RemoteEndpoint

    claim = NetworkClaim("p_o", ipaddress.IPv4Network("10.0.7.0/24"), 4100)
    remote = RemoteEndpoint("p_o", "p-db-1", ipaddress.IPv4Address("198.18.0.2"),
                            ipaddress.IPv4Address("10.0.7.3"), "02:42:0a:00:07:03", ("db", "p-db-1"))
    values = dict(url="etcd://198.18.0.9:2379", host=ipaddress.IPv4Address("198.18.0.1"), underlay_mtu=1500,
                  lease=7, claims={"p_o": claim}, addresses={("p_o", "p-web-1"): ipaddress.IPv4Address("10.0.7.2")},
                  remote=(remote,))
    values.update(kw)
    return HostFacts(cluster=ClusterFacts(**values))


def test_overlay_in_a_cluster_takes_the_stores_subnet_vni_addresses_and_programs_remote_endpoints():
    p = project("p", [svc("web", att("o"))], [net("o", "p", driver="overlay")])
    facts = _cluster_facts()
    plan = plan_up(p, facts)
    vx = next(o for o in plan.ops if isinstance(o, O.VxlanCreate))
    assert (vx.vni, vx.local, vx.learning, vx.proxy, vx.mtu) == (4100, ipaddress.ip_address("198.18.0.1"),
                                                                 False, True, 1450)
    remote = [o for o in plan.ops if isinstance(o, (O.FdbSet, O.NeighSet))]
    assert remote == [O.FdbSet("network:p_o", vx.name, "02:42:0a:00:07:03", ipaddress.ip_address("198.18.0.2")),
                      O.NeighSet("network:p_o", vx.name, ipaddress.ip_address("10.0.7.3"), "02:42:0a:00:07:03")]
    assert all(isinstance(o.inverse(), (O.FdbDel, O.NeighDel)) for o in remote)
    s = plan.state
    assert s.cluster == "etcd://198.18.0.9:2379"
    assert s.networks[0].subnets[0].subnet == ipaddress.ip_network("10.0.7.0/24")
    # other hosts' endpoints are not recorded here (they come and go without any local input:
    # the background process serves them from the store)
    (web,) = s.containers
    assert str(web.interfaces[0].ipv4) == "10.0.7.2/24" and web.host is None


def test_overlay_without_a_cluster_is_one_host_and_encrypted_is_refused_at_up():
    p = project("p", [svc("web", att("o"))], [net("o", "p", driver="overlay", driver_opts={"encrypted": ""})])
    plan = plan_up(p)
    vx = next(o for o in plan.ops if isinstance(o, O.VxlanCreate))
    assert vx.encrypted and vx.learning and vx.local is None
    assert not any(isinstance(o, (O.FdbSet, O.NeighSet)) for o in plan.ops)
    assert any("encrypted needs IPsec (xfrm) or WireGuard" in w for w in plan.warnings)
    assert plan.state.cluster is None


def test_overlay_mtu_that_cannot_fit_the_underlay_warns():
    p = project("p", [svc("web", att("o"))],
                [net("o", "p", driver="overlay", driver_opts={"com.docker.network.driver.mtu": "1500"})])
    plan = plan_up(p, _cluster_facts())
    assert next(o for o in plan.ops if isinstance(o, O.VxlanCreate)).mtu == 1500
    assert any("does not fit the underlay's MTU 1500" in w for w in plan.warnings)
