"""The bridge driver: a Linux bridge holding the gateway addresses, one veth pair per container."""

from __future__ import annotations

from compose_net.drivers.base import InterfaceLayout, NetworkLayout, address_ops, gateway_ops
from compose_net.plan.ops import BridgeCreate, Op, SysctlSet, VethCreate
from compose_net.probe import HostFacts


class BridgeDriver:
    name = "bridge"

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
