"""What `down` would do, computed from the journal alone (no kernel needed)."""

from __future__ import annotations

import ipaddress

import pytest

from compose_net import executor, state
from compose_net.plan import ops as O


@pytest.fixture(autouse=True)
def state_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSE_NET_STATE_DIR", str(tmp_path / "run"))


def _project(name: str, shared: bool = False) -> list[O.Op]:
    ops: list[O.Op] = []
    if shared:
        ops += [O.BridgeCreate("shared:cn0", "cn0", 0x7C4E0001),
                O.AddrAdd("shared:cn0", None, "cn0", ipaddress.ip_interface("172.17.0.1/16"))]
    ops += [
        O.BridgeCreate(f"network:{name}_n", f"br-{name}", 7),
        O.NetnsCreate(f"container:{name}-a-1", f"{name}-a-1"),
        O.VethCreate(f"container:{name}-a-1", f"v{name}1", "eth0", f"{name}-a-1", 7, master=f"br-{name}"),
        O.VethCreate(f"container:{name}-a-1", f"v{name}2", "eth1", f"{name}-a-1", 7, master="cn0" if shared else f"br-{name}"),
        O.AddrAdd(f"container:{name}-a-1", f"{name}-a-1", "eth0", ipaddress.ip_interface("10.0.0.2/24")),
        O.FileWrite(f"container:{name}-a-1", f"/etc/netns/{name}-a-1/hosts", "x"),
        O.NftApply("firewall", "inet", f"cn-{name}", {"nftables": []}),
        O.DnsStart("dns", name, f"/run/compose-net/{name}/project.json"),
    ]
    return ops


def _up(name: str, ops: list[O.Op]) -> None:
    journal = state.Journal(name)
    journal.record(ops)
    journal.mark_complete()
    journal.close()


def test_down_stops_dns_first_and_deletes_the_group_once():
    _up("p", _project("p"))
    undo = executor.plan_down("p")
    assert isinstance(undo[0], O.DnsStop)
    kinds = [op.kind for op in undo]
    assert kinds.count("link_group_delete") == 1
    group = next(op for op in undo if op.kind == "link_group_delete")
    assert set(group.names) == {"vp1", "vp2", "br-p"}
    # the address inside the namespace goes with it: no separate inverse
    assert "addr_del" not in kinds
    assert kinds.index("link_group_delete") < kinds.index("netns_delete")
    assert "nft_delete" in kinds and "file_remove" in kinds


def test_shared_bridge_is_left_to_the_last_project_using_it():
    _up("p", _project("p", shared=True))
    _up("q", _project("q", shared=True))
    def shared_deletes(name):
        return [op for op in executor.plan_down(name) if op.unit == "shared:cn0"]
    assert shared_deletes("p") == []  # q still uses it
    state.Journal("q").discard()
    deletes = shared_deletes("p")
    # removed alone, never folded into the project's group deletion
    assert [op.kind for op in deletes] == ["link_delete"] and deletes[0].name == "cn0"
    assert all("cn0" not in getattr(op, "names", ()) for op in executor.plan_down("p"))


def test_a_project_that_is_not_up_has_nothing_to_undo():
    assert executor.plan_down("nothing") == ()
    executor.down("nothing")  # no journal: a no-op, no error
