"""Checks made before `up` touches anything, so a plan that cannot work changes nothing.

- every host link the plan refers to (a bridge to enslave to, a macvlan/ipvlan/vlan parent, an
  external network's bridge) exists or is created earlier in the plan;
- the kernel has a driver for every link kind the plan creates in namespaces (this machine, for
  one, has no ipvlan);
- no name the plan creates (network or UTS namespace, host link) is already taken by something
  not ours.
"""

from __future__ import annotations

from typing import Iterable, Optional

from compose_net.errors import RuntimeFailure
from compose_net.executor import namespaces
from compose_net.executor.netlink import Rtnl
from compose_net.plan import ops as O

_HOST_LINK_CREATORS = (O.BridgeCreate, O.VethCreate, O.VlanCreate, O.VxlanCreate)


def _refs(op: O.Op) -> list[tuple[str, str]]:
    """(link name, what it is to this op) for each host link `op` needs to exist already."""
    if isinstance(op, O.VethCreate) and op.master:
        return [(op.master, "bridge")]
    if isinstance(op, (O.MacvlanCreate, O.IpvlanCreate, O.VlanCreate)):
        return [(op.parent, "parent interface")]
    if isinstance(op, O.VxlanCreate):
        return [(n, w) for n, w in ((op.master, "bridge"), (op.dev, "interface")) if n]
    return []


def check(ops: Iterable[tuple[int, O.Op]], ours: frozenset = frozenset(), present: frozenset = frozenset()) -> None:
    """Raise RuntimeFailure naming the first problem. `ours`: object keys the project already owns
    (an earlier `up`), whose names may be reused; `present`: host links known to exist."""
    sock = Rtnl()
    try:
        _check(list(ops), sock, ours, present)
    finally:
        sock.close()


def _check(ops: list[tuple[int, O.Op]], sock: Rtnl, ours: frozenset, present: frozenset) -> None:
    made: set[str] = set(present)
    cache: dict[str, bool] = {}

    def host_has(name: str) -> bool:
        if name not in cache:
            cache[name] = sock.link_index(name) is not None
        return cache[name]

    for _, op in ops:
        if isinstance(op, O.VxlanCreate) and op.encrypted:
            raise RuntimeFailure(
                f"network {op.unit.partition(':')[2]}: encrypted overlay networks need IPsec (xfrm) or "
                "WireGuard, which compose-net does not program on this kernel; nothing was changed")
    kinds = {type(op) for _, op in ops}
    for cls, kind in ((O.IpvlanCreate, "ipvlan"), (O.MacvlanCreate, "macvlan"), (O.VlanCreate, "vlan"), (O.VxlanCreate, "vxlan")):
        if cls in kinds and not sock.kind_supported(kind):
            first = next(op for _, op in ops if isinstance(op, cls))
            raise RuntimeFailure(
                f"this kernel has no {kind} support, needed for {first.unit.partition(':')[2] or first.unit} "
                f"({first.describe()}); nothing was changed"
            )
    for seq, op in ops:
        for name, what in _refs(op):
            if name not in made and not host_has(name):
                target = op.unit.partition(":")[2] or op.unit
                raise RuntimeFailure(
                    f"{what} {name} does not exist (needed by {target}: op {seq}, {op.describe()}); nothing was changed"
                )
        if isinstance(op, (O.NetnsCreate, O.NetnsAlias)):
            if ("netns", op.name) not in ours and namespaces.exists(op.name):
                raise RuntimeFailure(
                    f"network namespace {op.name} already exists and is not this project's; nothing was changed"
                )
        if isinstance(op, (O.UtsCreate, O.UtsAlias)):
            if ("uts", op.name) not in ours and namespaces.uts_exists(op.name):
                raise RuntimeFailure(
                    f"uts namespace {namespaces.uts_path(op.name)} already exists and is not this "
                    f"project's; nothing was changed"
                )
        if isinstance(op, _HOST_LINK_CREATORS):
            if ("link", None, op.name) not in ours and op.name not in made and host_has(op.name):
                raise RuntimeFailure(
                    f"interface {op.name} already exists and is not this project's (op {seq}, "
                    f"{op.describe()}); nothing was changed"
                )
            made.add(op.name)


def host_link_exists(name: str, sock: Optional[Rtnl] = None) -> bool:
    own = sock is None
    sock = sock or Rtnl()
    try:
        return sock.link_index(name) is not None
    finally:
        if own:
            sock.close()
