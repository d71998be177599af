import ipaddress
import json

import pytest

from compose_net import naming
from compose_net.errors import ConfigError
from compose_net.model import Dependency, ExtraHost, Link, PortMapping
from compose_net.plan import ops as O
from compose_net import jsonform
from compose_net.plan import planner
from compose_net.plan.planner import plan_up
from compose_net.summary import from_data
from compose_net.probe import HostFacts
from planning_projects import att, net, pool, project, svc, three_tier


def by_kind(plan, kind, **match):
    return [o for o in plan.ops if o.kind == kind and all(getattr(o, k) == v for k, v in match.items())]


def state(p, facts=None):
    """The typed state the plan records."""
    return planner.summary(p, facts)


def summary(p, facts=None):
    """The same in its JSON form (project.json), for comparisons by value."""
    return jsonform.dump(state(p, facts))


def container(summ, name):
    return next(c for c in summ["containers"] if c["name"] == name)


def test_plan_order_host_networks_containers_state_firewall_dns():
    plan = plan_up(three_tier())
    units = [o.unit for o in plan.ops]
    assert plan.ops[0] == O.SysctlSet("host", None, "net.ipv4.ip_forward", "1")
    first = {u: units.index(u) for u in units}
    # containers in dependency order: db before api before web
    assert first["network:shop_front"] < first["network:shop_back"] < first["container:shop-db-1"] \
        < first["container:shop-api-1"] < first["container:shop-web-1"] < first["state"]
    assert [o.kind for o in plan.ops[-3:]] == ["file_write", "nft_apply", "dns_start"]
    assert plan.ops[-3].path == "/run/compose-net/shop/project.json"
    assert plan.ops[-1].records == "/run/compose-net/shop/project.json"
    # each unit's ops are contiguous, so `down` of a unit and the rendering group cleanly
    seen, last = set(), None
    for u in units:
        if u != last:
            assert u not in seen, u
            seen.add(u)
            last = u
    # inside a container: netns, veth, up, address, then routes, then files
    kinds = [o.kind for o in plan.ops if o.unit == "container:shop-api-1"]
    assert kinds == ["netns_create", "uts_create", "veth_create", "link_up", "addr_add", "veth_create",
                     "link_up", "addr_add", "route_add", "file_write", "file_write", "file_write"]


def test_plan_is_deterministic_and_summary_is_what_the_plan_writes():
    a, b = plan_up(three_tier()), plan_up(three_tier())
    assert a == b and [o.note for o in a.ops] == [o.note for o in b.ops]
    written = json.loads(by_kind(a, "file_write", unit="state")[0].content)
    assert written == summary(three_tier())


def test_summary_shape():
    s = summary(three_tier())
    assert s["version"] == 2 and s["project"] == "shop" and s["table"] == "cn-shop"
    assert 0 < s["group"] < 2**31
    front = s["networks"][0]
    assert front["name"] == "shop_front" and front["bridge"] == naming.bridge_name("shop_front")
    assert front["subnets"] == [{"subnet": "172.18.0.0/16", "gateway": "172.18.0.1", "ip_range": None}]
    assert s["networks"][1]["internal"] and not s["networks"][1]["masquerade"]
    web = container(s, "shop-web-1")
    assert web["id"] == naming.container_id("shop", "shop-web-1") and web["hostname"] == web["id"][:12]
    (iface,) = web["interfaces"]
    assert iface == {"network": "shop_front", "ifname": "eth0", "host_ifname": naming.veth_name("shop-web-1", "shop_front"),
                     "mac": "02:42:ac:12:00:02", "ipv4": "172.18.0.2/16", "ipv6": None, "gateway": "172.18.0.1",
                     "gateway6": None, "default_route": True, "default_route6": False,
                     "aliases": ["web", "shop-web-1", web["id"][:12]], "link_local": []}
    assert web["ports"] == [{"protocol": "tcp", "host_ip": None, "published": 8080, "published_end": 8080,
                             "target": 80, "target_end": 80}]
    api = container(s, "shop-api-1")
    assert api["interfaces"][1]["aliases"][:3] == ["api", "shop-api-1", "backend-api"]


def test_addresses_by_declaration_order_not_dependency_order():
    s = summary(three_tier())
    # web is declared first, so it gets .2 on front although api is built before it
    assert container(s, "shop-web-1")["interfaces"][0]["ipv4"] == "172.18.0.2/16"
    assert container(s, "shop-api-1")["interfaces"][0]["ipv4"] == "172.18.0.3/16"


