"""rtnetlink requests, batched: the only module that uses pyroute2.

pyroute2's message classes encode each request; we send many in one buffer on a plain
NETLINK_ROUTE socket and ask for an acknowledgement on the last one only (the kernel reports
errors for every message anyway). That is what brings a container to a few round trips instead
of one per call, and it is why we do not use IPRoute: its one-call-per-op API (a round trip plus
parsing each) and its event subscriptions cost more than the kernel work itself.

A socket lives in the namespace it was opened in, so the executor opens one per container while
inside that container's namespace and closes all of them when done (an open socket keeps a
namespace alive).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import Any, Callable, Optional, Union

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25

IFF_UP = 0x1
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NLM_F_REPLACE = 0x100
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change

# Errors that mean "the object is already gone", so a deletion counts as done.
GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL})


class NetlinkError(Exception):
    def __init__(self, code: int, message: str = ""):
        self.code = code
        self.message = message
        super().__init__(code, message)

    def __str__(self) -> str:
        text = os.strerror(self.code)
        return f"{text} ({self.message})" if self.message else text


def _finish(msg, kind: int, flags: int, seq: int) -> bytes:
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


_CREATE = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL

# The messages every project sends (bridges, veths, links up, addresses, routes, deletions) are
# packed here with struct, in the very layout pyroute2's message classes produce
# (tests/unit/test_executor_netlink.py compares the bytes): pyroute2 needs 60-300 us to encode
# one, which alone would exceed the kernel's own work per container, and 0.2-0.7 s to import.
# The rarer link kinds (macvlan, ipvlan, vlan, vxlan) are encoded by pyroute2's classes.
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_GROUP, IFLA_NET_NS_FD = 18, 27, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
_U32 = struct.Struct("=I")
_NLA = struct.Struct("=HH")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def _nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _z(text: str) -> bytes:
    return text.encode() + b"\0"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _msg(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(16 + len(body), kind, flags, seq, 0) + body


def new_bridge(seq: int, name: str, group: int, mtu: Optional[int], mac: Optional[str]) -> bytes:
    attrs = _nla(IFLA_IFNAME, _z(name)) + _nla(IFLA_GROUP, _U32.pack(group))
    if mtu:
        attrs += _nla(IFLA_MTU, _U32.pack(mtu))
    if mac:
        attrs += _nla(IFLA_ADDRESS, _mac(mac))
    attrs += _nla(IFLA_LINKINFO, _nla(IFLA_INFO_KIND, b"bridge\0"))
    return _msg(RTM_NEWLINK, _CREATE, seq, _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + attrs)


def new_veth(
    seq: int,
    name: str,
    group: int,
    master: Optional[int],
    mtu: Optional[int],
    peer_name: str,
    peer_ns_fd: int,
    peer_mac: Optional[str],
) -> bytes:
    """Host end `name` (up, in `group`, enslaved to `master`); the peer is born in the target
    namespace under its final name, so nothing is moved or renamed afterwards. The peer cannot
    be created up (the kernel answers ENOTCONN): it is brought up from inside."""
    peer = _nla(IFLA_IFNAME, _z(peer_name)) + _nla(IFLA_NET_NS_FD, _U32.pack(peer_ns_fd))
    if peer_mac:
        peer += _nla(IFLA_ADDRESS, _mac(peer_mac))
    if mtu:
        peer += _nla(IFLA_MTU, _U32.pack(mtu))
    attrs = _nla(IFLA_IFNAME, _z(name)) + _nla(IFLA_GROUP, _U32.pack(group))
    if master is not None:
        attrs += _nla(IFLA_MASTER, _U32.pack(master))
    if mtu:
        attrs += _nla(IFLA_MTU, _U32.pack(mtu))
    peer_info = _nla(VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, 0, 0) + peer)
    attrs += _nla(IFLA_LINKINFO, _nla(IFLA_INFO_KIND, b"veth\0") + _nla(IFLA_INFO_DATA, peer_info))
    return _msg(RTM_NEWLINK, _CREATE, seq, _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + attrs)


def new_macvlan(
    seq: int, name: str, parent: int, ns_fd: int, mode: str, mac: Optional[str], mtu: Optional[int]
) -> bytes:
    return _new_sublink(
        seq, name, parent, ns_fd, mac, mtu, "macvlan", [("IFLA_MACVLAN_MODE", MACVLAN_MODES[mode])]
    )


def new_ipvlan(seq: int, name: str, parent: int, ns_fd: int, mode: str, flag: str, mtu: Optional[int]) -> bytes:
    data = [("IFLA_IPVLAN_MODE", IPVLAN_MODES[mode]), ("IFLA_IPVLAN_FLAGS", IPVLAN_FLAGS[flag])]
    return _new_sublink(seq, name, parent, ns_fd, None, mtu, "ipvlan", data)


def _ifinfmsg():
    # pyroute2 costs 0.2-0.7 s to import: only projects with these rarer link kinds pay it.
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    return ifinfmsg()


def _new_sublink(seq, name, parent, ns_fd, mac, mtu, kind, data) -> bytes:
    """A sub-interface of host link `parent`, created directly inside namespace `ns_fd`."""
    msg = _ifinfmsg()
    attrs = [("IFLA_IFNAME", name), ("IFLA_LINK", parent)]
    if ns_fd is not None:
        attrs.append(("IFLA_NET_NS_FD", ns_fd))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    info = [("IFLA_INFO_KIND", kind)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    attrs.append(("IFLA_LINKINFO", {"attrs": info}))
    msg["attrs"] = attrs
    return _finish(msg, RTM_NEWLINK, _CREATE, seq)


def new_vlan(seq: int, name: str, parent: int, vlan_id: int, group: int) -> bytes:
    msg = _ifinfmsg()
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_LINK", parent),
        ("IFLA_GROUP", group),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vlan"), ("IFLA_INFO_DATA", {"attrs": [("IFLA_VLAN_ID", vlan_id)]})]}),
    ]
    return _finish(msg, RTM_NEWLINK, _CREATE, seq)


def new_vxlan(
    seq: int,
    name: str,
    vni: int,
    group: int,
    master: Optional[int],
    port: int,
    local: Optional[IPAddress],
    remote: Optional[IPAddress],
    dev: Optional[int],
    mtu: Optional[int],
    learning: bool = True,
    proxy: bool = False,
) -> bytes:
    data: list = [("IFLA_VXLAN_ID", vni), ("IFLA_VXLAN_PORT", port)]
    if local is not None:
        data.append(("IFLA_VXLAN_LOCAL" if local.version == 4 else "IFLA_VXLAN_LOCAL6", str(local)))
    if remote is not None:
        data.append(("IFLA_VXLAN_GROUP" if remote.version == 4 else "IFLA_VXLAN_GROUP6", str(remote)))
    if dev is not None:
        data.append(("IFLA_VXLAN_LINK", dev))
    if not learning:
        data.append(("IFLA_VXLAN_LEARNING", 0))
    if proxy:
        data.append(("IFLA_VXLAN_PROXY", 1))
    msg = _ifinfmsg()
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    attrs = [("IFLA_IFNAME", name), ("IFLA_GROUP", group)]
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": data})]}))
    msg["attrs"] = attrs
    return _finish(msg, RTM_NEWLINK, _CREATE, seq)


def _ndmsg(family: int, index: int, flags: int):
    from pyroute2.netlink.rtnl.ndmsg import ndmsg

    msg = ndmsg()
    msg["family"] = family
    msg["ifindex"] = index
    msg["state"] = NUD_PERMANENT
    msg["flags"] = flags
    return msg


def fdb(seq: int, add: bool, index: int, mac: str, dst: IPAddress) -> bytes:
    """A static bridge FDB entry on the VXLAN device itself (`bridge fdb append ... self`)."""
    msg = _ndmsg(socket.AF_BRIDGE, index, NTF_SELF)
    msg["attrs"] = [("NDA_LLADDR", mac), ("NDA_DST", str(dst))]
    if add:
        return _finish(msg, RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq)
    return _finish(msg, RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq)


def neigh(seq: int, add: bool, index: int, address: IPAddress, mac: str) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    msg = _ndmsg(family, index, 0)
    msg["attrs"] = [("NDA_DST", str(address)), ("NDA_LLADDR", mac)]
    if add:
        return _finish(msg, RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq)
    return _finish(msg, RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq)


def set_up(seq: int, name: str) -> bytes:
    """Bring link `name` up; the kernel finds it by name, so no index lookup is needed."""
    body = _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP) + _nla(IFLA_IFNAME, _z(name))
    return _msg(RTM_NEWLINK, NLM_F_REQUEST, seq, body)


def del_link(seq: int, name: str) -> bytes:
    return _msg(RTM_DELLINK, NLM_F_REQUEST, seq, _IFINFO.pack(0, 0, 0, 0, 0) + _nla(IFLA_IFNAME, _z(name)))


def del_group(seq: int, group: int) -> bytes:
    """Delete every link of `group` in this namespace: one RCU grace period for all of them."""
    return _msg(RTM_DELLINK, NLM_F_REQUEST, seq, _IFINFO.pack(0, 0, 0, 0, 0) + _nla(IFLA_GROUP, _U32.pack(group)))


def get_link(seq: int, name: str) -> bytes:
    return _msg(RTM_GETLINK, NLM_F_REQUEST, seq, _IFINFO.pack(0, 0, 0, 0, 0) + _nla(IFLA_IFNAME, _z(name)))


def probe_kind(seq: int, kind: str) -> bytes:
    """A link creation that can never succeed (no parent given): the kernel answers EOPNOTSUPP
    when it has no driver for `kind` and EINVAL when it has one. Nothing is created."""
    msg = _ifinfmsg()
    msg["attrs"] = [("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]})]
    return _finish(msg, RTM_NEWLINK, _CREATE, seq)


def addr(seq: int, add: bool, index: int, address: IPInterface) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    prefixlen = address.network.prefixlen
    ip = address.ip.packed
    attrs = _nla(IFA_LOCAL, ip) + _nla(IFA_ADDRESS, ip)
    if address.version == 4 and prefixlen < 31:
        attrs += _nla(IFA_BROADCAST, address.network.broadcast_address.packed)
    body = _IFADDR.pack(family, prefixlen, 0, 0, index) + attrs
    if add:
        return _msg(RTM_NEWADDR, _CREATE, seq, body)
    return _msg(RTM_DELADDR, NLM_F_REQUEST, seq, body)


def route(
    seq: int,
    add: bool,
    dst: IPNetwork,
    index: int,
    gateway: Optional[IPAddress],
    metric: Optional[int],
) -> bytes:
    family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
    scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
    attrs = b""
    if dst.prefixlen:
        attrs += _nla(RTA_DST, dst.network_address.packed)
    if gateway is not None:
        attrs += _nla(RTA_GATEWAY, gateway.packed)
    attrs += _nla(RTA_OIF, _U32.pack(index))
    if metric is not None:
        attrs += _nla(RTA_PRIORITY, _U32.pack(metric))
    body = _RTMSG.pack(family, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0) + attrs
    if add:
        return _msg(RTM_NEWROUTE, _CREATE, seq, body)
    return _msg(RTM_DELROUTE, NLM_F_REQUEST, seq, body)


class Rtnl:
    """One NETLINK_ROUTE socket in the namespace where it was created; no event groups."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        # Errors carry the kernel's own explanation, and do not echo our whole request back.
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def close(self) -> None:
        self.sock.close()

    def send(self, messages: list[bytes]) -> dict[int, NetlinkError]:
        """Send all `messages` in one buffer with an ack requested on the last one; wait for it.
        Returns the errors by sequence number (messages after a failed one are still applied)."""
        if not messages:
            return {}
        last = bytearray(messages[-1])
        flags = struct.unpack_from("=H", last, 6)[0]
        struct.pack_into("=H", last, 6, flags | NLM_F_ACK)
        last_seq = struct.unpack_from("=I", last, 8)[0]
        payload = b"".join(messages[:-1]) + bytes(last)
        self.sock.send(payload)
        errors: dict[int, NetlinkError] = {}
        while True:
            data = self.sock.recv(1 << 16)
            for kind, flags, seq, body in _messages(data):
                if kind != NLMSG_ERROR:
                    continue
                code = -struct.unpack_from("=i", body, 0)[0]
                if code:
                    errors[seq] = NetlinkError(code, _ext_ack(flags, body))
                if seq == last_seq:
                    return errors

    def link_index(self, name: str) -> Optional[int]:
        """Index of link `name` in this namespace (one request, not a dump); None if absent."""
        seq = self.next_seq()
        self.sock.send(get_link(seq, name))
        while True:
            data = self.sock.recv(1 << 16)
            for kind, _flags, mseq, body in _messages(data):
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body, 0)[0]
                    if code in (errno.ENODEV, errno.ENOENT):
                        return None
                    raise NetlinkError(code, _ext_ack(_flags, body))
                if kind == RTM_NEWLINK:
                    return _IFINFO.unpack_from(body, 0)[2]

    def kind_supported(self, kind: str) -> bool:
        errors = self.send([probe_kind(self.next_seq(), kind)])
        err = next(iter(errors.values()), None)
        return not (err and err.code == errno.EOPNOTSUPP)


