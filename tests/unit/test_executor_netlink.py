"""Requests as the kernel will read them: every request, the first of its shape (encoded by
pyroute2) and the copies made from it (the cache), decodes with pyroute2 to what was asked;
answers are read by pyroute2 (errors with their code); indexes come from the kernel."""

from __future__ import annotations

import errno
import ipaddress

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from compose_net.executor import netlink as nl


def _decoded(cls, data: bytes):
    msg = cls(data)
    msg.decode()
    assert msg["header"]["length"] == len(data)
    return msg


def _veth(msg) -> dict:
    peer = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    peer = peer.get_attr("VETH_INFO_PEER") if peer is not None else None
    return {
        "seq": msg["header"]["sequence_number"], "name": msg.get_attr("IFLA_IFNAME"),
        "group": msg.get_attr("IFLA_GROUP"), "master": msg.get_attr("IFLA_MASTER"),
        "mtu": msg.get_attr("IFLA_MTU"), "up": msg["flags"] & nl.IFF_UP,
        "kind": msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        "peer": peer.get_attr("IFLA_IFNAME"), "fd": peer.get_attr("IFLA_NET_NS_FD"),
        "mac": peer.get_attr("IFLA_ADDRESS"), "peer_mtu": peer.get_attr("IFLA_MTU"),
    }


@pytest.mark.parametrize("master", [None, 7])
@pytest.mark.parametrize("mtu", [None, 1400])
@pytest.mark.parametrize("mac", [None, "02:42:0a:00:00:02"])
def test_veth_requests_say_what_was_asked(master, mtu, mac):
    for seq, name, group, peer, fd, other_mac in [
        (17, "veth1a2b3c4d", 4242, "eth0", 9, mac),
        (18, "vethffffffff", 7, "eth1", 123456, mac and "02:42:0a:ff:01:09"),
    ]:
        data = nl.new_veth(seq, name, group, master and master + seq, mtu, peer, fd, other_mac)
        assert _veth(_decoded(ifinfmsg, data)) == {
            "seq": seq, "name": name, "group": group, "master": master and master + seq, "mtu": mtu,
            "up": nl.IFF_UP, "kind": "veth", "peer": peer, "fd": fd, "mac": other_mac, "peer_mtu": mtu,
        }


def test_a_copy_from_the_cache_is_what_pyroute2_encodes():
    nl.new_veth(1, "veth00000000", 1, 2, None, "eth0", 3, None)  # the first of its shape
    copy = nl.new_veth(5, "veth12345678", 99, 42, None, "eth7", 11, None)
    fresh = ifinfmsg()
    fresh["flags"] = fresh["change"] = nl.IFF_UP
    fresh["attrs"] = [
        ("IFLA_IFNAME", "veth12345678"), ("IFLA_GROUP", 99), ("IFLA_MASTER", 42),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [
            ("VETH_INFO_PEER", {"attrs": [("IFLA_IFNAME", "eth7"), ("IFLA_NET_NS_FD", 11)]})]})]}),
    ]
    fresh["header"].update(type=nl.RTM_NEWLINK, flags=nl._CREATE, sequence_number=5)
    fresh.encode()
    assert copy == bytes(fresh.data)


def test_a_name_of_another_length_is_encoded_anew():
    short = _decoded(ifinfmsg, nl.set_up(1, "eth0"))
    long = _decoded(ifinfmsg, nl.set_up(2, "a-fifteen-chars"))
    assert (short.get_attr("IFLA_IFNAME"), long.get_attr("IFLA_IFNAME")) == ("eth0", "a-fifteen-chars")
    gone = _decoded(ifinfmsg, nl.del_link(3, "veth0000abcd"))
    assert (gone["header"]["type"], gone.get_attr("IFLA_IFNAME")) == (nl.RTM_DELLINK, "veth0000abcd")
    group = _decoded(ifinfmsg, nl.del_group(4, 31337))
    assert (group["header"]["type"], group.get_attr("IFLA_GROUP"), group["index"]) == (nl.RTM_DELLINK, 31337, 0)


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("texts", [("172.18.0.2/16", "172.18.9.77/16"), ("10.0.0.1/31", "10.0.0.0/31"),
                                   ("192.168.9.9/32", "192.168.1.1/32"), ("fd00::5/64", "fd00::1:7/64")])