def test_interface_order_by_priority_then_declaration_and_interface_name():
    p = project("p", [svc("s", att("zeta", 0, priority=100), att("alpha", 1, priority=10), att("mid", 2, priority=50),
                        att("extra", 3, interface_name="eth1"))],
                [net(k, "p") for k in ("zeta", "alpha", "mid", "extra")])
    ifaces = container(summary(p), "p-s-1")["interfaces"]
    assert [(i["network"], i["ifname"]) for i in ifaces] == [
        ("p_zeta", "eth0"), ("p_mid", "eth2"), ("p_alpha", "eth3"), ("p_extra", "eth1")]
    assert [i["default_route"] for i in ifaces] == [True, False, False, False]


def test_default_route_highest_gw_priority_never_internal():
    p = project("p", [svc("s", att("a", 0), att("b", 1, gw_priority=5), att("c", 2, gw_priority=9))],
                [net("a", "p"), net("b", "p"), net("c", "p", internal=True)])
    plan = plan_up(p)
    (route,) = by_kind(plan, "route_add")
    assert route.dev == "eth1" and str(route.gateway) == "172.19.0.1" and route.dst.prefixlen == 0
    only_internal = project("p", [svc("s", att("c"))], [net("c", "p", internal=True)])
    assert by_kind(plan_up(only_internal), "route_add") == []


def test_macs_follow_docker_unless_given():
    p = project("p", [svc("s", att("a", 0), att("b", 1, mac_address="aa:bb:cc:dd:ee:01"), mac_address="02:00:00:00:00:09"),
                      svc("t", att("a", ipv4_address="10.123.5.0"))],
                [net("a", "p", ipam_pools=(pool("10.123.0.0/16"),)), net("b", "p")])
    s = summary(p)
    macs = [i["mac"] for i in container(s, "p-s-1")["interfaces"]]
    assert macs == ["02:00:00:00:00:09", "aa:bb:cc:dd:ee:01"]
    assert container(s, "p-t-1")["interfaces"][0]["mac"] == "02:42:0a:7b:05:00"
    veths = {o.peer_ns + "/" + o.peer_name: o.peer_mac for o in by_kind(plan_up(p), "veth_create")}
    assert veths["p-t-1/eth0"] == "02:42:0a:7b:05:00"


def test_resolv_conf_and_hosts():
    p = project("p", [svc("s", att("a"), hostname="box", domainname="example.org", dns_search=("corp",),
                        dns_opt=("timeout:2",), dns=(ipaddress.ip_address("9.9.9.9"),),
                        extra_hosts=(ExtraHost("gw", "host-gateway"), ExtraHost("db", "10.0.0.5")))],
                [net("a", "p")])
    plan = plan_up(p)
    files = {o.path: o.content for o in by_kind(plan, "file_write")}
    assert files["/etc/netns/p-s-1/resolv.conf"] == "nameserver 127.0.0.11\nsearch corp\noptions timeout:2 ndots:0\n"
    hosts = files["/etc/netns/p-s-1/hosts"].splitlines()
    assert hosts[0] == "127.0.0.1\tlocalhost" and hosts[1].startswith("::1\tlocalhost")
    assert hosts[-3:] == ["172.18.0.1\tgw", "10.0.0.5\tdb", "172.18.0.2\tbox.example.org box"]
    s = summary(p)
    assert container(s, "p-s-1")["dns"] == ["9.9.9.9"]
    assert "box" in container(s, "p-s-1")["interfaces"][0]["aliases"]


def test_user_ndots_wins():
    p = project("p", [svc("s", att("a"), dns_opt=("ndots:3",))], [net("a", "p")])
    files = {o.path: o.content for o in by_kind(plan_up(p), "file_write")}
    assert files["/etc/netns/p-s-1/resolv.conf"] == "nameserver 127.0.0.11\noptions ndots:3\n"


