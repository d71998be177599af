"""Who sees which names: records scoping from a project summary (pure, no sockets)."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from compose_net.dns import records
from compose_net.summary import from_data


def build(data):
    """Records from a summary written as JSON data (the form `up` records)."""
    return records.build(from_data(data))


IP = ipaddress.ip_address


def _ctr(name, service, netns, ifaces, **extra):
    ctr = {
        "name": name, "service": service, "index": 1, "id": (name.encode().hex() * 8)[:64],
        "netns": netns, "network_mode": None, "shares": None, "hostname": None,
        "dns": [], "dns_search": [], "dns_opt": [], "links": [], "interfaces": [],
    }
    for i, (net, v4, aliases, *v6) in enumerate(ifaces):
        ctr["interfaces"].append({
            "network": net, "ifname": f"eth{i}", "ipv4": f"{v4}/16", "ipv6": f"{v6[0]}/64" if v6 else None,
            "aliases": [service, name, *aliases],
        })
    ctr.update(extra)
    return ctr


def sample_summary() -> dict:
    """front, back, priv (internal), v6net (IPv6); web on front+back, three api replicas on back,
    db on back+priv with per-network aliases, tool on back (eth0) + front (eth1), secret only on
    priv, two six containers on v6net, a sidecar sharing web's namespace and a host container."""
    nets = [
        {"name": "p_front", "internal": False, "enable_ipv6": False},
        {"name": "p_back", "internal": False, "enable_ipv6": False},
        {"name": "p_priv", "internal": True, "enable_ipv6": False},
        {"name": "p_v6net", "internal": False, "enable_ipv6": True},
    ]
    containers = [
        _ctr("p-web-1", "web", "ns-web", [("p_front", "172.20.0.2", ["webfront", "webhost"]), ("p_back", "172.21.0.2", ["webhost"])],
             hostname="webhost", dns_search=["corp.example."], links=[{"service": "db", "alias": "database"}]),
        _ctr("p-api-1", "api", "ns-api1", [("p_back", "172.21.0.3", [])]),
        _ctr("p-api-2", "api", "ns-api2", [("p_back", "172.21.0.4", [])]),
        _ctr("p-api-3", "api", "ns-api3", [("p_back", "172.21.0.5", [])]),
        _ctr("p-db-1", "db", "ns-db", [("p_back", "172.21.0.10", ["dbback"]), ("p_priv", "172.22.0.2", ["dbpriv"])]),
        _ctr("p-tool-1", "tool", "ns-tool", [("p_back", "172.21.0.20", []), ("p_front", "172.20.0.20", [])]),
        _ctr("p-proxy-1", "proxy", "ns-proxy", [("p_front", "172.20.0.3", [])]),
        _ctr("p-secret-1", "secret", "ns-secret", [("p_priv", "172.22.0.3", [])]),
        _ctr("p-six-1", "six", "ns-six1", [("p_v6net", "172.23.0.2", [], "fd00:6::2")], dns=["192.0.2.53"]),
        _ctr("p-six-2", "six", "ns-six2", [("p_v6net", "172.23.0.3", [], "fd00:6::3")]),
        _ctr("p-side-1", "side", "ns-web", [], shares="p-web-1"),
        _ctr("p-hostc-1", "hostc", None, [], network_mode="host"),
    ]
    return {"version": 1, "project": "p", "dns_ttl": 600, "host_nameservers": ["10.0.0.53"],
            "networks": nets, "containers": containers}


@pytest.fixture(scope="module")
def views():
    return build(sample_summary()).views


def addrs(view, name):
    ans = view.lookup(name)
    return None if ans is None else sorted(str(a) for a in ans.v4 + ans.v6)


def test_only_containers_with_their_own_namespace_and_interfaces_get_a_view(views):
    assert set(views) == {"ns-web", "ns-api1", "ns-api2", "ns-api3", "ns-db", "ns-tool", "ns-proxy",
                          "ns-secret", "ns-six1", "ns-six2"}
    assert views["ns-web"].container == "p-web-1"  # not the sidecar sharing the namespace


