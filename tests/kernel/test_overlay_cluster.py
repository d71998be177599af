"""Overlay networks across simulated hosts (tests/kernel/simhosts.py) with etcd as the cluster
store: compose-net runs inside each host exactly as on a separate machine."""

from __future__ import annotations

import json
import os
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


def _cn(host: SimHost, project: str, path, env: dict, *args: str, check: bool = True):
    return host.compose_net(project, path, env, *args, check=check)


def test_web_on_a_reaches_db_on_b_by_name_and_down_on_b_removes_only_bs_part(sim, tmp_path):
    before = kernel_snapshot()
    a, b = sim.hosts
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
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
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
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
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE).replace("{driver: overlay}",
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
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
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
