"""The macvlan driver: each container gets a macvlan sub-interface of the parent link, born in
its namespace. A parent like `eth0.10` that the host lacks gets its 802.1q sub-interface."""

from __future__ import annotations

import re
from typing import Optional

from compose_net.drivers.base import InterfaceLayout, NetworkLayout, address_ops
from compose_net.plan.ops import BridgeCreate, MacvlanCreate, Op, VlanCreate
from compose_net.probe import HostFacts

MODES = ("bridge", "private", "vepa", "passthru")
_VLAN = re.compile(r"^(?P<link>.+)\.(?P<id>\d{1,4})$")


def vlan_of(parent: str) -> Optional[tuple[str, int]]:
    m = _VLAN.match(parent)
    if m and 1 <= int(m["id"]) <= 4094:
        return m["link"], int(m["id"])
    return None


def parent_ops(net: NetworkLayout, facts: HostFacts, kind: str) -> tuple[list[Op], list[str]]:
    """The VLAN sub-interface a dotted parent needs, and warnings when the parent is missing."""
    ops: list[Op] = []
    warnings: list[str] = []
    parent = net.parent or ""
    if net.own_parent:
        return [BridgeCreate(net.unit, parent, net.group, mtu=net.mtu,
                             note="no parent given: a private link stands in for Docker's dummy")], warnings
    if parent in facts.links or not facts.links and not facts.features_known:
        return ops, warnings
    vlan = vlan_of(parent)
    if vlan:
        link, vid = vlan
        ops.append(VlanCreate(net.unit, parent, link, vid, net.group,
                              note=f"parent {parent} is missing: created as VLAN {vid} of {link}"))
        if link not in facts.links:
            warnings.append(f"network {net.name}: {kind} parent's link {link} does not exist here; up will fail")
        if not facts.has_feature("8021q"):
            warnings.append(f"network {net.name}: this kernel has no 802.1q VLAN support; up will fail")
    else:
        warnings.append(f"network {net.name}: {kind} parent {parent} does not exist here; up will fail")
    return ops, warnings


class MacvlanDriver:
    name = "macvlan"

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = parent_ops(net, facts, "macvlan")
        if not facts.has_feature("macvlan"):
            warnings.append(f"network {net.name}: this kernel has no macvlan support; up will fail")
        return ops, warnings

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        link = MacvlanCreate(iface.unit, iface.ifname, iface.netns, net.parent, mode=net.mode or "bridge",
                             mac=iface.mac, mtu=net.mtu)
        return [link] + address_ops(net, iface)
