"""The project's firewall: a pure function from the recorded state (`summary.Summary`) to the nftables JSON
document of the project's one `inet` table, every rule with its words (a group and a line a
reviewer reads in `up --dry-run`, repeated in the rule's nft comment).

The document re-creates the table whole in one transaction (`add table`, `delete table`, `add
table`, then chains and rules), so applying it twice, or after an edit, replaces the old rules
atomically and `down` removes everything with one `delete table`.

Chains (every base chain has policy accept: other software's traffic is never dropped here; only
packets that match this project's bridges are, and 127/8 arriving from outside the host):

    forward      filter/forward    internal networks stay inside their bridge; DNATed flows
                                   pass; nothing else goes from a project bridge into any
                                   other compose-net bridge (`cn-*`, `cn0`), replies and related
                                   packets included; other replies pass; `enable_icc: false`
                                   drops bridge-to-same-bridge traffic; no new connection enters
                                   a project bridge from anywhere but itself (Docker's isolation
                                   and FORWARD policy drop, limited to our bridges).
    prerouting   nat/dstnat        `fib daddr type local` → ports (published ports from outside
                                   and from containers, including hairpin)
    output       nat/dstnat        the same for connections made by the host itself, including
                                   to 127.0.0.1 (needs `route_localnet=1` on the target bridge)
    ports        regular chain     one DNAT rule per `ports:` entry; a range is one rule
    postrouting  nat/srcnat        masquerade `saddr SUBNET oifname != BRIDGE`; loopback sources
                                   leaving a bridge; hairpin (DNATed flows from a bridge's
                                   own subnet back into it, so replies return through the host)
    localhost    filter/prerouting the localhost guard (raw priority, before conntrack and NAT):
                                   nothing from or to 127.0.0.0/8 enters through any interface
                                   but `lo`

Isolation and icc match interfaces, not addresses, so they hold for IPv4 and IPv6 alike. The icc
rule sees bridged (same-bridge) frames only when br_netfilter passes them to the inet hooks
(`net.bridge.bridge-nf-call-iptables=1`, as Docker sets it); without br_netfilter the rule is
inert and the planner must isolate the bridge ports instead (bridge port flag `isolated`).
Bridges named freely with `com.docker.network.bridge.name` are covered by the inbound rule of
their own table.

The localhost guard closes what `route_localnet=1` (set on bridges that publish on loopback) opens
(CVE-2020-8558's class): a root process in a container that routes 127.0.0.1 through its gateway
would reach services listening only on the host's loopback, and any neighbour sending to
127.0.0.1 would be DNATed to a port published on 127.0.0.1 only. At raw priority a packet is seen
as it arrived, before the NAT of the host's own connections is undone: the replies of the host's
loopback-published connections are addressed to the bridge's gateway there, not to 127.0.0.1, so
no flow the host's NAT made is dropped. It matches every interface but `lo`, not only this
project's bridges: the shared `cn0` may keep another project's `route_localnet`, and 127/8 never
legitimately arrives from outside the host (RFC 1122 3.2.1.3).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from . import policy
from .errors import PlanError
from .summary import (ISOLATED, NAT, NAT_UNPROTECTED, ROUTED, ContainerState, InterfaceState, NetworkState, PortState,
                      Summary)

FAMILY = "inet"

# Every compose-net bridge (naming.py: `cn-<hash>`, the legacy default bridge `cn0`), and not
# lookalikes such as CNI's `cni0`.
BRIDGE_PATTERNS = ("cn-*", "cn0")

_L4 = ("tcp", "udp", "sctp")

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


# The groups a rule's words belong to, in the order a reviewer reads them.
PORTS = "published ports"
ISOLATION = "isolation"
INTERNAL = "internal"
ICC = "icc"
MASQUERADE = "masquerade"
HAIRPIN = "hairpin"
GUARD = "localhost guard"
REPLIES = "replies"
POLICY = "policy"
GROUPS = (PORTS, ISOLATION, INTERNAL, ICC, POLICY, MASQUERADE, HAIRPIN, GUARD, REPLIES)

# nft's own parser takes comments of at most 128 bytes (NFTNL_UDATA_COMMENT_MAXLEN): longer ones
# pass the JSON path but make `nft list table` output that `nft -f` refuses to load again.
COMMENT_MAX = 128


@dataclass(frozen=True)
class Table:
    """The project's table: the nftables document and every rule in words, as (group, words)
    pairs sorted by group (GROUPS). Each rule's `comment` is "GROUP: WORDS", cut to 128 bytes."""

    document: dict[str, Any]
    rules: tuple[tuple[str, str], ...]


