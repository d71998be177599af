import ipaddress

import pytest

from compose_net import ipam
from compose_net.errors import ConfigError, PlanError
from compose_net.probe import HostAddress, HostFacts, HostRoute
from compose_net.summary import from_data
from planning_projects import att, net, pool, project, svc

N = ipaddress.ip_network
A = ipaddress.ip_address


def subnets(p, facts=None):
    return {k: [str(s.subnet) for s in v] for k, v in ipam.choose_subnets(p, facts or HostFacts()).items()}


def test_default_pools_match_docker():
    pools = ipam.default_pools()
    assert str(pools[0]) == "172.18.0.0/16" and str(pools[13]) == "172.31.0.0/16"
    assert str(pools[14]) == "192.168.0.0/20" and str(pools[15]) == "192.168.16.0/20"
    assert len(pools) == 14 + 16
    assert N("172.17.0.0/16") not in pools


def test_auto_subnets_in_order_skipping_host_routes_addresses_nameservers_and_other_projects():
    p = project("shop", [svc("a", att("n1"), att("n2"), att("n3"), att("n4"))],
                [net("n1"), net("n2"), net("n3"), net("n4")])
    assert subnets(p) == {"n1": ["172.18.0.0/16"], "n2": ["172.19.0.0/16"], "n3": ["172.20.0.0/16"], "n4": ["172.21.0.0/16"]}
    facts = HostFacts(
        routes=(HostRoute(N("172.18.5.0/24"), "eth1"), HostRoute(N("0.0.0.0/0"), "eth0")),
        addresses=(HostAddress(ipaddress.ip_interface("172.19.3.4/32"), "eth2"),),
        nameservers=(A("172.20.0.53"),),
        projects={"other": from_data({"project": "other", "networks": [
            {"name": "other_x", "subnets": [{"subnet": "172.21.0.0/16"}]}]})},
    )
    got = ipam.choose_subnets(p, facts)
    assert [str(got[k][0].subnet) for k in ("n1", "n2", "n3", "n4")] == \
        ["172.22.0.0/16", "172.23.0.0/16", "172.24.0.0/16", "172.25.0.0/16"]
    assert "host route via eth1" in got["n1"][0].note and "project other" in got["n1"][0].note


def test_routes_through_own_bridges_do_not_move_the_project():
    p = project("shop", [svc("a", att("n1"))], [net("n1")])
    facts = HostFacts(routes=(HostRoute(N("172.18.0.0/16"), "cn-mine"),))
    assert str(ipam.choose_subnets(p, facts, own_devs={"cn-mine"})["n1"][0].subnet) == "172.18.0.0/16"
    assert str(ipam.choose_subnets(p, facts)["n1"][0].subnet) == "172.19.0.0/16"


def test_declared_subnets_are_skipped_whatever_the_declaration_order():
    declared = net("b", ipam_pools=(pool("172.18.0.0/16"),))
    for order in ([net("a"), declared], [declared, net("a")]):
        p = project("shop", [svc("s", att("a"), att("b"))], order)
        assert subnets(p) == {"a": ["172.19.0.0/16"], "b": ["172.18.0.0/16"]}


def test_192_168_pools_after_172_and_exhaustion_is_a_plan_error():
    keys = [f"n{i:02d}" for i in range(30)]
    p = project("shop", [svc("s", *[att(k) for k in keys])], [net(k) for k in keys])
    got = subnets(p)
    assert got["n13"] == ["172.31.0.0/16"] and got["n14"] == ["192.168.0.0/20"] and got["n29"] == ["192.168.240.0/20"]
    keys.append("n30")
    p = project("shop", [svc("s", *[att(k) for k in keys])], [net(k) for k in keys])
    with pytest.raises(PlanError, match="no free IPv4 subnet left"):
        ipam.choose_subnets(p, HostFacts())


def test_user_subnet_overlapping_host_route_or_other_project_is_a_config_error():
    p = project("shop", [svc("s", att("a"))], [net("a", ipam_pools=(pool("192.0.2.0/25", keypath="networks.a.ipam.config[0]"),))])
    facts = HostFacts(routes=(HostRoute(N("192.0.2.0/24"), "eth0"),))
    with pytest.raises(ConfigError) as e:
        ipam.choose_subnets(p, facts)
    assert e.value.keypath == "networks.a.ipam.config[0].subnet" and "host route via eth0" in str(e.value)
    other = HostFacts(projects={"o": from_data({"project": "o", "networks": [
        {"name": "o_n", "subnets": [{"subnet": "192.0.2.0/24"}]}]})})
    with pytest.raises(ConfigError, match="project o"):
        ipam.choose_subnets(p, other)
    # a macvlan network lives on the parent's LAN: the host's route to it is expected
    lan = project("shop", [svc("s", att("a"))],
                  [net("a", driver="macvlan", driver_opts={"parent": "eth0"}, ipam_pools=(pool("192.0.2.0/24"),))])
    assert subnets(lan, facts) == {"a": ["192.0.2.0/24"]}