def test_network_modes():
    facts = HostFacts(resolv_conf="nameserver 10.255.255.53\n", nameservers=(ipaddress.ip_address("10.255.255.53"),))
    p = project("p", [
        svc("base", att("a")),
        svc("side", network_mode="service:base"),
        svc("h", network_mode="host"),
        svc("n", network_mode="none"),
        svc("legacy", network_mode="bridge", links=(Link("legacy2", "l2"),)),
        svc("legacy2", network_mode="bridge"),
    ], [net("a", "p")])
    plan = plan_up(p, facts)
    s = summary(p, facts)
    units = {o.unit for o in plan.ops}
    assert "container:p-h-1" not in units
    # service:base: its own names for base's namespaces, and base's files under its own name
    side = container(s, "p-side-1")
    assert side["netns"] == side["uts"] == "p-side-1" and side["shares"] == "p-base-1"
    assert side["hostname"] == container(s, "p-base-1")["hostname"]
    side_ops = [o for o in plan.ops if o.unit == "container:p-side-1"]
    assert [o.kind for o in side_ops] == ["netns_alias", "uts_alias", "file_write", "file_write", "file_write"]
    assert (side_ops[0].name, side_ops[0].target) == (side_ops[1].name, side_ops[1].target) == ("p-side-1", "p-base-1")
    assert container(s, "p-h-1")["netns"] is None and container(s, "p-h-1")["uts"] is None
    assert [o.kind for o in plan.ops if o.unit == "container:p-n-1"] == \
        ["netns_create", "uts_create", "file_write", "file_write", "file_write"]
    files = {o.path: o.content for o in by_kind(plan, "file_write")}
    for name in ("resolv.conf", "hosts", "hostname"):
        assert files[f"/etc/netns/p-side-1/{name}"] == files[f"/etc/netns/p-base-1/{name}"]
    assert files["/etc/netns/p-base-1/hostname"] == container(s, "p-base-1")["hostname"] + "\n"
    assert files["/etc/netns/p-n-1/resolv.conf"] == "nameserver 10.255.255.53\n"
    assert files["/etc/netns/p-legacy-1/resolv.conf"] == "nameserver 10.255.255.53\n"
    # the legacy bridge: shared cn0, 172.17.0.0/16, outside the project's link group
    (cn0,) = by_kind(plan, "bridge_create", name="cn0")
    assert cn0.unit == "shared:cn0" and cn0.group == naming.LEGACY_GROUP
    legacy = container(s, "p-legacy-1")["interfaces"][0]
    assert legacy["ipv4"] == "172.17.0.2/16" and legacy["network"] == "bridge" and legacy["aliases"] == []
    assert container(s, "p-legacy2-1")["interfaces"][0]["ipv4"] == "172.17.0.3/16"
    shared = [n for n in s["networks"] if n["name"] == "bridge"][0]
    assert shared["shared"] and shared["external"] and shared["bridge"] == "cn0"
    assert container(s, "p-legacy-1")["embedded_dns"] is False
    # no DNS there: the link is an /etc/hosts line
    hosts = files["/etc/netns/p-legacy-1/hosts"].splitlines()
    assert "172.17.0.3\tl2 legacy2 p-legacy2-1" in hosts
    assert hosts[-1] == f"172.17.0.2\t{container(s, 'p-legacy-1')['hostname']}"


def test_every_container_namespace_has_a_uts_namespace_with_its_hostname():
    p = project("p", [svc("named", att("a"), hostname="db", domainname="corp.example"), svc("plain", att("a")),
                      svc("side", network_mode="service:named"), svc("h", network_mode="host")], [net("a", "p")])
    plan = plan_up(p)
    s = summary(p)
    (named,) = by_kind(plan, "uts_create", name="p-named-1")
    assert (named.hostname, named.domainname) == ("db", "corp.example")
    (plain,) = by_kind(plan, "uts_create", name="p-plain-1")
    # Docker's default: the short container id, also the summary's hostname
    assert plain.hostname == naming.default_hostname("p", "p-plain-1") == container(s, "p-plain-1")["hostname"]
    assert plain.domainname is None
    assert plain.describe() == f"uts namespace p-plain-1, hostname {plain.hostname}"
    # service:X shares X's hostname, as under Docker; host mode keeps the host's (no namespace)
    (side,) = by_kind(plan, "uts_alias")
    assert (side.name, side.target) == ("p-side-1", "p-named-1") and container(s, "p-side-1")["hostname"] == "db"
    assert not [o for o in plan.ops if o.unit == "container:p-h-1"]
    assert O.teardown(plan.ops).count(O.UtsDelete("container:p-side-1", "p-side-1")) == 1