def ruleset(summary: Summary) -> dict[str, Any]:
    """The nftables JSON document (`{"nftables": [...]}`) that (re)creates this project's table."""
    return table(summary).document


def table(summary: Summary) -> Table:
    """The document that (re)creates this project's table, with its rules in words."""
    builder = _Builder(summary.table)
    networks = [n for n in summary.networks if n.bridge]
    by_name = {n.name: n for n in networks}
    targets = list(_port_targets(summary, by_name))
    _localhost_guard(builder)
    _isolated_input(builder, networks)
    _forward(builder, networks, targets, policy.resolve(summary), summary.foreign_bridges)
    _nat(builder, networks, [t for t in targets if not t.routed])
    return Table(builder.document(), builder.words())


def _nfproto(version: int) -> dict[str, Any]:
    return _match({"meta": {"key": "nfproto"}}, "ipv4" if version == 4 else "ipv6")


def _families(net: NetworkState) -> list[int]:
    return sorted({s.subnet.version for s in net.subnets})


def _isolated_input(builder: "_Builder", networks: list[NetworkState]) -> None:
    """Gateway mode `isolated`: the bridge has no address, and nothing from it reaches the host
    (a root container could still route a host address onto its link, and the host would answer
    ARP for it; the input hook holds whatever the container does)."""
    isolated = [(net, v) for net in networks for v in (4, 6) if net.gateway_mode(v) == ISOLATED]
    if not isolated:
        return
    builder.chain("input", "filter", "input", 0)
    for net, version in isolated:
        builder.rule("input", _iif(net.bridge), _nfproto(version), _DROP, group=ISOLATION,
                     words=f"{net.name} gateway mode isolated (IPv{version}): nothing from {net.bridge} "
                           "reaches the host")


def _localhost_guard(builder: "_Builder") -> None:
    builder.chain("localhost", "filter", "prerouting", -300)
    for field, words in (("daddr", "to"), ("saddr", "from")):
        builder.rule("localhost", _iif("lo", "!="), _match({"payload": {"protocol": "ip", "field": field}},
                                                           _addr_right(_LOOPBACK)), _DROP,
                     group=GUARD, words=f"{words} {_LOOPBACK} through any interface but lo: dropped")


def _foreign(builder: "_Builder", networks: list[NetworkState], foreign: tuple[str, ...]) -> None:
    """Other tools' container bridges (Docker's, libvirt's, Podman's): no new connection from a
    project bridge into them but to a published port, as their own FORWARD rules would have it.
    The accept rules compose-net adds to their chains (`hostfw`) come first in those chains,
    so this is what keeps their containers out of our containers' reach."""
    if not foreign:
        return
    names = sorted(foreign)
    right: Any = names[0] if len(names) == 1 else {"set": names}
    for net in networks:
        if net.internal:
            continue  # no way out at all
        builder.rule("forward", _iif(net.bridge), _match({"meta": {"key": "oifname"}}, right),
                     _match({"ct": {"key": "state"}}, "new", "in"), _DROP, group=ISOLATION,
                     words=f"{net.name} -> other tools' container bridges ({', '.join(names)}), "
                     "new connections: dropped")


