"""The cluster store against a real etcd (the Debian binary) on 127.0.0.1, a random port, a temp dir."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from compose_net import cluster
from compose_net.cluster import ClusterError, RemoteEndpoint, Store

ETCD = shutil.which("etcd")
pytestmark = pytest.mark.skipif(ETCD is None, reason="etcd binary not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    data = tmp_path_factory.mktemp("etcd")
    client, peer = _free_port(), _free_port()
    proc = subprocess.Popen(
        [ETCD, "--name", "t", "--data-dir", str(data / "d"),
         "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"t=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                Store.from_url(f"etcd://127.0.0.1:{client}", timeout=1)
                break
            except ClusterError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield f"etcd://127.0.0.1:{client}"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.fixture
def store(etcd, request):
    prefix = f"/test-{request.node.name}-{os.getpid()}/"
    s = Store.from_url(etcd, prefix=prefix)
    yield s
    s.delete_prefix("")


def test_parse_url():
    assert cluster.parse_url("etcd://10.0.0.5:2379,h2:4001") == (
        cluster.Endpoint("10.0.0.5", 2379), cluster.Endpoint("h2", 4001))
    assert cluster.parse_url("etcd://h") == (cluster.Endpoint("h", 2379),)
    for bad in ("http://h:1", "etcd://h:x", "etcd://", "etcd://h:1/path"):
        with pytest.raises(ValueError):
            cluster.parse_url(bad)


def test_unreachable_is_a_clear_error():
    with pytest.raises(ClusterError, match=r"unreachable.*127\.0\.0\.1:1.*nothing was changed"):
        Store.from_url("etcd://127.0.0.1:1", timeout=0.5)


def test_network_claimed_once_skipping_routed_and_claimed(store):
    routed = [ipaddress.ip_network("10.0.0.0/23")]
    a = store.claim_network("p_front", None, routed)
    assert a.subnet == ipaddress.IPv4Network("10.0.2.0/24") and a.vni == cluster.VNI_FIRST
    # another host, other routes: the claim is read, not made again
    assert store.claim_network("p_front", None, []) == a
    b = store.claim_network("p_back", None, routed)
    assert b.subnet == ipaddress.IPv4Network("10.0.3.0/24") and b.vni == cluster.VNI_FIRST + 1
    given = store.claim_network("p_given", ipaddress.IPv4Network("10.9.0.0/24"), routed)
    assert given.subnet == ipaddress.IPv4Network("10.9.0.0/24")
    with pytest.raises(ClusterError, match="10.9.0.0/16 overlaps 10.9.0.0/24, overlay network p_given's"):
        store.claim_network("p_clash", ipaddress.IPv4Network("10.9.0.0/16"), [])


def _at_once(host, count: int) -> None:
    """`host(ADDRESS)` for `count` hosts at the same moment, each in a thread of its own."""
    threads = [threading.Thread(target=host, args=(f"10.99.0.{i}",)) for i in range(1, count + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_claims_and_leases_never_collide(etcd, store):
    # three "hosts" at the same moment: each claims two networks and leases 10 addresses
    results: dict[str, list] = {}
    errors = []

    def host(name: str) -> None:
        try:
            s = Store.from_url(etcd, prefix=store.prefix)
            lease = s.register_host(name)
            claims = [s.claim_network(n, None, []) for n in ("p_a", "p_b")]
            results[name] = [(c, s.lease_address(c, name, f"c{i}", lease))
                             for c in claims for i in range(10)]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    _at_once(host, 3)
    assert not errors
    claims = {c for r in results.values() for c, _ in r}
    assert len(claims) == 2 and len({c.subnet for c in claims}) == 2 and len({c.vni for c in claims}) == 2
    for claim in claims:
        addrs = [a for r in results.values() for c, a in r if c == claim]
        assert len(addrs) == 30 and len(set(addrs)) == 30


def test_lease_is_idempotent_and_wanted_address_is_exclusive(store):
    lease = store.register_host("10.99.0.1")
    claim = store.claim_network("p_n", None, [])
    gw = next(claim.subnet.hosts())
    a = store.lease_address(claim, "10.99.0.1", "p-web-1", lease, reserved={gw})
    assert a == gw + 1
    assert store.lease_address(claim, "10.99.0.1", "p-web-1", lease, reserved={gw}) == a
    other = store.register_host("10.99.0.2")
    with pytest.raises(ClusterError, match="is leased by 10.99.0.1 p-web-1"):
        store.lease_address(claim, "10.99.0.2", "p-db-1", other, wanted=a)


def test_endpoints_expire_with_the_host_lease(store):
    lease = store.register_host("10.99.0.7", ttl=2)
    assert store.register_host("10.99.0.7", ttl=2) == lease  # reused while alive
    claim = store.claim_network("p_n", None, [])
    addr = store.lease_address(claim, "10.99.0.7", "p-db-1", lease)
    ep = RemoteEndpoint("p_n", "p-db-1", ipaddress.IPv4Address("10.99.0.7"), addr,
                        "02:42:0a:00:00:02", ("db", "p-db-1"))
    store.register_endpoint(ep, lease)
    assert store.endpoints("p_n") == (ep,)
    assert "10.99.0.7" in store.hosts()
    deadline = time.monotonic() + 10
    while store.endpoints("p_n") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.endpoints("p_n") == ()
    assert store.hosts() == {}
    assert not store.keepalive(lease)


def test_release_host_leaves_others_and_forgets_empty_network(store):
    la, lb = store.register_host("10.99.0.1"), store.register_host("10.99.0.2")
    claim = store.claim_network("p_n", None, [])
    for host, lease, name in (("10.99.0.1", la, "p-web-1"), ("10.99.0.2", lb, "p-db-1")):
        addr = store.lease_address(claim, host, name, lease)
        store.register_endpoint(RemoteEndpoint("p_n", name, ipaddress.IPv4Address(host), addr,
                                               "02:00:00:00:00:01", (name,)), lease)
    store.release_host("10.99.0.2", ["p_n"])
    assert [e.container for e in store.endpoints("p_n")] == ["p-web-1"]
    assert set(store.hosts()) == {"10.99.0.1"}
    store.release_host("10.99.0.1", ["p_n"])
    assert store.get_prefix("") == {}


def _project(name: str, replicas: dict, fixed: dict | None = None):
    """What `_names` reads of a project: its name, containers and services' container_name."""
    from types import SimpleNamespace

    from compose_net.model import Container

    fixed = fixed or {}
    containers = tuple(Container(fixed.get(svc) or f"{name}-{svc}-{i}", svc, i)
                       for svc, n in replicas.items() for i in range(1, n + 1))
    services = {svc: SimpleNamespace(container_name=fixed.get(svc)) for svc in replicas}
    return SimpleNamespace(name=name, containers=containers, services=services)