def test_addresses_in_order_skipping_gateway_statics_and_aux():
    s = ipam.Subnet(N("10.1.0.0/24"), A("10.1.0.1"), aux=(A("10.1.0.3"),))
    got = ipam.allocate("n", [s], [("a", None, None), ("b", A("10.1.0.2"), None), ("c", None, None), ("d", None, None)])
    assert {k: str(v[4]) for k, v in got.items()} == {"a": "10.1.0.4", "b": "10.1.0.2", "c": "10.1.0.5", "d": "10.1.0.6"}


def test_gateway_elsewhere_frees_the_first_address():
    s = ipam.Subnet(N("10.1.0.0/24"), A("10.1.0.254"))
    got = ipam.allocate("n", [s], [("a", None, None), ("b", None, None)])
    assert [str(v[4]) for v in got.values()] == ["10.1.0.1", "10.1.0.2"]


def test_ip_range_hands_out_its_network_address_like_docker():
    s = ipam.Subnet(N("10.123.0.0/16"), A("10.123.0.1"), ip_range=N("10.123.5.0/24"), aux=(A("10.123.5.1"), A("10.123.5.2")))
    got = ipam.allocate("n", [s], [("a", None, None), ("b", None, None), ("c", A("10.123.0.10"), None)])
    assert {k: str(v[4]) for k, v in got.items()} == {"a": "10.123.5.0", "b": "10.123.5.3", "c": "10.123.0.10"}


def test_exhausted_user_subnet_points_at_it():
    p = project("shop", [svc("s", att("a"), replicas=3)], [net("a", ipam_pools=(pool("10.9.0.0/30", keypath="networks.a.ipam.config[0]"),))])
    s = ipam.choose_subnets(p, HostFacts())["a"]
    with pytest.raises(ConfigError) as e:
        ipam.allocate("shop_a", s, [("x", None, None), ("y", None, None)], project=p)
    assert e.value.keypath == "networks.a.ipam.config[0].subnet" and "no address left" in str(e.value)
    auto = ipam.Subnet(N("10.9.0.0/30"), A("10.9.0.1"), auto=True)
    with pytest.raises(PlanError):
        ipam.allocate("shop_a", [auto], [("x", None, None), ("y", None, None)])


def test_ipv6_ula_is_deterministic_and_distinct():
    p = project("shop", [svc("s", att("a"), att("b"))], [net("a", enable_ipv6=True), net("b", enable_ipv6=True)])
    first = ipam.choose_subnets(p, HostFacts())
    again = ipam.choose_subnets(p, HostFacts())
    assert first == again
    v6 = [s.subnet for s in first["a"] if s.version == 6] if False else [s.subnet for s in first["a"] if s.subnet.version == 6]
    assert len(v6) == 1 and v6[0].prefixlen == 64 and str(v6[0]).startswith("fd")
    assert v6[0] != [s.subnet for s in first["b"] if s.subnet.version == 6][0]
    assert [s.gateway for s in first["a"] if s.subnet.version == 6][0] == v6[0].network_address + 1
    other = project("other", [svc("s", att("a"))], [net("a", "other", enable_ipv6=True)])
    assert [s.subnet for s in ipam.choose_subnets(other, HostFacts())["a"] if s.subnet.version == 6][0] != v6[0]
    got = ipam.allocate("n", first["a"], [("x", None, None)])
    assert got["x"][6] == v6[0].network_address + 2 and str(got["x"][4]) == "172.18.0.2"


def test_explicit_ipv6_subnet_kept():
    p = project("shop", [svc("s", att("a"))], [net("a", enable_ipv6=True, ipam_pools=(pool("10.5.0.0/24"), pool("fd00:dead:beef::/64")))])
    got = ipam.choose_subnets(p, HostFacts())["a"]
    assert [str(s.subnet) for s in got] == ["10.5.0.0/24", "fd00:dead:beef::/64"]
    assert str(got[1].gateway) == "fd00:dead:beef::1"


def test_ephemeral_ports_from_32768_skipping_used():
    used = {("tcp", 32768), ("tcp", 32770)}
    assert ipam.ephemeral_ports([("tcp", 1), ("tcp", 1), ("udp", 1), ("tcp", 3)], used) == [32769, 32771, 32768, 32772]
    with pytest.raises(PlanError):
        ipam.ephemeral_ports([("tcp", 40000)], set())


def test_plan_time_errors_point_at_the_users_line(tmp_path):
    loader = pytest.importorskip("compose_net.loader")
    from compose_net.plan.planner import plan_up

    (tmp_path / "compose.yml").write_text(
        "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    ipam:\n      config:\n"
        "        - subnet: 192.0.2.0/25\n")
    project = loader.load(loader.LoadOptions(files=(str(tmp_path / "compose.yml"),), environ={})).project
    with pytest.raises(ConfigError) as e:
        plan_up(project, HostFacts(routes=(HostRoute(N("192.0.2.0/24"), "eth0"),)))
    assert str(e.value).endswith(
        "compose.yml:9: networks.n.ipam.config[0].subnet: subnet 192.0.2.0/25 overlaps 192.0.2.0/24 (host route via eth0)")


# --- the legacy bridge cn0 (network_mode: bridge) ------------------------------------------------