def _forward(builder: "_Builder", networks: list[NetworkState], targets: list["_PortTarget"],
             policies: policy.Policies, foreign: tuple[str, ...] = ()) -> None:
    builder.chain("forward", "filter", "forward", 0)
    # First: policy only drops (its chains `return` what they allow), so the rules below still
    # hold for what it lets through.
    _policy(builder, policies)
    for net in networks:
        br, name = net.bridge, net.name
        if net.internal:
            builder.rule("forward", _iif(br), _oif(br, "!="), _DROP,
                         group=INTERNAL, words=f"{name} internal: no way out of {br}")
            builder.rule("forward", _oif(br), _iif(br, "!="), _DROP,
                         group=INTERNAL, words=f"{name} internal: no way into {br}")
    # A published port is open to every container, as it is behind Docker's userland proxy
    # (even to its neighbours on an `enable_icc: false` bridge, or on another network).
    builder.rule("forward", _CT_DNAT, _ACCEPT, group=PORTS,
                 words="to a published port: forwarded from anywhere, every container included")
    # Gateway mode routed: a published port is open at the container's own address, to other
    # hosts and other networks alike (Docker: "containers in other networks can use direct
    # routing"); trusted host interfaces reach published ports that way on nat networks too.
    trusted = {n.name: n.trusted_interfaces for n in networks}
    for target in targets:
        if target.routed:
            builder.rule("forward", _oif(target.bridge), *target.direct_match(), _ACCEPT, group=PORTS,
                         words=f"{target.direct_words()} (gateway mode routed): open to direct routing from anywhere")
            continue
        for name in trusted.get(target.network, ()):
            builder.rule("forward", _iif(name), _oif(target.bridge), *target.direct_match(), _ACCEPT, group=PORTS,
                         words=f"{target.direct_words()}: open directly from trusted host interface {name}")
    # Docker's isolation: nothing from one compose-net bridge into another, whatever conntrack
    # says (before the established/related accept, as Docker's DOCKER-ISOLATION chains come
    # first): otherwise a container could forge ICMP errors, which conntrack calls "related",
    # into the masqueraded flows of another network's containers.
    for net in networks:
        br, name = net.bridge, net.name
        for pattern in BRIDGE_PATTERNS:
            if pattern == br:
                continue
            neighbours = [n.name for n in networks if n is not net and fnmatch.fnmatchcase(n.bridge, pattern)]
            into = "the legacy bridge" if pattern == "cn0" else "any other compose-net network"
            into = ", ".join(neighbours + [f"{into} ({pattern})"])
            builder.rule("forward", _iif(br), _oif(br, "!="), _oif(pattern), _DROP,
                         group=ISOLATION, words=f"{name} -> {into}: dropped")
    _foreign(builder, networks, foreign)
    builder.rule("forward", _match({"ct": {"key": "state"}}, ["established", "related"], "in"), _ACCEPT,
                 group=REPLIES, words="replies and related packets of allowed connections: accepted")
    for net in networks:
        if not net.icc:
            br = net.bridge
            builder.rule("forward", _iif(br), _oif(br), _DROP,
                         group=ICC, words=f"{net.name} container to container on {br}: dropped")
    for net in networks:
        for version in _families(net):
            if net.gateway_mode(version) == NAT_UNPROTECTED and not net.internal:
                # after isolation: other networks still reach only published ports via host addresses
                builder.rule("forward", _oif(net.bridge), _iif(net.bridge, "!="), _nfproto(version), _ACCEPT,
                             group=PORTS, words=f"{net.name} gateway mode nat-unprotected (IPv{version}): every "
                                                f"container port open to direct routing from outside")
    for net in networks:
        br, name = net.bridge, net.name
        # No new connection into a bridge from elsewhere (other bridges, other hosts routing to
        # container addresses): only replies and published ports, as Docker's FORWARD policy
        # drop leaves it. The host itself reaches containers (output, not forward).
        builder.rule("forward", _oif(br), _iif(br, "!="), _DROP,
                     group=ISOLATION, words=f"anywhere else -> {name} ({br}), new connections: dropped")


