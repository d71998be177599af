"""The ipvlan driver: like macvlan, but the sub-interfaces share the parent's MAC (modes l2, l3,
l3s; flags bridge, private, vepa). In l3 modes there is no gateway: the default route is `dev`."""

from __future__ import annotations

from compose_net.drivers.base import InterfaceLayout, NetworkLayout, address_ops
from compose_net.drivers.macvlan import parent_ops
from compose_net.plan.ops import IpvlanCreate, Op
from compose_net.probe import HostFacts

MODES = ("l2", "l3", "l3s")
FLAGS = ("bridge", "private", "vepa")


class IpvlanDriver:
    name = "ipvlan"

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = parent_ops(net, facts, "ipvlan")
        if not facts.has_feature("ipvlan"):
            warnings.append(f"network {net.name}: this kernel has no ipvlan support; up will fail")
        return ops, warnings

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        link = IpvlanCreate(iface.unit, iface.ifname, iface.netns, net.parent, mode=net.mode or "l2",
                            flag=net.flag or "bridge", mtu=net.mtu)
        return [link] + address_ops(net, iface)