def test_names_answer_on_shared_networks_only(views):
    assert addrs(views["ns-web"], "db") == ["172.21.0.10"]
    assert addrs(views["ns-db"], "web") == ["172.21.0.2"]  # db is not on front
    assert addrs(views["ns-proxy"], "web") == ["172.20.0.2"]
    assert addrs(views["ns-proxy"], "db") is None
    assert addrs(views["ns-proxy"], "api") is None
    assert addrs(views["ns-secret"], "web") is None


def test_target_on_several_shared_networks_answers_on_the_askers_first_network(views):
    # web: eth0 front, eth1 back; tool: eth0 back, eth1 front
    assert addrs(views["ns-web"], "tool") == ["172.20.0.20"]
    assert addrs(views["ns-tool"], "web") == ["172.21.0.2"]
    assert addrs(views["ns-tool"], "p-web-1") == ["172.21.0.2"]


def test_network_alias_answers_only_that_networks_address(views):
    assert addrs(views["ns-db"], "dbpriv") == ["172.22.0.2"]
    assert addrs(views["ns-db"], "dbback") == ["172.21.0.10"]
    assert addrs(views["ns-web"], "dbback") == ["172.21.0.10"]
    assert addrs(views["ns-web"], "dbpriv") is None
    assert addrs(views["ns-secret"], "dbback") is None
    assert addrs(views["ns-secret"], "db") == ["172.22.0.2"]
    # web's alias on front only: tool is on front too (eth1) and must still see it there
    assert addrs(views["ns-tool"], "webfront") == ["172.20.0.2"]
    assert addrs(views["ns-api1"], "webfront") is None


def test_replicas_service_name_answers_all_container_name_one(views):
    assert addrs(views["ns-web"], "api") == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]
    assert addrs(views["ns-api1"], "api") == ["172.21.0.3", "172.21.0.4", "172.21.0.5"]
    assert addrs(views["ns-web"], "p-api-2") == ["172.21.0.4"]


def test_links_answer_only_for_the_declaring_container(views):
    assert addrs(views["ns-web"], "database") == ["172.21.0.10"]
    assert addrs(views["ns-tool"], "database") is None
    assert addrs(views["ns-db"], "database") is None


def test_case_trailing_dot_search_suffix_hostname_short_id(views):
    web = views["ns-web"]
    assert addrs(web, "DB.") == ["172.21.0.10"]
    assert addrs(web, "Api.") == addrs(web, "api")
    assert addrs(web, "db.corp.example") == ["172.21.0.10"]
    assert addrs(web, "db.corp.example.") == ["172.21.0.10"]
    assert addrs(views["ns-db"], "db.corp.example") is None  # not db's search domain
    assert addrs(views["ns-tool"], "webhost") == ["172.21.0.2"]
    short = sample_summary()["containers"][4]["id"][:12]
    assert addrs(web, short) == ["172.21.0.10"]
    assert addrs(web, short.upper()) == ["172.21.0.10"]


def test_ipv6_addresses_on_ipv6_networks(views):
    ans = views["ns-six1"].lookup("six")
    assert sorted(map(str, ans.v4)) == ["172.23.0.2", "172.23.0.3"]
    assert sorted(map(str, ans.v6)) == ["fd00:6::2", "fd00:6::3"]
    assert views["ns-web"].lookup("db").v6 == ()


def test_ptr_only_for_addresses_on_the_askers_networks(views):
    rev = IP("172.21.0.10").reverse_pointer
    assert views["ns-web"].reverse(rev) == "p-db-1.p_back"
    assert views["ns-web"].reverse(rev.upper() + ".") == "p-db-1.p_back"
    assert views["ns-proxy"].reverse(rev) is None
    assert views["ns-six2"].reverse(IP("fd00:6::2").reverse_pointer) == "p-six-1.p_v6net"


