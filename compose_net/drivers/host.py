"""The host driver: the container uses the host's own namespace; nothing is created."""

from __future__ import annotations

from compose_net.drivers.base import InterfaceLayout, NetworkLayout
from compose_net.plan.ops import Op
from compose_net.probe import HostFacts


class HostDriver:
    name = "host"

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        return [], []

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        return []