def _nat(builder: "_Builder", networks: list[NetworkState], targets: list["_PortTarget"]) -> None:
    postrouting: list[tuple[list[dict[str, Any]], str, str]] = []
    for net in networks:
        if net.internal or not net.masquerade:
            continue
        for sub in net.subnets:
            subnet = sub.subnet
            if net.gateway_mode(subnet.version) not in (NAT, NAT_UNPROTECTED):
                continue  # routed: containers' own addresses go out; isolated is internal anyway
            postrouting.append(([_saddr(subnet), _oif(net.bridge, "!="), _MASQUERADE], MASQUERADE,
                                f"{subnet} ({net.name}) out of any interface but {net.bridge}: masqueraded"))
    if targets:
        builder.chain("ports")
        for chain, hook, words in (
                ("prerouting", "prerouting", "from outside or from a container"),
                ("output", "output", "from the host itself, 127.0.0.1 included")):
            builder.chain(chain, "nat", hook, -100)
            builder.rule(chain, _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
                         {"jump": {"target": "ports"}},
                         group=PORTS, words=f"to any host address {words}: the ports above apply")
        loop_bridges: list[tuple[str, str]] = []  # (bridge, network name)
        hairpin: list[tuple[str, int]] = []
        for target in targets:
            builder.rule("ports", *target.dnat_rule(), group=PORTS, words=target.words(), first=True)
            if target.address.version == 4 and (target.bridge, target.network) not in loop_bridges:
                loop_bridges.append((target.bridge, target.network))
            if (target.bridge, target.address.version) not in hairpin:
                hairpin.append((target.bridge, target.address.version))
        for bridge, name in loop_bridges:
            postrouting.append(([_oif(bridge), _saddr(_LOOPBACK), _MASQUERADE], PORTS,
                                f"{_LOOPBACK} into {bridge} ({name}): masqueraded to its gateway"))
        # Hairpin: a container reaching a published port of its own network (itself included)
        # through a host address must see the reply come back through the host, not directly.
        for net in networks:
            for sub in net.subnets:
                subnet = sub.subnet
                if (net.bridge, subnet.version) in hairpin:
                    postrouting.append(([_oif(net.bridge), _saddr(subnet), _CT_DNAT, _MASQUERADE], HAIRPIN,
                                        f"{subnet} back into {net.bridge} ({net.name}) "
                                        f"through a published port: masqueraded"))
    if postrouting:
        builder.chain("postrouting", "nat", "postrouting", 100)
        for exprs, group, words in postrouting:
            builder.rule("postrouting", *exprs, group=group, words=words)


# --- per-service policy ---------------------------------------------------------------------

_RETURN = {"return": None}
_CT_NEW = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}


def _policy(builder: "_Builder", policies: policy.Policies) -> None:
    """Each guarded container gets a chain per hook: forward (other containers, outside) and
    output (ingress: the host's own connections) or input (egress: to the host's addresses).
    A chain returns what a grant names and drops the rest; only new connections go there."""
    if not policies.ingress and not policies.egress:
        return
    hooks = []
    if policies.ingress:
        hooks.append(("policy-output", "output"))
    if policies.egress:
        hooks.append(("policy-input", "input"))
    for name, hook in hooks:
        builder.chain(name, "filter", hook, 0)
    for guard in policies.ingress.values():
        _guard_chains(builder, guard, policies.bridges, "policy-output")
    for guard in policies.egress.values():
        _guard_chains(builder, guard, policies.bridges, "policy-input")


