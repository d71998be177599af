"""The project model: frozen dataclasses built by the loader's last stage from normalized data.

Everything downstream (graph, ipam, planner, config output) reads these, never the raw YAML.
Addresses are `ipaddress` objects; mappings are plain dicts that nobody mutates after the build.
`Project.locate(keypath)` turns a dotted key path back into (file, line) so later stages (IPAM,
planner) can still report `FILE:LINE: key.path: message`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

BUILTIN_DRIVERS = ("bridge", "host", "none", "macvlan", "ipvlan", "overlay")
PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class IpamPool:
    """One `ipam.config` entry. `subnet` None means: IPAM picks one from the default pools."""

    subnet: Optional[IPNetwork] = None
    gateway: Optional[IPAddress] = None
    ip_range: Optional[IPNetwork] = None
    aux_addresses: Mapping[str, IPAddress] = field(default_factory=dict)
    keypath: str = ""  # e.g. networks.back.ipam.config[0]


@dataclass(frozen=True)
class AddressPool:
    """One entry of `x-compose-net.default_address_pools`: subnets of `size` bits cut from `base`."""

    base: IPNetwork
    size: int
    keypath: str = ""  # x-compose-net.default_address_pools[N]


@dataclass(frozen=True)
class Network:
    key: str  # the key under top-level `networks:` (e.g. "default", "front")
    name: str  # full name: PROJECT_KEY, `name:` verbatim, or the external name
    driver: str = "bridge"
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    internal: bool = False
    external: bool = False
    attachable: bool = False
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    ipam_driver: Optional[str] = None
    ipam_pools: tuple[IpamPool, ...] = ()
    keypath: str = ""  # networks.KEY


@dataclass(frozen=True)
class Attachment:
    """A service's membership of one network (the long form of `services.S.networks.N`)."""

    network: str  # network key
    aliases: tuple[str, ...] = ()
    ipv4_address: Optional[ipaddress.IPv4Address] = None
    ipv6_address: Optional[ipaddress.IPv6Address] = None
    link_local_ips: tuple[IPAddress, ...] = ()
    mac_address: Optional[str] = None  # lower-case aa:bb:cc:dd:ee:ff
    priority: int = 0
    gw_priority: int = 0
    interface_name: Optional[str] = None
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    order: int = 0  # declaration order within the service (tie-break after priority)
    keypath: str = ""  # services.S.networks.N


@dataclass(frozen=True)
class PortMapping:
    """One `ports:` entry in long form. A range stays one mapping (target..target_end)."""

    target: int
    target_end: int  # == target for a single port
    published: Optional[int] = None  # None: ephemeral (chosen at plan time)
    published_end: Optional[int] = None
    host_ip: Optional[IPAddress] = None
    protocol: str = "tcp"
    mode: str = "ingress"
    name: Optional[str] = None
    app_protocol: Optional[str] = None
    keypath: str = ""


@dataclass(frozen=True)
class ExtraHost:
    hostname: str
    address: str  # an IP as text, or the literal "host-gateway"
    keypath: str = ""


@dataclass(frozen=True)
class Link:
    service: str
    alias: str  # == service when no alias was given


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"
    required: bool = True
    restart: bool = False


@dataclass(frozen=True)
class PolicyPort:
    """A port or range of one protocol a policy rule allows (`5432/tcp`, `8000-8010/udp`)."""

    first: int
    last: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class PolicyRule:
    """One `x-compose-net.ingress`/`egress` rule: its peers (services, `host`, `outside`) and
    ports (empty: every port of every protocol)."""

    peers: tuple[str, ...]
    ports: tuple[PolicyPort, ...] = ()
    keypath: str = ""


@dataclass(frozen=True)
class Service:
    name: str
    network_mode: Optional[str] = None  # None, "host", "none", "bridge", "service:X", "container:X"
    networks: tuple[Attachment, ...] = ()  # empty when network_mode is set
    ports: tuple[PortMapping, ...] = ()
    expose: tuple[str, ...] = ()
    dns: tuple[IPAddress, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    extra_hosts: tuple[ExtraHost, ...] = ()
    hostname: Optional[str] = None
    domainname: Optional[str] = None
    mac_address: Optional[str] = None
    sysctls: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[Dependency, ...] = ()
    links: tuple[Link, ...] = ()
    replicas: int = 1
    container_name: Optional[str] = None
    profiles: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    # x-compose-net policy: None is Docker's behaviour (no rule), () allows nothing
    ingress: Optional[tuple[PolicyRule, ...]] = None
    egress: Optional[tuple[PolicyRule, ...]] = None
    keypath: str = ""  # services.NAME


@dataclass(frozen=True)
class Container:
    """One replica of a service: the unit that gets a network namespace."""

    name: str  # PROJECT-SERVICE-N or container_name; also the netns name
    service: str
    index: int  # 1-based replica number


Locator = Callable[[str], tuple[str, int]]


def _no_location(keypath: str) -> tuple[str, int]:
    return ("compose.yml", 0)


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: str
    services: Mapping[str, Service]  # in declaration order, active profiles only
    networks: Mapping[str, Network]  # keyed by network key; only networks some service uses, plus declared ones
    containers: tuple[Container, ...]  # replicas expanded, services in declaration order
    files: tuple[str, ...] = ()
    address_pools: tuple[AddressPool, ...] = ()  # the project's own, tried before the host's
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    locate: Locator = field(default=_no_location, repr=False, compare=False)
