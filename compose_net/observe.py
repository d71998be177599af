"""What the kernel really holds for a project: read-only, as a typed value the planner compares.

`query(ops)` says what to look at: the links, namespaces, sysctls, files, nftables tables and
DNS servers that a set of ops (the desired plan and the recorded journal) creates or uses;
`read(query)` looks, and returns `Observed`. Nothing is changed and nothing is decided here:
`plan.reconcile` holds the desired ops against this value.

What is read, and how:
- links, addresses and routes through netlink (`executor.netlink`, pyroute2 decoding every
  answer): one dump of the host's links and addresses, and in each container namespace its
  links, addresses and main-table routes, on a socket opened inside it;
- sysctls from /proc/sys, inside the namespace they belong to;
- files (/etc/netns/NAME/..., the recorded state) by content;
- the project's nftables table through `executor.nft` (`nft -j list table`), reduced to its
  shape (chains and their rules in order, handles left out) so it compares with the ruleset
  the plan would write;
- the static FDB and neighbour entries of the host's VXLAN devices (other hosts' endpoints of
  an overlay network), through netlink, one dump per device and family;
- the DNS server: its process, the records it serves (by digest), and in which namespaces it
  holds a socket bound to 127.0.0.11:53 (its own sockets, found through /proc/PID/fd).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Union

from compose_net.plan import ops as O

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class LinkFacts:
    name: str
    kind: Optional[str] = None  # "bridge", "veth", "macvlan", ...
    up: bool = False
    group: int = 0
    master: Optional[str] = None  # the bridge it is a port of
    mtu: Optional[int] = None
    mac: Optional[str] = None
    addresses: frozenset[IPInterface] = frozenset()
    hairpin: Optional[bool] = None  # bridge ports only


@dataclass(frozen=True)
class RouteFacts:
    dst: IPNetwork
    dev: Optional[str]
    gateway: Optional[IPAddress] = None
    metric: Optional[int] = None


@dataclass(frozen=True)
class NamespaceFacts:
    inode: int = 0  # the namespace's identity: every name of one namespace has the same
    links: Mapping[str, LinkFacts] = field(default_factory=dict)
    routes: frozenset[RouteFacts] = frozenset()
    sysctls: Mapping[str, Optional[str]] = field(default_factory=dict)  # those asked for; None: no such key


@dataclass(frozen=True)
class UtsFacts:
    inode: int
    hostname: str
    domainname: str


@dataclass(frozen=True)
class DnsFacts:
    pid: int = 0  # 0: not running
    records: str = ""  # the records file it serves
    digest: str = ""  # of the records it loaded last
    listening: frozenset[str] = frozenset()  # namespaces where it holds 127.0.0.11:53


@dataclass(frozen=True)
class Observed:
    host: NamespaceFacts = field(default_factory=NamespaceFacts)
    namespaces: Mapping[str, Optional[NamespaceFacts]] = field(default_factory=dict)  # None: no such namespace
    files: Mapping[str, Optional[str]] = field(default_factory=dict)  # None: no such file
    tables: Mapping[tuple[str, str], Optional[str]] = field(default_factory=dict)  # shape, or None: no table
    dns: Mapping[str, DnsFacts] = field(default_factory=dict)
    # names under /run/netns that are no namespace (what a crash between claiming a name and
    # mounting the namespace on it leaves)
    stale_netns: frozenset[str] = frozenset()
    uts: Mapping[str, Optional[UtsFacts]] = field(default_factory=dict)  # /run/utsns names; None: absent
    iptables: Mapping[tuple, bool] = field(default_factory=dict)  # (family, table, chain, rule): present
    firewalld: Mapping[tuple[str, str], bool] = field(default_factory=dict)  # (zone, interface): in it
    # per VXLAN device of the host: its static ("fdb", MAC, VTEP) and ("neigh", IP, MAC) entries
    vxlan_entries: Mapping[str, frozenset[tuple]] = field(default_factory=dict)

    def namespace(self, ns: Optional[str]) -> Optional[NamespaceFacts]:
        return self.host if ns is None else self.namespaces.get(ns)

    def link(self, ns: Optional[str], name: str) -> Optional[LinkFacts]:
        facts = self.namespace(ns)
        return facts.links.get(name) if facts is not None else None


@dataclass(frozen=True)
class Query:
    """What to observe: everything the given ops create, change or refer to."""

    host_links: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    ipv6: frozenset[Optional[str]] = frozenset()  # namespaces (None: the host) with IPv6 to look at
    kinds: frozenset[tuple[str, str]] = frozenset()  # (namespace, link kind) made in a namespace
    sysctls: frozenset[tuple[Optional[str], str]] = frozenset()  # (namespace or None, key)
    files: frozenset[str] = frozenset()
    tables: frozenset[tuple[str, str]] = frozenset()
    dns: frozenset[str] = frozenset()
    uts: frozenset[str] = frozenset()
    iptables: frozenset[tuple] = frozenset()  # (family, table, chain, rule) of our rules in others' chains
    firewalld: frozenset[tuple[str, str]] = frozenset()  # (zone, interface)
    vxlan_entries: frozenset[str] = frozenset()  # host VXLAN devices whose FDB/neighbours to read


# ops that name a link of the namespace they work in (`ns`; None: the host)
_HOST_LINK_OPS = (O.AddrAdd, O.AddrDel, O.RouteAdd, O.RouteDel, O.LinkUp, O.LinkDelete)


def query(ops: Iterable[O.Op]) -> Query:
    host_links: set[str] = set()
    namespaces: set[str] = set()
    ipv6: set[Optional[str]] = set()
    kinds: set[tuple[str, str]] = set()
    sysctls: set[tuple[Optional[str], str]] = set()
    files: set[str] = set()
    tables: set[tuple[str, str]] = set()
    dns: set[str] = set()
    uts: set[str] = set()
    rules: set[tuple] = set()
    zones: set[tuple[str, str]] = set()
    vxlan: set[str] = set()
    for op in ops:
        ns = getattr(op, "ns", None)
        if ns:
            namespaces.add(ns)
        host_links.update(key[2] for key in op.creates() if key[0] == "link" and key[1] is None)
        host_links.update(v for v in (getattr(op, "master", None), getattr(op, "parent", None)) if v)
        if ns is None and isinstance(op, _HOST_LINK_OPS):
            host_links.add(op.dev if hasattr(op, "dev") else op.name)
        for attr in ("address", "dst", "gateway"):
            value = getattr(op, attr, None)
            if value is not None and getattr(value, "version", 4) == 6:
                ipv6.add(ns)
        if isinstance(op, (O.NetnsCreate, O.NetnsDelete)):
            namespaces.add(op.name)
        elif isinstance(op, O.NetnsAlias):
            namespaces.update((op.name, op.target))
        elif isinstance(op, (O.UtsCreate, O.UtsDelete)):
            uts.add(op.name)
        elif isinstance(op, O.UtsAlias):
            uts.update((op.name, op.target))
        elif isinstance(op, O.VethCreate):
            namespaces.add(op.peer_ns)
            kinds.add((op.peer_ns, "veth"))
        elif isinstance(op, (O.MacvlanCreate, O.IpvlanCreate)):
            kinds.add((op.ns, op.kind.split("_")[0]))
        elif isinstance(op, O.SysctlSet):
            sysctls.add((op.ns, op.key))
        elif isinstance(op, (O.FileWrite, O.FileRemove)):
            files.add(op.path)
        elif isinstance(op, (O.NftApply, O.NftDelete)):
            tables.add((op.family, op.table))
        elif isinstance(op, (O.DnsStart, O.DnsStop)):
            dns.add(op.project)
        elif isinstance(op, (O.IptablesInsert, O.IptablesDelete)):
            rules.add((op.family, op.table, op.chain, op.rule))
        elif isinstance(op, (O.FirewalldAdd, O.FirewalldRemove)):
            zones.add((op.zone, op.interface))
        elif isinstance(op, (O.FdbSet, O.FdbDel, O.NeighSet, O.NeighDel)):
            vxlan.add(op.dev)
    return Query(frozenset(host_links), frozenset(namespaces), frozenset(ipv6), frozenset(kinds),
                 frozenset(sysctls), frozenset(files), frozenset(tables), frozenset(dns), frozenset(uts),
                 iptables=frozenset(rules), firewalld=frozenset(zones), vxlan_entries=frozenset(vxlan))


# --- reading the kernel ----------------------------------------------------------------------


def read(q: Query) -> Observed:
    """Look at everything `q` names. Needs root for the namespaces' insides; a namespace that
    cannot be entered reads as absent."""
    from compose_net.executor import namespaces as netns

    host = _host_facts(q)
    home = netns.home_fd()
    try:
        inside: dict[str, Optional[NamespaceFacts]] = {}
        for name in sorted(q.namespaces):
            keys = {key for ns, key in q.sysctls if ns == name}
            kinds = tuple(sorted(kind for ns, kind in q.kinds if ns == name))
            inside[name] = _inside(name, home, keys, name in q.ipv6, kinds)
    finally:
        os.close(home)
    stale = frozenset(name for name, facts in inside.items() if facts is None and os.path.lexists(netns.path(name)))
    return Observed(host=host, namespaces=inside, files={path: _read_file(path) for path in q.files},
                    tables={t: _table_shape(*t) for t in q.tables}, dns={p: _dns_facts(p) for p in q.dns},
                    stale_netns=stale, uts={name: _uts_facts(name) for name in q.uts},
                    iptables={r: _iptables_present(*r) for r in sorted(q.iptables)},
                    firewalld=_firewalld_zones(q.firewalld), vxlan_entries=_vxlan_entries(q.vxlan_entries))


def _vxlan_entries(devices: frozenset[str]) -> dict[str, frozenset[tuple]]:
    from compose_net.executor import netlink

    found = {name: _read_sys(f"/sys/class/net/{name}/ifindex") for name in devices}
    indexes = {name: int(text) for name, text in found.items() if text}  # absent: no entries either
    return netlink.read_vxlan_entries(indexes) if indexes else {}


def _iptables_present(family: str, table: str, chain: str, rule: tuple) -> bool:
    from compose_net.errors import RuntimeFailure
    from compose_net.executor import iptables

    try:
        return iptables.present(family, table, chain, rule)
    except RuntimeFailure:  # no iptables here: the rule cannot be there either
        return False


def _firewalld_zones(wanted: frozenset[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    from compose_net.executor import firewalld

    if not wanted:
        return {}
    if not firewalld.running():
        return {key: False for key in wanted}
    return {key: firewalld.has_interface(*key) for key in sorted(wanted)}


def _host_facts(q: Query) -> NamespaceFacts:
    """The host's side: its links of interest from sysfs (the host's sysfs is mounted, so no
    netlink message needs decoding per link), their addresses and the host's routes through
    netlink, and its sysctls."""
    from compose_net.executor import netlink

    links = {name: facts for name in sorted(q.host_links) if (facts := _sysfs_link(name)) is not None}
    addresses, routes = netlink.read_addresses_and_routes(None in q.ipv6, routes=False)
    by_name = {name: dataclasses.replace(facts, addresses=frozenset(addresses.get(name, ())))
               for name, facts in links.items()}
    return NamespaceFacts(links=by_name, routes=frozenset(routes),
                          sysctls={key: _read_sysctl(key) for ns, key in q.sysctls if ns is None})


def _sysfs_link(name: str) -> Optional[LinkFacts]:
    base = f"/sys/class/net/{name}"
    if "/" in name or not os.path.isdir(base):
        return None
    flags = _read_sys(f"{base}/flags")
    master = os.path.basename(os.readlink(f"{base}/master")) if os.path.islink(f"{base}/master") else None
    hairpin = _read_sys(f"{base}/brport/hairpin_mode")
    mtu, group = _read_sys(f"{base}/mtu"), _read_sys(f"{base}/netdev_group")
    return LinkFacts(name=name, kind=_sysfs_kind(base), up=bool(int(flags, 16) & 1) if flags else False,
                     group=int(group) if group and group.isdigit() else 0, master=master,
                     mtu=int(mtu) if mtu and mtu.isdigit() else None, mac=_read_sys(f"{base}/address"),
                     hairpin=None if hairpin is None else hairpin == "1")


def _sysfs_kind(base: str) -> Optional[str]:
    if os.path.isdir(f"{base}/bridge"):
        return "bridge"
    for line in (_read_sys(f"{base}/uevent") or "").splitlines():
        if line.startswith("DEVTYPE="):
            return line[len("DEVTYPE="):]
    ifindex, iflink = _read_sys(f"{base}/ifindex"), _read_sys(f"{base}/iflink")
    return "veth" if ifindex and iflink and ifindex != iflink else None


def _read_sys(path: str) -> Optional[str]:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _inside(name: str, home: int, sysctls: set[str], ipv6: bool, kinds: tuple[str, ...]) -> Optional[NamespaceFacts]:
    from compose_net.executor import namespaces as netns

    fd = netns.open_registered(name)
    if fd is None:
        return None
    try:
        facts = netns.run_inside(fd, home, lambda: _namespace_facts(sysctls, ipv6, kinds))
        return dataclasses.replace(facts, inode=os.fstat(fd).st_ino)
    except OSError:
        return None
    finally:
        os.close(fd)


def _namespace_facts(sysctls: set[str], ipv6: bool, kinds: tuple[str, ...]) -> NamespaceFacts:
    """The links (of `kinds`), addresses, routes and `sysctls` of the namespace the calling
    thread is in."""
    from compose_net.executor import netlink

    links, routes = netlink.read_namespace(ipv6, kinds)
    return NamespaceFacts(links={link.name: link for link in links}, routes=frozenset(routes),
                          sysctls={key: _read_sysctl(key) for key in sysctls})


def _uts_facts(name: str) -> Optional[UtsFacts]:
    from compose_net.executor import namespaces as netns

    found = netns.read_uts(name)
    return UtsFacts(*found) if found is not None else None


def _read_sysctl(key: str) -> Optional[str]:
    # /proc/sys/net resolves to the namespace of the thread that opens it
    return _read_sys("/proc/sys/" + (key if "/" in key else key.replace(".", "/")))


def _read_file(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except OSError:
        return None


def _table_shape(family: str, table: str) -> Optional[str]:
    from compose_net import firewall
    from compose_net.executor import nft

    listing = nft.list_table_if_present(family, table)
    return None if listing is None else firewall.shape(listing)


def _dns_facts(project: str) -> DnsFacts:
    from compose_net.dns import control

    return control.observe(project)
