"""Overlay networks across simulated hosts with etcd as the cluster store.

A simulated host is a network namespace and a mount namespace with its own /run, /etc/netns and
/sys (what a separate machine has), held by a `sleep` process; compose-net runs inside it through
`nsenter -t PID -n -m`. The hosts are joined by an underlay bridge this test makes in the real
host; etcd (the Debian binary) listens only on host A's underlay address.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import kernel_snapshot, sh

ETCD = shutil.which("etcd")
pytestmark = pytest.mark.skipif(ETCD is None or os.geteuid() != 0, reason="needs root and etcd")

UNDERLAY = "198.18.77"  # benchmarking range (RFC 2544): never the machine's own
ETCD_PORT = 23790
SETUP = ("mount -t tmpfs tmpfs /run && mkdir -p /run/netns && mount -t tmpfs tmpfs /etc/netns && "
         "mount -t sysfs sysfs /sys && ip link set lo up && echo ready && exec sleep infinity")


class SimHost:
    def __init__(self, tag: str, index: int, bridge: str):
        self.address = f"{UNDERLAY}.{index}"
        self.proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", SETUP],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid
        outer = self.outer = f"u{tag}{index}"
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", f"v{tag}{index}")
        sh("ip", "link", "set", f"v{tag}{index}", "netns", str(self.pid))
        sh("ip", "link", "set", outer, "master", bridge, "up")
        self.run("ip", "link", "set", f"v{tag}{index}", "name", "ul0")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", "ul0")
        self.run("ip", "link", "set", "ul0", "up")

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "--", *args]

    def run(self, *args: str, check: bool = True, env: dict | None = None, timeout: float = 60):
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} on {self.address} exited {proc.returncode}: "
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def stop(self) -> None:
        # every process left in this host's mount namespace was started by this test (the
        # compose-net runs and their DNS servers): end them by pid
        mine = os.readlink(f"/proc/{self.pid}/ns/mnt")
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.pid:
                try:
                    if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                        os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        # the namespace's links go with it asynchronously: the outer end now, so nothing is left
        sh("ip", "link", "del", self.outer, check=False)


@pytest.fixture
def cluster():
    tag = uuid.uuid4().hex[:5]
    bridge = f"ub{tag}"
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "link", "set", bridge, "up")
    hosts: list[SimHost] = []
    etcd = None
    data = tempfile.mkdtemp(prefix="cn-etcd-")
    try:
        hosts = [SimHost(tag, i, bridge) for i in (1, 2)]
        a = hosts[0]
        url = f"http://{a.address}:{ETCD_PORT}"
        etcd = subprocess.Popen(
            ["nsenter", "-t", str(a.pid), "-n", "--", ETCD, "--name", "c", "--data-dir", data + "/d",
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", f"http://{a.address}:{ETCD_PORT + 1}",
             "--initial-advertise-peer-urls", f"http://{a.address}:{ETCD_PORT + 1}",
             "--initial-cluster", f"c=http://{a.address}:{ETCD_PORT + 1}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while a.run("etcdctl", "--endpoints", url, "endpoint", "health", check=False).returncode != 0:
            assert time.monotonic() < deadline and etcd.poll() is None, "etcd did not start"
            time.sleep(0.2)
        yield hosts, f"etcd://{a.address}:{ETCD_PORT}", url
    finally:
        if etcd is not None:
            os.kill(etcd.pid, signal.SIGTERM)
            etcd.wait(10)
        for h in hosts:
            h.stop()
        sh("ip", "link", "del", bridge, check=False)
        shutil.rmtree(data, ignore_errors=True)


COMPOSE = """
services:
  web: {image: x, networks: [app]}
  db: {image: x, networks: [app]}
networks:
  app: {driver: overlay}
