"""Subnet and address choice: pure, deterministic, and every choice carries its reason.

Subnets: the user's, else the lowest block of the address pools that overlaps nothing known
(host routes and addresses, nameservers, other compose-net projects, and every subnet declared
anywhere in this project, so the result does not depend on declaration order). The pools, tried in
this order: the project's `x-compose-net.default_address_pools`, then the host's: those of
`COMPOSE_NET_DEFAULT_ADDRESS_POOLS` (dockerd's flag syntax), else the `default-address-pools` of
the host file (daemon.json's key), else Docker's built-in pools: 172.17.0.0/16 is the legacy
default bridge only; then 172.18.0.0/16 … 172.31.0.0/16; then 192.168.0.0/16 in /20s. IPv6 comes
from the IPv6 pools when there are any, else a unique local /64 hashed from the names.
Docker's allocator is a cursor kept in dockerd's memory; ours is lowest-free over the host facts,
which gives the same answers on a fresh host and stays stable across runs. A walk over a pool
jumps past each taken prefix at once, so a 10.0.0.0/8 pool costs what its taken prefixes cost.

Addresses: gateway = first host address unless given; containers from the next one up in a
stable order (the caller passes members in service declaration order, replicas by index), skipping
the gateway, every static address on the network and `aux_addresses`, inside `ip_range` when
given (whose network address may be handed out, as Docker does).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import ipaddress
import json
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



POOLS_VARIABLE = "COMPOSE_NET_DEFAULT_ADDRESS_POOLS"
POOLS_KEY = "default-address-pools"  # daemon.json's key, read from the host file as dockerd reads it
PROJECT_POOLS_KEY = "x-compose-net.default_address_pools"
BUILTIN_SOURCE = "Docker's built-in pools"
HOW_TO_ADD = (f"add a pool: {POOLS_VARIABLE}='base=10.10.0.0/16,size=24' (dockerd's syntax, ';' between "
              f"pools), {POOLS_KEY} in {{file}} (daemon.json's key), or {PROJECT_POOLS_KEY} in the compose "
              "file; or give the network an ipam subnet")


@dataclass(frozen=True)
class Pool:
    """Subnets of prefix length `size` cut from `base`, lowest first; `source` says who set it."""

    base: IPNetwork
    size: int
    source: str

    def describe(self) -> str:
        return f"{self.base} in /{self.size}s ({self.source})"


def default_pools() -> list[ipaddress.IPv4Network]:
    pools = [ipaddress.IPv4Network(f"172.{n}.0.0/16") for n in range(18, 32)]
    pools += list(ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return pools


BUILTIN_POOLS = tuple([Pool(ipaddress.IPv4Network(f"172.{n}.0.0/16"), 16, BUILTIN_SOURCE) for n in range(18, 32)]
                      + [Pool(ipaddress.IPv4Network("192.168.0.0/16"), 20, BUILTIN_SOURCE)])


def pool_problems(base: object, size: object) -> tuple[Optional[Pool], list[tuple[str, str]]]:
    """A pool from a base and a size as a file or a variable gives them, or what is wrong with
    them: (field, message naming the value). The same rules for every source."""
    problems: list[tuple[str, str]] = []
    net: Optional[IPNetwork] = None
    if base is None:
        problems.append(("base", "missing base (a network like 10.10.0.0/16)"))
    else:
        text = str(base).strip()
        try:
            net = ipaddress.ip_network(text)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
                problems.append(("base", f'base "{text}" has host bits set (did you mean {loose}?)'))
            except ValueError:
                problems.append(("base", f'base "{text}" is not a network: expected CIDR like 10.10.0.0/16'))
    bits: Optional[int] = None
    if size is None:
        problems.append(("size", "missing size (the prefix length of each subnet, like 24)"))
    elif isinstance(size, bool) or not (isinstance(size, int) or (isinstance(size, str) and size.strip().isdigit()
                                                                  and size.strip().isascii())):
        problems.append(("size", f'size "{size}" is not a whole number (a prefix length like 24)'))
    else:
        bits = int(size)
    if net is not None and bits is not None:
        most = 30 if net.version == 4 else 126
        if bits < net.prefixlen:
            problems.append(("size", f"size {bits} is smaller than the base's prefix length {net.prefixlen}: "
                                     f"a /{bits} does not fit in {net}"))
        elif bits > most:
            problems.append(("size", f"size {bits} is over {most}: a /{bits} leaves no address for a container "
                                     "beside the gateway"))
    if problems or net is None or bits is None:
        return None, problems
    return Pool(net, bits, ""), []


def pools_from_flag(text: str) -> tuple[Pool, ...]:
    """`COMPOSE_NET_DEFAULT_ADDRESS_POOLS`: dockerd's `--default-address-pool` values
    (`base=10.10.0.0/16,size=24`), several separated by `;`. A PlanError names the variable."""
    pools: list[Pool] = []
    entries = [e.strip() for e in text.split(";")]
    for n, entry in enumerate(entries, 1):
        if not entry:
            continue
        fields: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for item in entry.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in ("base", "size"):
                problems.append((key, f'unknown field "{item.strip()}" (expected base=NETWORK,size=BITS)'))
            elif key in fields:
                problems.append((key, f"{key} given twice"))
            else:
                fields[key] = value.strip()
        if not problems:
            pool, problems = pool_problems(fields.get("base"), fields.get("size"))
            if pool is not None:
                pools.append(dataclasses.replace(pool, source=POOLS_VARIABLE))
                continue
        raise PlanError(f"{POOLS_VARIABLE}: pool {n} ({entry!r}): {problems[0][1]}")
    return tuple(pools)


def pools_from_daemon_json(path: str, text: str) -> Optional[tuple[Pool, ...]]:
    """The `default-address-pools` of the host file (None when it has none). The file is
    daemon.json's form, so a Docker user copies theirs over; other keys are dockerd's, not ours."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"not valid JSON: {exc}", Where(path, getattr(exc, "lineno", 0), POOLS_KEY)) from None
    if not isinstance(data, dict) or data.get(POOLS_KEY) is None:
        return None
    items = data[POOLS_KEY]
    if not isinstance(items, list):
        raise PlanError("must be a list of {\"base\": ..., \"size\": ...}", Where(path, 0, POOLS_KEY))
    pools = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PlanError('must be an object like {"base": "10.10.0.0/16", "size": 24}',
                            Where(path, 0, f"{POOLS_KEY}[{i}]"))
        unknown = sorted(set(item) - {"base", "size"})
        if unknown:
            raise PlanError(f'unknown key "{unknown[0]}" (expected base and size)', Where(path, 0, f"{POOLS_KEY}[{i}]"))
        pool, problems = pool_problems(item.get("base"), item.get("size"))
        if pool is None:
            raise PlanError(problems[0][1], Where(path, 0, f"{POOLS_KEY}[{i}].{problems[0][0]}"))
        pools.append(dataclasses.replace(pool, source=path))
    return tuple(pools)


