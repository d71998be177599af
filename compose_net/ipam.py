"""Subnet and address choice: pure, deterministic, and every choice carries its reason.

Subnets: the user's, else the first default pool prefix that overlaps nothing known (host routes
and addresses, nameservers, other compose-net projects, and every subnet declared anywhere in this
project, so the result does not depend on declaration order). Docker's pools: 172.17.0.0/16 is the
legacy default bridge only; then 172.18.0.0/16 … 172.31.0.0/16; then 192.168.0.0/16 in /20s.
Docker's allocator is a cursor kept in dockerd's memory; ours is lowest-free over the host facts,
which gives the same answers on a fresh host and stays stable across runs.

Addresses: gateway = first host address unless given; containers from the next one up in a
stable order (the caller passes members in service declaration order, replicas by index), skipping
the gateway, every static address on the network and `aux_addresses`, inside `ip_range` when
given (whose network address may be handed out, as Docker does).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Optional, Sequence, Union

from compose_net import naming
from compose_net.errors import ConfigError, PlanError, Where
from compose_net.model import Network, Project
from compose_net.probe import HostFacts

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

LEGACY_SUBNET = ipaddress.IPv4Network("172.17.0.0/16")
LEGACY_GATEWAY = ipaddress.IPv4Address("172.17.0.1")
BIP_VARIABLE = "COMPOSE_NET_BIP"  # the legacy bridge's gateway/prefix, as dockerd's `bip`
EPHEMERAL_FIRST = 32768
EPHEMERAL_LAST = 60999  # Linux's default ip_local_port_range



def default_pools() -> list[ipaddress.IPv4Network]:
    pools = [ipaddress.IPv4Network(f"172.{n}.0.0/16") for n in range(18, 32)]
    pools += list(ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return pools


@dataclass(frozen=True)
class Subnet:
    """One subnet of a network as planned."""

    subnet: IPNetwork
    gateway: Optional[IPAddress]
    ip_range: Optional[IPNetwork] = None
    aux: tuple[IPAddress, ...] = ()
    auto: bool = False  # chosen by IPAM rather than given by the user
    keypath: str = ""  # the ipam.config entry it came from ("" when chosen)
    note: str = ""


@dataclass(frozen=True)
class Taken:
    prefix: IPNetwork
    why: str


def _where(project: Project, keypath: str) -> tuple[str, int]:
    try:
        return project.locate(keypath)
    except Exception:  # a locator must never hide the real error
        return ("compose.yml", 0)


def plan_where(project: Project, keypath: str) -> Where:
    """Where a PlanError points: the key that cannot be planned on this host."""
    file, line = _where(project, keypath)
    return Where(file, line, keypath)


def config_error(project: Project, keypath: str, message: str) -> ConfigError:
    file, line = _where(project, keypath)
    return ConfigError(file, line, keypath, message)


def taken_prefixes(project: Project, facts: HostFacts, own_devs: Iterable[str] = (),
                   legacy: Optional[Subnet] = None) -> list[Taken]:
    """Everything a chosen subnet must not overlap. Routes through this project's own bridges
    are left out, so planning a project that is already up finds its own subnets again.
    172.17.0.0/16 stays reserved for the legacy bridge (as Docker keeps it for docker0), and so
    does the legacy bridge's subnet when it had to go elsewhere."""
    own = set(own_devs)
    out: list[Taken] = [Taken(LEGACY_SUBNET, "the legacy default bridge (network_mode: bridge)")]
    if legacy is not None and legacy.subnet != LEGACY_SUBNET:
        out.append(Taken(legacy.subnet, f"the legacy default bridge {naming.LEGACY_BRIDGE}"))
    for r in facts.routes:
        if r.dev not in own and r.dst.prefixlen:  # a default route overlaps everything: not a clash
            out.append(Taken(r.dst, f"host route via {r.dev}" if r.dev else "host route"))
    for a in facts.addresses:
        if a.dev not in own:
            out.append(Taken(a.address.network, f"host address {a.address.ip}"))
    for ns in facts.nameservers:
        out.append(Taken(ipaddress.ip_network(ns), f"nameserver {ns}"))
    for other, summary in facts.other_projects(project.name).items():
        for net in summary.owned_networks():
            for s in net.subnets:
                out.append(Taken(s.subnet, f"project {other}'s network {net.name}"))
        for net in summary.networks:
            if net.shared:
                out += [Taken(s.subnet, f"the legacy default bridge {net.bridge}") for s in net.subnets]
    for net in project.networks.values():
        for pool in net.ipam_pools:
            if pool.subnet is not None:
                out.append(Taken(pool.subnet, f"declared by {net.keypath or 'networks.' + net.key}"))
    return out


