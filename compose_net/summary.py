"""What `up` records about a project: its networks, containers, interfaces and ports, typed.

The planner builds a `Summary` from the graph; the plan writes it to
`/run/compose-net/PROJECT/project.json` (its JSON form, `to_text`/`from_text`); the firewall, the
DNS records, `ps`/`ls`/`network inspect`, the IPAM of other projects and `reach` read its
attributes. Addresses are `ipaddress` values; nothing downstream reads a dict with string keys.

Versions: 2 is written. Version 1 files (the same fields as plain JSON, written before the state
was typed) load unchanged, since every field of 1 kept its name and meaning; anything newer than
this code knows is refused with a clear error rather than half understood.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from compose_net import jsonform
from compose_net.errors import StateError

# Docker's gateway modes (`com.docker.network.bridge.gateway_mode_ipv4`/`_ipv6`), as recorded:
# the bridge driver sets them, the firewall reads them
NAT, NAT_UNPROTECTED, ROUTED, ISOLATED = "nat", "nat-unprotected", "routed", "isolated"

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

VERSION = 2
READABLE = (1, 2)


@dataclass(frozen=True)
class SubnetState:
    subnet: IPNetwork
    gateway: Optional[IPAddress] = None
    ip_range: Optional[IPNetwork] = None


@dataclass(frozen=True)
class VxlanState:
    name: str
    vni: int


@dataclass(frozen=True)
class NetworkState:
    name: str  # the full network name (PROJECT_KEY, `name:`, or the external name)
    key: Optional[str] = None  # the compose key; None for the legacy default bridge
    id: str = ""
    driver: str = "bridge"
    bridge: Optional[str] = None  # the host bridge device; None when the driver has none
    parent: Optional[str] = None  # macvlan/ipvlan parent link
    mode: Optional[str] = None  # macvlan/ipvlan mode
    internal: bool = False
    external: bool = False
    masquerade: bool = True
    icc: bool = True
    mtu: Optional[int] = None
    enable_ipv6: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    subnets: tuple[SubnetState, ...] = ()
    shared: bool = False  # the legacy default bridge, shared by every project
    vxlan: Optional[VxlanState] = None
    user_subnet: bool = False  # its subnet was given (ipam.config / --subnet): `--ip` allowed on it
    enable_ipv4: bool = True
    gateway_mode_ipv4: str = NAT  # NAT, NAT_UNPROTECTED, ROUTED or ISOLATED
    gateway_mode_ipv6: str = NAT
    trusted_interfaces: tuple[str, ...] = ()  # host links from which published container ports are open directly

    def gateway_mode(self, version: int) -> str:
        return self.gateway_mode_ipv4 if version == 4 else self.gateway_mode_ipv6

    def gateway(self, version: int) -> Optional[IPAddress]:
        for s in self.subnets:
            if s.subnet.version == version:
                return s.gateway
        return None

    @property
    def discovery(self) -> bool:
        """Whether names resolve on it: Docker's default bridge has links only."""
        return not self.shared


@dataclass(frozen=True)
class InterfaceState:
    network: str  # full network name
    ifname: str  # inside the container
    host_ifname: Optional[str] = None  # host end of the veth pair; None for macvlan/ipvlan
    mac: Optional[str] = None
    ipv4: Optional[ipaddress.IPv4Interface] = None
    ipv6: Optional[ipaddress.IPv6Interface] = None
    gateway: Optional[IPAddress] = None  # the IPv4 gateway (the IPv6 one on an IPv6-only interface)
    gateway6: Optional[ipaddress.IPv6Address] = None
    default_route: bool = False  # the container's default route goes out here
    default_route6: bool = False
    aliases: tuple[str, ...] = ()  # names answering with this interface's address on its network
    link_local: tuple[IPInterface, ...] = ()

    @property
    def addresses(self) -> tuple[IPInterface, ...]:
        return tuple(a for a in (self.ipv4, self.ipv6) if a is not None)


@dataclass(frozen=True)
class PortState:
    target: int
    target_end: int
    protocol: str = "tcp"
    host_ip: Optional[IPAddress] = None
    published: Optional[int] = None  # None: exposed only, not published
    published_end: Optional[int] = None


@dataclass(frozen=True)
class LinkState:
    service: str
    alias: str


@dataclass(frozen=True)
class PolicyPortState:
    first: int
    last: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class PolicyRuleState:
    """One rule of a service's `x-compose-net` ingress or egress, as written: its peers
    (service names, `host`, `outside`) and ports (empty: every port and protocol)."""

    peers: tuple[str, ...]
    ports: tuple[PolicyPortState, ...] = ()