def test_address_requests_say_what_was_asked(add, texts):
    for seq, text in enumerate(texts, 1):
        iface = ipaddress.ip_interface(text)
        msg = _decoded(ifaddrmsg, nl.addr(seq, add, 6, iface))
        assert msg["header"]["type"] == (nl.RTM_NEWADDR if add else nl.RTM_DELADDR)
        assert (msg["header"]["sequence_number"], msg["index"], msg["prefixlen"]) == (seq, 6, iface.network.prefixlen)
        assert msg.get_attr("IFA_LOCAL") == msg.get_attr("IFA_ADDRESS") == str(iface.ip)
        broadcast = str(iface.network.broadcast_address) if iface.version == 4 and iface.network.prefixlen < 31 else None
        assert msg.get_attr("IFA_BROADCAST") == broadcast


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("dst,gws,metric", [
    ("0.0.0.0/0", ("172.18.0.1", "10.9.0.1"), None),
    ("10.9.0.0/16", (None, None), 100),
    ("::/0", ("fd00::1", "fd00::2:1"), 5),
])
def test_route_requests_say_what_was_asked(add, dst, gws, metric):
    for seq, gw in enumerate(gws, 1):
        net = ipaddress.ip_network(dst)
        gateway = ipaddress.ip_address(gw) if gw else None
        msg = _decoded(rtmsg, nl.route(seq, add, net, seq + 2, gateway, metric and metric + seq))
        assert msg["header"]["type"] == (nl.RTM_NEWROUTE if add else nl.RTM_DELROUTE)
        assert (msg["dst_len"], msg["table"], msg["type"]) == (net.prefixlen, 254, 1)
        assert msg.get_attr("RTA_DST") == (str(net.network_address) if net.prefixlen else None)
        assert msg.get_attr("RTA_GATEWAY") == gw
        assert msg.get_attr("RTA_OIF") == seq + 2
        assert msg.get_attr("RTA_PRIORITY") == (metric and metric + seq)


def test_bridge_request():
    msg = _decoded(ifinfmsg, nl.new_bridge(11, "cn-1a2b3c4d", 99, 9000, "02:42:ac:11:00:01"))
    assert (msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_GROUP"), msg.get_attr("IFLA_MTU")) == ("cn-1a2b3c4d", 99, 9000)
    assert msg.get_attr("IFLA_ADDRESS") == "02:42:ac:11:00:01"
    assert msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "bridge"


def test_errors_are_read_with_their_code_and_the_acknowledgement_ends_the_batch():
    # Asking for a link that does not exist needs no privilege and changes nothing.
    sock = nl.Rtnl()
    try:
        def get(seq: int, name: str) -> bytes:
            msg = ifinfmsg()
            msg["attrs"] = [("IFLA_IFNAME", name)]
            msg["header"].update(type=nl.RTM_GETLINK, flags=nl.NLM_F_REQUEST, sequence_number=seq)
            msg.encode()
            return bytes(msg.data)

        first, second, third = sock.next_seq(), sock.next_seq(), sock.next_seq()
        errors = sock.send([get(first, "no-such-link0"), get(second, "lo"), get(third, "no-such-link1")])
        assert sorted(errors) == [first, third]
        assert errors[first].code == errno.ENODEV
        assert sock.send([get(sock.next_seq(), "lo")]) == {}  # nothing left over from the first batch
    finally:
        sock.close()
    assert str(nl.NetlinkError(95, "Unknown device type")).endswith("(Unknown device type)")


def test_link_index_asks_the_kernel():
    sock = nl.Rtnl()
    try:
        assert sock.link_index("lo") == 1
        assert sock.link_index("no-such-link0") is None
        assert sock.link_index("x" * 20) is None
    finally:
        sock.close()
