"""The typed kernel operations a plan is made of: pure data.

Each op is a frozen dataclass with
- `kind`: a stable string (the JSON `op` field; the executor's handler table is keyed by it),
- `unit`: what it belongs to ("host", "network:FULLNAME", "container:NAME", "firewall", "dns");
  `up` after an edit compares plans unit by unit, `down` can tear a unit down alone,
- fully resolved parameters (`ns` None means the host's namespace, else a name under /run/netns),
- `describe()`: one human line, `inverse()`: the op that undoes it,
- `creates()` / `owners()`: object keys, so teardown can skip an inverse whose object goes away
  with its owner anyway (an address with its link, anything inside a namespace with the namespace),
- `note`: why the planner chose this (IPAM reasons); not part of the op's identity.

Object keys: ("netns", name) · ("uts", name) · ("link", ns, name) · ("file", path) ·
("nft", family, table) · ("dns", project) · ("group", number) · ("iptables", family, table,
chain, rule) · ("firewalld", zone, interface).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from compose_net.summary import Summary

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Key = tuple

OPS: dict[str, type["Op"]] = {}


def _ns_text(ns: Optional[str]) -> str:
    return f" in {ns}" if ns else ""


@dataclass(frozen=True)
class Op:
    kind: ClassVar[str] = ""
    # Applying it again replaces its object whole, in place (a file, a table, a server's
    # records): an edit re-applies it instead of removing the old one first.
    in_place: ClassVar[bool] = False
    # It removes something: finding it gone already is success, whenever it runs.
    removal: ClassVar[bool] = False
    unit: str
    note: str = field(default="", compare=False, kw_only=True)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            OPS[cls.kind] = cls

    def describe(self) -> str:
        raise NotImplementedError

    def inverse(self) -> Optional["Op"]:
        """The op that undoes this one; None when nothing is left to undo by itself."""
        return None

    def creates(self) -> tuple[Key, ...]:
        return ()

    def deletes(self) -> tuple[Key, ...]:
        return ()

    def owners(self) -> tuple[Key, ...]:
        """Objects whose removal removes this op's effect too."""
        return ()

    def depends(self) -> tuple[Key, ...]:
        """Objects this op's effect is tied to: when one of them is made again, this op must be
        applied again (an address on a link, a bridge port on its bridge)."""
        return self.owners()

    def details(self) -> tuple[str, ...]:
        """More lines for a reviewer under `describe()` (the firewall's rules in words)."""
        return ()

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """An op's JSON as an older compose-net journaled it, in today's form: `down` must read
        the journals of projects brought up before an upgrade."""
        return data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.kind}
        for f in dataclasses.fields(self):
            if f.name == "note" and not self.note:
                continue
            out[f.name] = _dump(getattr(self, f.name))
        return out

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def op_from_json(data: dict[str, Any]) -> Op:
    cls = OPS[data["op"]]
    data = cls.upgrade(data)
    kwargs = {}
    for name, hint in _field_hints(cls):
        if name in data:
            kwargs[name] = _load(hint, data[name])
    return cls(**kwargs)


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    # typing.get_type_hints costs ~0.3 ms a call: once per class, not once per op (a journal
    # of 100 containers holds ~850 ops, read by every `down` and every `up` after the first).
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _dump(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (ipaddress._BaseAddress, ipaddress._BaseNetwork)):
        return str(value)
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    return value