@dataclass(frozen=True)
class ContainerState:
    name: str
    service: str
    index: int = 1
    id: str = ""
    netns: Optional[str] = None  # None: the host's namespace (network_mode host)
    uts: Optional[str] = None  # its UTS namespace under /run/utsns (None: the host's)
    network_mode: Optional[str] = None
    shares: Optional[str] = None  # network_mode service:X: the container whose namespaces it joins (its
    #                               own `netns` and `uts` are second names for that one's)
    hostname: Optional[str] = None
    domainname: Optional[str] = None
    dns: tuple[IPAddress, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    links: tuple[LinkState, ...] = ()
    interfaces: tuple[InterfaceState, ...] = ()
    ports: tuple[PortState, ...] = ()
    expose: tuple[str, ...] = ()
    embedded_dns: bool = False  # its resolv.conf points at 127.0.0.11
    host: Optional[str] = None  # another host's container (its underlay address): known from the cluster store
    # its service's policy (`policy.resolve` reads it): None is Docker's behaviour, () allows nothing
    ingress: Optional[tuple[PolicyRuleState, ...]] = None
    egress: Optional[tuple[PolicyRuleState, ...]] = None

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True)
class Connection:
    """`network connect NET CONTAINER`: an interface beyond the container's compose file, kept
    by `up` until the container is disconnected or the project goes down."""

    container: str
    network: str  # the full network name
    ifname: str  # chosen once (the next free ethN), so a later edit never renames it
    aliases: tuple[str, ...] = ()
    ipv4: Optional[ipaddress.IPv4Address] = None  # --ip
    ipv6: Optional[ipaddress.IPv6Address] = None  # --ip6


@dataclass(frozen=True)
class Disconnection:
    """`network disconnect` of a network the compose file gives the container."""

    container: str
    network: str


@dataclass(frozen=True)
class AdHoc:
    """A container made by `run`: on `networks` (full names, the first is eth0), or a one-off
    of `service` (`run SERVICE`: its networks and aliases)."""

    name: str
    networks: tuple[str, ...] = ()
    service: Optional[str] = None
    hostname: Optional[str] = None
    aliases: tuple[str, ...] = ()
    ipv4: Optional[ipaddress.IPv4Address] = None  # --ip, on the first network
    ipv6: Optional[ipaddress.IPv6Address] = None
    ports: tuple[PortState, ...] = ()  # --publish (`published` as given)
    detach: bool = False


@dataclass(frozen=True)
class Live:
    """The project's live edits: what `network connect/disconnect` and `run` changed on top of
    its compose file. The planner applies them to the project's graph, so every plan (`up`
    too) holds them, and they are recorded with the state they produce."""

    connections: tuple[Connection, ...] = ()
    disconnections: tuple[Disconnection, ...] = ()
    containers: tuple[AdHoc, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.connections or self.disconnections or self.containers)


@dataclass(frozen=True)
class Summary:
    project: str
    group: int = 0  # the link group of the project's host links
    table: str = ""  # its nftables table (family inet)
    working_dir: str = ""
    files: tuple[str, ...] = ()
    dns_ttl: int = 600
    host_nameservers: tuple[IPAddress, ...] = ()
    networks: tuple[NetworkState, ...] = ()
    containers: tuple[ContainerState, ...] = ()
    standalone: bool = False  # a network made by `network create`, not a compose project
    # other tools' container bridges on the host when planned (docker0, br-<id>, virbr0, ...):
    # the firewall keeps new connections from the project's bridges out of them
    foreign_bridges: tuple[str, ...] = ()
    created: Optional[str] = None  # ISO time, for `network ls/inspect`
    cluster: Optional[str] = None  # the cluster store's URL (etcd://...) when overlay networks span hosts
    cluster_host: Optional[str] = None  # this host's underlay address (VTEP) in that cluster
    version: int = VERSION
    live: Live = field(default_factory=Live)

    def network(self, name: str) -> Optional[NetworkState]:
        return next((n for n in self.networks if n.name == name), None)

    def container(self, name: str) -> Optional[ContainerState]:
        return next((c for c in self.containers if c.name == name), None)

    def owned_networks(self) -> tuple[NetworkState, ...]:
        """The networks this project made (not external ones, not the shared legacy bridge)."""
        return tuple(n for n in self.networks if not n.external)


def to_text(summary: Summary) -> str:
    # compact: the C encoder is ten times faster than the indenting one on a big project
    return json.dumps(jsonform.dump(summary), separators=(",", ":")) + "\n"


def from_text(text: str, where: str = "project.json") -> Summary:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{where}: not JSON ({exc})") from None
    return from_data(data, where)


def from_data(data: object, where: str = "project.json") -> Summary:
    if not isinstance(data, dict) or "project" not in data:
        raise StateError(f"{where}: not a compose-net project summary")
    version = data.get("version", 1)
    if version not in READABLE:
        raise StateError(f"{where}: summary version {version} is newer than this compose-net reads "
                         f"({', '.join(map(str, READABLE))}); use the compose-net that wrote it")
    try:
        summary = jsonform.load(Summary, data)
    except (TypeError, ValueError, KeyError) as exc:
        raise StateError(f"{where}: unreadable summary: {exc}") from None
    if summary.version != VERSION:
        from dataclasses import replace

        summary = replace(summary, version=VERSION)
    return summary
