"""Who reaches whom: the reachability matrix of a project, pure, from its state (`summary.Summary`:
planned before `up`, recorded after it) and the policy facts the firewall installs
(`policy.resolve`), so the matrix says what the table does.

Nodes are the project's containers (a `network_mode: service:X` one is X's namespace; a
`network_mode: host` one is the host and left out), `host` (the machine) and `outside` (another
machine on the host's uplink). For each ordered pair, `through(source, target)` lists every way
a new connection gets through, each a `Way`: its route (`direct`: to the target's own address;
`published`: to a host address, DNATed to the target), the ports (None: every port) and why in
words; `blocked` says why the rest does not. A cell is open when it has a way.

What decides, in the firewall's order (see docs/design.md, "Security"):
- the same namespace: everything (loopback);
- a shared bridge network: every port, unless `enable_icc: false` drops it; a shared
  macvlan/ipvlan network: every port, past the host's filter;
- no shared network: isolation (no new connection into a project bridge from another);
- a published port: open to every container with a route to the host (a non-internal bridge),
  the host and outside, unless published on 127.0.0.1 (the host only); internal networks
  publish nothing;
- the host reaches every container on a bridge directly; every container on a bridge reaches
  the host's addresses (local delivery, not filtered); a container on a non-internal bridge
  reaches outside (masqueraded unless masquerade is off);
- then policy: the target's ingress and the source's egress must both let it through; a
  grant with ports narrows a way to them (a published way to its target ports, after DNAT).

networkx answers the graph question (which containers share a network with a source); a pair
with no shared network and no published port is closed without a look.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Optional

from compose_net import firewall, policy as policies
from compose_net.summary import ContainerState, NetworkState, Summary

HOST, OUTSIDE = policies.HOST, policies.OUTSIDE
DIRECT, PUBLISHED = "direct", "published"
L4 = ("tcp", "udp", "sctp")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

Span = tuple[str, int, int]  # (protocol, first, last)


@dataclass(frozen=True)
class Way:
    """One way a new connection from source gets to target."""

    route: str  # DIRECT or PUBLISHED
    ports: Optional[tuple[Span, ...]]  # None: every port and protocol
    why: str
    address: Optional[str] = None  # where a probe connects (the target's, or the host's for published)
    published: Optional[tuple[Span, ...]] = None  # published ports, by index with `ports` (PUBLISHED only)

    def covers(self, protocol: str, port: int) -> bool:
        return self.ports is None or any(p == protocol and a <= port <= b for p, a, b in self.ports)

    def label(self) -> str:
        if self.ports is None:
            return "all"
        if self.published:
            return ", ".join(f"{_span(h)}->{_span(t)}/{t[0]}" for h, t in zip(self.published, self.ports))
        return ", ".join(f"{_span(s)}/{s[0]}" for s in self.ports)


@dataclass(frozen=True)
class Cell:
    source: str
    target: str
    ways: tuple[Way, ...]
    blocked: tuple[str, ...] = ()  # why what is not in `ways` does not get through

    @property
    def open(self) -> bool:
        return bool(self.ways)

    def label(self) -> str:
        if not self.ways:
            return "-"
        if any(w.ports is None for w in self.ways):
            return "all"
        return ", ".join(w.label() for w in self.ways)


@dataclass
class Matrix:
    """The project's nodes and a way to ask any cell; `cells()` lists the ones worth listing
    (every pair for a small project; for a big one, pairs that share a network or a published
    port, and the host and outside)."""

    summary: Summary
    nodes: tuple[str, ...]
    short: dict = field(default_factory=dict)  # node -> its name without the project prefix
    facts: "Facts" = None  # type: ignore[assignment]

    def cell(self, source: str, target: str) -> Cell:
        return self.facts.cell(source, target)

    def find(self, name: str) -> list[str]:
        """The nodes a name means: host, outside, a container (full or short name), or every
        container of a service. LookupError when none."""
        if name in self.nodes:
            return [name]
        found = [n for n in self.nodes if self.short.get(n) == name]
        found = found or [c.name for c in self.summary.containers if c.service == name and c.name in self.nodes]
        if not found:
            raise LookupError(f"no service or container {name!r} in project {self.summary.project} "
                              f"(or host, outside)")
        return found

    def candidates(self, source: str) -> list[str]:
        return self.facts.candidates(source)

    def cells(self, sources: Optional[Iterable[str]] = None, targets: Optional[Iterable[str]] = None,
              every: bool = False) -> Iterable[Cell]:
        wanted = None if targets is None else set(targets)
        for source in (self.nodes if sources is None else sources):
            pool = self.nodes if every else self.candidates(source)
            for target in pool:
                if target != source and (wanted is None or target in wanted):
                    yield self.cell(source, target)


def matrix(summary: Summary) -> Matrix:
    facts = Facts(summary)
    nodes = tuple(c.name for c in summary.containers if c.netns is not None) + (HOST, OUTSIDE)
    prefix = summary.project + "-"
    short = {n: n[len(prefix):] if n.startswith(prefix) else n for n in nodes}
    return Matrix(summary, nodes, short, facts)


def _span(s: Span) -> str:
    return str(s[1]) if s[1] == s[2] else f"{s[1]}-{s[2]}"


# --- port sets: None is every port --------------------------------------------------------------


def _intersect(a: Optional[tuple[Span, ...]], b: Optional[tuple[Span, ...]]) -> Optional[tuple[Span, ...]]:
    if a is None:
        return b
    if b is None:
        return a
    out = []
    for pa, fa, la in a:
        for pb, fb, lb in b:
            if pa == pb and max(fa, fb) <= min(la, lb):
                out.append((pa, max(fa, fb), min(la, lb)))
    return tuple(out)


def _grant_ports(guard: Optional[policies.Guard], peer: str) -> tuple[Optional[tuple[Span, ...]], list[str]]:
    """What a guard lets `peer` through on (None: all; () nothing) and the grants that say so."""
    if guard is None:
        return None, []
    spans: list[Span] = []
    words = []
    for grant in guard.grants:
        named = grant.host if peer == HOST else grant.outside if peer == OUTSIDE else peer in grant.peers
        if not named:
            continue
        words.append(f"{guard.service} {grant.words(guard.direction)}")
        if not grant.ports:
            return None, words
        spans.extend((p.protocol, p.first, p.last) for p in grant.ports)
    return tuple(spans), words


class Facts:
    """What a cell is decided from, asked once per namespace and cached: its interfaces, its
    networks, the host address it reaches published ports through, the guards (`pol`), the
    published ports by namespace (`published`). `reach_verify` aims its probes with it."""

    def __init__(self, summary: Summary):
        import networkx as nx

        self.summary = summary
        self.pol = policies.resolve(summary)
        self.networks = {n.name: n for n in summary.networks}
        self.containers = {c.name: c for c in summary.containers}
        self.owner = policies.owners(summary)
        self.owner.update({HOST: HOST, OUTSIDE: OUTSIDE})
        self._iface_cache: dict = {}
        self._bridged_cache: dict = {}
        self._net_cache: dict = {}
        self._gw_cache: dict = {}
        self._ip_cache: dict = {}
        # bipartite: a container's namespace -- the networks it is attached to
        g = nx.Graph()
        for c in summary.containers:
            if c.netns is None or c.shares:
                continue
            g.add_node(("c", c.name))
            for iface in c.interfaces:
                g.add_edge(("c", c.name), ("n", iface.network))
        self.g = g
        self.sharers: dict[str, list[str]] = {}
        for c in summary.containers:
            if c.shares and c.netns is not None:
                self.sharers.setdefault(c.shares, []).append(c.name)
        by_name = {n.name: n for n in summary.networks if n.bridge}
        self.published: dict[str, list] = {}
        for target in firewall.port_targets(summary, by_name):
            # gateway mode routed publishes at the container's own address, no DNAT: not modelled here
            if target.address.version == 4 and not getattr(target, "routed", False):
                self.published.setdefault(self.owner.get(target.container, target.container), []).append(target)
        self.publishers = [name for name in self.containers if self.owner.get(name, name) in self.published]

    # -- helpers ---------------------------------------------------------------------------

    def ns(self, node: str) -> str:
        return self.owner.get(node, node)

    def ifaces(self, node: str):
        """(interface, network) of a container's namespace with an IPv4 address (cached)."""
        ns = self.owner.get(node, node)
        found = self._iface_cache.get(ns)
        if found is None:
            c = self.containers[ns]
            found = self._iface_cache[ns] = [(i, self.networks.get(i.network)) for i in c.interfaces
                                             if i.ipv4 is not None]
        return found

    def bridged(self, node: str):
        ns = self.owner.get(node, node)
        found = self._bridged_cache.get(ns)
        if found is None:
            found = self._bridged_cache[ns] = [(i, n) for i, n in self.ifaces(ns) if n is not None and n.bridge]
        return found

    def by_network(self, node: str) -> dict:
        ns = self.owner.get(node, node)
        found = self._net_cache.get(ns)
        if found is None:
            found = self._net_cache[ns] = {i.network: (i, n) for i, n in self.ifaces(ns)}
        return found

    def _ip(self, iface) -> str:
        text = self._ip_cache.get(id(iface))
        if text is None:
            text = self._ip_cache[id(iface)] = str(iface.ipv4.ip)
        return text

    def _gateway(self, node: str) -> Optional[str]:
        """The host address a container reaches published ports through: the gateway of its
        default route's non-internal bridge (else the first such); None without one."""
        ns = self.owner.get(node, node)
        if ns not in self._gw_cache:
            routed = [(i, n) for i, n in self.bridged(ns) if not n.internal]
            self._gw_cache[ns] = str(next((i.gateway for i, _ in routed if i.default_route), routed[0][0].gateway)) \
                if routed else None
        return self._gw_cache[ns]

    def candidates(self, source: str) -> list[str]:
        """Targets with any chance: co-members of a network, publishers, host, outside."""
        if source in (HOST, OUTSIDE):
            found = [c for c in self.containers if self.containers[c].netns is not None]
            return found + ([OUTSIDE] if source == HOST else [HOST])
        ns = self.ns(source)
        found: dict[str, None] = {}
        for net in self.g.neighbors(("c", ns)) if self.g.has_node(("c", ns)) else ():
            for member in self.g.neighbors(net):
                found[member[1]] = None
                for sharer in self.sharers.get(member[1], ()):
                    found[sharer] = None
        for sharer in self.sharers.get(ns, ()):
            found[sharer] = None
        found[ns] = None
        for name in self.publishers:
            found[name] = None
        return [n for n in found if n != source] + [HOST, OUTSIDE]

    # -- the cell ----------------------------------------------------------------------------

    def cell(self, source: str, target: str) -> Cell:
        if source in (HOST, OUTSIDE) and target in (HOST, OUTSIDE):
            return Cell(source, target, (), ("between the host and outside: not the project's to decide",))
        if target == HOST:
            ways, blocked = self._to_host(source)
        elif target == OUTSIDE:
            ways, blocked = self._to_outside(source)
        else:
            ways, blocked = self._to_container(source, target)
        return Cell(source, target, tuple(ways), tuple(dict.fromkeys(blocked)))

    def _policy(self, source: str, target: str, base: Optional[tuple[Span, ...]]):
        """base narrowed by the target's ingress and the source's egress: (ports, words, blocked)."""
        src, dst = self.ns(source), self.ns(target)
        ports, words, blocked = base, [], []
        for guard, peer, side in ((self.pol.ingress.get(dst), src, "ingress"),
                                  (self.pol.egress.get(src), dst, "egress")):
            if guard is None:
                continue
            allowed, says = _grant_ports(guard, peer)
            ports = _intersect(ports, allowed)
            if says:
                words.extend(says)
            else:
                blocked.append(f"{guard.service} {side}: no rule names {self._label(peer)}")
        if ports is not None and not ports and not blocked:
            blocked.append("policy: the rules that name it allow none of these ports")
        return ports, words, blocked

    def _label(self, node: str) -> str:
        if node in (HOST, OUTSIDE):
            return node
        return self.containers[node].service

    def _to_container(self, source: str, target: str):
        if self.containers[target].netns is None:
            return [], ["uses the host's network: see host"]
        src, dst = self.ns(source), self.ns(target)
        if source not in (HOST, OUTSIDE) and src == dst:
            return [Way(DIRECT, None, "the same network namespace (loopback)", "127.0.0.1")], []
        ways, blocked = [], []
        direct = self._direct(source, target, blocked)
        if direct is not None:
            base, why, address, filtered = direct
            ports, words, pblocked = self._policy(source, target, base) if filtered else (base, [], [])
            blocked.extend(pblocked)
            if ports is None or ports:
                ways.append(Way(DIRECT, ports, "; ".join([why] + words), address))
        for way in self._published(source, target, blocked):
            ways.append(way)
        return ways, blocked

    def _direct(self, source: str, target: str, blocked: list):
        """(ports, why, address, policy applies) of the direct way, or None (with why in blocked)."""
        dst = self.ns(target)
        target_ifaces = self.ifaces(dst)
        if not target_ifaces:
            blocked.append(f"{self._short(target)} has no address")
            return None
        if source == HOST:
            bridged = self.bridged(dst)
            if not bridged:
                blocked.append("the host does not reach macvlan/ipvlan children of its own links")
                return None
            iface, net = bridged[0]
            return None, f"the host routes to {net.name} ({net.bridge})", self._ip(iface), True
        if source == OUTSIDE:
            blocked.append("outside: no new connection into a project bridge (only published ports)")
            return None
        mine = self.by_network(source)
        for iface, net in target_ifaces:
            if iface.network not in mine or net is None:
                continue
            if net.bridge is None:
                return None, f"shared network {net.name} ({net.driver}: past the host's filter)", \
                    self._ip(iface), False
            if not net.icc:
                blocked.append(f"{net.name}: enable_icc false drops container to container")
                continue
            return None, f"shared network {net.name} ({net.bridge})", self._ip(iface), True
        if not any(i.network in mine for i, _ in target_ifaces):
            blocked.append("isolation: no shared network")
        return None

    def _short(self, node: str) -> str:
        prefix = self.summary.project + "-"
        return node[len(prefix):] if node.startswith(prefix) else node

    def _published(self, source: str, target: str, blocked: list) -> list[Way]:
        targets = self.published.get(self.ns(target), ())
        if not targets:
            return []
        ways = []
        if source not in (HOST, OUTSIDE):
            gateway = self._gateway(source)
            if gateway is None:
                blocked.append("published ports: the source has no route to the host (internal networks only)")
                return []
        for t in targets:
            host_ip = t.host_ip
            loop = host_ip is not None and host_ip.version == 4 and host_ip in _LOOPBACK
            if loop and source != HOST:
                blocked.append(f"{self._words(t)}: published on loopback, the host only")
                continue
            if source == HOST:
                address = str(host_ip) if host_ip is not None and not host_ip.is_unspecified else \
                    str(self.networks[t.network].gateway(4))
            elif source == OUTSIDE:
                address = str(host_ip) if host_ip is not None and not host_ip.is_unspecified else "HOST"
            else:
                address = str(host_ip) if host_ip is not None and not host_ip.is_unspecified else gateway
            p = t.port
            span = (p.protocol, p.target, p.target_end or p.target)
            pub = (p.protocol, p.published, p.published_end or p.published)
            ports, words, pblocked = self._policy(source, target, (span,))
            blocked.extend(pblocked)
            if not ports:
                continue
            # a narrowed target range keeps its published ports in step
            pubs = tuple((q, pub[1] + (a - span[1]), pub[1] + (b - span[1])) if pub[2] != pub[1] else pub
                         for q, a, b in ports)
            ways.append(Way(PUBLISHED, ports, "; ".join([self._words(t)] + words), address, pubs))
        return ways

    def _words(self, target) -> str:
        text = self._ip_cache.get(id(target))
        if text is None:
            text = self._ip_cache[id(target)] = f"published port {target.words()}"
        return text

    def _to_host(self, source: str):
        if source == OUTSIDE:
            return [], ["not the project's to decide"]
        bridged = self.bridged(source)
        if not bridged:
            return [], ["no bridge network: no way to the host's addresses"]
        iface, net = bridged[0]
        ports, words, blocked = self._policy(source, HOST, None)
        if ports is not None and not ports:
            return [], blocked
        why = f"the host's own addresses (local delivery, not filtered): {iface.gateway} on {net.bridge}"
        return [Way(DIRECT, ports, "; ".join([why] + words), str(iface.gateway))], blocked

    def _to_outside(self, source: str):
        if source == HOST:
            return [], ["not the project's to decide"]
        routed = [(i, n) for i, n in self.bridged(source) if not n.internal]
        if not routed:
            return [], ["internal networks only: no way out"]
        iface, net = next(((i, n) for i, n in routed if i.default_route), routed[0])
        ports, words, blocked = self._policy(source, OUTSIDE, None)
        if ports is not None and not ports:
            return [], blocked
        how = "masqueraded" if net.masquerade else "routed without masquerade"
        why = f"out of {net.bridge} ({net.name}), {how}"
        return [Way(DIRECT, ports, "; ".join([why] + words), None)], blocked