def _ula(project: str, network: str, index: int) -> ipaddress.IPv6Network:
    digest = hashlib.sha256(f"{project}/{network}".encode()).digest()
    global_id = int.from_bytes(digest[:5], "big")  # 40 bits, RFC 4193
    prefix = (0xFD << 120) | (global_id << 80) | ((index & 0xFFFF) << 64)
    return ipaddress.IPv6Network((prefix, 64))


def _overlapping(prefix: IPNetwork, taken: Sequence[Taken]) -> Optional[Taken]:
    for t in taken:
        if t.prefix.version == prefix.version and t.prefix.overlaps(prefix):
            return t
    return None


def choose_subnets(project: Project, facts: HostFacts, own_devs: Iterable[str] = (),
                   previous: Optional[Mapping[str, Sequence[str]]] = None,
                   legacy: Optional[Subnet] = None) -> dict[str, tuple[Subnet, ...]]:
    """Subnets for every network of the project that needs addresses, keyed by network key.
    External networks are not ours to number: the planner reads theirs from host facts.
    `previous` (full network name -> subnets, from this project's own state when it is up):
    a network keeps the subnet it has while nothing else claims it, so an edit that adds a
    network does not renumber the others."""
    from compose_net import drivers

    taken = taken_prefixes(project, facts, own_devs, legacy)
    declared = {id(t) for t in taken if t.why.startswith("declared by")}
    foreign = [t for t in taken if id(t) not in declared]
    pools = default_pools()
    explicit: dict[str, list[Subnet]] = {}
    for key, net in project.networks.items():
        driver = drivers.get(net.driver)
        if net.external or not driver.addressed:
            continue
        subnets: list[Subnet] = []
        for i, pool in enumerate(net.ipam_pools):
            if pool.subnet is None:
                continue
            kp = (pool.keypath or f"{net.keypath or 'networks.' + key}.ipam.config[{i}]") + ".subnet"
            clash = [t for t in foreign if t.prefix.version == pool.subnet.version and t.prefix.overlaps(pool.subnet)]
            if driver.lan:
                # the parent's LAN: a host route to it is expected, only other projects clash
                clash = [t for t in clash if t.why.startswith("project")]
            if clash:
                raise config_error(project, kp, f"subnet {pool.subnet} overlaps {clash[0].prefix} ({clash[0].why})")
            gw = pool.gateway
            if gw is None and driver.gateway_needed(net):
                gw = _first_host(pool.subnet)
            subnets.append(Subnet(pool.subnet, gw, pool.ip_range, tuple(pool.aux_addresses.values()),
                                  auto=False, keypath=pool.keypath,
                                  note=f"{net.name}: subnet {pool.subnet} as configured, gateway {gw}"
                                  + ("" if pool.gateway or gw is None else " (first host address)")))
        explicit[key] = subnets
    kept: dict[tuple[str, int], Subnet] = {}
    for key, subnets in explicit.items():
        net = project.networks[key]
        versions = {s.subnet.version for s in subnets}
        for text in (previous or {}).get(net.name, ()):
            try:
                prefix = ipaddress.ip_network(text)
            except ValueError:
                continue
            wanted = net.enable_ipv4 if prefix.version == 4 else net.enable_ipv6
            if not wanted or prefix.version in versions or (key, prefix.version) in kept:
                continue
            if prefix.version == 4 and prefix not in pools:
                continue
            if _overlapping(prefix, taken) is None:
                gw = _first_host(prefix)
                kept[(key, prefix.version)] = Subnet(prefix, gw, auto=True,
                                                     note=f"{net.name}: subnet {prefix} (kept from the running project), gateway {gw}")
                taken.append(Taken(prefix, f"network {net.name}"))
    out: dict[str, tuple[Subnet, ...]] = {}
    for key, subnets in explicit.items():
        net = project.networks[key]
        versions = {s.subnet.version for s in subnets}
        if net.enable_ipv4 and 4 not in versions:
            s4 = kept.get((key, 4)) or _auto_v4(project, net, pools, taken)
            subnets.insert(0, s4)
            taken.append(Taken(s4.subnet, f"network {net.name}"))
        if net.enable_ipv6 and 6 not in versions:
            s6 = kept.get((key, 6)) or _auto_v6(project, net, taken)
            subnets.append(s6)
            taken.append(Taken(s6.subnet, f"network {net.name}"))
        out[key] = tuple(subnets)
    return out


