"""The none driver: the container keeps a namespace with only `lo`; nothing else is created."""

from __future__ import annotations

from compose_net.drivers.base import NONE, Driver


class NoneDriver(Driver):
    name = "none"
    container_mode = NONE