"""


def _cn(host: SimHost, project: str, path: Path, env: dict, *args: str, check: bool = True):
    return host.run(sys.executable, "-m", "compose_net", "-p", project, "-f", str(path), *args,
                    env=env, check=check)


def _etcd_keys(host: SimHost, url: str) -> list[str]:
    out = host.run("etcdctl", "--endpoints", url, "get", "--prefix", "--keys-only", "/compose-net/").stdout
    return [k for k in out.split() if k]


def _until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return check()


def test_web_on_a_reaches_db_on_b_by_name_and_down_on_b_removes_only_bs_part(cluster, tmp_path):
    before = kernel_snapshot()
    (a, b), store, url = cluster
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
    env = {"COMPOSE_NET_CLUSTER": store, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        _cn(b, project, path, env, "up", "--quiet", "db")
        keys = _etcd_keys(a, url)
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
        assert _until(a_resolves_db, 5), "A's DNS did not learn db from the store"
        a.run("ip", "netns", "exec", f"{project}-web-1", "ping", "-c2", "-W2", "db")
        b.run("ip", "netns", "exec", f"{project}-db-1", "ping", "-c2", "-W2", "web")

        ps = json.loads(_cn(a, project, path, env, "ps", "--format", "json").stdout)
        assert any(c.get("Name") == f"{project}-db-1" and c.get("Host") == b.address for c in ps), ps

        _cn(b, project, path, env, "down", "--quiet")
        keys = _etcd_keys(a, url)
        assert not any("db-1" in k for k in keys) and any("web-1" in k for k in keys)
        assert b.run("ip", "-o", "link", "show", "type", "vxlan").stdout == ""
        assert _until(lambda: not a_resolves_db(), 20), "A still resolves db after B's down"
        _cn(a, project, path, env, "down", "--quiet")
        assert _etcd_keys(a, url) == []
    finally:
        for h in (a, b):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert kernel_snapshot() == before


def test_etcd_unreachable_up_fails_before_changing_anything(cluster, tmp_path):
    (a, _), _, _ = cluster
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
    env = {"COMPOSE_NET_CLUSTER": f"etcd://{UNDERLAY}.9:{ETCD_PORT}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    links = a.run("ip", "-o", "link").stdout
    proc = _cn(a, project, path, env, "up", "web", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "cluster store unreachable" in proc.stderr and "nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert a.run("ip", "-o", "link").stdout == links
    assert a.run("ls", "/run/netns").stdout == ""


def test_encrypted_overlay_is_refused_before_anything_is_created(cluster, tmp_path):
    (a, _), store, _ = cluster
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE).replace("{driver: overlay}",
                                                     "{driver: overlay, driver_opts: {encrypted: ''}}"))
    env = {"COMPOSE_NET_CLUSTER": store, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    links = a.run("ip", "-o", "link").stdout
    plan = _cn(a, project, path, env, "up", "--dry-run", "web").stdout
    assert "encrypted" in plan
    proc = _cn(a, project, path, env, "up", "web", check=False)
    assert proc.returncode == 1 and "IPsec (xfrm) or WireGuard" in proc.stderr, proc.stderr
    assert a.run("ip", "-o", "link").stdout == links


def test_a_host_whose_processes_die_leaves_the_others_within_the_lease_ttl(cluster, tmp_path):
    (a, b), store, url = cluster
    project = "t" + uuid.uuid4().hex[:8]
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE))
    env = {"COMPOSE_NET_CLUSTER": store, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def a_resolves_db() -> bool:
        return a.run("ip", "netns", "exec", f"{project}-web-1", "getent", "hosts", "db",
                     check=False).returncode == 0

    def a_forwards_to_b() -> bool:
        return f"dst {b.address}" in a.run("bridge", "fdb", "show").stdout

    try:
        _cn(a, project, path, env, "up", "--quiet", "web")
        _cn(b, project, path, env, "up", "--quiet", "db")
        assert _until(a_resolves_db, 5) and a_forwards_to_b()
        # B's background process (its only process) dies: nobody keeps B's lease alive
        pid = int(b.run("cat", f"/run/compose-net/{project}/dns.pid").stdout)
        b.run("kill", "-9", str(pid))
        started = time.monotonic()
        assert _until(lambda: not a_resolves_db() and not a_forwards_to_b(), 25)
        assert time.monotonic() - started <= 15 + 3, "later than the lease TTL"
        assert not any("db-1" in k or b.address in k for k in _etcd_keys(a, url))
    finally:
        for h in (b, a):
            _cn(h, project, path, env, "down", "--quiet", check=False)
    assert _etcd_keys(a, url) == []