def host_pools(environment: Mapping[str, str], facts: HostFacts) -> tuple[Pool, ...]:
    """The host's pools: the variable's, else the file's, else Docker's built-in ones."""
    text = (environment.get(POOLS_VARIABLE) or "").strip()
    if text:
        pools = pools_from_flag(text)
        if pools:
            return pools
    if facts.daemon_json:
        from_file = pools_from_daemon_json(facts.daemon_json_path, facts.daemon_json)
        if from_file:
            return from_file
    return BUILTIN_POOLS


def address_pools(project: Project, facts: HostFacts) -> tuple[Pool, ...]:
    """Every pool in the order IPAM tries them: the project's own first, then the host's."""
    own = tuple(Pool(p.base, p.size, p.keypath or PROJECT_POOLS_KEY) for p in project.address_pools)
    return own + host_pools(project.environment, facts)


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
    who: str = ""  # whom the exhaustion error counts it for ("project shop", "host route via eth1")


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
    out: list[Taken] = [Taken(LEGACY_SUBNET, "the legacy default bridge (network_mode: bridge)",
                              "the legacy default bridge")]
    if legacy is not None and legacy.subnet != LEGACY_SUBNET:
        out.append(Taken(legacy.subnet, f"the legacy default bridge {naming.LEGACY_BRIDGE}", "the legacy default bridge"))
    for r in facts.routes:
        if r.dev not in own and r.dst.prefixlen:  # a default route overlaps everything: not a clash
            why = f"host route via {r.dev}" if r.dev else "host route"
            out.append(Taken(r.dst, why, why))
    for a in facts.addresses:
        if a.dev not in own:
            out.append(Taken(a.address.network, f"host address {a.address.ip}", "host addresses"))
    for ns in facts.nameservers:
        out.append(Taken(ipaddress.ip_network(ns), f"nameserver {ns}", "nameservers"))
    for other, summary in facts.other_projects(project.name).items():
        for net in summary.owned_networks():
            for s in net.subnets:
                out.append(Taken(s.subnet, f"project {other}'s network {net.name}", f"project {other}"))
        for net in summary.networks:
            if net.shared:
                out += [Taken(s.subnet, f"the legacy default bridge {net.bridge}", "the legacy default bridge")
                        for s in net.subnets]
    for net in project.networks.values():
        for pool in net.ipam_pools:
            if pool.subnet is not None:
                out.append(Taken(pool.subnet, f"declared by {net.keypath or 'networks.' + net.key}",
                                 "subnets this project declares"))
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
    pools = address_pools(project, facts)
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
            if not _from_pools(prefix, pools):
                continue  # the pools changed: the network moves into them
            if _overlapping(prefix, taken) is None:
                gw = _first_host(prefix)
                kept[(key, prefix.version)] = Subnet(prefix, gw, auto=True,
                                                     note=f"{net.name}: subnet {prefix} (kept from the running project), gateway {gw}")
                taken.append(Taken(prefix, f"network {net.name}", "this project"))
    out: dict[str, tuple[Subnet, ...]] = {}
    for key, subnets in explicit.items():
        net = project.networks[key]
        versions = {s.subnet.version for s in subnets}
        if net.enable_ipv4 and 4 not in versions:
            s4 = kept.get((key, 4)) or _auto(project, net, 4, pools, taken, facts)
            subnets.insert(0, s4)
            taken.append(Taken(s4.subnet, f"network {net.name}", "this project"))
        if net.enable_ipv6 and 6 not in versions:
            s6 = kept.get((key, 6)) or (_auto(project, net, 6, pools, taken, facts)
                                        if any(p.base.version == 6 for p in pools) else _auto_v6(project, net, taken))
            subnets.append(s6)
            taken.append(Taken(s6.subnet, f"network {net.name}", "this project"))
        out[key] = tuple(subnets)
    return out