def test_a_sharer_is_made_anew_when_the_container_it_shares_with_is():
    """Its names are bind mounts of X's namespaces: kept over a new X they would hold the old one."""
    def side_ops(base_ip):
        p = project("p", [svc("base", att("a", ipv4_address=ipaddress.ip_address(base_ip))),
                          svc("side", network_mode="service:base")],
                    [net("a", "p", ipam_pools=(pool("10.5.0.0/24"),))])
        return [o for o in plan_up(p).ops if o.unit == "container:p-side-1"]

    assert side_ops("10.5.0.7") == side_ops("10.5.0.7")
    before, after = side_ops("10.5.0.7"), side_ops("10.5.0.8")
    assert before[0].target_plan != after[0].target_plan and before[:2] != after[:2]


def test_legacy_bridge_avoids_addresses_of_other_projects():
    other = {"o": from_data({"project": "o", "networks": [], "containers": [
        {"name": "o-x-1", "service": "x", "interfaces": [{"network": "bridge", "ifname": "eth0", "ipv4": "172.17.0.2/16"}]}]})}
    p = project("p", [svc("s", network_mode="bridge")], [])
    s = summary(p, HostFacts(projects=other))
    assert container(s, "p-s-1")["interfaces"][0]["ipv4"] == "172.17.0.3/16"


def test_external_network_from_other_project_state():
    other = {"o": from_data({"project": "o", "networks": [
        {"name": "shared_net", "driver": "bridge", "bridge": "cn-deadbeef", "external": False,
         "subnets": [{"subnet": "10.50.0.0/24", "gateway": "10.50.0.1"}]}],
        "containers": [{"name": "o-x-1", "service": "x",
                        "interfaces": [{"network": "shared_net", "ifname": "eth0", "ipv4": "10.50.0.2/24"}]}]})}
    p = project("p", [svc("s", att("ext"))], [net("ext", "p", name="shared_net", external=True)])
    plan = plan_up(p, HostFacts(projects=other))
    assert not [o for o in plan.ops if o.unit.startswith("network:")]
    (veth,) = by_kind(plan, "veth_create")
    assert veth.master == "cn-deadbeef"
    s = summary(p, HostFacts(projects=other))
    assert container(s, "p-s-1")["interfaces"][0]["ipv4"] == "10.50.0.3/24"
    assert s["networks"][0]["external"] is True
    missing = plan_up(p, HostFacts())
    assert any("shared_net" in w and "does not exist" in w for w in missing.warnings)


def test_ipv6_network_plans_forwarding_dad_and_v6_default_route():
    p = project("p", [svc("s", att("a", ipv6_address="fd00:dead:beef::10"))],
                [net("a", "p", enable_ipv6=True, ipam_pools=(pool("172.30.0.0/24"), pool("fd00:dead:beef::/64")))])
    plan = plan_up(p)
    assert O.SysctlSet("host", None, "net.ipv6.conf.all.forwarding", "1") in plan.ops
    assert by_kind(plan, "sysctl", ns="p-s-1", key="net.ipv6.conf.default.accept_dad")
    addrs = [str(o.address) for o in by_kind(plan, "addr_add", ns="p-s-1")]
    assert addrs == ["172.30.0.2/24", "fd00:dead:beef::10/64"]
    gws = [str(o.address) for o in by_kind(plan, "addr_add", ns=None)]
    assert gws == ["172.30.0.1/24", "fd00:dead:beef::1/64"]
    routes = {str(o.dst): str(o.gateway) for o in by_kind(plan, "route_add")}
    assert routes == {"0.0.0.0/0": "172.30.0.1", "::/0": "fd00:dead:beef::1"}


def test_static_ipv6_without_ipv6_subnet_is_a_config_error():
    p = project("p", [svc("s", att("a", ipv6_address="fd00::5", keypath="services.s.networks.a"))], [net("a", "p")])
    with pytest.raises(ConfigError) as e:
        plan_up(p)
    assert e.value.keypath == "services.s.networks.a.ipv6_address"


