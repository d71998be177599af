"""The overlay driver, single host for now: a bridge like the bridge driver's plus a VXLAN device
enslaved to it (VNI from a hash of the network name), ready for remote peers later."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from compose_net import naming
from compose_net.drivers.base import NAT, Driver, InterfaceLayout, NetworkLayout
from compose_net.drivers.bridge import BridgeDriver
from compose_net.model import Network
from compose_net.plan.ops import Op, VxlanCreate
from compose_net.probe import HostFacts


class OverlayDriver(BridgeDriver):
    name = "overlay"
    ipv6_only = False  # Docker has no IPv6-only overlay networks

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        return super().check_options(opts)

    def check_network(self, opts: Mapping[str, Any], internal: bool, enable_ipv4: bool,
                      enable_ipv6: bool) -> list[tuple[str, str]]:
        # the bridge's gateway modes are the bridge driver's: an overlay network ignores them
        return Driver.check_network(self, opts, internal, enable_ipv4, enable_ipv6)

    def host_devices(self, net: Network) -> tuple[str, ...]:
        if net.external:
            return ()
        return super().host_devices(net) + (naming.vxlan_name(net.name),)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        layout, notes = super().layout(net, base)
        return replace(layout, vxlan=naming.vxlan_name(net.name), vni=naming.vxlan_vni(net.name),
                       gateway_mode4=NAT, gateway_mode6=NAT, trusted_interfaces=(), host_binding=None), \
            [n for n in notes if "gateway mode" not in n]

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = super().network_ops(net, facts)
        if not facts.has_feature("vxlan"):
            warnings.append(f"network {net.name}: this kernel has no VXLAN support; up will fail")
        vxlan = VxlanCreate(net.unit, net.vxlan, net.vni, net.group, master=net.bridge, mtu=net.mtu,
                            note="single host: no remote peers yet")
        return [ops[0], vxlan] + ops[1:], warnings

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        return super().attach_ops(net, iface)