def test_a_service_up_on_a_second_host_takes_the_next_free_index(store):
    la, lb = store.register_host("10.99.0.1"), store.register_host("10.99.0.2")
    p = _project("p", {"web": 1, "db": 2})
    a = cluster._names(store, p, "10.99.0.1", la, claim=True)
    assert [c.name for c in a] == ["p-web-1", "p-db-1", "p-db-2"]
    # a dry run on B sees what it would get and claims nothing
    held = store.container_names("p")
    b_preview = cluster._names(store, p, "10.99.0.2", 0, claim=False)
    assert [c.name for c in b_preview] == ["p-web-2", "p-db-3", "p-db-4"]
    assert store.container_names("p") == held
    b = cluster._names(store, p, "10.99.0.2", lb, claim=True)
    assert [(c.name, c.index) for c in b] == [("p-web-2", 2), ("p-db-3", 3), ("p-db-4", 4)]
    # each host keeps its own names on its next up
    assert cluster._names(store, p, "10.99.0.1", la, claim=True) == a
    assert cluster._names(store, p, "10.99.0.2", lb, claim=True) == b
    # A goes down: its names are free again, B's stay
    store.release_names("p", "10.99.0.1")
    assert set(store.container_names("p")) == {"p-web-2", "p-db-3", "p-db-4"}


