"""The overlay driver: per host a bridge like the bridge driver's plus a VXLAN device enslaved to
it. Alone (no cluster store) it is a one-host network, its VNI a hash of its name. With a cluster
store (`cluster.ClusterFacts` in the host facts) the store fixes its subnet and VNI, the VXLAN
device starts at this host's underlay address without learning, and every endpoint on another
host is programmed: a static FDB entry (its MAC → its host's VTEP) and a neighbour entry that the
device's ARP proxy answers from, so nothing is flooded between hosts."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any, Mapping

from compose_net import naming
from compose_net.drivers.base import MTU_OPT, NAT, Driver, InterfaceLayout, NetworkLayout
from compose_net.drivers.bridge import BridgeDriver
from compose_net.ipam import Subnet
from compose_net.model import Network
from compose_net.plan.ops import FdbSet, NeighSet, Op, VxlanCreate
from compose_net.probe import HostFacts

ENCRYPTED_OPT = "encrypted"
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


class OverlayDriver(BridgeDriver):
    name = "overlay"
    ipv6_only = False  # Docker has no IPv6-only overlay networks
    cluster_scoped = True

    def check_options(self, opts: Mapping[str, Any]) -> list[tuple[str, str]]:
        return super().check_options({k: v for k, v in opts.items() if k != ENCRYPTED_OPT})

    def check_network(self, opts: Mapping[str, Any], internal: bool, enable_ipv4: bool,
                      enable_ipv6: bool) -> list[tuple[str, str]]:
        # the bridge's gateway modes are the bridge driver's: an overlay network ignores them
        return Driver.check_network(self, {k: v for k, v in opts.items() if k != ENCRYPTED_OPT},
                                    internal, enable_ipv4, enable_ipv6)

    def host_devices(self, net: Network) -> tuple[str, ...]:
        if net.external:
            return ()
        return super().host_devices(net) + (naming.vxlan_name(net.name),)

    def layout(self, net: Network, base: NetworkLayout) -> tuple[NetworkLayout, list[str]]:
        layout, notes = super().layout(net, base)
        return replace(layout, vxlan=naming.vxlan_name(net.name), vni=naming.vxlan_vni(net.name),
                       gateway_mode4=NAT, gateway_mode6=NAT, trusted_interfaces=(), host_binding=None,
                       encrypted=ENCRYPTED_OPT in net.driver_opts), \
            [n for n in notes if "gateway mode" not in n]

    def in_cluster(self, net: NetworkLayout, cluster: Any) -> NetworkLayout:
        claim = cluster.claims.get(net.name) if cluster is not None else None
        if claim is None:
            return net
        v4 = next((s for s in net.subnets if s.subnet.version == 4), None)
        gateway = v4.gateway if v4 is not None and v4.subnet == claim.subnet else next(claim.subnet.hosts())
        subnet = Subnet(claim.subnet, gateway, auto=v4 is None or v4.auto,
                        note=f"{net.name}: subnet {claim.subnet}, VNI {claim.vni} (cluster store)")
        mtu = net.mtu or (cluster.underlay_mtu - VXLAN_OVERHEAD if cluster.underlay_mtu else None)
        return replace(net, subnets=(subnet,) + tuple(s for s in net.subnets if s.subnet.version == 6),
                       vni=claim.vni, mtu=mtu)

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        ops, warnings = super().network_ops(net, facts)
        if not facts.has_feature("vxlan"):
            warnings.append(f"network {net.name}: this kernel has no VXLAN support; up will fail")
        encrypted = net.encrypted
        if encrypted:
            warnings.append(f"network {net.name}: encrypted needs IPsec (xfrm) or WireGuard, which "
                            "compose-net does not program; up refuses it")
        cluster = facts.cluster
        if cluster is None or net.name not in cluster.claims:
            vxlan = VxlanCreate(net.unit, net.vxlan, net.vni, net.group, master=net.bridge, mtu=net.mtu,
                                encrypted=encrypted, note="single host: no cluster store")
            return [ops[0], vxlan] + ops[1:], warnings
        vxlan = VxlanCreate(net.unit, net.vxlan, net.vni, net.group, master=net.bridge, mtu=net.mtu,
                            local=cluster.host, learning=False, proxy=True, encrypted=encrypted,
                            note=f"VTEP {cluster.host}")
        if net.mtu and cluster.underlay_mtu and net.mtu > cluster.underlay_mtu - VXLAN_OVERHEAD:
            warnings.append(f"network {net.name}: {MTU_OPT} {net.mtu} does not fit the underlay's MTU "
                            f"{cluster.underlay_mtu} less the VXLAN overhead ({VXLAN_OVERHEAD})")
        remote: list[Op] = []
        for ep in cluster.remote:
            if ep.network == net.name:
                why = f"{ep.container} on host {ep.host}"
                remote.append(FdbSet(net.unit, net.vxlan, ep.mac, ep.vtep, note=why))
                remote.append(NeighSet(net.unit, net.vxlan, ep.address, ep.mac, note=why))
        return [ops[0], vxlan] + ops[1:] + remote, warnings

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        return super().attach_ops(net, iface)