def test_ports_ephemeral_and_conflicts_and_route_localnet():
    p = project("p", [svc("s", att("a"), ports=(PortMapping(target=80, target_end=80),
                                                PortMapping(target=53, target_end=53, protocol="udp"),
                                                PortMapping(target=7001, target_end=7002, published=7001, published_end=7002)),
                      replicas=2)], [net("a", "p")])
    facts = HostFacts(projects={"o": from_data({"project": "o", "containers": [
        {"name": "o-x-1", "service": "x", "ports": [{"protocol": "tcp", "published": 32768, "target": 1, "target_end": 1}]}]})})
    with pytest.raises(ConfigError, match="both publish tcp port 7001"):
        plan_up(p, facts)
    p = project("p", [svc("s", att("a"), ports=(PortMapping(target=80, target_end=80),
                                                PortMapping(target=53, target_end=53, protocol="udp")), replicas=2)],
                [net("a", "p")])
    s = summary(p, facts)
    got = [(x["protocol"], x["published"]) for c in s["containers"] for x in c["ports"]]
    assert got == [("tcp", 32769), ("udp", 32768), ("tcp", 32770), ("udp", 32769)]
    plan = plan_up(p, facts)
    assert by_kind(plan, "sysctl", key=f"net.ipv4.conf.{naming.bridge_name('p_a')}.route_localnet")
    only_public = project("p", [svc("s", att("a"), ports=(PortMapping(target=80, target_end=80, published=80,
                                                                       host_ip=ipaddress.ip_address("198.51.100.1")),))],
                          [net("a", "p")])
    assert not [o for o in plan_up(only_public).ops if "route_localnet" in getattr(o, "key", "")]


def test_published_range_spread_over_replicas():
    p = project("p", [svc("s", att("a"), replicas=3, ports=(PortMapping(target=80, target_end=80, published=8000, published_end=8002),))],
                [net("a", "p")])
    s = summary(p)
    assert [c["ports"][0]["published"] for c in s["containers"]] == [8000, 8001, 8002]


def test_user_sysctls_only_net_and_after_interfaces():
    p = project("p", [svc("s", att("a"), sysctls={"net.ipv4.conf.eth0.rp_filter": "2", "kernel.shmmax": "1"})], [net("a", "p")])
    plan = plan_up(p)
    kinds = [(o.kind, getattr(o, "key", None)) for o in plan.ops if o.unit == "container:p-s-1"]
    assert kinds.index(("sysctl", "net.ipv4.conf.eth0.rp_filter")) > kinds.index(("route_add", None))
    assert any("kernel.shmmax" in w for w in plan.warnings)


def test_link_group_everywhere_and_stable_when_up_again():
    p = three_tier()
    plan = plan_up(p)
    group = summary(p)["group"]
    assert {o.group for o in plan.ops if o.kind in ("bridge_create", "veth_create")} == {group}
    # the project's own links already carry the group: it stays
    facts = HostFacts(links={naming.bridge_name("shop_front"): group, "eth0": 0},
                      projects={"shop": state(p)})
    assert summary(p, facts)["group"] == group
    clash = HostFacts(links={"foreign0": group})
    assert summary(p, clash)["group"] != group


def test_bad_driver_options_are_config_errors():
    p = project("p", [svc("s", att("a"))], [net("a", "p", driver_opts={"com.docker.network.driver.mtu": "big"})])
    with pytest.raises(ConfigError, match="integer"):
        plan_up(p)
    p = project("p", [svc("s", att("a"))], [net("a", "p", driver_opts={naming.BRIDGE_NAME_OPT: "a-very-long-bridge-name"})])
    with pytest.raises(ConfigError, match="15 bytes"):
        plan_up(p)
    p = project("p", [svc("s", att("a"))], [net("a", "p", driver="macvlan", driver_opts={"parent": "x", "macvlan_mode": "weird"})])
    with pytest.raises(ConfigError, match="macvlan mode"):
        plan_up(p)


def test_mtu_reaches_bridge_and_veths():
    p = project("p", [svc("s", att("a"))], [net("a", "p", driver_opts={"com.docker.network.driver.mtu": "1400"})])
    plan = plan_up(p)
    assert by_kind(plan, "bridge_create")[0].mtu == 1400 and by_kind(plan, "veth_create")[0].mtu == 1400


def test_teardown_round_trip():
    plan = plan_up(three_tier())
    down = O.teardown(plan.ops)
    kinds = [o.kind for o in down]
    group = summary(three_tier())["group"]
    assert kinds[0] == "dns_stop" and kinds[1] == "nft_delete" and kinds[2] == "file_remove"
    (gdel,) = [o for o in down if o.kind == "link_group_delete"]
    assert gdel.group == group and len(gdel.names) == 2 + 4  # two bridges, four veths
    assert sorted(o.name for o in down if o.kind == "netns_delete") == ["shop-api-1", "shop-db-1", "shop-web-1"]
    assert not [o for o in down if o.kind in ("addr_del", "route_del", "link_delete")]
    removed = {o.path for o in down if o.kind == "file_remove"}
    assert removed == {o.path for o in plan.ops if o.kind == "file_write"}