def _guard_chains(builder: "_Builder", guard: policy.Guard, bridges: tuple[str, ...], host_hook: str) -> None:
    ingress = guard.direction == policy.INGRESS
    chain, host_chain = f"{guard.direction}-{guard.container}", f"{guard.direction}-{guard.container}-host"
    builder.chain(chain)
    builder.chain(host_chain)
    who, their = (("to", "daddr"), ("from", "saddr"))[not ingress]
    for addr in guard.addresses:
        on = _iif(addr.bridge) if not ingress else None
        for hook, target, words in (("forward", chain, "containers and outside"),
                                    (host_hook, host_chain, "the host itself")):
            exprs = [_CT_NEW] + ([on] if on else []) + [_addr_match(their, addr.ip)]
            builder.rule(hook, *exprs, {"jump": {"target": target}}, group=POLICY,
                         words=f"new connections {who} {guard.container} {addr.ip} ({addr.network}) "
                               f"{'from' if ingress else 'to'} {words}: its {guard.direction} rules")
    peer_side, peer_if = ("saddr", _iif) if ingress else ("daddr", _oif)
    for grant in guard.grants:
        says = f"{guard.container} {guard.direction}[{grant.index}]"
        for ports, text in _port_matches(grant):
            for addr in grant.addresses:
                builder.rule(chain, peer_if(addr.bridge), _addr_match(peer_side, addr.ip), *ports, _RETURN,
                             group=POLICY, words=f"{says}: {addr.ip} on {addr.bridge}, {text}: allowed")
            if grant.outside and bridges:
                builder.rule(chain, peer_if(bridges[0] if len(bridges) == 1 else {"set": list(bridges)}, "!="),
                             *ports, _RETURN, group=POLICY, words=f"{says}: outside, {text}: allowed")
            if grant.host:
                builder.rule(host_chain, *ports, _RETURN, group=POLICY, words=f"{says}: the host, {text}: allowed")
    for target, whom in ((chain, "containers and outside"), (host_chain, "the host")):
        builder.rule(target, _DROP, group=POLICY, words=f"{guard.container}: any other new connection "
                                                        f"{'from' if ingress else 'to'} {whom}: dropped")


def _port_matches(grant: policy.Grant) -> list[tuple[list[dict[str, Any]], str]]:
    """The port matches of a grant with their words, one per protocol; every port: one empty match."""
    if not grant.ports:
        return [([], "every port")]
    out = []
    for proto in dict.fromkeys(p.protocol for p in grant.ports):
        mine = sorted((p for p in grant.ports if p.protocol == proto), key=lambda p: p.first)
        values: list[Any] = [p.first if p.first == p.last else {"range": [p.first, p.last]} for p in mine]
        right = values[0] if len(values) == 1 else {"set": values}
        out.append(([_match({"payload": {"protocol": proto, "field": "dport"}}, right)],
                    ", ".join(policy.port_text(p) for p in mine)))
    return out


def _addr_match(field: str, ip) -> dict[str, Any]:
    return _match({"payload": {"protocol": "ip" if ip.version == 4 else "ip6", "field": field}}, str(ip))


# --- published ports --------------------------------------------------------------------------


class _PortTarget:
    """One `ports:` entry resolved to one address family: the DNAT rule it becomes."""

    def __init__(self, container: str, port: PortState, address, bridge: str, network: str, host_ip,
                 routed: bool = False):
        self.container = container
        self.port = port
        self.address = address
        self.bridge = bridge
        self.network = network  # the network's name
        self.host_ip = host_ip
        self.routed = routed  # gateway mode routed: open at the container's address, no DNAT

    def direct_match(self) -> list[dict[str, Any]]:
        """Packets to the container's own address and target port(s)."""
        _, _, target, target_end = self._ranges()
        dport = {"payload": {"protocol": self.port.protocol, "field": "dport"}}
        return [_daddr(self.address),
                _match(dport, target if target == target_end else {"range": [target, target_end]})]

    def direct_words(self) -> str:
        _, _, target, target_end = self._ranges()
        address = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.container} {address}:{_span(target, target_end)}/{self.port.protocol}"

    def _ranges(self) -> tuple[int, int, int, int]:
        port = self.port
        return (port.published, port.published_end or port.published, port.target, port.target_end or port.target)

    def words(self) -> str:
        """`0.0.0.0:8080 -> shop-web-1 172.18.0.2:80/tcp`, a binding as `ps` shows one."""
        published, published_end, target, target_end = self._ranges()
        v6 = self.address.version == 6
        host = str(self.host_ip) if self.host_ip is not None else ("::" if v6 else "0.0.0.0")
        host, address = (f"[{host}]", f"[{self.address}]") if v6 else (host, str(self.address))
        proto = self.port.protocol
        return (f"{host}:{_span(published, published_end)} -> {self.container} "
                f"{address}:{_span(target, target_end)}/{proto}")

    def dnat_rule(self) -> list[dict[str, Any]]:
        proto = self.port.protocol
        if proto not in _L4:
            raise PlanError(f"published port protocol {proto!r} is not one of {', '.join(_L4)}")
        published, published_end, target, target_end = self._ranges()
        span, target_span = published_end - published, target_end - target
        dport = {"payload": {"protocol": proto, "field": "dport"}}
        family = "ip" if self.address.version == 4 else "ip6"
        exprs: list[dict[str, Any]] = []
        if self.host_ip is not None and not self.host_ip.is_unspecified:
            exprs.append(_daddr(self.host_ip))
        dnat: dict[str, Any] = {"family": family, "addr": str(self.address)}
        if span == 0:
            exprs.append(_match(dport, published))
            dnat["port"] = target
        else:
            exprs.append(_match(dport, {"range": [published, published_end]}))
            if target_span == 0:
                dnat["port"] = target
            elif target_span != span:
                raise PlanError(
                    f"published range {published}-{published_end} and target range "
                    f"{target}-{target_end} differ in size")
            elif published != target:
                # Same-size shifted range: one rule, the port chosen by an anonymous map.
                pairs = [[published + i, target + i] for i in range(span + 1)]
                dnat["port"] = {"map": {"key": dport, "data": {"set": pairs}}}
            # else: same ports on both sides, the DNAT keeps the port.
        exprs.append({"dnat": dnat})
        return exprs


