"""Read-only facts about the host, gathered once per command and passed on as a value.

Planning is pure: IPAM and naming look only at a `HostFacts`, so a test builds one by hand
(`HostFacts()` is an empty host). `probe_host()` reads /proc, /sys and the state directory
directly (no netlink socket, no module loading, a few milliseconds), and, for the commands that
plan, the host's other firewalls: one `nft -j list chains` (through executor/nft.py, the only
nft caller) and, when firewalld's table is there, `firewall-cmd --state`.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from compose_net import naming

if TYPE_CHECKING:  # pragma: no cover
    from compose_net.summary import Summary

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

# Kernel features the drivers need, as named in the kernel config and as module names.
# The host's own settings, in the JSON of dockerd's daemon.json (only `default-address-pools` is
# read); COMPOSE_NET_DAEMON_JSON moves it.
DAEMON_JSON = "/etc/compose-net/daemon.json"


def daemon_json_path() -> str:
    return os.environ.get("COMPOSE_NET_DAEMON_JSON") or DAEMON_JSON


FEATURES = {"macvlan": "MACVLAN", "ipvlan": "IPVLAN", "vxlan": "VXLAN", "8021q": "VLAN_8021Q",
            "bridge": "BRIDGE", "veth": "VETH"}


@dataclass(frozen=True)
class HostRoute:
    dst: IPNetwork
    dev: str = ""


@dataclass(frozen=True)
class HostAddress:
    address: IPInterface
    dev: str = ""


@dataclass(frozen=True)
class BaseChain:
    """A base chain of another owner's table: where it hooks and what it does by default."""

    family: str  # ip, ip6, inet, ...
    table: str
    name: str
    hook: str  # forward, input, prerouting, postrouting, output
    priority: int
    policy: str  # accept or drop

    def describe(self) -> str:
        return f"{self.family} {self.table} {self.name} (hook {self.hook}, policy {self.policy})"


@dataclass(frozen=True)
class HostFirewall:
    """The host's other firewalls, as far as compose-net needs them: the base chains on the
    forward, input and nat hooks of every table but compose-net's own, and the chains that
    tell their owners (Docker's DOCKER-USER, ufw's ufw-user-forward, firewalld's and
    netavark's tables, libvirt's chains). `known` False: the ruleset could not be read."""

    known: bool = False
    chains: tuple[BaseChain, ...] = ()
    # (family, table, chain) of every chain of another owner, base or not
    names: frozenset[tuple[str, str, str]] = frozenset()
    firewalld_running: bool = False

    def has(self, family: str, table: str, chain: str) -> bool:
        return (family, table, chain) in self.names

    def tables(self) -> frozenset[tuple[str, str]]:
        return frozenset((f, t) for f, t, _ in self.names)


HOOKS = ("forward", "input", "prerouting", "postrouting", "output")


def read_firewall(chains: Optional[list]) -> HostFirewall:
    """The host's firewalls from `nft -j list chains` output (None: unreadable)."""
    if chains is None:
        return HostFirewall()
    base: list[BaseChain] = []
    names: set[tuple[str, str, str]] = set()
    for c in chains:
        family, table, name = str(c.get("family", "")), str(c.get("table", "")), str(c.get("name", ""))
        if family == naming.TABLE_FAMILY and table.startswith(naming.TABLE_PREFIX):
            continue  # compose-net's own projects
        names.add((family, table, name))
        if c.get("hook") in HOOKS:
            base.append(BaseChain(family, table, name, str(c["hook"]), int(c.get("prio", 0) or 0),
                                  str(c.get("policy", "accept"))))
    return HostFirewall(True, tuple(base), frozenset(names))


def _firewall() -> HostFirewall:
    from compose_net.executor import firewalld, nft

    fw = read_firewall(nft.list_chains())
    if ("inet", "firewalld") in fw.tables():
        import dataclasses

        fw = dataclasses.replace(fw, firewalld_running=firewalld.running())
    return fw


