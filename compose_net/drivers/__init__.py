"""Network drivers, one module each; `get(name)` gives the one for a network's `driver:`.

`container_mode(service, drivers)` says how a container is connected: through interfaces on its
networks (None), or in one of the modes of `drivers.base` (network_mode host/none/bridge/
service:X/container:X, or networks whose drivers all give the same mode)."""

from __future__ import annotations

from typing import Iterable, Optional

from compose_net.drivers.base import HOST, LEGACY, NONE, SHARES, UNSUPPORTED, Driver

_DRIVERS: dict[str, Driver] = {}
# network_mode values and the container mode each gives
_NETWORK_MODES = {"host": HOST, "none": NONE, "bridge": LEGACY}


def get(name: str) -> Driver:
    """The driver called `name` (one of model.BUILTIN_DRIVERS); KeyError otherwise."""
    driver = _DRIVERS.get(name)
    if driver is None:
        driver = _DRIVERS[name] = _make(name)
    return driver


def _make(name: str) -> Driver:
    from compose_net.drivers.bridge import BridgeDriver
    from compose_net.drivers.host import HostDriver
    from compose_net.drivers.ipvlan import IpvlanDriver
    from compose_net.drivers.macvlan import MacvlanDriver
    from compose_net.drivers.none import NoneDriver
    from compose_net.drivers.overlay import OverlayDriver

    table = {"bridge": BridgeDriver, "overlay": OverlayDriver, "macvlan": MacvlanDriver,
             "ipvlan": IpvlanDriver, "host": HostDriver, "none": NoneDriver}
    return table[name]()


def container_mode(network_mode: Optional[str], drivers: Iterable[str]) -> Optional[str]:
    """The mode of a container with `network_mode` whose networks have `drivers`."""
    if network_mode:
        if network_mode.startswith("service:"):
            return SHARES
        return _NETWORK_MODES.get(network_mode, UNSUPPORTED)
    modes = {get(d).container_mode for d in drivers}
    return modes.pop() if len(modes) == 1 else None
