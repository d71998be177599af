"""The macvlan driver: each container gets a macvlan sub-interface of the parent link, born in
its namespace. A parent like `eth0.10` that the host lacks gets its 802.1q sub-interface; a
network without a parent gets a private one (Docker gives it a dummy link)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Mapping, Optional

from compose_net import naming
from compose_net.drivers.base import Driver, InterfaceLayout, NetworkLayout, address_ops
from compose_net.drivers.bridge import check_ifname
from compose_net.model import Network
from compose_net.plan.ops import BridgeCreate, MacvlanCreate, Op, VlanCreate
from compose_net.probe import HostFacts

MODES = ("bridge", "private", "vepa", "passthru")
_VLAN = re.compile(r"^(?P<link>.+)\.(?P<id>\d{1,4})$")


def vlan_of(parent: str) -> Optional[tuple[str, int]]:
    m = _VLAN.match(parent)
    if m and 1 <= int(m["id"]) <= 4094:
        return m["link"], int(m["id"])
    return None


def check_choice(opts: Mapping[str, Any], key: str, choices: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    if key in opts and opts[key] not in choices:
        return [(key, f'invalid {what} "{opts[key]}": expected {", ".join(choices)}')]
    return []


def check_parent(opts: Mapping[str, Any]) -> list[tuple[str, str]]:
    if "parent" not in opts:
        return []
    return [("parent", m.replace("parent interface name", "parent interface"))
            for m in check_ifname(opts["parent"], "parent interface name")]


class SublinkDriver(Driver):
    """What macvlan and ipvlan share: a parent link, sub-interfaces born in the namespaces, the
    parent's LAN as subnet, no masquerade."""

    ipv6_only = True  # Docker's macvlan and ipvlan networks may be IPv6-only
    addressed = True
    lan = True
    kind = ""

    def host_devices(self, net: Network) -> tuple[str, ...]:
        if net.external or net.driver_opts.get("parent"):
            return ()
        return (naming.dummy_parent_name(net.name),)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        parent = net.driver_opts.get("parent")
        notes: list[str] = []
        if not parent:
            # Docker gives a parentless macvlan/ipvlan network a dummy link; this kernel has no
            # dummy driver, so a bridge of its own stands in: the containers reach each other
            # and nothing else, as on Docker's dummy parent
            parent = naming.dummy_parent_name(net.name)
            notes.append(f"{net.name}: no driver_opts.parent, so a private parent link {parent} "
                         f"is created (Docker uses a dummy link)")
        return replace(base, parent=parent, own_parent=not net.driver_opts.get("parent"), masquerade=False,
                       forwards=True), notes

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = self.parent_ops(net, facts)
        if not facts.has_feature(self.kind):
            warnings.append(f"network {net.name}: this kernel has no {self.kind} support; up will fail")
        return ops, warnings

    def parent_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
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
                warnings.append(f"network {net.name}: {self.kind} parent's link {link} does not exist here; up will fail")
            if not facts.has_feature("8021q"):
                warnings.append(f"network {net.name}: this kernel has no 802.1q VLAN support; up will fail")
        else:
            warnings.append(f"network {net.name}: {self.kind} parent {parent} does not exist here; up will fail")
        return ops, warnings

    def inspect_options(self, net: Any) -> dict[str, str]:
        opts: dict[str, str] = {}
        if net.parent:
            opts["parent"] = net.parent
        if net.mode:
            opts[f"{self.kind}_mode"] = net.mode
        return opts


class MacvlanDriver(SublinkDriver):
    name = kind = "macvlan"

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        return check_choice(opts, "macvlan_mode", MODES, "macvlan mode") + check_parent(opts)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        layout, notes = super().layout(net, base)
        return replace(layout, mode=net.driver_opts.get("macvlan_mode", "bridge")), notes

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        link = MacvlanCreate(iface.unit, iface.ifname, iface.netns, net.parent, mode=net.mode or "bridge",
                             mac=iface.mac, mtu=net.mtu)
        return [link] + address_ops(net, iface)