def legacy_project(env=None, networks=()):
    from dataclasses import replace

    p = project("lg", [svc("s", network_mode="bridge"), *[svc(f"u{n.key}", att(n.key)) for n in networks]],
                list(networks))
    return replace(p, environment=dict(env or {}))


DOCKER0 = HostFacts(routes=(HostRoute(N("172.17.0.0/16"), "docker0"),),
                    addresses=(HostAddress(ipaddress.ip_interface("172.17.0.1/16"), "docker0"),))


def test_legacy_bridge_takes_172_17_when_free():
    s = ipam.legacy_subnet(legacy_project(), HostFacts())
    assert (str(s.subnet), str(s.gateway)) == ("172.17.0.0/16", "172.17.0.1")


def test_legacy_bridge_moves_off_docker0_and_says_why_and_how_to_choose():
    s = ipam.legacy_subnet(legacy_project(), DOCKER0)
    assert (str(s.subnet), str(s.gateway)) == ("172.18.0.0/16", "172.18.0.1")
    assert "172.17.0.0/16 is in use (host route via docker0)" in s.note and "COMPOSE_NET_BIP" in s.note
    # the project's own networks then skip the legacy bridge's subnet too
    from compose_net.plan.planner import summary

    summ = summary(legacy_project(networks=[net("a", "lg")]), DOCKER0)
    subnets = {n.name: str(n.subnets[0].subnet) for n in summ.networks}
    assert subnets == {"bridge": "172.18.0.0/16", "lg_a": "172.19.0.0/16"}
    assert summ.containers[0].interfaces[0].ipv4 == ipaddress.ip_interface("172.18.0.2/16")


def test_legacy_bridge_skips_other_used_prefixes_too():
    facts = HostFacts(routes=DOCKER0.routes + (HostRoute(N("172.18.0.0/16"), "br-0123456789ab"),))
    assert str(ipam.legacy_subnet(legacy_project(), facts).subnet) == "172.19.0.0/16"


def test_bip_setting_chooses_the_legacy_subnet_and_is_checked():
    s = ipam.legacy_subnet(legacy_project({"COMPOSE_NET_BIP": "10.200.0.1/24"}), DOCKER0)
    assert (str(s.subnet), str(s.gateway)) == ("10.200.0.0/24", "10.200.0.1")
    assert "COMPOSE_NET_BIP" in s.note
    for bad in ("10.200.0.0/24", "10.200.0.1", "fd00::1/64", "nonsense", "10.0.0.1/31"):
        with pytest.raises(PlanError, match="COMPOSE_NET_BIP"):
            ipam.legacy_subnet(legacy_project({"COMPOSE_NET_BIP": bad}), HostFacts())
    with pytest.raises(PlanError, match=r"COMPOSE_NET_BIP=172.17.5.1/24: 172.17.5.0/24 overlaps 172.17.0.0/16 \(host route via docker0\)"):
        ipam.legacy_subnet(legacy_project({"COMPOSE_NET_BIP": "172.17.5.1/24"}), DOCKER0)


def test_legacy_bridge_keeps_what_it_holds_while_shared():
    other = {"o": from_data({"project": "o", "networks": [
        {"name": "bridge", "bridge": "cn0", "external": True, "shared": True,
         "subnets": [{"subnet": "172.18.0.0/16", "gateway": "172.18.0.1"}]}]})}
    s = ipam.legacy_subnet(legacy_project({"COMPOSE_NET_BIP": "10.200.0.1/24"}), HostFacts(projects=other))
    assert str(s.subnet) == "172.18.0.0/16" and "project o" in s.note and "made anew" in s.note
    # another project's auto subnet never lands on it
    p = project("x", [svc("a", att("n"))], [net("n", "x")])
    assert subnets(p, HostFacts(projects=other, routes=DOCKER0.routes)) == {"n": ["172.19.0.0/16"]}
    facts = HostFacts(routes=(HostRoute(N("172.21.0.0/16"), "cn0"),))
    assert str(ipam.legacy_subnet(legacy_project(), facts).subnet) == "172.21.0.0/16"


def test_bip_from_the_host_file_as_dockerd_reads_daemon_json():
    facts = HostFacts(routes=DOCKER0.routes, daemon_json='{"bip": "10.201.0.1/24", "debug": true}',
                      daemon_json_path="/etc/compose-net/daemon.json")
    s = ipam.legacy_subnet(legacy_project(), facts)
    assert (str(s.subnet), str(s.gateway)) == ("10.201.0.0/24", "10.201.0.1")
    assert "bip in /etc/compose-net/daemon.json" in s.note
    # the variable wins over the file
    s = ipam.legacy_subnet(legacy_project({"COMPOSE_NET_BIP": "10.202.0.1/24"}), facts)
    assert str(s.subnet) == "10.202.0.0/24"
    with pytest.raises(PlanError, match=r"bip in /etc/compose-net/daemon.json='10.201.0.0/24'"):
        ipam.legacy_subnet(legacy_project(), HostFacts(daemon_json='{"bip": "10.201.0.0/24"}',
                                                       daemon_json_path="/etc/compose-net/daemon.json"))