def test_a_fixed_container_name_held_by_another_host_is_refused(store):
    la, lb = store.register_host("10.99.0.1"), store.register_host("10.99.0.2")
    p = _project("p", {"db": 1}, fixed={"db": "the-db"})
    assert [c.name for c in cluster._names(store, p, "10.99.0.1", la, claim=True)] == ["the-db"]
    with pytest.raises(ClusterError, match="container name the-db is in use on host 10.99.0.1"):
        cluster._names(store, p, "10.99.0.2", lb, claim=True)


def test_hosts_naming_at_the_same_moment_never_share_a_name(etcd, store):
    names: list[str] = []
    errors = []

    def host(addr: str) -> None:
        try:
            s = Store.from_url(etcd, prefix=store.prefix)
            lease = s.register_host(addr)
            names.extend(c.name for c in cluster._names(s, _project("p", {"db": 3}), addr, lease, claim=True))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    _at_once(host, 4)
    assert not errors
    assert sorted(names) == sorted(f"p-db-{i}" for i in range(1, 13))


def test_a_watch_calls_back_on_every_change_under_its_prefix(store):
    seen = threading.Event()
    cancel = store.watch_prefix("networks/p_n/endpoints/", seen.set)
    try:
        time.sleep(0.2)  # the watch is created by a request of its own
        store._call(store.client.put, store.prefix + "networks/p_other/endpoints/x", "{}")
        assert not seen.wait(0.5)
        store._call(store.client.put, store.prefix + "networks/p_n/endpoints/x", "{}")
        assert seen.wait(5)
    finally:
        cancel()


@pytest.mark.parametrize("value,ok", [("", 15), ("30", 30), ("4", None), ("x", None), ("-5", None), ("99999", None)])
def test_the_lease_ttl_setting(value, ok):
    from compose_net.errors import PlanError

    if ok is None:
        with pytest.raises(PlanError, match="COMPOSE_NET_CLUSTER_TTL"):
            cluster.ttl_setting({"COMPOSE_NET_CLUSTER_TTL": value})
    else:
        assert cluster.ttl_setting({"COMPOSE_NET_CLUSTER_TTL": value}) == ok


def test_no_host_s_routes_become_an_overlay_subnet(store):
    store.register_host("10.99.0.1", routes=[ipaddress.ip_network("10.0.0.0/23")])
    lease = store.register_host("10.99.0.2", routes=[ipaddress.ip_network("10.0.2.0/24"),
                                                     ipaddress.ip_network("fd00::/64")])
    assert store.register_host("10.99.0.2", routes=[ipaddress.ip_network("10.0.2.0/24")]) == lease
    assert sorted(map(str, store.routed())) == ["10.0.0.0/23", "10.0.2.0/24"]
    claim = store.claim_network("p_n", None, store.routed())
    assert claim.subnet == ipaddress.ip_network("10.0.3.0/24")


@pytest.mark.parametrize("value,ok", [("", None), ("10.1.2.3", "10.1.2.3"), ("127.0.0.1", False),
                                      ("0.0.0.0", False), ("eth0", False), ("fd00::1", False)])
def test_the_advertised_underlay_address_setting(value, ok):
    from compose_net.errors import PlanError

    if ok is False:
        with pytest.raises(PlanError, match="COMPOSE_NET_CLUSTER_ADVERTISE"):
            cluster.advertise_setting({"COMPOSE_NET_CLUSTER_ADVERTISE": value})
    else:
        got = cluster.advertise_setting({"COMPOSE_NET_CLUSTER_ADVERTISE": value})
        assert got == (ipaddress.ip_address(ok) if ok else None)
