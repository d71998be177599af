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
- the DNS server: its process, the records it serves (by digest), and in which namespaces it
  holds a socket bound to 127.0.0.11:53 (its own sockets, found through /proc/PID/fd).
"""

from __future__ import annotations

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
    links: Mapping[str, LinkFacts] = field(default_factory=dict)
    routes: frozenset[RouteFacts] = frozenset()
    sysctls: Mapping[str, Optional[str]] = field(default_factory=dict)  # those asked for; None: no such key


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

    def namespace(self, ns: Optional[str]) -> Optional[NamespaceFacts]:
        return self.host if ns is None else self.namespaces.get(ns)

    def link(self, ns: Optional[str], name: str) -> Optional[LinkFacts]:
        facts = self.namespace(ns)
        return facts.links.get(name) if facts is not None else None


@dataclass(frozen=True)
class Query:
    """What to observe: everything the given ops create, change or refer to."""

    namespaces: frozenset[str] = frozenset()
    sysctls: frozenset[tuple[Optional[str], str]] = frozenset()  # (namespace or None, key)
    files: frozenset[str] = frozenset()
    tables: frozenset[tuple[str, str]] = frozenset()
    dns: frozenset[str] = frozenset()


def query(ops: Iterable[O.Op]) -> Query:
    namespaces: set[str] = set()
    sysctls: set[tuple[Optional[str], str]] = set()
    files: set[str] = set()
    tables: set[tuple[str, str]] = set()
    dns: set[str] = set()
    for op in ops:
        ns = getattr(op, "ns", None)
        if ns:
            namespaces.add(ns)
        if isinstance(op, (O.NetnsCreate, O.NetnsDelete)):
            namespaces.add(op.name)
        elif isinstance(op, O.VethCreate):
            namespaces.add(op.peer_ns)
        elif isinstance(op, O.SysctlSet):
            sysctls.add((op.ns, op.key))
        elif isinstance(op, (O.FileWrite, O.FileRemove)):
            files.add(op.path)
        elif isinstance(op, (O.NftApply, O.NftDelete)):
            tables.add((op.family, op.table))
        elif isinstance(op, (O.DnsStart, O.DnsStop)):
            dns.add(op.project)
    return Query(frozenset(namespaces), frozenset(sysctls), frozenset(files), frozenset(tables), frozenset(dns))


# --- reading the kernel ----------------------------------------------------------------------


def read(q: Query) -> Observed:
    """Look at everything `q` names. Needs root for the namespaces' insides; a namespace that
    cannot be entered reads as absent."""
    from compose_net.executor import namespaces as netns

    home = netns.home_fd()
    try:
        host = _namespace_facts({key for ns, key in q.sysctls if ns is None})
        inside: dict[str, Optional[NamespaceFacts]] = {}
        for name in sorted(q.namespaces):
            keys = {key for ns, key in q.sysctls if ns == name}
            inside[name] = _inside(name, home, keys)
    finally:
        os.close(home)
    stale = frozenset(name for name, facts in inside.items() if facts is None and os.path.lexists(netns.path(name)))
    return Observed(host=host, namespaces=inside, files={path: _read_file(path) for path in q.files},
                    tables={t: _table_shape(*t) for t in q.tables}, dns={p: _dns_facts(p) for p in q.dns},
                    stale_netns=stale)


def _inside(name: str, home: int, sysctls: set[str]) -> Optional[NamespaceFacts]:
    from compose_net.executor import namespaces as netns

    fd = netns.open_registered(name)
    if fd is None:
        return None
    try:
        return netns.run_inside(fd, home, lambda: _namespace_facts(sysctls))
    except OSError:
        return None
    finally:
        os.close(fd)


def _namespace_facts(sysctls: set[str]) -> NamespaceFacts:
    """The links, addresses, routes and `sysctls` of the namespace the calling thread is in."""
    from compose_net.executor import netlink

    links, routes = netlink.read_namespace()
    return NamespaceFacts(links={link.name: link for link in links}, routes=frozenset(routes),
                          sysctls={key: _read_sysctl(key) for key in sysctls})


def _read_sysctl(key: str) -> Optional[str]:
    # /proc/sys/net resolves to the namespace of the thread that opens it
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


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
