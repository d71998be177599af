"""Overlay networks across simulated hosts (tests/kernel/simhosts.py) with etcd as the cluster
store: compose-net runs inside each host exactly as on a separate machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from conftest import kernel_snapshot
from simhosts import ETCD, ETCD_PORT, UNDERLAY, SimCluster, SimHost, until

pytestmark = pytest.mark.skipif(ETCD is None or os.geteuid() != 0, reason="needs root and etcd")


@pytest.fixture
def sim():
    with SimCluster(2) as c:
        yield c


COMPOSE = """
services:
  web: {image: x, networks: [app]}
  db: {image: x, networks: [app]}
networks:
  app: {driver: overlay}
"""


def _project(tmp_path, text: str = COMPOSE) -> tuple:
    """A project name of its own and its compose file."""
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(text))
    return "t" + uuid.uuid4().hex[:8], path


def _cn(host: SimHost, project: str, path, env: dict, *args: str, check: bool = True):
    return host.compose_net(project, path, env, *args, check=check)


def test_web_on_a_reaches_db_on_b_by_name_and_down_on_b_removes_only_bs_part(sim, tmp_path):
    before = kernel_snapshot()
    a, b = sim.hosts
    project, path = _project(tmp_path)
    env = sim.env()
    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        _cn(b, project, path, env, "up", "--quiet", "db")
        keys = sim.keys()
        assert f"/compose-net/v1/networks/{project}_app/endpoints/{project}-web-1" in keys
        assert f"/compose-net/v1/networks/{project}_app/endpoints/{project}-db-1" in keys
        # the VXLAN device: VNI from the store, local = the underlay address, no learning
        vx = json.loads(b.run("ip", "-j", "-d", "link", "show", "type", "vxlan").stdout)[0]
        assert vx["linkinfo"]["info_data"]["local"] == b.address
        assert vx["linkinfo"]["info_data"]["learning"] is False
        assert vx["mtu"] == 1450
        fdb = b.run("bridge", "fdb", "show", "dev", vx["ifname"]).stdout
        assert f"dst {a.address}" in fdb

        # A learns of db from its background process, which follows the store (no new up)
        def a_resolves_db() -> bool:
            return a.run("ip", "netns", "exec", f"{project}-web-1", "getent", "hosts", "db",
                         check=False).returncode == 0
        assert until(a_resolves_db, 5), "A's DNS did not learn db from the store"
        a.run("ip", "netns", "exec", f"{project}-web-1", "ping", "-c2", "-W2", "db")
        b.run("ip", "netns", "exec", f"{project}-db-1", "ping", "-c2", "-W2", "web")

        ps = json.loads(_cn(a, project, path, env, "ps", "--format", "json").stdout)
        assert any(c.get("Name") == f"{project}-db-1" and c.get("Host") == b.address for c in ps), ps
        (net,) = json.loads(_cn(a, project, path, env, "network", "inspect", f"{project}_app").stdout)
        assert net["Scope"] == "global"
        hosts = {c["Name"]: c.get("Host") for c in net["Containers"].values()}
        assert hosts == {f"{project}-web-1": None, f"{project}-db-1": b.address}, hosts

        # live edits on A: web leaves the overlay network and comes back, and B follows both
        def b_resolves_web() -> bool:
            return b.run("ip", "netns", "exec", f"{project}-db-1", "getent", "hosts", "web",
                         check=False).returncode == 0
        _cn(a, project, path, env, "network", "disconnect", f"{project}_app", f"{project}-web-1")
        assert until(lambda: not b_resolves_web(), 5)
        assert not any(k.endswith(f"/endpoints/{project}-web-1") for k in sim.keys())
        _cn(a, project, path, env, "network", "connect", f"{project}_app", f"{project}-web-1")
        assert until(b_resolves_web, 5)
        b.run("ip", "netns", "exec", f"{project}-db-1", "ping", "-c1", "-W2", "web")
        # an ad-hoc container on the overlay network: leased, and known on B by its name
        probe = f"{project}-probe"

        def b_resolves_probe() -> bool:
            return b.run("ip", "netns", "exec", f"{project}-db-1", "getent", "hosts", probe,
                         check=False).returncode == 0
        _cn(a, project, path, env, "run", "-d", "--name", probe, "--network", f"{project}_app")
        assert until(b_resolves_probe, 5)
        _cn(a, project, path, env, "rm", probe)
        assert until(lambda: not b_resolves_probe(), 5)

        _cn(b, project, path, env, "down", "--quiet")
        keys = sim.keys()
        assert not any("db-1" in k for k in keys) and any("web-1" in k for k in keys)
        assert b.run("ip", "-o", "link", "show", "type", "vxlan").stdout == ""
        assert until(lambda: not a_resolves_db(), 20), "A still resolves db after B's down"
        _cn(a, project, path, env, "down", "--quiet")
        assert sim.keys() == []
    finally:
        for h in (a, b):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert kernel_snapshot() == before


def test_etcd_unreachable_up_fails_before_changing_anything(sim, tmp_path):
    a = sim.hosts[0]
    project, path = _project(tmp_path)
    env = sim.env(COMPOSE_NET_CLUSTER=f"etcd://{UNDERLAY}.9:{ETCD_PORT}")
    links = a.run("ip", "-o", "link").stdout
    proc = _cn(a, project, path, env, "up", "web", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "cluster store unreachable" in proc.stderr and "nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert a.run("ip", "-o", "link").stdout == links
    assert a.run("ls", "/run/netns").stdout == ""


def test_encrypted_overlay_is_refused_before_anything_is_created(sim, tmp_path):
    a = sim.hosts[0]
    project, path = _project(tmp_path, COMPOSE.replace("{driver: overlay}",
                                                      "{driver: overlay, driver_opts: {encrypted: ''}}"))
    env = sim.env()
    links = a.run("ip", "-o", "link").stdout
    plan = _cn(a, project, path, env, "up", "--dry-run", "web").stdout
    assert "encrypted" in plan
    proc = _cn(a, project, path, env, "up", "web", check=False)
    assert proc.returncode == 1 and "IPsec (xfrm) or WireGuard" in proc.stderr, proc.stderr
    assert a.run("ip", "-o", "link").stdout == links


def test_a_host_whose_processes_die_leaves_the_others_within_the_lease_ttl(sim, tmp_path):
    a, b = sim.hosts
    project, path = _project(tmp_path)
    env = sim.env()

    def a_resolves_db() -> bool:
        return a.run("ip", "netns", "exec", f"{project}-web-1", "getent", "hosts", "db",
                     check=False).returncode == 0

    def a_forwards_to_b() -> bool:
        return f"dst {b.address}" in a.run("bridge", "fdb", "show").stdout

    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        _cn(b, project, path, env, "up", "--quiet", "db")
        assert until(a_resolves_db, 5) and a_forwards_to_b()
        # B's background process (its only process) dies: nobody keeps B's lease alive
        pid = int(b.run("cat", f"/run/compose-net/{project}/dns.pid").stdout)
        b.run("kill", "-9", str(pid))
        started = time.monotonic()
        assert until(lambda: not a_resolves_db() and not a_forwards_to_b(), 25)
        assert time.monotonic() - started <= 15 + 3, "later than the lease TTL"
        assert not any("db-1" in k or b.address in k for k in sim.keys())
    finally:
        for h in (b, a):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert sim.keys() == []


def _dig(host: SimHost, container: str, name: str) -> list[str]:
    out = host.run("ip", "netns", "exec", container, "dig", "+short", "+time=1", "+tries=1", name,
                   check=False).stdout
    return sorted(line for line in out.split() if line[:1].isdigit())


TCP_SERVER = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('0.0.0.0', 7000)); s.listen(); print('up', flush=True); c, _ = s.accept(); "
              "c.sendall(c.recv(100).upper()); c.close()")
TCP_CLIENT = ("import socket, sys; c = socket.create_connection((sys.argv[1], 7000), timeout=5); "
              "c.sendall(b'hello over vxlan'); print(c.recv(100).decode())")


def test_tcp_by_name_across_hosts_check_sees_the_remote_entries_and_dry_run_claims_nothing(sim, tmp_path):
    a, b = sim.hosts
    project, path = _project(tmp_path)
    env = sim.env()
    before = [a.snapshot(), b.snapshot()]
    server = None
    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        keys = sim.keys()
        # B's plan, before B has anything: the store's subnet, the next free name, nothing claimed
        plan = _cn(b, project, path, env, "up", "--dry-run", "web").stdout
        assert f"{project}-web-2" in plan and "VTEP" in plan, plan
        assert sim.keys() == keys, "a dry run claimed something in the store"
        _cn(b, project, path, env, "up", "--quiet", "web", "db")
        assert f"/compose-net/v1/projects/{project}/containers/{project}-web-2" in sim.keys()
        server = b.popen("ip", "netns", "exec", f"{project}-db-1", "python3", "-c", TCP_SERVER,
                         stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "up"
        assert until(lambda: _dig(a, f"{project}-web-1", "db") != [], 5)
        out = a.run("ip", "netns", "exec", f"{project}-web-1", "python3", "-c", TCP_CLIENT, "db").stdout
        assert out.strip() == "HELLO OVER VXLAN"
        # the service name answers with the replicas of both hosts
        assert until(lambda: len(_dig(a, f"{project}-web-1", "web")) == 2, 5)
        # each host's kernel holds what its plan says, the other host's endpoints included
        for h in (a, b):
            proc = _cn(h, project, path, env, "check", check=False)
            assert proc.returncode == 0, f"{h.address}: {proc.stdout}{proc.stderr}"
        # and an up that changes nothing plans nothing, on either host
        assert json.loads(_cn(a, project, path, env, "up", "--dry-run", "--json", "web").stdout) == []
        assert json.loads(_cn(b, project, path, env, "up", "--dry-run", "--json", "db").stdout) == []
        _cn(b, project, path, env, "down", "--quiet")
        assert until(lambda: _dig(a, f"{project}-web-1", "db") == [], 10)
        proc = _cn(a, project, path, env, "check", check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _cn(a, project, path, env, "down", "--quiet")
        assert sim.keys() == []
        assert [a.snapshot(), b.snapshot()] == before
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        for h in (a, b):
            _cn(h, project, path, env, "down", "--quiet", check=False)


TWO_NETWORKS = """
services:
  x: {image: x, networks: [front]}
  z: {image: x, networks: [front]}
  y: {image: x, networks: [back]}