# --- output (text for cli.py to print) ---------------------------------------------------------

GRID_MAX = 16  # nodes up to which the text form is a grid


def render_text(m: Matrix, sources: Optional[list[str]] = None, targets: Optional[list[str]] = None) -> str:
    """A grid (rows: from, columns: to) for a small project, then every listed cell in words."""
    lines: list[str] = []
    whole = sources is None and targets is None
    if whole and len(m.nodes) <= GRID_MAX:
        lines += _grid(m)
        lines.append("")
    every = len(m.nodes) <= GRID_MAX or targets is not None
    for cell in m.cells(sources, targets, every=every):
        head = f"{m.short[cell.source]} -> {m.short[cell.target]}: {cell.label()}"
        lines.append(head)
        for way in cell.ways:
            lines.append(f"    {way.label()} ({way.route}): {way.why}")
        if cell.blocked and (not cell.ways or targets is not None):
            for why in cell.blocked:
                lines.append(f"    closed: {why}")
    if not every:
        lines.append("(pairs not listed share no network and no published port: closed by isolation)")
    return "\n".join(lines) + "\n"


def _grid(m: Matrix) -> list[str]:
    names = [m.short[n] for n in m.nodes]
    rows = [["from \\ to"] + names]
    for source in m.nodes:
        row = [m.short[source]]
        for target in m.nodes:
            row.append("." if target == source else m.cell(source, target).label())
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def to_json(m: Matrix, sources: Optional[list[str]] = None, targets: Optional[list[str]] = None) -> dict:
    every = len(m.nodes) <= GRID_MAX or targets is not None
    cells = []
    for cell in m.cells(sources, targets, every=every):
        cells.append({
            "from": cell.source, "to": cell.target, "open": cell.open,
            "ways": [{"route": w.route, "ports": "all" if w.ports is None else [f"{_span(s)}/{s[0]}" for s in w.ports],
                      "published": [f"{_span(s)}/{s[0]}" for s in w.published] if w.published else None,
                      "why": w.why} for w in cell.ways],
            "closed": list(cell.blocked)})
    return {"project": m.summary.project, "nodes": list(m.nodes), "complete": every, "cells": cells}


def render_graph(m: Matrix, fmt: str) -> str:
    """The open cells as a directed graph: `dot` (Graphviz) or `mermaid`, edges labelled with ports."""
    ids = {n: f"n{i}" for i, n in enumerate(m.nodes)}
    edges = [(c.source, c.target, c.label()) for c in m.cells(every=len(m.nodes) <= GRID_MAX) if c.open]
    if fmt == "dot":
        out = [f'digraph "{m.summary.project}" {{', "  rankdir=LR;"]
        for n in m.nodes:
            shape = "box" if n in (HOST, OUTSIDE) else "ellipse"
            out.append(f'  {ids[n]} [label="{m.short[n]}", shape={shape}];')
        for a, b, label in edges:
            out.append(f'  {ids[a]} -> {ids[b]} [label="{label}"];')
        out.append("}")
    else:
        out = ["flowchart LR"]
        for n in m.nodes:
            out.append(f'  {ids[n]}["{m.short[n]}"]' if n not in (HOST, OUTSIDE) else f'  {ids[n]}(("{n}"))')
        for a, b, label in edges:
            out.append(f'  {ids[a]} -->|"{label}"| {ids[b]}')
    return "\n".join(out) + "\n"