def _load(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        non_none = [a for a in args if a is not type(None)]
        if set(non_none) == {ipaddress.IPv4Interface, ipaddress.IPv6Interface}:
            return ipaddress.ip_interface(value)
        if set(non_none) == {ipaddress.IPv4Network, ipaddress.IPv6Network}:
            return ipaddress.ip_network(value)
        if set(non_none) == {ipaddress.IPv4Address, ipaddress.IPv6Address}:
            return ipaddress.ip_address(value)
        if len(non_none) == 1:
            return _load(non_none[0], value)
        return value
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(_load(inner, v) for v in value)
    if origin is dict:
        return dict(value)
    return value


# --- host and namespaces -------------------------------------------------------------------


@dataclass(frozen=True)
class SysctlSet(Op):
    """Write /proc/sys/KEY (dots as slashes) in namespace `ns`. Host sysctls are shared with
    every project and other software, so they are left set (as Docker leaves ip_forward on);
    a namespace's die with it."""

    kind: ClassVar[str] = "sysctl"
    ns: Optional[str]
    key: str
    value: str

    def describe(self) -> str:
        return f"sysctl {self.key}={self.value}{_ns_text(self.ns)}"

    def owners(self) -> tuple[Key, ...]:
        keys: tuple[Key, ...] = (("netns", self.ns),) if self.ns else ()
        parts = self.key.split("/" if "/" in self.key else ".")
        # net.ipv4.conf.DEV.x and net.ipv6.conf.DEV.x live and die with link DEV
        if len(parts) >= 5 and parts[0] == "net" and parts[2] == "conf" and parts[3] not in ("all", "default"):
            keys += (("link", self.ns, parts[3]),)
        return keys


@dataclass(frozen=True)
class NetnsCreate(Op):
    """A network namespace registered as /run/netns/NAME (bind mount), `lo` up."""

    kind: ClassVar[str] = "netns_create"
    name: str

    def describe(self) -> str:
        return f"netns {self.name}"

    def inverse(self) -> Op:
        return NetnsDelete(self.unit, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("netns", self.name),)


@dataclass(frozen=True)
class NetnsDelete(Op):
    kind: ClassVar[str] = "netns_delete"
    removal: ClassVar[bool] = True
    name: str

    def describe(self) -> str:
        return f"delete netns {self.name}"

    def deletes(self) -> tuple[Key, ...]:
        return (("netns", self.name),)


@dataclass(frozen=True)
class NetnsAlias(Op):
    """A second name for network namespace `target`: /run/netns/NAME, one more bind mount of the
    same namespace (a `network_mode: service:X` container's own name for X's namespace).
    `target_plan` is a digest of the target container's planned ops: when the target is made
    anew, the name must be made anew too (it would keep the old namespace alive)."""

    kind: ClassVar[str] = "netns_alias"
    name: str
    target: str
    target_plan: str = ""

    def describe(self) -> str:
        return f"netns {self.name}, a second name for {self.target}'s"

    def inverse(self) -> Op:
        return NetnsDelete(self.unit, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("netns", self.name),)

    def depends(self) -> tuple[Key, ...]:
        return (("netns", self.target),)


@dataclass(frozen=True)
class UtsCreate(Op):
    """A UTS namespace registered as /run/utsns/NAME (bind mount) with the container's hostname
    (and NIS domain name, if any) set in it: what `compose-net exec` enters beside the netns."""

    kind: ClassVar[str] = "uts_create"
    name: str
    hostname: str
    domainname: Optional[str] = None

    def describe(self) -> str:
        domain = f", domainname {self.domainname}" if self.domainname else ""
        return f"uts namespace {self.name}, hostname {self.hostname}{domain}"

    def inverse(self) -> Op:
        return UtsDelete(self.unit, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("uts", self.name),)


@dataclass(frozen=True)
class UtsAlias(Op):
    """A second name for UTS namespace `target` (/run/utsns/NAME); see NetnsAlias."""

    kind: ClassVar[str] = "uts_alias"
    name: str
    target: str
    target_plan: str = ""

    def describe(self) -> str:
        return f"uts namespace {self.name}, a second name for {self.target}'s"

    def inverse(self) -> Op:
        return UtsDelete(self.unit, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("uts", self.name),)

    def depends(self) -> tuple[Key, ...]:
        return (("uts", self.target),)


@dataclass(frozen=True)
class UtsDelete(Op):
    kind: ClassVar[str] = "uts_delete"
    removal: ClassVar[bool] = True
    name: str

    def describe(self) -> str:
        return f"delete uts namespace {self.name}"

    def deletes(self) -> tuple[Key, ...]:
        return (("uts", self.name),)


# --- links ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeCreate(Op):
    """A Linux bridge in the host namespace, in link group `group`, set up."""

    kind: ClassVar[str] = "bridge_create"
    name: str
    group: int
    mtu: Optional[int] = None
    mac: Optional[str] = None

    def describe(self) -> str:
        extra = f", mtu {self.mtu}" if self.mtu else ""
        return f"bridge {self.name}, group {self.group}{extra}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, None, self.name, group=self.group)

    def creates(self) -> tuple[Key, ...]:
        return (("link", None, self.name),)


@dataclass(frozen=True)
class VethCreate(Op):
    """A veth pair: host end `name` (in `group`, enslaved to `master`, up) and its peer born in
    place as `peer_name` inside namespace `peer_ns` (brought up there by LinkUp)."""

    kind: ClassVar[str] = "veth_create"
    name: str
    peer_name: str
    peer_ns: str
    group: int
    master: Optional[str] = None
    mtu: Optional[int] = None
    peer_mac: Optional[str] = None
    # the bridge port may send frames back where they came from: a container reaching its own
    # published port is DNATed back to itself, through the same port (br_netfilter sees it)
    hairpin: bool = False

    def describe(self) -> str:
        master = f", master {self.master}" if self.master else ""
        mac = f", mac {self.peer_mac}" if self.peer_mac else ""
        hairpin = ", hairpin" if self.hairpin else ""
        return f"veth {self.name} <-> {self.peer_name} in {self.peer_ns}{master}{mac}{hairpin}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, None, self.name, group=self.group)

    def creates(self) -> tuple[Key, ...]:
        return (("link", None, self.name), ("link", self.peer_ns, self.peer_name))

    def depends(self) -> tuple[Key, ...]:
        # a port of its bridge, born in its namespace: either made again, the pair must be too
        return (("netns", self.peer_ns),) + ((("link", None, self.master),) if self.master else ())


@dataclass(frozen=True)
class MacvlanCreate(Op):
    """A macvlan sub-interface of host link `parent`, created directly in `ns` as `name`."""

    kind: ClassVar[str] = "macvlan_create"
    name: str
    ns: str
    parent: str
    mode: str = "bridge"
    mac: Optional[str] = None
    mtu: Optional[int] = None

    def describe(self) -> str:
        mac = f", mac {self.mac}" if self.mac else ""
        return f"macvlan {self.name} in {self.ns} on {self.parent}, mode {self.mode}{mac}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, self.ns, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("link", self.ns, self.name),)

    def owners(self) -> tuple[Key, ...]:
        return (("netns", self.ns), ("link", None, self.parent))


@dataclass(frozen=True)
class IpvlanCreate(Op):
    kind: ClassVar[str] = "ipvlan_create"
    name: str
    ns: str
    parent: str
    mode: str = "l2"
    flag: str = "bridge"
    mtu: Optional[int] = None

    def describe(self) -> str:
        return f"ipvlan {self.name} in {self.ns} on {self.parent}, mode {self.mode}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, self.ns, self.name)

    def creates(self) -> tuple[Key, ...]:
        return (("link", self.ns, self.name),)

    def owners(self) -> tuple[Key, ...]:
        return (("netns", self.ns), ("link", None, self.parent))


@dataclass(frozen=True)
class VlanCreate(Op):
    """An 802.1q sub-interface `name` of `parent` (for parents like eth0.10), in the host."""

    kind: ClassVar[str] = "vlan_create"
    name: str
    parent: str
    vlan_id: int
    group: int

    def describe(self) -> str:
        return f"vlan {self.name} on {self.parent}, id {self.vlan_id}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, None, self.name, group=self.group)

    def creates(self) -> tuple[Key, ...]:
        return (("link", None, self.name),)


@dataclass(frozen=True)
class VxlanCreate(Op):
    """A VXLAN device in the host, enslaved to the overlay's bridge `master`."""

    kind: ClassVar[str] = "vxlan_create"
    name: str
    vni: int
    group: int
    master: Optional[str] = None
    port: int = 4789
    local: Optional[IPAddress] = None
    remote: Optional[IPAddress] = None
    dev: Optional[str] = None
    mtu: Optional[int] = None
    learning: bool = True  # a cluster's overlay is programmed from the store: nolearning, proxy
    proxy: bool = False
    encrypted: bool = False  # asked for; preflight refuses it (no xfrm/WireGuard here)

    def describe(self) -> str:
        master = f", master {self.master}" if self.master else ""
        local = f" local {self.local}" if self.local else ""
        flags = ("" if self.learning else " nolearning") + (" proxy" if self.proxy else "")
        enc = " encrypted" if self.encrypted else ""
        return f"vxlan {self.name} vni {self.vni} port {self.port}{local}{flags}{master}{enc}"

    def inverse(self) -> Op:
        return LinkDelete(self.unit, None, self.name, group=self.group)

    def creates(self) -> tuple[Key, ...]:
        return (("link", None, self.name),)

    def depends(self) -> tuple[Key, ...]:
        return (("link", None, self.master),) if self.master else ()


@dataclass(frozen=True)
class FdbSet(Op):
    """A static forwarding entry on a VXLAN device: frames to `mac` go to the VTEP `dst`
    (a remote endpoint of an overlay network; nothing is learned or flooded)."""

    kind: ClassVar[str] = "fdb_set"
    dev: str
    mac: str
    dst: IPAddress

    def describe(self) -> str:
        return f"fdb {self.mac} dev {self.dev} dst {self.dst}"

    def inverse(self) -> Op:
        return FdbDel(self.unit, self.dev, self.mac, self.dst)

    def owners(self) -> tuple[Key, ...]:
        return (("link", None, self.dev),)


@dataclass(frozen=True)
class FdbDel(Op):
    kind: ClassVar[str] = "fdb_del"
    removal: ClassVar[bool] = True
    dev: str
    mac: str
    dst: IPAddress

    def describe(self) -> str:
        return f"delete fdb {self.mac} dev {self.dev} dst {self.dst}"


@dataclass(frozen=True)
class NeighSet(Op):
    """A permanent neighbour entry on a VXLAN device with ARP proxy: the device itself answers
    a container's ARP request for a remote endpoint's address."""

    kind: ClassVar[str] = "neigh_set"
    dev: str
    address: IPAddress
    mac: str

    def describe(self) -> str:
        return f"neighbour {self.address} lladdr {self.mac} dev {self.dev}"

    def inverse(self) -> Op:
        return NeighDel(self.unit, self.dev, self.address, self.mac)

    def owners(self) -> tuple[Key, ...]:
        return (("link", None, self.dev),)


@dataclass(frozen=True)
class NeighDel(Op):
    kind: ClassVar[str] = "neigh_del"
    removal: ClassVar[bool] = True
    dev: str
    address: IPAddress
    mac: str

    def describe(self) -> str:
        return f"delete neighbour {self.address} dev {self.dev}"


@dataclass(frozen=True)
class LinkUp(Op):
    kind: ClassVar[str] = "link_up"
    ns: Optional[str]
    name: str

    def describe(self) -> str:
        return f"up {self.name}{_ns_text(self.ns)}"

    def owners(self) -> tuple[Key, ...]:
        return ((("netns", self.ns),) if self.ns else ()) + (("link", self.ns, self.name),)


@dataclass(frozen=True)
class LinkDelete(Op):
    """Delete one link; `group` lets a whole-project teardown coalesce these into one
    LinkGroupDelete (one RCU grace period instead of one per link)."""

    kind: ClassVar[str] = "link_delete"
    removal: ClassVar[bool] = True
    ns: Optional[str]
    name: str
    group: Optional[int] = None

    def describe(self) -> str:
        return f"delete link {self.name}{_ns_text(self.ns)}"

    def deletes(self) -> tuple[Key, ...]:
        return (("link", self.ns, self.name),)


@dataclass(frozen=True)
class LinkGroupDelete(Op):
    """Delete every link of link group `group` in the host namespace in one request."""

    kind: ClassVar[str] = "link_group_delete"
    removal: ClassVar[bool] = True
    group: int
    names: tuple[str, ...] = ()  # the links this removes, for the description and the checks

    def describe(self) -> str:
        return f"delete link group {self.group} ({len(self.names)} links)"

    def deletes(self) -> tuple[Key, ...]:
        return tuple(("link", None, n) for n in self.names)


# --- addresses and routes ------------------------------------------------------------------


@dataclass(frozen=True)
class AddrAdd(Op):
    kind: ClassVar[str] = "addr_add"
    ns: Optional[str]
    dev: str
    address: IPInterface

    def describe(self) -> str:
        return f"address {self.address} on {self.dev}{_ns_text(self.ns)}"

    def inverse(self) -> Op:
        return AddrDel(self.unit, self.ns, self.dev, self.address)

    def owners(self) -> tuple[Key, ...]:
        return ((("netns", self.ns),) if self.ns else ()) + (("link", self.ns, self.dev),)


@dataclass(frozen=True)
class AddrDel(Op):
    kind: ClassVar[str] = "addr_del"
    removal: ClassVar[bool] = True
    ns: Optional[str]
    dev: str
    address: IPInterface

    def describe(self) -> str:
        return f"delete address {self.address} from {self.dev}{_ns_text(self.ns)}"


@dataclass(frozen=True)
class RouteAdd(Op):
    """A route in `ns`: `dst` "default" is written as 0.0.0.0/0 or ::/0."""

    kind: ClassVar[str] = "route_add"
    ns: Optional[str]
    dst: IPNetwork
    dev: str
    gateway: Optional[IPAddress] = None
    metric: Optional[int] = None

    def describe(self) -> str:
        dst = "default" if self.dst.prefixlen == 0 else str(self.dst)
        via = f" via {self.gateway}" if self.gateway else ""
        metric = f" metric {self.metric}" if self.metric is not None else ""
        return f"route {dst}{via} dev {self.dev}{metric}{_ns_text(self.ns)}"

    def inverse(self) -> Op:
        return RouteDel(self.unit, self.ns, self.dst, self.dev, self.gateway, self.metric)

    def owners(self) -> tuple[Key, ...]:
        return ((("netns", self.ns),) if self.ns else ()) + (("link", self.ns, self.dev),)


@dataclass(frozen=True)
class RouteDel(Op):
    kind: ClassVar[str] = "route_del"
    removal: ClassVar[bool] = True
    ns: Optional[str]
    dst: IPNetwork
    dev: str
    gateway: Optional[IPAddress] = None
    metric: Optional[int] = None

    def describe(self) -> str:
        return f"delete route {self.dst} dev {self.dev}{_ns_text(self.ns)}"


# --- files, firewall, DNS ------------------------------------------------------------------


@dataclass(frozen=True)
class FileWrite(Op):
    """Write `content` to `path` atomically (parent directories created and recorded)."""

    kind: ClassVar[str] = "file_write"
    in_place: ClassVar[bool] = True
    path: str
    content: str
    mode: int = 0o644

    def describe(self) -> str:
        return f"write {self.path} ({len(self.content.splitlines())} lines)"

    def inverse(self) -> Op:
        return FileRemove(self.unit, self.path)

    def creates(self) -> tuple[Key, ...]:
        return (("file", self.path),)


@dataclass(frozen=True)
class FileRemove(Op):
    """Remove `path`, then its parent directory if it became empty and lies under /etc/netns."""

    kind: ClassVar[str] = "file_remove"
    removal: ClassVar[bool] = True
    path: str

    def describe(self) -> str:
        return f"remove {self.path}"

    def deletes(self) -> tuple[Key, ...]:
        return (("file", self.path),)


@dataclass(frozen=True)
class NftApply(Op):
    """The project's whole nftables table, replaced in one atomic `nft -j -f -` transaction.
    `ruleset` is the `{"nftables": [...]}` document (`firewall.table()`); `rules` are its rules
    in words, (group, words) pairs in the order a reviewer reads them, which each rule's nft
    comment repeats. The words follow from the ruleset, so they are not part of the op's identity."""

    kind: ClassVar[str] = "nft_apply"
    in_place: ClassVar[bool] = True
    family: str
    table: str
    ruleset: dict[str, Any]
    rules: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def describe(self) -> str:
        rules = sum(1 for item in self.ruleset.get("nftables", ()) if "rule" in item.get("add", {}))
        return f"nftables table {self.family} {self.table} ({rules} rules, one transaction)"

    def __hash__(self) -> int:
        # the document is a dict: the table's name is enough to place the op in a set
        return hash((self.kind, self.unit, self.family, self.table))

    def details(self) -> tuple[str, ...]:
        lines: list[str] = []
        group = None
        for name, words in self.rules:
            if name != group:
                group = name
                lines.append(f"{name}:")
            lines.append(f"  {words}")
        return tuple(lines)

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        # Until issue 7 the document was journaled as JSON text, a string inside the op's JSON.
        if isinstance(data.get("ruleset"), str):
            return {**data, "ruleset": json.loads(data["ruleset"])}
        return data

    def inverse(self) -> Op:
        return NftDelete(self.unit, self.family, self.table)

    def creates(self) -> tuple[Key, ...]:
        return (("nft", self.family, self.table),)


@dataclass(frozen=True)
class NftDelete(Op):
    kind: ClassVar[str] = "nft_delete"
    removal: ClassVar[bool] = True
    family: str
    table: str

    def describe(self) -> str:
        return f"delete nftables table {self.family} {self.table}"

    def deletes(self) -> tuple[Key, ...]:
        return (("nft", self.family, self.table),)


@dataclass(frozen=True)
class IptablesInsert(Op):
    """One rule at the head of another owner's iptables chain (Docker's DOCKER-USER, ufw's
    ufw-user-forward, a hand-made FORWARD), added with iptables itself: those are iptables-nft
    tables, which a rule written with `nft` would make unmanageable for their owner. `rule` is
    the whole spec after the chain, with a comment naming the project, so `-C` and `-D` find
    exactly this rule and never one we did not add. `owner` says whose chain it is."""

    kind: ClassVar[str] = "iptables_insert"
    family: str  # ip (iptables) or ip6 (ip6tables)
    table: str
    chain: str
    rule: tuple[str, ...]
    owner: str = field(default="", compare=False)

    def describe(self) -> str:
        import shlex

        tool = "ip6tables" if self.family == "ip6" else "iptables"
        return f"{tool} -t {self.table} -I {self.chain} {shlex.join(self.rule)}"

    def inverse(self) -> Op:
        return IptablesDelete(self.unit, self.family, self.table, self.chain, self.rule)

    def creates(self) -> tuple[Key, ...]:
        return (("iptables", self.family, self.table, self.chain, self.rule),)


@dataclass(frozen=True)
class IptablesDelete(Op):
    kind: ClassVar[str] = "iptables_delete"
    removal: ClassVar[bool] = True
    family: str
    table: str
    chain: str
    rule: tuple[str, ...]

    def describe(self) -> str:
        import shlex

        tool = "ip6tables" if self.family == "ip6" else "iptables"
        return f"{tool} -t {self.table} -D {self.chain} {shlex.join(self.rule)}"

    def deletes(self) -> tuple[Key, ...]:
        return (("iptables", self.family, self.table, self.chain, self.rule),)


@dataclass(frozen=True)
class FirewalldAdd(Op):
    """A project bridge in a firewalld zone that forwards, through firewalld's own interface
    (runtime configuration: a firewalld reload drops it, the next `up` repairs it)."""

    kind: ClassVar[str] = "firewalld_add"
    zone: str
    interface: str

    def describe(self) -> str:
        return f"firewall-cmd --zone={self.zone} --add-interface={self.interface}"

    def inverse(self) -> Op:
        return FirewalldRemove(self.unit, self.zone, self.interface)

    def creates(self) -> tuple[Key, ...]:
        return (("firewalld", self.zone, self.interface),)


@dataclass(frozen=True)
class FirewalldRemove(Op):
    kind: ClassVar[str] = "firewalld_remove"
    removal: ClassVar[bool] = True
    zone: str
    interface: str

    def describe(self) -> str:
        return f"firewall-cmd --zone={self.zone} --remove-interface={self.interface}"

    def deletes(self) -> tuple[Key, ...]:
        return (("firewalld", self.zone, self.interface),)


@dataclass(frozen=True)
class DnsStart(Op):
    """Start (or tell to reload) the project's embedded DNS server, which reads `records`."""

    kind: ClassVar[str] = "dns_start"
    in_place: ClassVar[bool] = True
    project: str
    records: str  # path of the records file the server serves

    def describe(self) -> str:
        return f"embedded DNS for {self.project} at 127.0.0.11:53 in each container"

    def inverse(self) -> Op:
        return DnsStop(self.unit, self.project)

    def creates(self) -> tuple[Key, ...]:
        return (("dns", self.project),)


@dataclass(frozen=True)
class DnsStop(Op):
    kind: ClassVar[str] = "dns_stop"
    removal: ClassVar[bool] = True
    project: str

    def describe(self) -> str:
        return f"stop embedded DNS for {self.project}"

    def deletes(self) -> tuple[Key, ...]:
        return (("dns", self.project),)


@dataclass(frozen=True)
class Plan:
    """What `up` will do: the ordered ops plus the planner's explanations and warnings, and the
    state the project has once they are applied (for the plan's headings)."""

    project: str
    ops: tuple[Op, ...]
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    state: Optional["Summary"] = field(default=None, compare=False)
    # What the journal holds once the plan is applied: every op whose object then exists.
    # None: the ops themselves (a plan that builds from nothing).
    record: Optional[tuple[Op, ...]] = field(default=None, compare=False)

    def to_json(self) -> list[dict[str, Any]]:
        return [op.to_json() for op in self.ops]


def teardown(ops: tuple[Op, ...] | list[Op], group_delete: bool = True) -> tuple[Op, ...]:
    """The inverses of `ops` in reverse order, without those whose object goes away with an
    owner that is itself deleted here. With `group_delete`, link deletions that carry a group
    are coalesced into one LinkGroupDelete per group, placed where the first of them was."""
    inverses = [(op, op.inverse()) for op in reversed(list(ops))]
    deleted: set[Key] = set()
    for _, inv in inverses:
        if inv is not None:
            deleted.update(inv.deletes())
    out: list[Op] = []
    groups: dict[int, list[str]] = {}
    group_pos: dict[int, int] = {}
    for op, inv in inverses:
        if inv is None:
            continue
        if any(owner in deleted for owner in op.owners()):
            continue
        if group_delete and isinstance(inv, LinkDelete) and inv.group and inv.ns is None:
            if inv.group not in groups:
                groups[inv.group] = []
                group_pos[inv.group] = len(out)
                out.append(inv)  # placeholder, replaced below
            groups[inv.group].append(inv.name)
            continue
        out.append(inv)
    for group, names in groups.items():
        first = out[group_pos[group]]
        out[group_pos[group]] = LinkGroupDelete(first.unit, group, tuple(names))
    return tuple(out)
