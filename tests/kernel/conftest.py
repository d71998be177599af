"""Shared fixtures for tests against the real kernel (root only).

- The whole kernel session holds a host-wide lock, so two test runs (or a benchmark) never
  overlap and never see each other's objects.
- `no_leaks` (autouse) snapshots `ip netns`, `ip link`, `nft list tables`, /run/netns, /run/utsns,
  /etc/netns and /run/compose-net before each test and fails the test if anything is left after it.
- `project_name` gives each test a unique project name; `uplink` is a throwaway namespace that
  plays "the outside world" (never the machine's own eth0).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from pathlib import Path

import pytest

LOCK_PATH = "/tmp/compose-net-kernel-tests.lock"

pytestmark = pytest.mark.kernel


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel tests need root")
    for item in items:
        if "tests/kernel" in str(item.fspath):
            item.add_marker(skip)


def sh(*args: str, check: bool = True, ns: str | None = None, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Run a command (optionally inside netns `ns`), capture text output."""
    argv = list(args)
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, **kw)


def _listing(path: str) -> tuple[str, ...]:
    p = Path(path)
    if not p.is_dir():
        return ()
    return tuple(sorted(x.name for x in p.iterdir()))


def kernel_snapshot() -> dict[str, object]:
    links = sh("ip", "-o", "link", "show").stdout.splitlines()
    names = sorted(line.split(":", 2)[1].strip().split("@")[0] for line in links)
    tables = sh("nft", "list", "tables", check=False).stdout.split("\n")
    return {
        "netns": tuple(sorted(sh("ip", "netns", "list").stdout.split())),
        "links": tuple(names),
        "nft": tuple(sorted(t for t in tables if t.strip())),
        "/run/netns": _listing("/run/netns"),
        "/run/utsns": _listing("/run/utsns"),
        "/etc/netns": _listing("/etc/netns"),
        "/run/compose-net": _listing("/run/compose-net"),
        # a route's `linkdown` is its bridge's carrier, not an object: an empty bridge is reported
        # with or without it depending on whether it ever had a port
        "routes": tuple(line.replace(" linkdown", "") for line in sh("ip", "route", "show").stdout.splitlines()),
    }


@pytest.fixture(scope="session", autouse=True)
def kernel_lock():
    if os.geteuid() != 0:
        yield
        return
    with open(LOCK_PATH, "w") as fh:
        if not _held_by_ancestor(LOCK_PATH):  # `flock LOCK pytest ...` already holds it for us
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _held_by_ancestor(path: str) -> bool:
    """Whether a process above this one holds a flock on `path`: waiting for it would never end."""
    inode = os.stat(path).st_ino
    holders = set()
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                holders.add(int(fields[4]))
    pid = os.getppid()
    while pid > 1:
        if pid in holders:
            return True
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return False


@pytest.fixture(autouse=True)
def no_leaks(kernel_lock):
    if os.geteuid() != 0:
        yield
        return
    before = kernel_snapshot()
    yield
    after = kernel_snapshot()
    leaked = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not leaked, f"kernel state changed by the test: {leaked}"


@pytest.fixture
def project_name() -> str:
    return "t" + uuid.uuid4().hex[:8]


class Uplink:
    """A namespace acting as the outside world, joined to the host by a veth pair.

    Host side `up-XXXX` gets HOST_IP/24, the namespace side gets PEER_IP/24, and the namespace
    routes back to container subnets via the host, so masqueraded traffic can be seen arriving
    from HOST_IP."""

    def __init__(self, tag: str, index: int = 0):
        self.ns = f"uplink-{tag}"
        self.host_if = f"up-{tag}"[:15]
        self.peer_if = "eth0"
        base = 100 + index
        self.host_ip = f"198.51.{base}.1"
        self.peer_ip = f"198.51.{base}.2"

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if, "netns", self.ns)
            sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
            sh("ip", "link", "set", "lo", "up", ns=self.ns)
            sh("ip", "addr", "add", f"{self.peer_ip}/24", "dev", self.peer_if, ns=self.ns)
            sh("ip", "link", "set", self.peer_if, "up", ns=self.ns)
        except Exception:
            self.destroy()
            raise

    def destroy(self) -> None:
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


@pytest.fixture
def uplink():
    link = Uplink(uuid.uuid4().hex[:6])
    link.create()
    try:
        yield link
    finally:
        link.destroy()


# --- hand-built plans (executor tests; independent of the loader and planner) -----------------

import ipaddress as _ipaddress  # noqa: E402


