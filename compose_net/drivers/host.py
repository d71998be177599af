"""The host driver: the container uses the host's own namespace; nothing is created."""

from __future__ import annotations

from compose_net.drivers.base import HOST, Driver


class HostDriver(Driver):
    name = "host"
    container_mode = HOST