def legacy_subnet(project: Project, facts: HostFacts) -> Subnet:
    """The subnet of the shared legacy bridge `cn0` (`network_mode: bridge`), as dockerd picks
    docker0's: what `cn0` holds while it exists (it is shared, so it never moves under a
    project); else `COMPOSE_NET_BIP` (gateway/prefix, like dockerd's `bip`), else the host file's
    `bip` (daemon.json's key); else 172.17.0.0/16 when nothing on the host uses it; else the
    first free block of the host's pools, saying why."""
    bridge = naming.LEGACY_BRIDGE
    bip, source = (project.environment.get(BIP_VARIABLE) or "").strip(), BIP_VARIABLE
    if not bip:
        bip, source = _bip_from_file(facts), f"bip in {facts.daemon_json_path}"
    for name, summary in sorted(facts.projects.items()):
        for net in summary.networks:
            if net.shared and net.subnets:
                s = net.subnets[0]
                note = f" ({source} {bip} is used only when {bridge} is made anew)" if bip else ""
                return Subnet(s.subnet, s.gateway, note=f"{naming.LEGACY_NETWORK}: {s.subnet} on {bridge}, "
                              f"as project {name} made it; shared by all projects{note}")
    for r in facts.routes:
        if r.dev == bridge and r.dst.version == 4:
            return Subnet(r.dst, _first_host(r.dst), note=f"{naming.LEGACY_NETWORK}: {r.dst} on {bridge}, as it is")
    taken = taken_prefixes(project, facts, (bridge,))[1:]  # all but the reservation of 172.17/16 itself
    if bip:
        return _bip(bip, taken, source)
    hit = _overlapping(LEGACY_SUBNET, taken)
    if hit is None:
        return Subnet(LEGACY_SUBNET, LEGACY_GATEWAY, note=f"{naming.LEGACY_NETWORK}: the legacy default bridge "
                      f"{LEGACY_SUBNET} on {bridge}, shared by all projects")
    for prefix in _host_blocks(project, facts):
        if _overlapping(prefix, taken) is None:
            gw = _first_host(prefix)
            return Subnet(prefix, gw, auto=True, note=(
                f"{naming.LEGACY_NETWORK}: {LEGACY_SUBNET} is in use ({hit.why}), so {bridge} takes {prefix} "
                f"(first free block of the host's pools), gateway {gw}; set {BIP_VARIABLE} (e.g. 10.200.0.1/24) to choose"))
    raise PlanError(f"no free subnet for the legacy bridge {bridge}: {LEGACY_SUBNET} is in use ({hit.why}) "
                    f"and so are the host's pools; set {BIP_VARIABLE}")


