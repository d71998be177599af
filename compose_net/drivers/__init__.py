"""Network drivers, one module each behind `base.Driver`."""

from __future__ import annotations

from compose_net.drivers.base import Driver


_DRIVERS: dict[str, Driver] = {}


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