def _span(first: int, last: int) -> str:
    return f"{first}-{last}" if last != first else str(first)


def port_targets(summary: Summary, networks: dict[str, NetworkState]) -> Iterable[_PortTarget]:
    """Every published port resolved to the address it is DNATed to (what `reach` reads)."""
    return _port_targets(summary, networks)


def _port_targets(summary: Summary, networks: dict[str, NetworkState]) -> Iterable[_PortTarget]:
    containers = {c.name: c for c in summary.containers}
    for container in summary.containers:
        if not container.ports or container.netns is None:
            continue  # network_mode host: the ports are the host's own, nothing to translate
        owner = containers.get(container.shares or "", container)
        iface = _published_interface(owner, networks)
        if iface is None:
            continue  # only internal networks (or none): Docker publishes nothing reachable either
        bridge, network = networks[iface.network].bridge, iface.network
        v4 = iface.ipv4.ip if iface.ipv4 else None
        v6 = iface.ipv6.ip if iface.ipv6 else None
        for port in container.ports:
            if port.published is None:
                continue
            host_ip = port.host_ip
            net = networks[network]
            # routed: the host address only says which family the mapping is for (Docker's docs)
            if host_ip is None or host_ip.version == 4:
                if v4 is not None:
                    yield _PortTarget(container.name, port, v4, bridge, network, host_ip,
                                      routed=net.gateway_mode(4) == ROUTED)
            if host_ip is None or host_ip.version == 6:
                if v6 is not None:
                    yield _PortTarget(container.name, port, v6, bridge, network, host_ip,
                                      routed=net.gateway_mode(6) == ROUTED)


def published_interface(summary: Summary, container: ContainerState) -> Optional[InterfaceState]:
    """The interface a container's published ports are DNATed to; None when they lead nowhere
    (host mode, only internal or non-bridge networks)."""
    if container.netns is None:
        return None
    networks = {n.name: n for n in summary.networks if n.bridge}
    if container.shares:
        container = summary.container(container.shares) or container
    return _published_interface(container, networks)


def _published_interface(container: ContainerState, networks: dict[str, NetworkState]) -> Optional[InterfaceState]:
    """The interface published ports lead to: the default-route one if it is on a non-internal
    bridge, else the first such interface."""
    candidates = [
        i for i in container.interfaces
        if i.network in networks and not networks[i.network].internal and (i.ipv4 or i.ipv6)
    ]
    for iface in candidates:
        if iface.default_route:
            return iface
    return candidates[0] if candidates else None