def test_an_edit_keeps_running_subnets_addresses_and_ports():
    before = project("p", [svc("web", att("front"), ports=(PortMapping(target=80, target_end=80),)),
                           svc("api", att("front"), att("back"))],
                     [net("front", "p"), net("back", "p")])
    running = summary(before)
    running_state = state(before)
    # a new network declared first and a new service declared first would shift everything if
    # numbering started afresh; with the project's own state they stay put
    after = project("p", [svc("cache", att("new"), att("front"), ports=(PortMapping(target=6379, target_end=6379),)),
                          svc("web", att("front"), ports=(PortMapping(target=80, target_end=80),)),
                          svc("api", att("front"), att("back"))],
                    [net("new", "p"), net("front", "p"), net("back", "p")])
    fresh = summary(after)
    assert fresh["networks"][0]["subnets"][0]["subnet"] == "172.18.0.0/16"  # without state: renumbered
    kept = summary(after, HostFacts(projects={"p": running_state}))
    subnets = {n["name"]: n["subnets"][0]["subnet"] for n in kept["networks"]}
    assert subnets == {"p_new": "172.20.0.0/16", "p_front": "172.18.0.0/16", "p_back": "172.19.0.0/16"}
    for name in ("p-web-1", "p-api-1"):
        assert container(kept, name)["interfaces"] == container(running, name)["interfaces"]
        assert container(kept, name)["ports"] == container(running, name)["ports"]
    assert container(kept, "p-cache-1")["interfaces"][1]["ipv4"] == "172.18.0.4/16"
    assert container(kept, "p-cache-1")["ports"][0]["published"] == 32769
    # planning the unchanged project against its own state changes nothing
    assert summary(before, HostFacts(projects={"p": running_state})) == running


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from compose_net.errors import ComposeNetError  # noqa: E402


@st.composite
def random_projects(draw):
    nkeys = draw(st.integers(1, 5))
    keys = [f"n{i}" for i in range(nkeys)]
    networks = []
    for k in keys:
        kw = {}
        if draw(st.booleans()):
            kw["ipam_pools"] = (pool(f"10.{draw(st.integers(0, 3))}.{draw(st.integers(0, 255))}.0/{draw(st.sampled_from([24, 28, 30]))}",
                                     keypath=f"networks.{k}.ipam.config[0]"),)
        networks.append(net(k, "r", internal=draw(st.booleans()), enable_ipv6=draw(st.booleans()),
                            driver=draw(st.sampled_from(["bridge", "bridge", "overlay", "macvlan"])),
                            driver_opts={"parent": "eth0"}, **kw))
    services = []
    for i in range(draw(st.integers(1, 6))):
        mode = draw(st.sampled_from([None, None, None, "host", "none", "bridge", "service:s0"]))
        if mode == "service:s0" and i == 0:
            mode = None
        atts = ()
        if mode is None:
            chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=nkeys, unique=True))
            atts = tuple(att(k, j, priority=draw(st.integers(0, 3)), gw_priority=draw(st.integers(0, 3)))
                         for j, k in enumerate(chosen))
        ports = tuple(PortMapping(target=80, target_end=80) for _ in range(draw(st.integers(0, 2))))
        services.append(svc(f"s{i}", *atts, network_mode=mode, replicas=draw(st.integers(1, 3)), ports=ports))
    return project("r", services, networks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_projects())
def test_random_projects_plan_consistently_or_fail_cleanly(p):
    try:
        plan = plan_up(p)
    except ComposeNetError:
        return
    s = summary(p)
    seen_addr = set()
    for c in s["containers"]:
        names = [i["ifname"] for i in c["interfaces"]]
        assert len(names) == len(set(names))
        assert sum(i["default_route"] for i in c["interfaces"]) <= 1
        for i in c["interfaces"]:
            for fam in ("ipv4", "ipv6"):
                if i[fam] and i["network"] != "bridge":
                    key = (i["network"], i[fam].split("/")[0])
                    assert key not in seen_addr, key
                    seen_addr.add(key)
            if i["host_ifname"]:
                assert naming.fits(i["host_ifname"])
    for op in plan.ops:
        for attr in ("name", "peer_name", "dev", "master"):
            value = getattr(op, attr, None)
            if isinstance(value, str) and op.kind not in ("netns_create", "netns_alias", "uts_create", "uts_alias"):
                assert naming.fits(value), (op, attr)
    netns = {o.name for o in plan.ops if o.kind in ("netns_create", "netns_alias")}
    uts = {o.name for o in plan.ops if o.kind in ("uts_create", "uts_alias")}
    assert netns == uts  # every container namespace has its hostname's beside it
    down = O.teardown(plan.ops)
    assert {o.name for o in down if o.kind == "netns_delete"} == netns
    assert {o.name for o in down if o.kind == "uts_delete"} == uts
    assert O.teardown(down) == ()