def _bip_from_file(facts: HostFacts) -> str:
    """daemon.json's `bip`, as dockerd reads it (a malformed file is the pools' reader's to report)."""
    if not facts.daemon_json:
        return ""
    try:
        value = json.loads(facts.daemon_json).get("bip", "")
    except (ValueError, AttributeError):
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _bip(text: str, taken: Sequence[Taken], source: str = BIP_VARIABLE) -> Subnet:
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        iface = None
    if iface is None or "/" not in text or iface.network.prefixlen > 30 \
            or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise PlanError(f"{source}={text!r}: give the legacy bridge's gateway address and prefix, "
                        "e.g. 10.200.0.1/24 (IPv4, prefix /30 or shorter, a host address of the subnet)")
    hit = _overlapping(iface.network, taken)
    if hit is not None:
        raise PlanError(f"{source}={text}: {iface.network} overlaps {hit.prefix} ({hit.why})")
    return Subnet(iface.network, iface.ip, note=f"{naming.LEGACY_NETWORK}: {iface.network} on "
                  f"{naming.LEGACY_BRIDGE} from {source}, gateway {iface.ip}")


def _host_blocks(project: Project, facts: HostFacts) -> Iterable[ipaddress.IPv4Network]:
    """The host's IPv4 pools' blocks in order (the legacy bridge is the host's, not a project's)."""
    for pool in host_pools(project.environment, facts):
        if pool.base.version == 4:
            yield from pool.base.subnets(new_prefix=pool.size)


def _first_host(subnet: IPNetwork) -> IPAddress:
    if subnet.num_addresses == 1:
        return subnet.network_address
    return subnet.network_address + 1


def _from_pools(prefix: IPNetwork, pools: Sequence[Pool]) -> bool:
    """Whether `prefix` is one of the blocks the pools hand out (any IPv6 prefix when no pool
    is IPv6: those come from the hashed unique local prefixes)."""
    same = [p for p in pools if p.base.version == prefix.version]
    if not same:
        return prefix.version == 6
    return any(prefix.prefixlen == p.size and prefix.subnet_of(p.base) for p in same)  # type: ignore[arg-type]


def _shown_block(pool: Pool, start: int, hit: Taken) -> IPNetwork:
    """What a skip passed over, as one prefix: the block when something inside it is taken, the
    taken prefix (within the pool) when it spans blocks."""
    block = ipaddress.ip_network((start, pool.size))
    if hit.prefix.prefixlen >= pool.size:
        return block
    return pool.base if pool.base.subnet_of(hit.prefix) else hit.prefix  # type: ignore[arg-type]


