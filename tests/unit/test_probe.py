import ipaddress
import json
import time

from compose_net import naming, probe
from compose_net.probe import HostFacts, probe_host

ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cn-1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
IPV6_ROUTE = """fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
"""
FIB = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""


def test_parsers_read_proc_formats():
    routes = probe._routes_v4(ROUTE)
    assert [(str(r.dst), r.dev) for r in routes] == [("192.0.2.0/24", "eth0"), ("172.18.0.0/16", "cn-1")]
    r6 = probe._routes_v6(IPV6_ROUTE)
    assert [str(r.dst) for r in r6] == ["fd00::/64"]  # link-local and default left out
    addrs = probe._addresses_v4(FIB, routes)
    assert [(str(a.address), a.dev) for a in addrs] == [("192.0.2.2/24", "eth0")]
    assert probe.parse_nameservers("# x\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nsearch a\n") == (
        ipaddress.ip_address("10.0.0.53"), ipaddress.ip_address("fe80::1"))


def test_probe_host_is_fast_and_read_only():
    probe_host()  # warm the page cache
    start = time.perf_counter()
    facts = probe_host()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.05, elapsed
    assert "lo" in facts.links
    assert all(r.dst.prefixlen > 0 for r in facts.routes)


def test_probe_reads_other_projects_state(tmp_path, monkeypatch):
    d = tmp_path / "other"
    d.mkdir()
    summary = {"project": "other", "group": 7, "networks": [{"name": "other_default", "subnets": [{"subnet": "172.18.0.0/16"}]}],
               "containers": [{"name": "c", "service": "c", "ports": [{"protocol": "tcp", "published": 8080,
                                                                "published_end": 8081, "target": 80, "target_end": 81}]}]}
    (d / "project.json").write_text(json.dumps(summary))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "project.json").write_text("{not json")
    monkeypatch.setattr(naming, "STATE_DIR", str(tmp_path))
    facts = probe_host()
    assert list(facts.projects) == ["other"]
    assert facts.used_ports() == {("tcp", 8080), ("tcp", 8081)}
    assert facts.used_ports(exclude_project="other") == set()


def test_empty_facts_are_an_empty_host():
    facts = HostFacts()
    assert facts.routes == () and facts.projects == {} and facts.has_feature("ipvlan")
    known = HostFacts(features=frozenset({"macvlan"}), features_known=True)
    assert known.has_feature("macvlan") and not known.has_feature("ipvlan")