def legacy_subnet(project: Project, facts: HostFacts) -> Subnet:
    """The subnet of the shared legacy bridge `cn0` (`network_mode: bridge`), as dockerd picks
    docker0's: what `cn0` holds while it exists (it is shared, so it never moves under a
    project); else `COMPOSE_NET_BIP` (gateway/prefix, like dockerd's `bip`); else 172.17.0.0/16
    when nothing on the host uses it; else the first free default pool prefix, saying why."""
    bridge = naming.LEGACY_BRIDGE
    bip = (project.environment.get(BIP_VARIABLE) or "").strip()
    for name, summary in sorted(facts.projects.items()):
        for net in summary.networks:
            if net.shared and net.subnets:
                s = net.subnets[0]
                note = f" ({BIP_VARIABLE}={bip} is used only when {bridge} is made anew)" if bip else ""
                return Subnet(s.subnet, s.gateway, note=f"{naming.LEGACY_NETWORK}: {s.subnet} on {bridge}, "
                              f"as project {name} made it; shared by all projects{note}")
    for r in facts.routes:
        if r.dev == bridge and r.dst.version == 4:
            return Subnet(r.dst, _first_host(r.dst), note=f"{naming.LEGACY_NETWORK}: {r.dst} on {bridge}, as it is")
    taken = taken_prefixes(project, facts, (bridge,))[1:]  # all but the reservation of 172.17/16 itself
    if bip:
        return _bip(bip, taken)
    hit = _overlapping(LEGACY_SUBNET, taken)
    if hit is None:
        return Subnet(LEGACY_SUBNET, LEGACY_GATEWAY, note=f"{naming.LEGACY_NETWORK}: the legacy default bridge "
                      f"{LEGACY_SUBNET} on {bridge}, shared by all projects")
    for prefix in default_pools():
        if _overlapping(prefix, taken) is None:
            gw = _first_host(prefix)
            return Subnet(prefix, gw, auto=True, note=(
                f"{naming.LEGACY_NETWORK}: {LEGACY_SUBNET} is in use ({hit.why}), so {bridge} takes {prefix} "
                f"(first free default pool prefix), gateway {gw}; set {BIP_VARIABLE} (e.g. 10.200.0.1/24) to choose"))
    raise PlanError(f"no free subnet for the legacy bridge {bridge}: {LEGACY_SUBNET} is in use ({hit.why}) "
                    f"and so are the default pools; set {BIP_VARIABLE}")


def _bip(text: str, taken: Sequence[Taken]) -> Subnet:
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        iface = None
    if iface is None or "/" not in text or iface.network.prefixlen > 30 \
            or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise PlanError(f"{BIP_VARIABLE}={text!r}: give the legacy bridge's gateway address and prefix, "
                        "e.g. 10.200.0.1/24 (IPv4, prefix /30 or shorter, a host address of the subnet)")
    hit = _overlapping(iface.network, taken)
    if hit is not None:
        raise PlanError(f"{BIP_VARIABLE}={text}: {iface.network} overlaps {hit.prefix} ({hit.why})")
    return Subnet(iface.network, iface.ip, note=f"{naming.LEGACY_NETWORK}: {iface.network} on "
                  f"{naming.LEGACY_BRIDGE} from {BIP_VARIABLE}, gateway {iface.ip}")


def _first_host(subnet: IPNetwork) -> IPAddress:
    if subnet.num_addresses == 1:
        return subnet.network_address
    return subnet.network_address + 1


def _auto_v4(project: Project, net: Network, pools: list[ipaddress.IPv4Network], taken: list[Taken]) -> Subnet:
    skipped: list[str] = []
    for prefix in pools:
        hit = _overlapping(prefix, taken)
        if hit is None:
            why = "first free default pool prefix"
            if skipped:
                shown = ", ".join(skipped[:4]) + (f" and {len(skipped) - 4} more" if len(skipped) > 4 else "")
                why += f"; skipped {shown}"
            gw = _first_host(prefix)
            return Subnet(prefix, gw, auto=True, note=f"{net.name}: subnet {prefix} ({why}), gateway {gw}")
        if not hit.why.startswith("network "):
            skipped.append(f"{prefix} ({hit.why})")
    raise PlanError("no free subnet left in the default pools "
                    "(172.18.0.0/16-172.31.0.0/16 and 192.168.0.0/16 in /20s are all in use); "
                    "give the network an ipam subnet", plan_where(project, net.keypath or f"networks.{net.key}"))


def _auto_v6(project: Project, net: Network, taken: list[Taken]) -> Subnet:
    for index in range(0, 1 << 16):
        prefix = _ula(project.name, net.name, index)
        if _overlapping(prefix, taken) is None:
            gw = _first_host(prefix)
            return Subnet(prefix, gw, auto=True,
                          note=f"{net.name}: IPv6 subnet {prefix} (unique local /64 from a hash of "
                          f"{project.name!r} and {net.name!r}), gateway {gw}")
    raise PlanError("no free IPv6 unique local prefix", plan_where(project, net.keypath or f"networks.{net.key}"))  # 65536 collisions: never in practice


# --- addresses --------------------------------------------------------------------------------


