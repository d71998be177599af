"""The bridge driver: a Linux bridge holding the gateway addresses, one veth pair per container.

It also makes the legacy default bridge (`network_mode: bridge`, Docker's docker0), `cn0`,
which every project shares."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any, Mapping, Optional

from compose_net import ipam, naming
from compose_net.drivers.base import (GATEWAY_MODES, ICC_OPT, ISOLATED, MASQ_OPT, NAT, NAT_UNPROTECTED, Driver,
                                      InterfaceLayout, NetworkLayout, address_ops, false, gateway_ops)
from compose_net.model import Network
from compose_net.plan.ops import BridgeCreate, Op, SysctlSet, VethCreate
from compose_net.probe import HostFacts

_IFNAME_BAD = re.compile(r"[\s/:]")
LEGACY_UNIT = f"shared:{naming.LEGACY_BRIDGE}"

# Docker 27-29's bridge options, as its docs "Port publishing and mapping" and "Bridge network
# driver" describe them
GATEWAY_MODE_OPTS = {4: "com.docker.network.bridge.gateway_mode_ipv4", 6: "com.docker.network.bridge.gateway_mode_ipv6"}
HOST_BINDING_OPTS = {4: "com.docker.network.bridge.host_binding_ipv4", 6: "com.docker.network.bridge.host_binding_ipv6"}
TRUSTED_OPT = "com.docker.network.bridge.trusted_host_interfaces"


def check_ifname(value: Any, what: str) -> list[str]:
    name = str(value)
    if len(name.encode()) > naming.IFNAMSIZ:
        return [f'{what} "{name}" is longer than {naming.IFNAMSIZ} bytes']
    if not name or name in (".", "..") or _IFNAME_BAD.search(name):
        return [f'invalid {what} "{name}"']
    return []


def gateway_mode(opts: Mapping[str, Any], version: int) -> str:
    return str(opts.get(GATEWAY_MODE_OPTS[version]) or NAT).strip()


def host_binding(opts: Mapping[str, Any]) -> Optional[ipaddress._BaseAddress]:
    """The default host address of published ports: `host_binding_ipv4` (which may hold an IPv6
    address, as Docker documents), else `host_binding_ipv6`."""
    for version in (4, 6):
        text = str(opts.get(HOST_BINDING_OPTS[version]) or "").strip()
        if text:
            return ipaddress.ip_address(text)
    return None


def trusted_interfaces(opts: Mapping[str, Any]) -> tuple[str, ...]:
    text = str(opts.get(TRUSTED_OPT) or "")
    return tuple(name for name in text.split(":") if name)


MODE_WORDS = {
    NAT_UNPROTECTED: "NAT and masquerade, and every container port open to direct routing (no port filter)",
    "routed": "no NAT or masquerade: containers are reached at their own addresses, only published "
              "container ports open, the host port unused",
    ISOLATED: "no address on the bridge: the host is not reachable from the network",
}


def _check_binding(value: Any, version: int) -> list[str]:
    text = str(value).strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return [f'host binding "{value}" is not an IP address']
    if version == 6 and addr.version != 6:
        return [f"host binding {addr} is not an IPv6 address"]
    return []


class BridgeDriver(Driver):
    name = "bridge"
    addressed = True
    ipv6_only = True

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if naming.BRIDGE_NAME_OPT in opts:
            problems += [(naming.BRIDGE_NAME_OPT, m) for m in check_ifname(opts[naming.BRIDGE_NAME_OPT], "bridge name")]
        for version, key in GATEWAY_MODE_OPTS.items():
            if key in opts and gateway_mode(opts, version) not in GATEWAY_MODES:
                problems.append((key, f'unknown gateway mode "{opts[key]}" (expected {", ".join(GATEWAY_MODES)})'))
        for version, key in HOST_BINDING_OPTS.items():
            if key in opts:
                problems += [(key, m) for m in _check_binding(opts[key], version)]
        if TRUSTED_OPT in opts:
            text = str(opts[TRUSTED_OPT])
            if not text.strip(":"):
                problems.append((TRUSTED_OPT, f'"{text}" names no interface (colon-separated names, like eth3:vxlan.1)'))
            for name in text.split(":"):
                if name:
                    problems += [(TRUSTED_OPT, m) for m in check_ifname(name, "trusted host interface")]
        return problems

    def check_network(self, opts: Mapping[str, Any], internal: bool, enable_ipv4: bool,
                      enable_ipv6: bool) -> list[tuple[str, str]]:
        problems = super().check_network(opts, internal, enable_ipv4, enable_ipv6)
        for version, key in GATEWAY_MODE_OPTS.items():
            if gateway_mode(opts, version) == ISOLATED and not internal:
                problems.append((f"driver_opts.{key}", "gateway mode isolated needs internal: true (Docker "
                                                       "refuses it on a network with a way out)"))
        return problems

    def host_devices(self, net: Network) -> tuple[str, ...]:
        return () if net.external else (naming.bridge_name(net.name, net.driver_opts),)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        opts = net.driver_opts
        layout = replace(base, bridge=naming.bridge_name(net.name, opts),
                         masquerade=base.masquerade and not false(opts.get(MASQ_OPT)),
                         icc=not false(opts.get(ICC_OPT)), forwards=True,
                         gateway_mode4=gateway_mode(opts, 4), gateway_mode6=gateway_mode(opts, 6),
                         trusted_interfaces=trusted_interfaces(opts), host_binding=host_binding(opts))
        notes = []
        for version in (4, 6):
            mode = layout.gateway_mode(version)
            if mode != NAT and layout.subnet(version) is not None:
                notes.append(f"{net.name}: IPv{version} gateway mode {mode}: {MODE_WORDS[mode]}")
        return layout, notes

    @staticmethod
    def legacy_layout(subnet: ipam.Subnet) -> NetworkLayout:
        """Docker's docker0: `cn0` with the subnet `ipam.legacy_subnet` chose (172.17.0.0/16
        when free), in a link group no project owns."""
        return NetworkLayout(
            key="", name=naming.LEGACY_NETWORK, driver="bridge", unit=LEGACY_UNIT, group=naming.LEGACY_GROUP,
            bridge=naming.LEGACY_BRIDGE, external=True, shared=True, forwards=True,
            subnets=(subnet,),
        )

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        warnings: list[str] = []
        if not facts.has_feature("bridge"):
            warnings.append(f"network {net.name}: this kernel has no bridge support; up will fail")
        note = "shared by every project using network_mode: bridge; kept while one uses it" if net.shared else ""
        ops: list[Op] = [BridgeCreate(net.unit, net.bridge, net.group, mtu=net.mtu, note=note)]
        ops += self.bridge_sysctls(net)
        ops += gateway_ops(net, net.bridge)
        return ops, warnings

    @staticmethod
    def bridge_sysctls(net: NetworkLayout) -> list[Op]:
        ops: list[Op] = []
        if net.enable_ipv6:
            # the gateway must answer at once: a tentative address is unusable until DAD ends
            ops.append(SysctlSet(net.unit, None, f"net.ipv6.conf.{net.bridge}.accept_dad", "0"))
        if net.route_localnet:
            ops.append(SysctlSet(net.unit, None, f"net.ipv4.conf.{net.bridge}.route_localnet", "1",
                                 note="ports published on loopback are DNATed out of this bridge"))
        return ops

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        veth = VethCreate(iface.unit, iface.host_ifname, iface.ifname, iface.netns, net.group,
                          master=net.bridge, mtu=net.mtu, peer_mac=iface.mac, hairpin=iface.hairpin)
        return [veth] + address_ops(net, iface)

    def inspect_options(self, net: Any) -> dict[str, str]:
        opts: dict[str, str] = {}
        for version, key in GATEWAY_MODE_OPTS.items():
            mode = getattr(net, f"gateway_mode_ipv{version}", NAT)
            if mode != NAT:
                opts[key] = mode
        if getattr(net, "trusted_interfaces", ()):
            opts[TRUSTED_OPT] = ":".join(net.trusted_interfaces)
        if net.bridge and not str(net.bridge).startswith("cn"):
            opts[naming.BRIDGE_NAME_OPT] = net.bridge
        if net.icc is False:
            opts[ICC_OPT] = "false"
        if net.masquerade is False and not net.internal:
            opts[MASQ_OPT] = "false"
        return opts