def test_link_local_ips_are_added():
    p = project("p", [svc("s", att("a", link_local_ips=(ipaddress.ip_address("169.254.8.8"), ipaddress.ip_address("fe80::8"))))],
                [net("a", "p")])
    addrs = [str(o.address) for o in plan_up(p).ops if o.kind == "addr_add" and o.ns == "p-s-1"]
    assert addrs == ["172.18.0.2/16", "169.254.8.8/16", "fe80::8/64"]
    assert container(summary(p), "p-s-1")["interfaces"][0]["link_local"] == ["169.254.8.8/16", "fe80::8/64"]


def test_dns_ttl_comes_from_compose_net_dns_ttl_in_the_environment(tmp_path):
    from compose_net.errors import PlanError
    from compose_net.loader import LoadOptions, load
    (tmp_path / "compose.yml").write_text("services:\n  a: {image: x}\n")
    (tmp_path / ".env").write_text("COMPOSE_NET_DNS_TTL=30\n")
    project = load(LoadOptions(cwd=str(tmp_path), environ={})).project
    assert summary(project, HostFacts())["dns_ttl"] == 30
    project = load(LoadOptions(cwd=str(tmp_path), environ={"COMPOSE_NET_DNS_TTL": "0"})).project
    assert summary(project, HostFacts())["dns_ttl"] == 0  # the shell wins over .env
    (tmp_path / ".env").write_text("")
    assert summary(load(LoadOptions(cwd=str(tmp_path), environ={})).project, HostFacts())["dns_ttl"] == 600
    bad = load(LoadOptions(cwd=str(tmp_path), environ={"COMPOSE_NET_DNS_TTL": "ten"})).project
    with pytest.raises(PlanError):
        summary(bad, HostFacts())


@pytest.mark.parametrize("field, value", [
    ("hostname", "app\nnameserver 203.0.113.66"),
    ("domainname", "example.org 203.0.113.66"),
    ("dns_search", ("corp.example\nnameserver 203.0.113.66",)),
    ("dns_opt", ("ndots:1\tnameserver",)),
    ("extra_hosts", (ExtraHost("db\n203.0.113.66 bank.example", "10.0.0.5"),)),
])
def test_resolv_conf_and_hosts_writers_refuse_a_second_word(field, value):
    # The loader refuses these; a Project built by any other way still cannot add a line.
    from compose_net.errors import PlanError

    hostile = project("shop", [svc("web", att("front"), **{field: value})], [net("front")])
    with pytest.raises(PlanError, match="must be one word"):
        plan_up(hostile)
    fine = project("shop", [svc("web", att("front"), hostname="web", domainname="example.org",
                                dns_search=("corp.example",), dns_opt=("ndots:1",))], [net("front")])
    files = {o.path.rsplit("/", 1)[1]: o.content for o in by_kind(plan_up(fine), "file_write", unit="container:shop-web-1")}
    assert "search corp.example\n" in files["resolv.conf"] and "web.example.org web\n" in files["hosts"]


def test_up_of_one_service_then_another_on_an_overlay_network():
    """`up web` then `up late` on a project with an overlay network: the second plan reads the
    first's recorded state (it crashed on a dict where a name was expected, when the state was
    untyped)."""
    from compose_net.graph import select

    p = project("p", [svc("web", att("o")), svc("late", att("o"))], [net("o", "p", driver="overlay")])
    running = state(select(p, ["web"]))
    assert running.networks[0].vxlan is not None
    both = state(select(p, ["web", "late"]), HostFacts(projects={"p": running}))
    assert {c.name for c in both.containers} == {"p-web-1", "p-late-1"}
    assert both.networks[0].vxlan == running.networks[0].vxlan
    assert both.container("p-web-1").interfaces == running.container("p-web-1").interfaces
