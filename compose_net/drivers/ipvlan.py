"""The ipvlan driver: like macvlan, but the sub-interfaces share the parent's MAC (modes l2, l3,
l3s; flags bridge, private, vepa). In l3 modes the parent routes: there is no gateway, and the
default route is `dev ethN`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from compose_net import ipam
from compose_net.drivers.base import InterfaceLayout, NetworkLayout, address_ops
from compose_net.drivers.macvlan import SublinkDriver, check_choice, check_parent
from compose_net.model import Network
from compose_net.plan.ops import IpvlanCreate, Op

MODES = ("l2", "l3", "l3s")
FLAGS = ("bridge", "private", "vepa")


class IpvlanDriver(SublinkDriver):
    name = kind = "ipvlan"

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        return (check_choice(opts, "ipvlan_mode", MODES, "ipvlan mode")
                + check_choice(opts, "ipvlan_flag", FLAGS, "ipvlan flag") + check_parent(opts))

    def gateway_needed(self, net: Network) -> bool:
        return net.driver_opts.get("ipvlan_mode", "l2") == "l2"

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        layout, notes = super().layout(net, base)
        mode = net.driver_opts.get("ipvlan_mode", "l2")
        layout = replace(layout, mode=mode, flag=net.driver_opts.get("ipvlan_flag", "bridge"))
        if mode == "l2":
            return layout, notes
        # in l3 modes the parent routes: containers have no gateway on the LAN, and the address
        # a gateway would take is handed out like any other
        subnets = tuple(
            ipam.Subnet(s.subnet, None, s.ip_range, s.aux, s.auto, s.keypath,
                        s.note.split(", gateway ")[0] + f", no gateway (ipvlan {mode}: the parent routes)")
            for s in layout.subnets)
        return replace(layout, subnets=subnets, routed=True), notes

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        link = IpvlanCreate(iface.unit, iface.ifname, iface.netns, net.parent, mode=net.mode or "l2",
                            flag=net.flag or "bridge", mtu=net.mtu)
        return [link] + address_ops(net, iface)
