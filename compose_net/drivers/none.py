"""The none driver: the container keeps a namespace with only `lo`; nothing else is created."""

from __future__ import annotations

from compose_net.drivers.base import InterfaceLayout, NetworkLayout
from compose_net.plan.ops import Op
from compose_net.probe import HostFacts


class NoneDriver:
    name = "none"

    def network_ops(self, net: NetworkLayout, facts: HostFacts) -> tuple[list[Op], list[str]]:
        return [], []

    def attach_ops(self, net: NetworkLayout, iface: InterfaceLayout) -> list[Op]:
        return []