networks:
  front: {driver: overlay}
  back: {driver: overlay, internal: true}
"""


def test_two_overlay_networks_are_isolated_and_internal_has_no_way_out(sim, tmp_path):
    a, b = sim.hosts
    project, path = _project(tmp_path, TWO_NETWORKS)
    env = sim.env()
    # B routes 10.0.0.0/24 (the first /24 of the overlay pool): no host may choose it
    b.run("ip", "addr", "add", "10.0.0.250/24", "dev", "ul0")
    # B's VTEP is a second underlay address it advertises, not the one it reaches etcd from
    vtep = f"{UNDERLAY}.102"
    b.run("ip", "addr", "add", f"{vtep}/24", "dev", "ul0")
    env_b = sim.env(COMPOSE_NET_CLUSTER_ADVERTISE=vtep)
    bad = _cn(b, project, path, sim.env(COMPOSE_NET_CLUSTER_ADVERTISE=f"{UNDERLAY}.103"), "up", "y", check=False)
    assert bad.returncode == 1 and "not an address of this host" in bad.stderr, bad.stderr
    try:
        _cn(b, project, path, env_b, "up", "--quiet", "y")
        _cn(a, project, path, env, "up", "--quiet", "x")
        _cn(b, project, path, env_b, "up", "--quiet", "y", "z")
        assert f"dst {vtep}" in a.run("bridge", "fdb", "show").stdout
        keys = sim.keys()
        subnets = sorted(a.run("etcdctl", "--endpoints", sim.url, "get", "--print-value-only", k).stdout.strip()
                         for k in keys if k.endswith("/subnet"))
        assert subnets == ["10.0.1.0/24", "10.0.2.0/24"], subnets
        front = [k for k in keys if k.endswith(f"networks/{project}_front/vni")]
        back = [k for k in keys if k.endswith(f"networks/{project}_back/vni")]
        assert front and back
        vni = {k: a.run("etcdctl", "--endpoints", sim.url, "get", "--print-value-only", k).stdout.strip()
               for k in front + back}
        assert len(set(vni.values())) == 2, vni
        x = f"{project}-x-1"
        assert until(lambda: _dig(a, x, "z") != [], 5)
        a.run("ip", "netns", "exec", x, "ping", "-c1", "-W2", "z")
        # y lives on B, on the other overlay network: no name, and its address is unreachable
        assert _dig(a, x, "y") == []
        target = b.run("ip", "netns", "exec", f"{project}-y-1", "ip", "-4", "-o", "addr", "show",
                       "eth0").stdout.split()[3].split("/")[0]
        assert a.run("ip", "netns", "exec", x, "ping", "-c1", "-W1", target, check=False).returncode != 0
        assert b.run("ip", "netns", "exec", f"{project}-y-1", "ping", "-c1", "-W1", "z",
                     check=False).returncode != 0
        # internal: no way out of the network (no default route), as on a bridge network
        assert "default" not in b.run("ip", "netns", "exec", f"{project}-y-1", "ip", "route").stdout
        assert "default" in b.run("ip", "netns", "exec", f"{project}-z-1", "ip", "route").stdout
    finally:
        # B's down needs no COMPOSE_NET_CLUSTER_ADVERTISE: the recorded state knows its VTEP
        for h in (a, b):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert sim.keys() == []


def test_three_hosts_coming_up_at_once_never_lease_one_address_or_name_twice(tmp_path):
    project, path = _project(tmp_path, """
        services:
          db: {image: x, networks: [app], deploy: {replicas: 2}}
        networks:
          app: {driver: overlay}
        """)
    with SimCluster(3) as sim:
        env = sim.env()
        try:
            procs = [h.popen(sys.executable, "-m", "compose_net", "-p", project, "-f", str(path), "up",
                             "--quiet", "db", env=env, stderr=subprocess.PIPE, text=True) for h in sim.hosts]
            for p in procs:
                assert p.wait(120) == 0, p.stderr.read()
            keys = sim.keys()
            names = sorted(k.rsplit("/", 1)[1] for k in keys if f"projects/{project}/containers/" in k)
            assert names == sorted(f"{project}-db-{i}" for i in range(1, 7)), names
            addresses = [k.rsplit("/", 1)[1] for k in keys if "/addresses/" in k]
            assert len(addresses) == 6 == len(set(addresses))
            # every host's namespaces are the ones the store gave it, and their addresses differ
            seen = {}
            for h in sim.hosts:
                for ns in h.run("ls", "/run/netns").stdout.split():
                    out = h.run("ip", "netns", "exec", ns, "ip", "-4", "-o", "addr", "show", "eth0").stdout
                    seen[ns] = out.split()[3].split("/")[0]
            assert sorted(seen) == names and len(set(seen.values())) == 6, seen
            # the service name answers with every replica on every host
            first = sim.hosts[0].run("ls", "/run/netns").stdout.split()[0]
            assert until(lambda: _dig(sim.hosts[0], first, "db") == sorted(seen.values()), 10)
        finally:
            for h in sim.hosts:
                h.compose_net(project, path, env, "down", "--quiet", check=False)
        assert sim.keys() == []


def test_etcd_outage_keeps_traffic_and_hosts_register_again_when_it_is_back(tmp_path):
    project, path = _project(tmp_path)
    with SimCluster(2) as sim:
        a, b = sim.hosts
        env = sim.env(COMPOSE_NET_CLUSTER_TTL="6")
        web = f"{project}-web-1"
        try:
            _cn(a, project, path, env, "up", "--quiet", "web")
            _cn(b, project, path, env, "up", "--quiet", "db")
            assert until(lambda: _dig(a, web, "db") != [], 5)
            sim.stop_etcd()
            # the data plane and the names already known do not need the store
            a.run("ip", "netns", "exec", web, "ping", "-c2", "-W2", "db")
            links = a.run("ip", "-o", "link").stdout
            proc = _cn(a, project, path, env, "up", "web", check=False)
            assert proc.returncode == 1 and "cluster store unreachable" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr and a.run("ip", "-o", "link").stdout == links
            time.sleep(7)  # longer than the TTL: nothing expires while the store is away
            a.run("ip", "netns", "exec", web, "ping", "-c1", "-W2", "db")
            sim.start_etcd()
            # the store comes back; a lost lease (revoked here, as if it had expired) is noticed
            # by each host's background process, which registers the host and its endpoints again
            leases = a.run("etcdctl", "--endpoints", sim.url, "lease", "list").stdout.split()
            for lease in [x for x in leases if len(x) > 8 and x != "found"]:
                a.run("etcdctl", "--endpoints", sim.url, "lease", "revoke", lease, check=False)
            endpoint = f"/compose-net/v1/networks/{project}_app/endpoints/{project}-db-1"
            assert until(lambda: endpoint in sim.keys(), 6 / 3 + 5), sim.keys()
            assert until(lambda: _dig(a, web, "db") != [], 5)
            a.run("ip", "netns", "exec", web, "ping", "-c1", "-W2", "db")
        finally:
            for h in (b, a):
                h.compose_net(project, path, env, "down", "--quiet", check=False)
        assert sim.keys() == []


def test_no_query_is_lost_while_other_hosts_endpoints_come_and_go(sim, tmp_path):
    import re

    a, b = sim.hosts
    project, path = _project(tmp_path)
    queries = tmp_path / "queries"
    queries.write_text("web A\ndb A\n")  # web: local; db: on B, coming and going
    env = sim.env()
    web = f"{project}-web-1"
    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        perf = a.popen("ip", "netns", "exec", web, "dnsperf", "-s", "127.0.0.11", "-d", str(queries),
                       "-l", "6", "-Q", "400", stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        answered = []
        for _ in range(2):
            _cn(b, project, path, env, "up", "--quiet", "db")
            answered.append(until(lambda: _dig(a, web, "db") != [], 3, step=0.1))
            _cn(b, project, path, env, "down", "--quiet")
            answered.append(until(lambda: _dig(a, web, "db") == [], 3, step=0.1))
        out, _ = perf.communicate(timeout=60)
        assert answered == [True] * 4
        completed = re.search(r"Queries completed:\s+(\d+)", out)
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        assert completed and int(completed.group(1)) > 1000 and lost and int(lost.group(1)) == 0, out
    finally:
        for h in (b, a):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert sim.keys() == []


def test_an_unchanged_up_writes_nothing_and_a_scale_down_releases_what_left(sim, tmp_path):
    a, b = sim.hosts
    project, path = _project(tmp_path, COMPOSE.replace("db: {image: x, networks: [app]}",
                                                      "db: {image: x, networks: [app], deploy: {replicas: 2}}"))
    env = sim.env()

    def revision() -> int:
        out = a.run("etcdctl", "--endpoints", sim.url, "endpoint", "status", "-w", "json").stdout
        return json.loads(out)[0]["Status"]["header"]["revision"]

    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        _cn(b, project, path, env, "up", "--quiet", "db")
        time.sleep(1)  # both background processes have started and registered
        before = revision()
        # every write would wake every other host's watch: an unchanged up and the lease
        # refreshes of the background processes write nothing
        _cn(b, project, path, env, "up", "--quiet", "db")
        time.sleep(2)
        assert revision() == before
        db2 = f"{project}-db-2"
        assert any(k.endswith(f"/containers/{db2}") for k in sim.keys())
        path.write_text(textwrap.dedent(COMPOSE))  # db back to one replica
        _cn(b, project, path, env, "up", "--quiet", "db")
        keys = sim.keys()
        assert not any(k.endswith(f"/containers/{db2}") or k.endswith(f"/endpoints/{db2}") for k in keys), keys
        addresses = [k for k in keys if "/addresses/" in k]
        assert len(addresses) == 2, addresses  # web-1 and db-1
    finally:
        for h in (b, a):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert sim.keys() == []