class PlanBuilder:
    """Builds a Plan op by op the way the planner lays one out: networks (bridge + gateway
    address), then per container its namespace, veths with peers born in place, links up,
    addresses, default route, sysctls and /etc/netns files. Names carry a per-test tag."""

    def __init__(self, project: str, group: int | None = None):
        from compose_net.plan import ops as O

        self.O = O
        self.project = project
        self.tag = project[-6:]
        self.group = group or (int(project[-4:], 16) % 50000) + 10000
        self.ops: list = []
        self.networks: dict[str, dict] = {}
        self._veths = 0

    def network(self, key: str, subnet: str, *, mtu: int | None = None) -> str:
        O = self.O
        net = _ipaddress.ip_network(subnet)
        bridge = f"cb{self.tag}{key}"[:15]
        gw = next(net.hosts())
        unit = f"network:{self.project}_{key}"
        self.ops.append(O.BridgeCreate(unit, bridge, self.group, mtu=mtu))
        self.ops.append(O.AddrAdd(unit, None, bridge, _ipaddress.ip_interface(f"{gw}/{net.prefixlen}")))
        self.networks[key] = {"bridge": bridge, "net": net, "gw": gw, "mtu": mtu, "next": 2}
        return bridge

    def address(self, key: str) -> _ipaddress.IPv4Interface:
        net = self.networks[key]
        ip = net["net"].network_address + net["next"]
        net["next"] += 1
        return _ipaddress.ip_interface(f"{ip}/{net['net'].prefixlen}")

    def container(
        self,
        name: str,
        nets: list[str],
        *,
        ips: dict | None = None,
        macs: dict | None = None,
        ifnames: dict | None = None,
        default: str | None = None,
        sysctls: dict | None = None,
        files: bool = True,
    ) -> dict[str, _ipaddress.IPv4Interface]:
        O = self.O
        unit = f"container:{name}"
        ips, macs, ifnames = ips or {}, macs or {}, ifnames or {}
        self.ops.append(O.NetnsCreate(unit, name))
        out = {}
        links = []
        for i, key in enumerate(nets):
            net = self.networks[key]
            self._veths += 1
            ifname = ifnames.get(key, f"eth{i}")
            addr = _ipaddress.ip_interface(ips[key]) if key in ips else self.address(key)
            mac = macs.get(key) or "02:42:" + ":".join(f"{b:02x}" for b in addr.ip.packed)
            host = f"v{self.tag}{self._veths}"[:15]
            self.ops.append(O.VethCreate(unit, host, ifname, name, self.group, master=net["bridge"], mtu=net["mtu"], peer_mac=mac))
            links.append((key, ifname, addr))
            out[key] = addr
        for key, ifname, addr in links:
            self.ops.append(O.LinkUp(unit, name, ifname))
        for key, ifname, addr in links:
            self.ops.append(O.AddrAdd(unit, name, ifname, addr))
        chosen = default if default is not None else (nets[0] if nets else None)
        for key, ifname, addr in links:
            if key == chosen:
                gw = self.networks[key]["gw"]
                self.ops.append(O.RouteAdd(unit, name, _ipaddress.ip_network("0.0.0.0/0"), ifname, gw))
        for k, v in (sysctls or {}).items():
            self.ops.append(O.SysctlSet(unit, name, k, v))
        if files:
            self.ops.append(O.FileWrite(unit, f"/etc/netns/{name}/resolv.conf", "nameserver 127.0.0.11\noptions ndots:0\n"))
            hosts = "127.0.0.1\tlocalhost\n" + "".join(f"{a.ip}\t{name}\n" for a in out.values())
            self.ops.append(O.FileWrite(unit, f"/etc/netns/{name}/hosts", hosts))
        return out

    def add(self, op) -> None:
        self.ops.append(op)

    def plan(self):
        return self.O.Plan(self.project, tuple(self.ops))


@pytest.fixture
def builder(project_name):
    return PlanBuilder(project_name)


def reconciled_up(plan, **kw):
    """`up` as the CLI runs it on a desired plan: held against the project's journal and what the
    kernel has (`plan.reconcile`), then applied; returns the executor's result."""
    from compose_net import executor, observe, state
    from compose_net.plan.reconcile import reconcile

    recorded = state.Journal(plan.project).read().ops
    observed = observe.read(observe.query(plan.ops + recorded))
    return executor.up(reconcile(plan, recorded, observed), **kw)


@pytest.fixture
def executor_guard(project_name):
    """Whatever a test leaves up for its project is taken down, even when it fails."""
    yield
    from compose_net import executor

    executor.down(project_name)


@pytest.fixture(scope="session", autouse=True)
def state_lock_file(kernel_lock):
    """The host-wide state lock file is permanent (see state.py): make it exist before the
    first snapshot, so a test that takes it is not reported as a leak."""
    if os.geteuid() != 0:
        return
    from compose_net import state

    with state.host_lock():
        pass


@pytest.fixture
def veth_parent(project_name):
    """A veth pair in the host standing in for a physical NIC (never the machine's eth0)."""
    name, other = f"mp{project_name[-6:]}", f"mq{project_name[-6:]}"
    sh("ip", "link", "add", name, "type", "veth", "peer", "name", other)
    try:
        sh("ip", "link", "set", name, "up")
        sh("ip", "link", "set", other, "up")
        yield name
    finally:
        sh("ip", "link", "del", name, check=False)
