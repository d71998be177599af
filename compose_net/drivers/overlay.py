"""The overlay driver, single host for now: a bridge like the bridge driver's plus a VXLAN device
enslaved to it (VNI from a hash of the network name), ready for remote peers later."""

from __future__ import annotations

from compose_net.drivers.base import InterfaceLayout, NetworkLayout
from compose_net.drivers.bridge import BridgeDriver
from compose_net.plan.ops import Op, VxlanCreate
from compose_net.probe import HostFacts


class OverlayDriver:
    name = "overlay"

    def __init__(self) -> None:
        self._bridge = BridgeDriver()

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = self._bridge.network_ops(net, facts)
        if not facts.has_feature("vxlan"):
            warnings.append(f"network {net.name}: this kernel has no VXLAN support; up will fail")
        vxlan = VxlanCreate(net.unit, net.vxlan, net.vni, net.group, master=net.bridge, mtu=net.mtu,
                            note="single host: no remote peers yet")
        return [ops[0], vxlan] + ops[1:], warnings

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        return self._bridge.attach_ops(net, iface)
