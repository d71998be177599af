"""The bridge driver: a Linux bridge holding the gateway addresses, one veth pair per container.

It also makes the legacy default bridge (`network_mode: bridge`, Docker's docker0), `cn0`,
which every project shares."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Mapping

from compose_net import ipam, naming
from compose_net.drivers.base import (ICC_OPT, MASQ_OPT, Driver, InterfaceLayout, NetworkLayout, address_ops,
                                      false, gateway_ops)
from compose_net.model import Network
from compose_net.plan.ops import BridgeCreate, Op, SysctlSet, VethCreate
from compose_net.probe import HostFacts

_IFNAME_BAD = re.compile(r"[\s/:]")
LEGACY_UNIT = f"shared:{naming.LEGACY_BRIDGE}"


def check_ifname(value: Any, what: str) -> list[str]:
    name = str(value)
    if len(name.encode()) > naming.IFNAMSIZ:
        return [f'{what} "{name}" is longer than {naming.IFNAMSIZ} bytes']
    if not name or name in (".", "..") or _IFNAME_BAD.search(name):
        return [f'invalid {what} "{name}"']
    return []


class BridgeDriver(Driver):
    name = "bridge"
    addressed = True

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        if naming.BRIDGE_NAME_OPT in opts:
            return [(naming.BRIDGE_NAME_OPT, m) for m in check_ifname(opts[naming.BRIDGE_NAME_OPT], "bridge name")]
        return []

    def host_devices(self, net: Network) -> tuple[str, ...]:
        return () if net.external else (naming.bridge_name(net.name, net.driver_opts),)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        return replace(base, bridge=naming.bridge_name(net.name, net.driver_opts),
                       masquerade=base.masquerade and not false(net.driver_opts.get(MASQ_OPT)),
                       icc=not false(net.driver_opts.get(ICC_OPT)), forwards=True), []

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
        if net.bridge and not str(net.bridge).startswith("cn"):
            opts[naming.BRIDGE_NAME_OPT] = net.bridge
        if net.icc is False:
            opts[ICC_OPT] = "false"
        if net.masquerade is False and not net.internal:
            opts[MASQ_OPT] = "false"
        return opts
