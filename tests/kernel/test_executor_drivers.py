"""macvlan on a parent the test makes (and a VLAN sub-interface of it), ipvlan refused on a kernel
without it, and the preflight checks that stop `up` before it changes anything."""

from __future__ import annotations

import ipaddress
import json

import pytest

from compose_net import executor, state
from compose_net.errors import RuntimeFailure
from compose_net.plan import ops as O
from conftest import kernel_snapshot, sh


@pytest.fixture
def parent(veth_parent):
    return veth_parent


def _macvlan_container(builder, name: str, parent: str, address: str, mac: str | None = None) -> None:
    unit = f"container:{name}"
    builder.add(O.NetnsCreate(unit, name))
    builder.add(O.MacvlanCreate(unit, "eth0", name, parent, "bridge", mac=mac))
    builder.add(O.LinkUp(unit, name, "eth0"))
    builder.add(O.AddrAdd(unit, name, "eth0", ipaddress.ip_interface(address)))


def test_macvlan_containers_talk_through_a_veth_parent(builder, executor_guard, parent):
    a, b = f"{builder.project}-m-1", f"{builder.project}-m-2"
    _macvlan_container(builder, a, parent, "10.246.0.2/24", mac="02:00:0a:f6:00:02")
    _macvlan_container(builder, b, parent, "10.246.0.3/24")
    executor.up(builder.plan())
    link = json.loads(sh("ip", "-j", "-d", "link", "show", "eth0", ns=a).stdout)[0]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert link["address"] == "02:00:0a:f6:00:02"
    sh("ping", "-c1", "-W2", "10.246.0.3", ns=a)


def _kernel_has(kind: str) -> bool:
    from compose_net.executor.netlink import Rtnl

    sock = Rtnl()
    try:
        return sock.kind_supported(kind)
    finally:
        sock.close()


def test_vlan_parent_is_created_and_removed_with_the_project(builder, parent):
    if not _kernel_has("vlan"):
        _vlan_refused(builder, parent)
        pytest.skip("this kernel has no 802.1q support: checked that up refuses it instead")
    sub = f"{parent}.10"
    unit = f"network:{builder.project}_vlan"
    builder.add(O.VlanCreate(unit, sub, parent, 10, builder.group))
    name = f"{builder.project}-v-1"
    _macvlan_container(builder, name, sub, "10.247.0.2/24")
    executor.up(builder.plan())
    try:
        info = json.loads(sh("ip", "-j", "-d", "link", "show", sub).stdout)[0]
        assert info["linkinfo"]["info_data"]["id"] == 10
        assert sh("ip", "link", "show", sub, check=False).returncode == 0
    finally:
        executor.down(builder.project)
    assert sh("ip", "link", "show", sub, check=False).returncode != 0
    assert sh("ip", "link", "show", parent, check=False).returncode == 0  # not ours: stays


def _assert_refused(plan, *words: str) -> None:
    before = kernel_snapshot()
    with pytest.raises(RuntimeFailure) as info:
        executor.up(plan)
    assert kernel_snapshot() == before
    assert not state.Journal(plan.project).exists()
    for word in words:
        assert word in str(info.value)
    assert "nothing was changed" in str(info.value)


def _vlan_refused(builder, parent) -> None:
    unit = f"network:{builder.project}_vlan"
    builder.add(O.VlanCreate(unit, f"{parent}.10", parent, 10, builder.group))
    _assert_refused(builder.plan(), "vlan")


def test_ipvlan_is_refused_before_any_change_on_this_kernel(builder, parent):
    if _kernel_has("ipvlan"):
        pytest.skip("this kernel has ipvlan; the refusal cannot be observed here")
    builder.network("n", "10.248.0.0/24")  # something that would be created first
    name = f"{builder.project}-i-1"
    unit = f"container:{name}"
    builder.add(O.NetnsCreate(unit, name))
    builder.add(O.IpvlanCreate(unit, "eth0", name, parent, "l2"))
    _assert_refused(builder.plan(), "ipvlan")


def test_missing_parent_is_refused_before_any_change(builder):
    builder.network("n", "10.249.0.0/24")
    name = f"{builder.project}-m-1"
    _macvlan_container(builder, name, f"nx{builder.tag}", "10.249.1.2/24")
    _assert_refused(builder.plan(), "parent interface", f"nx{builder.tag}")


def test_missing_external_bridge_is_refused(builder):
    name = f"{builder.project}-e-1"
    unit = f"container:{name}"
    builder.add(O.NetnsCreate(unit, name))
    builder.add(O.VethCreate(unit, f"v{builder.tag}x", "eth0", name, builder.group, master=f"ext{builder.tag}"))
    _assert_refused(builder.plan(), "bridge", f"ext{builder.tag}")


def test_names_taken_by_others_are_refused(builder):
    builder.network("n", "10.250.0.0/24")
    name = f"{builder.project}-t-1"
    builder.container(name, ["n"])
    sh("ip", "netns", "add", name)
    try:
        _assert_refused(builder.plan(), name, "not this project's")
        assert sh("ip", "netns", "list").stdout.count(name) == 1  # theirs, untouched
    finally:
        sh("ip", "netns", "del", name)
    bridge = builder.networks["n"]["bridge"]
    sh("ip", "link", "add", bridge, "type", "bridge")
    try:
        _assert_refused(builder.plan(), bridge)
    finally:
        sh("ip", "link", "del", bridge)
