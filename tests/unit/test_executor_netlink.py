"""The struct-packed hot-path messages must be byte for byte what pyroute2's message classes
encode for the same request (pyroute2 is the reference encoder; ours is only faster)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from compose_net.executor import netlink as nl


def _encoded(msg, kind: int, flags: int, seq: int) -> bytes:
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


CREATE = nl.NLM_F_REQUEST | nl.NLM_F_CREATE | nl.NLM_F_EXCL


@pytest.mark.parametrize("master", [None, 7])
@pytest.mark.parametrize("mtu", [None, 1400])
@pytest.mark.parametrize("mac", [None, "02:42:0a:00:00:02"])
@pytest.mark.parametrize("name,peer", [("veth1a2b3c4d", "eth0"), ("v1", "ethernet-long1")])
def test_veth_matches_pyroute2(master, mtu, mac, name, peer):
    peer_attrs = [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", 9)]
    if mac:
        peer_attrs.append(("IFLA_ADDRESS", mac))
    if mtu:
        peer_attrs.append(("IFLA_MTU", mtu))
    attrs = [("IFLA_IFNAME", name), ("IFLA_GROUP", 4242)]
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    attrs.append(("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "veth"),
        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]}),
    ]}))
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = nl.IFF_UP
    msg["attrs"] = attrs
    ref = _encoded(msg, nl.RTM_NEWLINK, CREATE, 17)
    assert nl.new_veth(17, name, 4242, master, mtu, peer, 9, mac) == ref


@pytest.mark.parametrize("name", ["lo", "eth0", "a-fifteen-chars"])
def test_link_messages_match_pyroute2(name):
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = nl.IFF_UP
    msg["attrs"] = [("IFLA_IFNAME", name)]
    assert nl.set_up(3, name) == _encoded(msg, nl.RTM_NEWLINK, nl.NLM_F_REQUEST, 3)
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name)]
    assert nl.del_link(4, name) == _encoded(msg, nl.RTM_DELLINK, nl.NLM_F_REQUEST, 4)
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name)]
    assert nl.get_link(6, name) == _encoded(msg, nl.RTM_GETLINK, nl.NLM_F_REQUEST, 6)
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_GROUP", 31337)]
    assert nl.del_group(5, 31337) == _encoded(msg, nl.RTM_DELLINK, nl.NLM_F_REQUEST, 5)


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize("text", ["172.18.0.2/16", "10.0.0.1/31", "192.168.9.9/32", "fd00::5/64"])
def test_addr_matches_pyroute2(add, text):
    iface = ipaddress.ip_interface(text)
    msg = ifaddrmsg()
    msg["family"] = 2 if iface.version == 4 else 10
    msg["prefixlen"] = iface.network.prefixlen
    msg["index"] = 6
    attrs = [("IFA_LOCAL", str(iface.ip)), ("IFA_ADDRESS", str(iface.ip))]
    if iface.version == 4 and iface.network.prefixlen < 31:
        attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
    msg["attrs"] = attrs
    kind, flags = (nl.RTM_NEWADDR, CREATE) if add else (nl.RTM_DELADDR, nl.NLM_F_REQUEST)
    assert nl.addr(8, add, 6, iface) == _encoded(msg, kind, flags, 8)


@pytest.mark.parametrize("add", [True, False])
@pytest.mark.parametrize(
    "dst,gw,metric",
    [("0.0.0.0/0", "172.18.0.1", None), ("10.9.0.0/16", None, 100), ("::/0", "fd00::1", 5)],
)
def test_route_matches_pyroute2(add, dst, gw, metric):
    net = ipaddress.ip_network(dst)
    gateway = ipaddress.ip_address(gw) if gw else None
    msg = rtmsg()
    msg["family"] = 2 if net.version == 4 else 10
    msg["dst_len"] = net.prefixlen
    msg["table"] = 254
    msg["proto"] = 3
    msg["scope"] = 0 if gateway else 253
    msg["type"] = 1
    attrs = []
    if net.prefixlen:
        attrs.append(("RTA_DST", str(net.network_address)))
    if gateway:
        attrs.append(("RTA_GATEWAY", str(gateway)))
    attrs.append(("RTA_OIF", 3))
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    msg["attrs"] = attrs
    kind, flags = (nl.RTM_NEWROUTE, CREATE) if add else (nl.RTM_DELROUTE, nl.NLM_F_REQUEST)
    assert nl.route(2, add, net, 3, gateway, metric) == _encoded(msg, kind, flags, 2)


def test_error_parsing_reads_code_and_kernel_text():
    # An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK on.
    text = b"Unknown device type\0"
    tlv = struct.pack("=HH", 4 + len(text), nl.NLMSGERR_ATTR_MSG) + text + b"\0" * (-len(text) % 4)
    inner = struct.pack("=IHHII", 32, nl.RTM_NEWLINK, 0x601, 9, 0)
    body = struct.pack("=i", -95) + inner + tlv
    data = struct.pack("=IHHII", 16 + len(body), nl.NLMSG_ERROR, nl.NLM_F_ACK_TLVS, 9, 0) + body
    [(kind, flags, seq, payload)] = list(nl._messages(data))
    assert (kind, seq) == (nl.NLMSG_ERROR, 9)
    assert nl._ext_ack(flags, payload) == "Unknown device type"
    assert str(nl.NetlinkError(95, "Unknown device type")).endswith("(Unknown device type)")


@pytest.mark.parametrize("mtu,mac", [(None, None), (9000, "02:42:ac:11:00:01")])
def test_bridge_matches_pyroute2(mtu, mac):
    attrs = [("IFLA_IFNAME", "cn-1a2b3c4d"), ("IFLA_GROUP", 99)]
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}))
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = nl.IFF_UP
    msg["attrs"] = attrs
    assert nl.new_bridge(11, "cn-1a2b3c4d", 99, mtu, mac) == _encoded(msg, nl.RTM_NEWLINK, CREATE, 11)


def test_the_common_path_does_not_import_pyroute2():
    import subprocess
    import sys

    code = ("import sys, compose_net.executor, compose_net.executor.netlink as nl, ipaddress;"
            "nl.new_veth(1, 'v', 1, 2, None, 'eth0', 3, None); nl.new_bridge(2, 'b', 1, None, None);"
            "print('pyroute2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