@dataclass(frozen=True)
class HostFacts:
    routes: tuple[HostRoute, ...] = ()  # main table, default routes left out
    addresses: tuple[HostAddress, ...] = ()
    links: Mapping[str, int] = field(default_factory=dict)  # link name -> link group
    nameservers: tuple[IPAddress, ...] = ()
    resolv_conf: str = ""  # what a container without the embedded DNS gets as /etc/resolv.conf
    hosts: str = ""  # the host's /etc/hosts (for network_mode none/host copies)
    projects: Mapping[str, "Summary"] = field(default_factory=dict)  # name -> its recorded state
    features: frozenset[str] = frozenset()  # subset of FEATURES keys the kernel has
    netns: frozenset[str] = frozenset()
    features_known: bool = False  # False: could not tell (treat every feature as maybe present)
    firewall: HostFirewall = field(default_factory=HostFirewall)  # the host's other firewalls
    daemon_json: str = ""  # the host settings file's text ("" when there is none)
    daemon_json_path: str = DAEMON_JSON
    cluster: Optional[Any] = None  # cluster.ClusterFacts: what the cluster store fixed for this run

    def has_feature(self, name: str) -> bool:
        return name in self.features or not self.features_known

    def other_projects(self, project: str) -> dict[str, "Summary"]:
        return {k: v for k, v in self.projects.items() if k != project}

    def used_ports(self, exclude_project: str = "") -> set[tuple[str, int]]:
        """(protocol, port) pairs published by other compose-net projects."""
        used: set[tuple[str, int]] = set()
        for name, summary in self.projects.items():
            if name == exclude_project:
                continue
            for c in summary.containers:
                for p in c.ports:
                    if p.published is None:
                        continue
                    for port in range(p.published, (p.published_end or p.published) + 1):
                        used.add((p.protocol, port))
        return used


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _routes_v4(text: str) -> list[HostRoute]:
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        dst = socket.inet_ntoa(struct.pack("<I", int(parts[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(parts[7], 16)))
        net = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
        if net.prefixlen:
            out.append(HostRoute(net, parts[0]))
    return out


def routed_v4() -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations of the host's main table, default routes left out."""
    return [r.dst for r in _routes_v4(_read("/proc/net/route"))]


def _hex6(text: str) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(bytes.fromhex(text))


def _routes_v6(text: str) -> list[HostRoute]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10:
            continue
        plen = int(parts[1], 16)
        if plen == 0:
            continue
        net = ipaddress.IPv6Network(f"{_hex6(parts[0])}/{plen}", strict=False)
        # the kernel lists local, multicast and link-local entries here too; only real
        # destinations can clash with a subnet
        if net.is_link_local or net.is_multicast or net.is_loopback or parts[9] == "lo":
            continue
        out.append(HostRoute(net, parts[9]))
    return out


def _addresses_v4(fib_trie: str, routes: list[HostRoute]) -> list[HostAddress]:
    """Local IPv4 addresses from /proc/net/fib_trie ("/32 host LOCAL" leaves), with the prefix
    of the narrowest connected route that holds them."""
    out: list[HostAddress] = []
    seen: set[str] = set()
    last = ""
    for line in fib_trie.splitlines():
        s = line.strip()
        if s.startswith("|--"):
            last = s[3:].strip()
        elif s.startswith("/32 host LOCAL") and last and last not in seen:
            seen.add(last)
            addr = ipaddress.IPv4Address(last)
            if addr.is_loopback:
                continue
            best = None
            for r in routes:
                if r.dst.version == 4 and addr in r.dst and (best is None or r.dst.prefixlen > best.dst.prefixlen):
                    best = r
            plen = best.dst.prefixlen if best else 32
            out.append(HostAddress(ipaddress.IPv4Interface(f"{addr}/{plen}"), best.dev if best else ""))
    return out


def _addresses_v6(text: str) -> list[HostAddress]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        addr = _hex6(parts[0])
        if addr.is_loopback or addr.is_link_local:
            continue
        out.append(HostAddress(ipaddress.IPv6Interface(f"{addr}/{int(parts[2], 16)}"), parts[5]))
    return out


def _links() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return out
    for name in names:
        text = _read(f"/sys/class/net/{name}/netdev_group").strip()
        out[name] = int(text) if text.isdigit() else 0
    return out


def parse_nameservers(text: str) -> tuple[IPAddress, ...]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                out.append(ipaddress.ip_address(parts[1].split("%")[0]))
            except ValueError:
                continue
    return tuple(out)


def _resolv() -> tuple[tuple[IPAddress, ...], str]:
    text = _read("/etc/resolv.conf")
    servers = parse_nameservers(text)
    if servers and all(s.is_loopback for s in servers):
        # a loopback stub resolver (systemd-resolved) is unreachable from a container's
        # namespace; Docker copies the upstream list instead, and so do we
        upstream = _read("/run/systemd/resolve/resolv.conf")
        if parse_nameservers(upstream):
            return parse_nameservers(upstream), upstream
    return servers, text


def _features() -> tuple[frozenset[str], bool]:
    have: set[str] = set()
    known = False
    try:
        config = gzip.open("/proc/config.gz").read().decode(errors="replace")
        known = True
        for feat, sym in FEATURES.items():
            if f"\nCONFIG_{sym}=y" in config:
                have.add(feat)
    except OSError:
        pass
    modules = _read("/proc/modules")
    for line in modules.splitlines():
        name = line.split(" ", 1)[0]
        if name in FEATURES:
            have.add(name)
    for feat in FEATURES:
        if os.path.isdir(f"/sys/module/{feat}"):
            have.add(feat)
    release = os.uname().release
    moddir = f"/lib/modules/{release}"
    builtin = _read(f"{moddir}/modules.builtin") + _read(f"{moddir}/modules.dep")
    if builtin:
        known = True
        for feat in FEATURES:
            if f"/{feat}.ko" in builtin:
                have.add(feat)
    return frozenset(have), known


def _projects() -> dict[str, "Summary"]:
    from compose_net.errors import StateError
    from compose_net.summary import from_text

    out: dict[str, "Summary"] = {}
    try:
        entries = sorted(os.listdir(naming.state_root()))
    except OSError:
        return out
    for name in entries:
        path = f"{naming.state_root()}/{name}/project.json"
        text = _read(path)
        if not text:
            continue
        try:
            summary = from_text(text, path)
        except StateError:
            continue  # not ours to judge here: the project's own commands report it
        out[summary.project] = summary
    return out


def probe_host(firewall: bool = False) -> HostFacts:
    """The host's facts; `firewall`: read the other firewalls too (the commands that plan)."""
    routes = _routes_v4(_read("/proc/net/route")) + _routes_v6(_read("/proc/net/ipv6_route"))
    addresses = _addresses_v4(_read("/proc/net/fib_trie"), routes) + _addresses_v6(_read("/proc/net/if_inet6"))
    servers, resolv = _resolv()
    features, known = _features()
    try:
        netns = frozenset(os.listdir("/run/netns"))
    except OSError:
        netns = frozenset()
    return HostFacts(
        routes=tuple(routes),
        addresses=tuple(addresses),
        links=_links(),
        nameservers=servers,
        resolv_conf=resolv,
        hosts=_read("/etc/hosts"),
        projects=_projects(),
        features=features,
        netns=netns,
        features_known=known,
        firewall=_firewall() if firewall else HostFirewall(),
        daemon_json=_read(daemon_json_path()),
        daemon_json_path=daemon_json_path(),
    )


def host_settings() -> HostFacts:
    """An empty host with only this host's settings file (`config` plans on it)."""
    return HostFacts(daemon_json=_read(daemon_json_path()), daemon_json_path=daemon_json_path())


def first_host_address(facts: HostFacts, version: int = 4) -> Optional[IPAddress]:
    for a in facts.addresses:
        if a.address.version == version and not a.address.ip.is_loopback:
            return a.address.ip
    return None
