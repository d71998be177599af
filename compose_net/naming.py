"""Every kernel-visible name compose-net makes, derived deterministically from the project.

Linux limits interface names to 15 bytes (IFNAMSIZ 16 with the NUL), so user-chosen names are
hashed into short ones; namespace names are files under /run/netns and may be any length, so a
container's namespace is simply the container's name (what `ip netns exec NAME` expects).
"""

from __future__ import annotations

import os
import hashlib
from typing import Iterable, Mapping

IFNAMSIZ = 15  # usable bytes of an interface name
LEGACY_BRIDGE = "cn0"  # the shared `network_mode: bridge` network, our docker0
LEGACY_NETWORK = "bridge"
LEGACY_GROUP = 0x7C4E0001  # link group of cn0: never a project's, so no project's group delete takes it
BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
STATE_DIR = "/run/compose-net"


def state_root() -> str:
    """The root of every project's state; COMPOSE_NET_STATE_DIR moves it (as `state.py` reads it)."""
    return os.environ.get("COMPOSE_NET_STATE_DIR", STATE_DIR)
NETNS_ETC = "/etc/netns"


def _hex(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def fits(name: str) -> bool:
    return 0 < len(name.encode()) <= IFNAMSIZ


def bridge_name(network_name: str, driver_opts: Mapping[str, str] | None = None) -> str:
    """`cn-` + 8 hex of the full network name, unless the user named the bridge."""
    if driver_opts and driver_opts.get(BRIDGE_NAME_OPT):
        return driver_opts[BRIDGE_NAME_OPT]
    return "cn-" + _hex("bridge/" + network_name)


def veth_name(container: str, network_name: str) -> str:
    return "veth" + _hex(f"veth/{container}/{network_name}")


def dummy_parent_name(network_name: str) -> str:
    """The parent link made for a macvlan/ipvlan network that names none (Docker: `dm-` + id)."""
    return "dm-" + _hex("parent/" + network_name)


def vxlan_name(network_name: str) -> str:
    return "cnvx-" + _hex("vxlan/" + network_name)


def vxlan_vni(network_name: str) -> int:
    """A VNI in 4096..2**24-1 (Docker's overlay VNIs start at 4096 too), stable per network."""
    return 4096 + int(_hex("vni/" + network_name, 8), 16) % (2**24 - 4096)


def netns_name(container: str) -> str:
    return container


TABLE_PREFIX = "cn-"


def table_name(project: str) -> str:
    return f"{TABLE_PREFIX}{project}"


TABLE_FAMILY = "inet"


def container_id(project: str, container: str) -> str:
    return hashlib.sha256(f"{project}/{container}".encode()).hexdigest()


def network_id(network_name: str) -> str:
    return hashlib.sha256(f"network/{network_name}".encode()).hexdigest()


def default_hostname(project: str, container: str) -> str:
    """Docker's default hostname is the short container id."""
    return container_id(project, container)[:12]


def state_dir(project: str) -> str:
    return f"{state_root()}/{project}"


def summary_path(project: str) -> str:
    return f"{state_root()}/{project}/project.json"


def netns_file(container: str, name: str) -> str:
    return f"{NETNS_ETC}/{netns_name(container)}/{name}"


def _group_seed(project: str) -> int:
    value = int(_hex("group/" + project, 8), 16) & 0x7FFFFFFF
    return value or 1


def link_group(project: str, links: Mapping[str, int], own_links: Iterable[str] = (),
               other_groups: Iterable[int] = ()) -> int:
    """The project's link group: a number derived from its name, never 0 (every link's default)
    and below 2**31. A group delete removes every link in the group, so if links that are not
    this project's already carry the number (or another project's state claims it), take the
    next free one; the choice depends only on host facts, so replanning finds the same one."""
    own = set(own_links)
    taken = {g for name, g in links.items() if name not in own}
    taken.update(other_groups)
    taken.update({0, LEGACY_GROUP})
    group = _group_seed(project)
    while group in taken:
        group = group + 1 if group < 0x7FFFFFFF else 1
    return group
