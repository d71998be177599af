"""Per-service policy resolved against the recorded state: the one set of facts both the firewall
(`firewall.py`, which installs it) and the reachability matrix (`reach.py`, which explains and
verifies it) read, so the two cannot disagree.

A service's `ingress` rules (recorded on each of its containers as `ContainerState.ingress`)
become, for each of its containers with an address on a compose-net bridge, a `Guard`: the new
connections to those addresses pass only when a `Grant` names their source (a container of a
named service by its address on the bridge it comes from; `host`: the host's own connections;
`outside`: anything arriving from an interface that is not one of the project's bridges) and,
when the rule has ports, their destination port (after DNAT: a published port's target).
`egress` is the mirror: new connections from the container's addresses pass only to a named
container's address, to the host's own addresses (`host`) or out of an interface that is not one
of the project's bridges (`outside`). Replies are never judged (only `ct state new` is).

Peers are namespaces, not names: a `network_mode: service:X` container is X's namespace, so a
rule naming either names both; a service in `network_mode: host` has no address of its own (its
connections are the host's). Containers on macvlan/ipvlan networks are outside the host's
forward hook: neither guarded nor matched there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

from compose_net.summary import ContainerState, PolicyPortState, PolicyRuleState, Summary

HOST, OUTSIDE = "host", "outside"
INGRESS, EGRESS = "ingress", "egress"
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class Address:
    """A container's address on a compose-net bridge: what a packet from it carries."""

    bridge: str
    network: str
    ip: IPAddress


@dataclass(frozen=True)
class Grant:
    """One rule of a guard, resolved: the peer namespaces (owner container names) it names,
    whether it names the host and outside, their addresses, and its ports (empty: all)."""

    index: int  # the rule's position under ingress/egress
    peers: tuple[str, ...]  # owner container names (namespaces)
    host: bool
    outside: bool
    addresses: tuple[Address, ...]  # the peers' addresses on the project's bridges
    ports: tuple[PolicyPortState, ...]
    rule: PolicyRuleState

    def words(self, direction: str) -> str:
        peers = ", ".join(self.rule.peers)
        ports = ", ".join(port_text(p) for p in self.ports) if self.ports else "every port"
        return f"{direction}[{self.index}]: {'from' if direction == INGRESS else 'to'} {peers}, {ports}"


@dataclass(frozen=True)
class Guard:
    """A container whose service has `ingress` (or `egress`) rules: its addresses and grants."""

    container: str
    service: str
    direction: str
    addresses: tuple[Address, ...]
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class Policies:
    ingress: dict  # owner container name -> Guard
    egress: dict
    bridges: tuple[str, ...]  # the project's bridges: what is not one is `outside`


def port_text(port: PolicyPortState) -> str:
    span = str(port.first) if port.first == port.last else f"{port.first}-{port.last}"
    return f"{span}/{port.protocol}"


def owners(summary: Summary) -> dict[str, str]:
    """container name -> the container whose namespace it is (itself, or X for service:X)."""
    return {c.name: (c.shares or c.name) for c in summary.containers}


def addresses(summary: Summary, container: ContainerState) -> tuple[Address, ...]:
    bridges = {n.name: n.bridge for n in summary.networks if n.bridge}
    out = []
    for iface in container.interfaces:
        bridge = bridges.get(iface.network)
        if bridge is None:
            continue
        for addr in iface.addresses:
            out.append(Address(bridge, iface.network, addr.ip))
    return tuple(out)


def resolve(summary: Summary) -> Policies:
    """Every guard of the project, keyed by container, in the summary's order."""
    by_service: dict[str, list[ContainerState]] = {}
    for c in summary.containers:
        by_service.setdefault(c.service, []).append(c)
    owner_of = owners(summary)
    addrs = {c.name: addresses(summary, c) for c in summary.containers if not c.shares and c.netns}
    guards: dict[str, dict[str, Guard]] = {INGRESS: {}, EGRESS: {}}
    for c in summary.containers:
        if c.shares or c.netns is None or not addrs.get(c.name):
            continue
        for direction, rules in ((INGRESS, c.ingress), (EGRESS, c.egress)):
            if rules is None:
                continue
            grants = tuple(_grant(i, rule, by_service, owner_of, addrs) for i, rule in enumerate(rules))
            guards[direction][c.name] = Guard(c.name, c.service, direction, addrs[c.name], grants)
    # the shared legacy bridge too: a container of ours on it is a container, not outside
    bridges = tuple(dict.fromkeys(n.bridge for n in summary.networks if n.bridge))
    return Policies(guards[INGRESS], guards[EGRESS], bridges)


def _grant(index: int, rule: PolicyRuleState, by_service: dict, owner_of: dict, addrs: dict) -> Grant:
    peers: list[str] = []
    for name in rule.peers:
        if name in (HOST, OUTSIDE):
            continue
        for c in by_service.get(name, ()):
            owner = owner_of.get(c.name, c.name)
            if owner not in peers and addrs.get(owner):
                peers.append(owner)
    found = tuple(a for p in peers for a in addrs[p])
    return Grant(index, tuple(peers), HOST in rule.peers, OUTSIDE in rule.peers, found, rule.ports, rule)