def _walk(pool: Pool, taken: Sequence[tuple[int, int, Taken]]) -> tuple[Optional[IPNetwork], list[tuple[IPNetwork, Taken]], dict[str, int]]:
    """The lowest free block of `pool`, the taken prefixes passed on the way (with the number of
    blocks each took, by whom). `taken` is (first, last, Taken) as integers, sorted by first.
    Each step jumps past one taken prefix, so the walk costs what the taken list costs."""
    step = 1 << (pool.base.max_prefixlen - pool.size)
    first = int(pool.base.network_address)
    end = int(pool.base.broadcast_address)
    cur = first
    skipped: list[tuple[IPNetwork, Taken]] = []
    used: dict[str, int] = {}
    starts = [t[0] for t in taken]
    lo = 0  # taken[:lo] all end below `cur`, which only grows
    while cur <= end:
        last = cur + step - 1
        while lo < len(taken) and taken[lo][1] < cur:
            lo += 1
        # the first taken prefix (by start) that reaches into this block, if any starts in time
        hit = taken[lo] if lo < bisect.bisect_right(starts, last) else None
        if hit is None:
            return ipaddress.ip_network((cur, pool.size)), skipped, used
        nxt = first + ((min(max(hit[1], last), end) - first) // step + 1) * step
        if not hit[2].why.startswith("network "):  # this project's own networks go unmentioned
            skipped.append((_shown_block(pool, cur, hit[2]), hit[2]))
        used[hit[2].who or hit[2].why] = used.get(hit[2].who or hit[2].why, 0) + (nxt - cur) // step
        cur = nxt
    return None, skipped, used


def _ranges(version: int, taken: Sequence[Taken]) -> list[tuple[int, int, Taken]]:
    out = [(int(t.prefix.network_address), int(t.prefix.broadcast_address), t) for t in taken
           if t.prefix.version == version]
    out.sort(key=lambda r: (r[0], -r[1]))
    return out


def _auto(project: Project, net: Network, version: int, pools: Sequence[Pool], taken: list[Taken],
          facts: HostFacts) -> Subnet:
    ranges = _ranges(version, taken)
    skipped: list[str] = []
    usage: list[tuple[Pool, dict[str, int]]] = []
    for pool in (p for p in pools if p.base.version == version):
        prefix, passed, used = _walk(pool, ranges)
        skipped += [f"{block} ({hit.why})" for block, hit in passed]
        if prefix is None:
            usage.append((pool, used))
            continue
        gw = _first_host(prefix)
        why = f"next free /{pool.size} of pool {pool.base}, {pool.source}"
        if skipped:
            shown = ", ".join(skipped[:4]) + (f" and {len(skipped) - 4} more" if len(skipped) > 4 else "")
            why += f"; skipped {shown}"
        return Subnet(prefix, gw, auto=True, note=f"{net.name}: subnet {prefix} ({why}), gateway {gw}")
    raise PlanError(exhausted_message(net.name, version, usage, facts.daemon_json_path),
                    plan_where(project, net.keypath or f"networks.{net.key}"))


def exhausted_message(network: str, version: int, usage: Sequence[tuple[Pool, Mapping[str, int]]],
                      daemon_json: str) -> str:
    """Every pool of the family, how many of its blocks are used and by whom, how to add one."""
    parts = []
    for pool, used in usage:
        total = 1 << (pool.size - pool.base.prefixlen)
        by = sorted(used.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{n} by {who}" for who, n in by[:6]) + (f", {sum(n for _, n in by[6:])} by "
                                                                 f"{len(by) - 6} others" if len(by) > 6 else "")
        parts.append(f"{pool.describe()}: {sum(used.values())} of {total} used ({shown})")
    family = "IPv4" if version == 4 else "IPv6"
    return (f"no free {family} subnet left for network {network} in the address pools: " + "; ".join(parts)
            + ". " + HOW_TO_ADD.format(file=daemon_json))


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