def _host_bounds(subnet: Subnet) -> tuple[int, int]:
    """First and last address handed out dynamically (as integers)."""
    net = subnet.subnet
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen < 31:
        first, last = first + 1, last - 1
    elif net.version == 6 and net.prefixlen < 127:
        first += 1  # the subnet-router anycast address
    if subnet.ip_range is not None:
        # Docker hands out the range's own network address, but never the subnet's
        first = max(first, int(subnet.ip_range.network_address))
        last = min(last, int(subnet.ip_range.broadcast_address))
    return first, last


class AddressPool:
    """Hands out one subnet's addresses in order; O(1) per address (a cursor and a set)."""

    def __init__(self, subnet: Subnet, reserved: Iterable[IPAddress] = ()):
        self.subnet = subnet
        self.reserved = {int(a) for a in reserved}
        if subnet.gateway is not None:
            self.reserved.add(int(subnet.gateway))
        self.reserved.update(int(a) for a in subnet.aux)
        self.cursor, self.last = _host_bounds(subnet)

    def take(self) -> Optional[IPAddress]:
        while self.cursor <= self.last:
            value = self.cursor
            self.cursor += 1
            if value not in self.reserved:
                self.reserved.add(value)
                return ipaddress.ip_address(value) if self.subnet.subnet.version == 4 else ipaddress.IPv6Address(value)
        return None


def allocate(network_name: str, subnets: Sequence[Subnet],
             members: Sequence[tuple[Hashable, Optional[IPAddress], Optional[IPAddress]]],
             used: Iterable[IPAddress] = (), project: Optional[Project] = None,
             previous: Optional[Mapping[Hashable, Mapping[int, IPAddress]]] = None) -> dict[Hashable, dict[int, IPAddress]]:
    """Addresses for `members` (key, static IPv4, static IPv6), in the order given, on a network
    with `subnets`; `used` are addresses other projects hold on a shared network; `previous`
    are the addresses members had in the running project (kept when still free). Returns
    key -> {4: addr, 6: addr}. An exhausted subnet is a PlanError (ConfigError when the subnet is
    the user's, pointing at it)."""
    out: dict[Hashable, dict[int, IPAddress]] = {}
    statics = []
    for _, s4, s6 in members:
        statics += [s for s in (s4, s6) if s is not None]
    used = list(used)
    pools = {}
    for s in subnets:
        if s.subnet.version not in pools:
            pools[s.subnet.version] = AddressPool(s, [a for a in statics + used if a.version == s.subnet.version])
    # a running container keeps its address while it is still free and still in range, so an
    # edit that adds a container does not renumber the others
    kept: dict[tuple[Hashable, int], IPAddress] = {}
    if previous:
        for key, s4, s6 in members:
            for version, static in ((4, s4), (6, s6)):
                addr = previous.get(key, {}).get(version)
                pool = pools.get(version)
                if static is not None or addr is None or pool is None:
                    continue
                first, last = _host_bounds(pool.subnet)
                if first <= int(addr) <= last and int(addr) not in pool.reserved:
                    pool.reserved.add(int(addr))
                    kept[(key, version)] = addr
    for key, s4, s6 in members:
        got: dict[int, IPAddress] = {}
        for version, static in ((4, s4), (6, s6)):
            pool = pools.get(version)
            if static is not None:
                got[version] = static
                continue
            if pool is None:
                continue
            addr = kept.get((key, version)) or pool.take()
            if addr is None:
                msg = (f"network {network_name}: subnet {pool.subnet.subnet} has no address left for "
                       f"{key if isinstance(key, str) else key[0]}")
                if not pool.subnet.auto and project is not None and pool.subnet.keypath:
                    raise config_error(project, pool.subnet.keypath + ".subnet", msg)
                raise PlanError(msg)
            got[version] = addr
        out[key] = got
    return out


# --- ports ------------------------------------------------------------------------------------


def ephemeral_ports(requests: Sequence[tuple[str, int]], used: set[tuple[str, int]]) -> list[int]:
    """For each (protocol, count) request, the first block of `count` consecutive free ports
    from 32768 up; a port handed out here is used for the later requests too."""
    out = []
    cursor: dict[str, int] = {}
    for proto, count in requests:
        port = cursor.get(proto, EPHEMERAL_FIRST)
        while True:
            if port + count - 1 > EPHEMERAL_LAST:
                raise PlanError(f"no {count} free {proto} ports left in {EPHEMERAL_FIRST}-{EPHEMERAL_LAST}")
            clash = [p for p in range(port, port + count) if (proto, p) in used]
            if not clash:
                break
            port = clash[-1] + 1
        for p in range(port, port + count):
            used.add((proto, p))
        cursor[proto] = port + count
        out.append(port)
    return out
