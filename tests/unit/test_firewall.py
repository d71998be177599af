"""firewall.ruleset(): the project's one nftables table, checked by shape and by `nft -c`."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from compose_net import firewall
from compose_net.errors import PlanError, RuntimeFailure
from compose_net.summary import from_data


def network(name="p_front", bridge="cn-aaaa0001", subnet="172.18.0.0/16", **kw):
    net = {"name": name, "key": name.split("_", 1)[-1], "id": "0" * 64, "driver": "bridge",
           "bridge": bridge, "parent": None, "mode": None, "internal": False, "external": False,
           "masquerade": True, "icc": True, "mtu": None, "enable_ipv6": False, "labels": {},
           "subnets": [{"subnet": subnet, "gateway": str(subnet).split("/")[0][:-1] + "1", "ip_range": None}]}
    net.update(kw)
    return net


def container(name="p-web-1", interfaces=(), ports=(), **kw):
    c = {"name": name, "service": name.split("-")[1], "index": 1, "id": "1" * 64, "netns": name,
         "network_mode": None, "shares": None, "interfaces": list(interfaces), "ports": list(ports)}
    c.update(kw)
    return c


def iface(network="p_front", ipv4="172.18.0.2/16", ipv6=None, default_route=True, ifname="eth0"):
    return {"network": network, "ifname": ifname, "host_ifname": "veth0001", "mac": "02:42:ac:12:00:02",
            "ipv4": ipv4, "ipv6": ipv6, "gateway": None, "default_route": default_route, "aliases": []}


def port(published, target, protocol="tcp", host_ip=None, published_end=None, target_end=None):
    return {"protocol": protocol, "host_ip": host_ip, "published": published,
            "published_end": published_end or published, "target": target, "target_end": target_end or target}


def summary(networks, containers=(), table="cn-p"):
    return from_data({"version": 1, "project": "p", "group": 7, "table": table,
                      "networks": list(networks), "containers": list(containers)})


def rules(doc, chain):
    return [item["add"]["rule"]["expr"] for item in doc["nftables"]
            if "add" in item and "rule" in item["add"] and item["add"]["rule"]["chain"] == chain]


def chains(doc):
    return {item["add"]["chain"]["name"]: item["add"]["chain"] for item in doc["nftables"]
            if "add" in item and "chain" in item["add"]}


def m(key_or_left, right, op="=="):
    left = {"meta": {"key": key_or_left}} if isinstance(key_or_left, str) else key_or_left
    return {"match": {"op": op, "left": left, "right": right}}


def payload(proto, field):
    return {"payload": {"protocol": proto, "field": field}}


def nft_check(doc):
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("nft -c needs nft and CAP_NET_ADMIN")
    from compose_net.executor import nft
    nft.check(json.dumps(doc))


CT_DNAT = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}
WEB = container(interfaces=[iface()], ports=[port(8080, 80)])


def test_document_recreates_one_inet_table_atomically():
    doc = firewall.ruleset(summary([network()], [WEB]))
    items = doc["nftables"]
    table = {"table": {"family": "inet", "name": "cn-p"}}
    assert items[1:4] == [{"add": table}, {"delete": table}, {"add": table}]
    for item in items[4:]:
        obj = next(iter(item["add"].values()))
        assert obj["family"] == "inet" and obj["table"] == "cn-p"
    # never a drop policy on a base chain
    assert all(c.get("policy", "accept") == "accept" for c in chains(doc).values())
    nft_check(doc)


def test_masquerade_is_saddr_subnet_oifname_not_bridge():
    doc = firewall.ruleset(summary([network()]))
    assert rules(doc, "postrouting") == [[
        m(payload("ip", "saddr"), {"prefix": {"addr": "172.18.0.0", "len": 16}}),
        m("oifname", "cn-aaaa0001", "!="),
        {"masquerade": None},
    ]]
    nft_check(doc)


def test_no_masquerade_when_internal_or_disabled():
    doc = firewall.ruleset(summary([
        network("p_a", "cn-a", "10.1.0.0/24", internal=True, masquerade=False),
        network("p_b", "cn-b", "10.2.0.0/24", masquerade=False),
    ]))
    assert rules(doc, "postrouting") == []
    assert "postrouting" not in chains(doc)
    nft_check(doc)


def test_internal_network_forwards_only_within_its_bridge():
    doc = firewall.ruleset(summary([network(internal=True, masquerade=False)]))
    fwd = rules(doc, "forward")
    assert [m("iifname", "cn-aaaa0001"), m("oifname", "cn-aaaa0001", "!="), {"drop": None}] in fwd
    assert [m("oifname", "cn-aaaa0001"), m("iifname", "cn-aaaa0001", "!="), {"drop": None}] in fwd
    # the internal drops come before anything that accepts
    first_accept = next(i for i, r in enumerate(fwd) if r[-1] == {"accept": None})
    assert fwd.index([m("iifname", "cn-aaaa0001"), m("oifname", "cn-aaaa0001", "!="), {"drop": None}]) < first_accept
    nft_check(doc)


def test_icc_off_drops_same_bridge_traffic_and_icc_on_does_not():
    off = rules(firewall.ruleset(summary([network(icc=False)])), "forward")
    on = rules(firewall.ruleset(summary([network()])), "forward")
    same = [m("iifname", "cn-aaaa0001"), m("oifname", "cn-aaaa0001"), {"drop": None}]
    assert same in off and same not in on
    # published ports stay open to the neighbours: the DNAT accept comes first
    assert off.index([CT_DNAT, {"accept": None}]) < off.index(same)


def test_isolation_between_bridges_and_no_new_inbound_connections():
    doc = firewall.ruleset(summary([network(), network("p_back", "mybr0", "10.9.0.0/24")]))
    fwd = rules(doc, "forward")
    out_rule = [m("iifname", "cn-aaaa0001"), m("oifname", "cn-aaaa0001", "!="), m("oifname", "cn-*"), {"drop": None}]
    in_rule = [m("oifname", "cn-aaaa0001"), m("iifname", "cn-aaaa0001", "!="), {"drop": None}]
    assert out_rule in fwd and in_rule in fwd
    # the legacy default bridge too, but not lookalikes like CNI's cni0
    assert [m("iifname", "cn-aaaa0001"), m("oifname", "cn-aaaa0001", "!="), m("oifname", "cn0"), {"drop": None}] in fwd
    assert not any(m("oifname", "cn*") in r for r in fwd)
    # a freely named bridge gets the same pair: nothing enters it but from itself
    assert [m("oifname", "mybr0"), m("iifname", "mybr0", "!="), {"drop": None}] in fwd
    # published-port flows pass before every drop; replies only into a bridge, never across
    # bridges (a forged ICMP error is "related" too), as Docker's isolation chains come first
    est = fwd.index([m({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}])
    dnat = fwd.index([m({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}])
    assert dnat < fwd.index(out_rule) < est < fwd.index(in_rule)
    nft_check(doc)


def test_single_published_port_dnat_from_outside_and_from_the_host():
    doc = firewall.ruleset(summary([network()], [WEB]))
    assert rules(doc, "ports") == [[
        m(payload("tcp", "dport"), 8080),
        {"dnat": {"family": "ip", "addr": "172.18.0.2", "port": 80}},
    ]]
    local = [m({"fib": {"result": "type", "flags": ["daddr"]}}, "local"), {"jump": {"target": "ports"}}]
    assert rules(doc, "prerouting") == [local]
    assert rules(doc, "output") == [local]
    c = chains(doc)
    assert (c["prerouting"]["type"], c["prerouting"]["hook"]) == ("nat", "prerouting")
    assert (c["output"]["type"], c["output"]["hook"]) == ("nat", "output")
    post = rules(doc, "postrouting")
    # loopback-sourced connections leaving the bridge and hairpin get the gateway's source
    assert [m("oifname", "cn-aaaa0001"), m(payload("ip", "saddr"), {"prefix": {"addr": "127.0.0.0", "len": 8}}),
            {"masquerade": None}] in post
    assert [m("oifname", "cn-aaaa0001"), m(payload("ip", "saddr"), {"prefix": {"addr": "172.18.0.0", "len": 16}}),
            CT_DNAT, {"masquerade": None}] in post
    nft_check(doc)


@pytest.mark.parametrize("proto", ["tcp", "udp", "sctp"])
def test_a_range_is_one_rule(proto):
    same = container(interfaces=[iface()], ports=[port(7000, 7000, proto, published_end=7099, target_end=7099)])
    doc = firewall.ruleset(summary([network()], [same]))
    assert rules(doc, "ports") == [[
        m(payload(proto, "dport"), {"range": [7000, 7099]}),
        {"dnat": {"family": "ip", "addr": "172.18.0.2"}},
    ]]
    shifted = container(interfaces=[iface()], ports=[port(9000, 100, proto, published_end=9002, target_end=102)])
    doc = firewall.ruleset(summary([network()], [shifted]))
    (rule,) = rules(doc, "ports")
    assert rule[0] == m(payload(proto, "dport"), {"range": [9000, 9002]})
    assert rule[1]["dnat"]["port"] == {"map": {"key": payload(proto, "dport"),
                                                "data": {"set": [[9000, 100], [9001, 101], [9002, 102]]}}}
    nft_check(doc)


def test_range_to_one_target_port_and_mismatched_ranges():
    many_to_one = container(interfaces=[iface()], ports=[port(9000, 80, published_end=9005)])
    (rule,) = rules(firewall.ruleset(summary([network()], [many_to_one])), "ports")
    assert rule[-1] == {"dnat": {"family": "ip", "addr": "172.18.0.2", "port": 80}}
    bad = container(interfaces=[iface()], ports=[port(9000, 80, published_end=9005, target_end=81)])
    with pytest.raises(PlanError, match="differ in size"):
        firewall.ruleset(summary([network()], [bad]))


def test_host_ip_restricts_the_destination_and_family():
    c = container(interfaces=[iface(ipv6="fd00:1::2/64")], ports=[
        port(8080, 80, host_ip="127.0.0.1"), port(8081, 81, host_ip="fd00:99::1"), port(8082, 82, host_ip="0.0.0.0")])
    net = network(enable_ipv6=True)
    net["subnets"].append({"subnet": "fd00:1::/64", "gateway": "fd00:1::1", "ip_range": None})
    doc = firewall.ruleset(summary([net], [c]))
    assert rules(doc, "ports") == [
        [m(payload("ip", "daddr"), "127.0.0.1"), m(payload("tcp", "dport"), 8080),
         {"dnat": {"family": "ip", "addr": "172.18.0.2", "port": 80}}],
        [m(payload("ip6", "daddr"), "fd00:99::1"), m(payload("tcp", "dport"), 8081),
         {"dnat": {"family": "ip6", "addr": "fd00:1::2", "port": 81}}],
        # 0.0.0.0 means every IPv4 address: no destination match, no IPv6 rule
        [m(payload("tcp", "dport"), 8082), {"dnat": {"family": "ip", "addr": "172.18.0.2", "port": 82}}],
    ]
    nft_check(doc)


def test_ipv6_network_uses_ip6_matches():
    net = network(enable_ipv6=True)
    net["subnets"].append({"subnet": "fd00:1::/64", "gateway": "fd00:1::1", "ip_range": None})
    c = container(interfaces=[iface(ipv6="fd00:1::2/64")], ports=[port(8080, 80)])
    doc = firewall.ruleset(summary([net], [c]))
    post = rules(doc, "postrouting")
    assert [m(payload("ip6", "saddr"), {"prefix": {"addr": "fd00:1::", "len": 64}}),
            m("oifname", "cn-aaaa0001", "!="), {"masquerade": None}] in post
    assert [m("oifname", "cn-aaaa0001"), m(payload("ip6", "saddr"), {"prefix": {"addr": "fd00:1::", "len": 64}}),
            CT_DNAT, {"masquerade": None}] in post
    assert [m(payload("tcp", "dport"), 8080), {"dnat": {"family": "ip6", "addr": "fd00:1::2", "port": 80}}] in rules(doc, "ports")
    nft_check(doc)


def test_ports_lead_to_the_default_route_interface_not_an_internal_one():
    nets = [network("p_back", "cn-b", "10.2.0.0/24", internal=True, masquerade=False), network()]
    c = container(interfaces=[iface("p_back", "10.2.0.5/24", default_route=False, ifname="eth1"),
                              iface(default_route=True)], ports=[port(8080, 80)])
    (rule,) = rules(firewall.ruleset(summary(nets, [c])), "ports")
    assert rule[-1]["dnat"]["addr"] == "172.18.0.2"
    only_internal = container(interfaces=[iface("p_back", "10.2.0.5/24")], ports=[port(8080, 80)])
    doc = firewall.ruleset(summary(nets, [only_internal]))
    assert rules(doc, "ports") == [] and "prerouting" not in chains(doc)


def test_service_mode_sidecar_publishes_to_the_shared_namespace_and_host_mode_publishes_nothing():
    base = container("p-base-1", interfaces=[iface()])
    side = container("p-side-1", ports=[port(9090, 90)], netns="p-base-1", shares="p-base-1", network_mode="service:base")
    host = container("p-h-1", ports=[port(9091, 91)], netns=None, network_mode="host")
    doc = firewall.ruleset(summary([network()], [base, side, host]))
    assert rules(doc, "ports") == [[m(payload("tcp", "dport"), 9090),
                                    {"dnat": {"family": "ip", "addr": "172.18.0.2", "port": 90}}]]


def test_pure_and_deterministic():
    s = summary([network(), network("p_b", "cn-b", "10.2.0.0/24")], [WEB])
    before = copy.deepcopy(s)
    assert firewall.ruleset(s) == firewall.ruleset(before)
    assert s == before
    assert json.loads(json.dumps(firewall.ruleset(s))) == firewall.ruleset(s)


def test_non_bridge_networks_get_no_rules():
    mac = network("p_lan", None, "192.168.50.0/24", driver="macvlan", parent="veth9")
    doc = firewall.ruleset(summary([mac], [container(interfaces=[iface("p_lan", "192.168.50.2/24")], ports=[port(80, 80)])]))
    assert rules(doc, "forward") == [
        [m({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}],
        [m({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}],
    ]
    assert rules(doc, "ports") == [] and rules(doc, "postrouting") == []


def test_nft_check_reports_nft_message():
    if shutil.which("nft") is None or os.geteuid() != 0:
        pytest.skip("nft -c needs nft and CAP_NET_ADMIN")
    from compose_net.executor import nft
    doc = firewall.ruleset(summary([network()]))
    doc["nftables"].append({"add": {"rule": {"family": "inet", "table": "cn-p", "chain": "nochain",
                                             "expr": [{"accept": None}]}}})
    with pytest.raises(RuntimeFailure, match="nft rejected"):
        nft.check(json.dumps(doc))


def test_fresh_variant_creates_the_table_once_instead_of_replacing_it():
    from compose_net.executor import nft
    doc = firewall.ruleset(summary([network()], [WEB]))
    fresh = json.loads(nft._fresh_variant(json.dumps(doc)))["nftables"]
    assert fresh[0] == doc["nftables"][0]
    assert fresh[1] == {"create": {"table": {"family": "inet", "name": "cn-p"}}}
    assert fresh[2:] == doc["nftables"][4:]
    assert nft._fresh_variant('{"nftables": [{"add": {"table": {"family": "inet", "name": "x"}}}]}') is None
    assert nft._fresh_variant("not json") is None
    nft_check({"nftables": fresh})


def test_localhost_guard_drops_127_from_every_interface_but_lo_before_conntrack():
    doc = firewall.ruleset(summary([network()], [WEB]))
    guard = chains(doc)["localhost"]
    # raw priority: before conntrack and before the NAT of the host's own flows is undone
    assert (guard["type"], guard["hook"], guard["prio"], guard["policy"]) == ("filter", "prerouting", -300, "accept")
    loopback = {"prefix": {"addr": "127.0.0.0", "len": 8}}
    assert rules(doc, "localhost") == [
        [m("iifname", "lo", "!="), m(payload("ip", "daddr"), loopback), {"drop": None}],
        [m("iifname", "lo", "!="), m(payload("ip", "saddr"), loopback), {"drop": None}],
    ]
    # a project without bridges or ports is guarded too: cn0 may keep another's route_localnet
    assert len(rules(firewall.ruleset(summary([])), "localhost")) == 2
    nft_check(doc)


def _comments(doc):
    return [item["add"]["rule"].get("comment") for item in doc["nftables"]
            if "add" in item and "rule" in item["add"]]


def test_every_rule_says_in_words_what_it_does_and_its_comment_says_the_same():
    net6 = network("p_dual", "cn-d", "10.4.0.0/24", enable_ipv6=True)
    net6["subnets"].append({"subnet": "fd00:4::/64", "gateway": "fd00:4::1", "ip_range": None})
    web = container(interfaces=[iface("p_dual", "10.4.0.2/24", ipv6="fd00:4::2/64")], ports=[
        port(8080, 80), port(8081, 81, host_ip="127.0.0.1"), port(9000, 100, "udp", published_end=9002, target_end=102)])
    nets = [net6, network("p_back", "cn-b", "10.2.0.0/24", internal=True, masquerade=False),
            network("p_quiet", "cn-q", "10.3.0.0/24", icc=False)]
    t = firewall.table(summary(nets, [web]))
    assert t.document == firewall.ruleset(summary(nets, [web]))
    words = dict.fromkeys(g for g, _ in t.rules)
    # grouped in the order a reviewer reads them, and one entry per rule of the document
    assert list(words) == [g for g in firewall.GROUPS if g in words]
    assert len(t.rules) == len(_comments(t.document))
    assert sorted(_comments(t.document)) == sorted(f"{g}: {w}" for g, w in t.rules)
    by_group = {g: [w for gg, w in t.rules if gg == g] for g in words}
    # the port bindings first, as `ps` shows them, for each address family
    assert by_group["published ports"][:5] == [
        "0.0.0.0:8080 -> p-web-1 10.4.0.2:80/tcp",
        "[::]:8080 -> p-web-1 [fd00:4::2]:80/tcp",
        "127.0.0.1:8081 -> p-web-1 10.4.0.2:81/tcp",
        "0.0.0.0:9000-9002 -> p-web-1 10.4.0.2:100-102/udp",
        "[::]:9000-9002 -> p-web-1 [fd00:4::2]:100-102/udp",
    ]
    assert "p_back internal: no way out of cn-b" in by_group["internal"]
    assert "p_dual -> p_back, p_quiet, any other compose-net network (cn-*): dropped" in by_group["isolation"]
    assert "p_quiet container to container on cn-q: dropped" in by_group["icc"]
    assert "10.4.0.0/24 (p_dual) out of any interface but cn-d: masqueraded" in by_group["masquerade"]
    assert "fd00:4::/64 back into cn-d (p_dual) through a published port: masqueraded" in by_group["hairpin"]
    assert by_group["localhost guard"] == ["to 127.0.0.0/8 through any interface but lo: dropped",
                                           "from 127.0.0.0/8 through any interface but lo: dropped"]
    nft_check(t.document)


def test_comments_fit_nft_and_carry_no_quotes():
    assert firewall.comment("g", "x" * 200).endswith("...") and len(firewall.comment("g", "x" * 200)) == 128
    assert len(firewall.comment("g", "x" * 125)) == 128 and not firewall.comment("g", "x" * 125).endswith("...")
    assert firewall.comment("g", 'a "b" \\ c\n\u00e9') == "g: a ?b? ? c??"
    long_name = "p-" + "w" * 120 + "-1"
    doc = firewall.ruleset(summary([network()], [container(long_name, interfaces=[iface()], ports=[port(8080, 80)])]))
    assert all(len(c.encode()) <= 128 for c in _comments(doc))
    nft_check(doc)