def _messages(data: bytes):
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < 16:
            break
        yield kind, flags, seq, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def _ext_ack(flags: int, body: bytes) -> str:
    """The kernel's error text (NLMSGERR_ATTR_MSG) when extended acks are on."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    # error code (4) + the original header (16, payload capped by NETLINK_CAP_ACK)
    offset = 4 + 16
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return body[offset + 4 : offset + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


# --- reading a namespace (for `observe`) --------------------------------------------------------

RTM_GETADDR, RTM_GETROUTE = 22, 26
NLM_F_DUMP = 0x300
NETLINK_GET_STRICT_CHK = 12  # dumps honour the request's filters (family, table)
BRIDGE_MODE_HAIRPIN = 1


def read_namespace(ipv6: bool, kinds: tuple[str, ...]) -> tuple[list, list]:
    """The links of `kinds` (with their addresses) and the main-table routes of the calling
    thread's namespace, as `observe` values; pyroute2 decodes every answer. The kernel filters
    the dumps (a link message costs pyroute2 about 0.3 ms to decode: only the kinds asked for
    come back), and IPv6 is asked for only with `ipv6`."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from compose_net.observe import LinkFacts

    with _DumpSocket() as sock:
        links = []
        for kind in kinds:
            links += sock.dump(_filtered(ifinfmsg, attrs=[("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]})]),
                               RTM_GETLINK, ("kind", kind))
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in links}
        addresses, routes = sock.addresses_and_routes(names, ipv6, routes=True)
    out = []
    for msg in links:
        info = msg.get_attr("IFLA_LINKINFO")
        master = msg.get_attr("IFLA_MASTER")
        name = names[msg["index"]]
        out.append(LinkFacts(
            name=name, kind=info.get_attr("IFLA_INFO_KIND") if info else None, up=bool(msg["flags"] & IFF_UP),
            group=msg.get_attr("IFLA_GROUP") or 0, master=names.get(master) if master else None,
            mtu=msg.get_attr("IFLA_MTU"), mac=msg.get_attr("IFLA_ADDRESS"),
            addresses=frozenset(addresses.get(name, ()))))
    return out, routes


def read_addresses_and_routes(ipv6: bool, routes: bool) -> tuple[dict[str, set], list]:
    """The addresses (by link name) and, with `routes`, the main-table routes of the calling
    thread's namespace."""
    with _DumpSocket() as sock:
        return sock.addresses_and_routes(None, ipv6, routes)


_DUMP_SEQ = 1
_ENCODED: dict[tuple, bytes] = {}


def _filtered(cls, **fields: Any) -> Callable[[], Any]:
    """A maker of a dump request of message class `cls` with `fields` set (`attrs` included)."""
    def make() -> Any:
        request = cls()
        for name, value in fields.items():
            request[name] = value
        return request

    return make


class _DumpSocket:
    """A NETLINK_ROUTE socket for dumps with the kernel's filtering on (strict checking)."""

    def __enter__(self) -> "_DumpSocket":
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        self.marshal = MarshalRtnl()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def dump(self, make_request: Callable[[], Any], kind: int, key: tuple) -> list:
        """Everything one dump request answers. The request is encoded by pyroute2 once per
        process and sent again as it is (a dump runs to its end before the next is sent, so
        one sequence number serves them all)."""
        data = _ENCODED.get((kind, key))
        if data is None:
            request = make_request()
            request["header"]["type"] = kind
            request["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
            request["header"]["sequence_number"] = _DUMP_SEQ
            request.encode()
            data = _ENCODED[(kind, key)] = bytes(request.data)
        self.sock.send(data)
        out = []
        while True:
            for msg in self.marshal.parse(self.sock.recv(1 << 16)):
                header = msg["header"]
                if header["sequence_number"] != _DUMP_SEQ:
                    continue
                if header["type"] == NLMSG_DONE:
                    return out
                if header["type"] == NLMSG_ERROR:
                    if msg["error"]:
                        raise NetlinkError(abs(int(msg["error"])))
                    return out
                out.append(msg)

    def addresses_and_routes(self, names: Optional[dict[int, str]], ipv6: bool, routes: bool) -> tuple[dict, list]:
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        from compose_net.observe import RouteFacts

        families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
        addrs = []
        for family in families:
            addrs += self.dump(_filtered(ifaddrmsg, family=family), RTM_GETADDR, (family,))
        if names is None:
            names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in self.dump(ifinfmsg, RTM_GETLINK, ())} \
                if ipv6 else {}
        by_link: dict[str, set] = {}
        for msg in addrs:
            addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            name = msg.get_attr("IFA_LABEL") or names.get(msg["index"])
            if addr and name:
                by_link.setdefault(name, set()).add(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
        out_routes = []
        for family in families if routes else ():
            for msg in self.dump(_filtered(rtmsg, family=family, table=RT_TABLE_MAIN), RTM_GETROUTE, (family,)):
                if (msg.get_attr("RTA_TABLE") or msg["table"]) != RT_TABLE_MAIN or msg["type"] != RTN_UNICAST:
                    continue
                dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
                gateway, oif = msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF")
                out_routes.append(RouteFacts(
                    dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False), dev=names.get(oif),
                    gateway=ipaddress.ip_address(gateway) if gateway else None,
                    metric=msg.get_attr("RTA_PRIORITY")))
        return by_link, out_routes