def test_forwarding_targets(views):
    assert views["ns-web"].upstreams == (IP("10.0.0.53"),)
    assert views["ns-db"].upstreams == (IP("10.0.0.53"),)  # internal + normal network: forwards
    assert views["ns-secret"].upstreams == ()  # only internal: never forwards
    assert views["ns-six1"].upstreams == (IP("192.0.2.53"),)  # its own dns:


def test_scope_is_shared_only_by_containers_that_see_the_same_answers(views):
    assert views["ns-api1"].scope == views["ns-api2"].scope
    assert views["ns-web"].scope != views["ns-tool"].scope
    assert views["ns-six1"].scope != views["ns-six2"].scope  # different upstreams


def test_default_bridge_has_no_discovery_but_links_work():
    summary = sample_summary()
    summary["networks"].append({"name": "bridge", "shared": True, "external": True, "internal": False})
    summary["containers"] += [
        _ctr("p-old-1", "old", "ns-old", [("bridge", "172.17.0.2", [])], links=[{"service": "legacy", "alias": "leg"}]),
        _ctr("p-legacy-1", "legacy", "ns-legacy", [("bridge", "172.17.0.3", [])]),
    ]
    views = build(summary).views
    assert addrs(views["ns-old"], "legacy") is None
    assert addrs(views["ns-old"], "p-legacy-1") is None
    assert addrs(views["ns-old"], "leg") == ["172.17.0.3"]
    assert addrs(views["ns-legacy"], "old") is None


def test_build_does_not_change_its_input():
    summary = sample_summary()
    before = copy.deepcopy(summary)
    build(summary)
    assert summary == before


def test_name_dot_network_answers_that_networks_address_to_askers_on_it(views):
    # tool's first network is back, so `web` alone answers web's back address; NAME.NETWORK
    # (the form of Docker's PTR targets) picks the network
    assert addrs(views["ns-tool"], "web") == ["172.21.0.2"]
    assert addrs(views["ns-tool"], "web.p_front") == ["172.20.0.2"]
    assert addrs(views["ns-tool"], "P-Web-1.P_FRONT.") == ["172.20.0.2"]
    assert addrs(views["ns-tool"], "dbback.p_back") == ["172.21.0.10"]
    # an alias of another network does not answer under this one
    assert addrs(views["ns-db"], "dbpriv.p_back") is None
    # the asker must be on the network it names
    assert addrs(views["ns-proxy"], "db.p_back") is None
    assert addrs(views["ns-web"], "db.p_priv") is None
    # with a search suffix too
    assert addrs(views["ns-web"], "db.p_back.corp.example") == ["172.21.0.10"]


def test_ttl_comes_from_the_summary_and_zero_is_kept():
    summary = sample_summary()
    assert build(summary).ttl == 600
    summary["dns_ttl"] = 0
    records = build(summary)
    assert records.ttl == 0 and records.views["ns-web"].ttl == 0
    summary["dns_ttl"] = 5
    assert build(summary).views["ns-api1"].ttl == 5
    del summary["dns_ttl"]
    assert build(summary).ttl == 600


def test_ttl_setting_from_the_project_environment():
    from compose_net.dns.records import ttl_setting
    from compose_net.errors import PlanError

    assert ttl_setting({}) == 600
    assert ttl_setting({"COMPOSE_NET_DNS_TTL": ""}) == 600
    assert ttl_setting({"COMPOSE_NET_DNS_TTL": " 30 "}) == 30
    assert ttl_setting({"COMPOSE_NET_DNS_TTL": "0"}) == 0
    assert ttl_setting({"COMPOSE_NET_DNS_TTL": str(2**31 - 1)}) == 2**31 - 1
    for bad in ("-1", "1.5", "ten", str(2**31), "1e3", "\u0661\u0662"):
        with pytest.raises(PlanError, match="COMPOSE_NET_DNS_TTL"):
            ttl_setting({"COMPOSE_NET_DNS_TTL": bad})