# --- JSON building blocks ---------------------------------------------------------------------

_DROP = {"drop": None}
_ACCEPT = {"accept": None}
_MASQUERADE = {"masquerade": None}
_CT_DNAT = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _iif(name: str, op: str = "==") -> dict[str, Any]:
    return _match({"meta": {"key": "iifname"}}, name, op)


def _oif(name: str, op: str = "==") -> dict[str, Any]:
    return _match({"meta": {"key": "oifname"}}, name, op)


def _addr_right(value) -> Any:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if value.prefixlen == value.max_prefixlen:
            return str(value.network_address)
        return {"prefix": {"addr": str(value.network_address), "len": value.prefixlen}}
    return str(value)


def _saddr(value) -> dict[str, Any]:
    proto = "ip" if value.version == 4 else "ip6"
    return _match({"payload": {"protocol": proto, "field": "saddr"}}, _addr_right(value))


def _daddr(value) -> dict[str, Any]:
    proto = "ip" if value.version == 4 else "ip6"
    return _match({"payload": {"protocol": proto, "field": "daddr"}}, _addr_right(value))


class _Builder:
    def __init__(self, table: str):
        self.table = table
        self.chains: list[dict[str, Any]] = []
        self.rules: list[dict[str, Any]] = []
        self.explained: list[tuple[str, str]] = []

    def chain(self, name: str, type_: Optional[str] = None, hook: Optional[str] = None, prio: int = 0) -> None:
        chain: dict[str, Any] = {"family": FAMILY, "table": self.table, "name": name}
        if hook:
            chain.update({"type": type_, "hook": hook, "prio": prio, "policy": "accept"})
        self.chains.append({"add": {"chain": chain}})

    def rule(self, chain: str, *exprs: dict[str, Any], group: str, words: str, first: bool = False) -> None:
        """A rule with its words; `first` puts them ahead of the rest of their group."""
        self.rules.append({"add": {"rule": {
            "family": FAMILY, "table": self.table, "chain": chain, "expr": list(exprs),
            "comment": comment(group, words)}}})
        self.explained.append((GROUPS.index(group), not first, group, words))

    def words(self) -> tuple[tuple[str, str], ...]:
        return tuple((group, words) for *_, group, words in sorted(self.explained, key=lambda x: x[:2]))

    def document(self) -> dict[str, Any]:
        table = {"table": {"family": FAMILY, "name": self.table}}
        # add + delete + add: one transaction that works whether or not the table exists.
        return {"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"add": table}, {"delete": table}, {"add": table},
            *self.chains, *self.rules,
        ]}


def comment(group: str, words: str) -> str:
    """A rule's nft comment: "GROUP: WORDS" in printable ASCII without quotes or backslashes
    (`nft list` prints comments unescaped), cut to COMMENT_MAX bytes with "..." when longer."""
    text = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "?" for ch in f"{group}: {words}")
    return text if len(text) <= COMMENT_MAX else text[:COMMENT_MAX - 3] + "..."


# --- comparing a table with its ruleset -------------------------------------------------------


def shape(items: Iterable[dict[str, Any]]) -> str:
    """A table as comparable text: its chains (type, hook, priority, policy) and each chain's
    rules in order, expressions and comments as nft says them, handles left out. `items` is a
    ruleset document's `nftables` list (`add` commands) or `nft -j list table`'s (objects):
    both give the same shape for the same table, so `up` can tell whether the kernel's table is
    the one the plan would write."""
    import json

    chains: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[Any]] = {}
    for item in items:
        body = item.get("add", item) if isinstance(item, dict) else {}
        if "chain" in body:
            chain = {k: v for k, v in body["chain"].items() if k not in ("handle", "family", "table")}
            chains[chain["name"]] = chain
        elif "rule" in body:
            rule = body["rule"]
            rules.setdefault(rule["chain"], []).append([rule["expr"], rule.get("comment")])
    return json.dumps({name: [chain, rules.get(name, [])] for name, chain in chains.items()}, sort_keys=True)
