"""What a network driver is to the rest of compose-net, and what all drivers share.

A driver owns everything about its kind of network (as netavark's do): which `driver_opts` it
takes and how they are checked, which host devices a network of its kind has, how its layout is
derived from the compose network and its subnets, the ops that create the network and attach a
container, and what `docker network inspect` shows as its options. Nothing outside `drivers/`
asks which driver a network has; the planner asks the driver.

Drivers never fail on host facts (a missing parent, a kernel without ipvlan): `up --dry-run`
must plan anywhere. They return warnings instead; the executor checks again before touching
anything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from compose_net.ipam import Subnet
from compose_net.model import Network
from compose_net.plan.ops import Op
from compose_net.probe import HostFacts
from compose_net.summary import ISOLATED, NAT, NAT_UNPROTECTED, ROUTED

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

MTU_OPT = "com.docker.network.driver.mtu"
MASQ_OPT = "com.docker.network.bridge.enable_ip_masquerade"
ICC_OPT = "com.docker.network.bridge.enable_icc"

# Docker's gateway modes; every driver but the bridge has only `nat`'s meaning (its own
# masquerade setting)
GATEWAY_MODES = (NAT, NAT_UNPROTECTED, ROUTED, ISOLATED)

# Per attachment (any driver, as Docker's is not driver-specific): sysctls of that interface,
# "net.ipv4.conf.IFNAME.forwarding=1,...", IFNAME standing for the interface's name inside
ENDPOINT_SYSCTLS_OPT = "com.docker.network.endpoint.sysctls"
ENDPOINT_SYSCTL_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.mpls.")
# the per-interface trees: the name's fourth step is the interface
_PER_INTERFACE = {("net", "ipv4", "conf"), ("net", "ipv4", "neigh"), ("net", "ipv6", "conf"),
                  ("net", "ipv6", "neigh"), ("net", "mpls", "conf")}
_SYSCTL_STEP = re.compile(r"[A-Za-z0-9_-]+")
_SYSCTL_VALUE = re.compile(r"[A-Za-z0-9_.:+-]+")

# How a container is connected: through its networks' interfaces (None), or in a mode.
HOST = "host"  # the host's own namespace (network_mode: host, or only networks of a host driver)
NONE = "none"  # a namespace with only `lo`
LEGACY = "legacy"  # network_mode: bridge, the legacy default bridge shared by every project
SHARES = "shares"  # network_mode: service:X, X's namespace
UNSUPPORTED = "unsupported"  # network_mode: container:X (no such container here)


def endpoint_sysctls(text: Any) -> tuple[list[tuple[tuple[str, ...], str]], list[str]]:
    """The settings of `com.docker.network.endpoint.sysctls` as (name steps, value), or what is
    wrong with them. Only net.ipv4./net.ipv6./net.mpls. keys (Docker's rule), and only keys of
    the interface itself, named IFNAME: a key naming another interface, `all` or `default`, or
    the namespace as a whole would reach past this attachment (service `sysctls` are for those)."""
    settings: list[tuple[tuple[str, ...], str]] = []
    problems: list[str] = []
    for item in str(text).split(","):
        if not item.strip():
            problems.append(f'empty setting in "{text}" (expected KEY=VALUE,...)')
            continue
        key, eq, value = (x.strip() for x in item.partition("="))
        if not eq or not key:
            problems.append(f'"{item.strip()}" is not KEY=VALUE')
            continue
        steps = tuple(key.split("."))
        if not key.startswith(ENDPOINT_SYSCTL_PREFIXES):
            problems.append(f'sysctl "{key}" is not allowed: only net.ipv4., net.ipv6. and net.mpls. keys')
        elif not all(_SYSCTL_STEP.fullmatch(step) for step in steps):
            problems.append(f'invalid sysctl name "{key}"')
        elif len(steps) != 5 or steps[:3] not in _PER_INTERFACE or steps[3] != "IFNAME":
            problems.append(f'sysctl "{key}" is not a setting of this interface: write it as '
                            f"{'.'.join(steps[:3]) if steps[:3] in _PER_INTERFACE else 'net.ipv4.conf'}.IFNAME.NAME "
                            "(settings of the whole namespace go in the service's sysctls)")
        elif not _SYSCTL_VALUE.fullmatch(value):
            problems.append(f'sysctl {key} value "{value}" is not one word of letters, digits and _.:+-')
        else:
            settings.append((steps, value))
    return settings, problems


def interface_sysctls(text: Any, ifname: str) -> tuple[tuple[str, str], ...]:
    """The settings with IFNAME replaced, as /proc/sys paths (slashes: an interface name may hold
    dots). A second line of defence behind the loader: a bad setting or an interface name that
    would make the path name another file is refused here too."""
    from compose_net.errors import PlanError

    settings, problems = endpoint_sysctls(text)
    if problems:
        raise PlanError(problems[0])
    if not ifname or ifname in (".", "..", "all", "default") or "/" in ifname or len(ifname.encode()) > 15:
        raise PlanError(f"refusing per-endpoint sysctls for interface name {ifname!r}")
    return tuple(("/".join(ifname if step == "IFNAME" else step for step in steps), value)
                 for steps, value in settings)


@dataclass(frozen=True)
class NetworkLayout:
    """One network as the plan realises it."""

    key: str  # the compose key ("" for the legacy bridge)
    name: str  # full name
    driver: str
    unit: str  # "network:NAME", or "shared:cn0" for the legacy bridge
    group: int  # link group of the links this network creates
    subnets: tuple[Subnet, ...] = ()
    bridge: Optional[str] = None  # bridge device (bridge, overlay); None for macvlan/ipvlan/host/none
    parent: Optional[str] = None  # macvlan/ipvlan parent link
    mode: Optional[str] = None  # macvlan/ipvlan mode
    flag: Optional[str] = None  # ipvlan flag (bridge/private/vepa)
    own_parent: bool = False  # no parent was given: the plan creates one (a private bridge)
    mtu: Optional[int] = None
    internal: bool = False
    external: bool = False
    shared: bool = False
    masquerade: bool = True
    icc: bool = True
    enable_ipv6: bool = False
    route_localnet: bool = False  # some port is published on loopback via this bridge
    routed: bool = False  # the parent routes (ipvlan l3): a default route needs no gateway
    forwards: bool = False  # the host routes this network's traffic (ip_forward)
    vxlan: Optional[str] = None
    vni: Optional[int] = None
    labels: Mapping[str, str] = field(default_factory=dict)
    keypath: str = ""
    enable_ipv4: bool = True
    gateway_mode4: str = NAT  # Docker's gateway modes, per family (bridge only): nat, nat-unprotected,
    gateway_mode6: str = NAT  # routed, isolated
    trusted_interfaces: tuple[str, ...] = ()  # host links from which published container ports are open directly
    host_binding: Optional[ipaddress._BaseAddress] = None  # the host address of a `ports:` entry without one
    encrypted: bool = False  # overlay `encrypted` asked for (refused at up: no xfrm/WireGuard)

    def gateway_mode(self, version: int) -> str:
        return self.gateway_mode4 if version == 4 else self.gateway_mode6

    def gateway(self, version: int) -> Optional[ipaddress._BaseAddress]:
        for s in self.subnets:
            if s.subnet.version == version:
                return s.gateway
        return None

    def subnet(self, version: int) -> Optional[Subnet]:
        for s in self.subnets:
            if s.subnet.version == version:
                return s
        return None


@dataclass(frozen=True)
class InterfaceLayout:
    """One container's interface on one network."""

    container: str
    unit: str  # "container:NAME"
    netns: str
    network: str  # network key ("" for the legacy bridge)
    ifname: str  # name inside the container (eth0, ...)
    host_ifname: Optional[str]  # host end of a veth pair; None for macvlan/ipvlan
    mac: Optional[str]
    ipv4: Optional[ipaddress.IPv4Interface] = None
    ipv6: Optional[ipaddress.IPv6Interface] = None
    ipv4_note: str = ""
    ipv6_note: str = ""
    link_local: tuple[IPInterface, ...] = ()  # `link_local_ips`: extra link-scope addresses
    hairpin: bool = False  # the container publishes ports: it may reach itself through them
    sysctls: tuple[tuple[str, str], ...] = ()  # com.docker.network.endpoint.sysctls: (/proc/sys path, value)


class Driver:
    """The defaults every driver starts from: a network with no devices and no addresses."""

    name = ""
    addressed = False  # IPAM numbers its networks
    lan = False  # its subnets are the parent's LAN: a host route to them is expected, not a clash
    cluster_scoped: bool = False  # its networks span hosts through the cluster store
    container_mode: Optional[str] = None  # HOST/NONE: a container only on such networks gets that mode


    def in_cluster(self, net: "NetworkLayout", cluster: Any) -> "NetworkLayout":
        """The layout as the cluster store fixes it (subnet, VNI, MTU); only cluster-scoped drivers
        change it."""
        return net
    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with `driver_opts`: (option key, message naming the value)."""
        return []

    ipv6_only = False  # `enable_ipv4: false` is allowed (Docker: bridge, macvlan, ipvlan)

    def check_network(self, opts: Mapping[str, Any], internal: bool, enable_ipv4: bool,
                      enable_ipv6: bool) -> list[tuple[str, str]]:
        """Problems of the network as a whole (options that depend on its other settings):
        (key path below the network, message). The loader reports them at their lines; the
        layout checks again."""
        problems = [(f"driver_opts.{k}", m) for k, m in self.check_options(opts)]
        if not enable_ipv4:
            if not self.ipv6_only:
                problems.append(("enable_ipv4", f"the {self.name} driver cannot make an IPv6-only network "
                                                "(Docker: bridge, macvlan and ipvlan only)"))
            elif not enable_ipv6:
                problems.append(("enable_ipv4", "a network needs IPv4 or IPv6: enable_ipv4 false needs "
                                                "enable_ipv6 true"))
        return problems

    def host_devices(self, net: Network) -> tuple[str, ...]:
        """The host links a network of this driver makes (known before its subnets are)."""
        return ()

    def gateway_needed(self, net: Network) -> bool:
        """Whether a subnet given without a gateway gets its first host address as one."""
        return True

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        """The network as this driver realises it, from the common `base`; plus notes."""
        return base, []

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        """The ops creating the network (in the host), and warnings about this host."""
        return [], []

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        """The ops giving the container its interface with its addresses (no routes)."""
        return []

    def inspect_options(self, net: Any) -> dict[str, str]:
        """`docker network inspect`'s Options for a recorded network (`summary.NetworkState`)
        that differ from this driver's defaults."""
        return {}


def address_ops(net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
    from compose_net.plan.ops import AddrAdd, LinkUp, SysctlSet

    # the interface's own sysctls before it is up and addressed (disable_ipv6, accept_ra...)
    ops: list[Op] = [SysctlSet(iface.unit, iface.netns, key, value, note=ENDPOINT_SYSCTLS_OPT)
                     for key, value in iface.sysctls]
    ops.append(LinkUp(iface.unit, iface.netns, iface.ifname))
    if iface.ipv4 is not None:
        ops.append(AddrAdd(iface.unit, iface.netns, iface.ifname, iface.ipv4, note=iface.ipv4_note))
    if iface.ipv6 is not None:
        ops.append(AddrAdd(iface.unit, iface.netns, iface.ifname, iface.ipv6, note=iface.ipv6_note))
    for extra in iface.link_local:
        ops.append(AddrAdd(iface.unit, iface.netns, iface.ifname, extra, note="link_local_ips"))
    return ops


def gateway_ops(net: NetworkLayout, dev: str) -> list[Op]:
    """The gateway addresses on the network's host-side device."""
    from compose_net.plan.ops import AddrAdd

    ops: list[Op] = []
    for s in net.subnets:
        if s.gateway is None or net.gateway_mode(s.subnet.version) == ISOLATED:
            continue
        iface = ipaddress.ip_interface(f"{s.gateway}/{s.subnet.prefixlen}")
        ops.append(AddrAdd(net.unit, None, dev, iface, note=s.note))
    return ops


def false(value: Optional[str]) -> bool:
    return str(value).strip().lower() in ("false", "0", "no", "off")
