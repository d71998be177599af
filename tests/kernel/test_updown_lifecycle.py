"""`up` twice, `up` after an edit (op by op: exactly the difference), `down` from the journal alone
and twice, the shared legacy bridge kept while another project uses it. `reconciled_up` is `up` as
the CLI runs it: the desired plan held against the journal and the kernel, then applied."""

from __future__ import annotations

import ipaddress
import json
import os

from compose_net import executor, state
from compose_net.plan import ops as O
from conftest import PlanBuilder, kernel_snapshot, reconciled_up, sh


def _netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def test_up_twice_changes_nothing(builder, executor_guard):
    builder.network("n", "10.235.0.0/24")
    name = f"{builder.project}-a-1"
    builder.container(name, ["n"])
    plan = builder.plan()
    reconciled_up(plan)
    inode = _netns_inode(name)
    journal = state.Journal(builder.project).path.read_text()
    again = reconciled_up(plan)
    assert not again.changed and again.ops_applied == 0
    assert _netns_inode(name) == inode
    assert state.Journal(builder.project).path.read_text() == journal


def test_up_after_an_edit_applies_the_difference(project_name, executor_guard):
    first = PlanBuilder(project_name)
    first.network("n", "10.236.0.0/24")
    keep, gone, change = (f"{project_name}-{s}-1" for s in ("keep", "gone", "chg"))
    first.container(keep, ["n"])
    first.container(gone, ["n"])
    first.container(change, ["n"])
    reconciled_up(first.plan())
    keep_inode, change_inode = _netns_inode(keep), _netns_inode(change)

    second = PlanBuilder(project_name)
    second.network("n", "10.236.0.0/24")
    second.network("m", "10.236.1.0/24")
    second.container(keep, ["n"])
    second._veths = 3  # the same host-side names as before for the kept container's successors
    second.networks["n"]["next"] = 4
    second.container(change, ["n", "m"])  # a new network attached: one more veth
    new = f"{project_name}-new-1"
    second.container(new, ["m"])
    # `keep`'s ops must be identical to the first plan's for it to stay untouched
    assert [op for op in second.ops if op.unit == f"container:{keep}"] == [
        op for op in first.ops if op.unit == f"container:{keep}"
    ]
    result = reconciled_up(second.plan())
    assert result.changed
    assert set(result.removed) == {f"container:{gone}"}
    assert set(result.recreated) == {f"container:{change}"}
    assert set(result.created) == {f"network:{project_name}_m", f"container:{new}"}
    assert _netns_inode(keep) == keep_inode  # untouched
    assert _netns_inode(change) == change_inode  # changed in place: only its difference
    assert not os.path.exists(f"/run/netns/{gone}") and not os.path.exists(f"/etc/netns/{gone}")
    # The first veth of `gone` is gone from the host; the project's others are there.
    host_links = sh("ip", "-o", "link", "show").stdout
    gone_veth = next(op.name for op in first.ops if op.unit == f"container:{gone}" and op.kind == "veth_create")
    assert f" {gone_veth}@" not in host_links
    sh("ping", "-c1", "-W2", "10.236.1.3", ns=change)  # change (eth1 on m) reaches new on m
    sh("ping", "-c1", "-W2", "10.236.0.2", ns=change)  # and keep on n
    # The journal now is exactly the new plan, complete.
    recorded = state.Journal(project_name).read()
    assert recorded.complete and list(recorded.ops) == list(second.plan().ops)
    assert not reconciled_up(second.plan()).changed


def test_down_works_from_the_journal_alone_and_twice(builder):
    builder.network("n", "10.237.0.0/24")
    builder.container(f"{builder.project}-a-1", ["n"])
    before = kernel_snapshot()
    executor.up(builder.plan())
    planned = executor.plan_down(builder.project)
    assert [op.kind for op in planned].count("link_group_delete") == 1
    executor.down(builder.project)  # no plan, no compose file: the journal only
    assert kernel_snapshot() == before
    assert executor.plan_down(builder.project) == ()
    executor.down(builder.project)  # twice: a no-op
    assert kernel_snapshot() == before


def test_down_finishes_what_is_left_when_objects_are_already_gone(builder):
    builder.network("n", "10.238.0.0/24")
    name = f"{builder.project}-a-1"
    builder.container(name, ["n"])
    before = kernel_snapshot()
    executor.up(builder.plan())
    # Someone removed part of it by hand: down still completes without error.
    sh("ip", "netns", "del", name)
    sh("ip", "link", "del", builder.networks["n"]["bridge"])
    os.unlink(f"/etc/netns/{name}/hosts")
    executor.down(builder.project)
    assert kernel_snapshot() == before


def _shared_bridge_ops(unit: str, bridge: str) -> list:
    return [
        O.BridgeCreate(unit, bridge, 0x7C4E0F0F),
        O.AddrAdd(unit, None, bridge, ipaddress.ip_interface("10.239.0.1/24")),
    ]


def test_shared_bridge_stays_until_the_last_project_leaves(project_name):
    bridge = f"cs{project_name[-6:]}"
    unit = f"shared:{bridge}"
    plans = []
    for n, suffix in enumerate(("a", "b")):
        b = PlanBuilder(project_name[:-1] + suffix)
        for op in _shared_bridge_ops(unit, bridge):
            b.add(op)
        b.networks["legacy"] = {"bridge": bridge, "net": ipaddress.ip_network("10.239.0.0/24"),
                                "gw": ipaddress.ip_address("10.239.0.1"), "mtu": None, "next": 2 + n}
        b.container(f"{b.project}-x-1", ["legacy"])
        plans.append(b.plan())
    a, b = plans
    before = kernel_snapshot()
    try:
        reconciled_up(a)
        reconciled_up(b)  # finds the bridge there: uses it, does not make it again
        sh("ping", "-c1", "-W2", "10.239.0.2", ns=f"{b.project}-x-1")
        executor.down(a.project)  # b still uses it
        assert sh("ip", "link", "show", bridge, check=False).returncode == 0
        sh("ping", "-c1", "-W2", "10.239.0.1", ns=f"{b.project}-x-1")
        executor.down(b.project)  # the last one out removes it
        assert sh("ip", "link", "show", bridge, check=False).returncode != 0
    finally:
        executor.down(a.project)
        executor.down(b.project)
    assert kernel_snapshot() == before


def test_nft_ruleset_and_routes_exactly_as_before(builder):
    from compose_net.executor import nft  # noqa: F401  (the firewall helper is present)

    builder.network("n", "10.240.0.0/24")
    builder.container(f"{builder.project}-a-1", ["n"])
    table = f"cn-{builder.project}"
    builder.add(O.NftApply("firewall", "inet", table, json.dumps({"nftables": [
        {"table": {"family": "inet", "name": table}},
        {"chain": {"family": "inet", "table": table, "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": table, "chain": "fwd", "expr": [{"counter": None}]}},
    ]})))
    ruleset = sh("nft", "list", "ruleset").stdout
    routes = sh("ip", "-6", "route", "show").stdout + sh("ip", "route", "show", "table", "all").stdout
    executor.up(builder.plan())
    assert table in sh("nft", "list", "tables").stdout
    executor.down(builder.project)
    assert sh("nft", "list", "ruleset").stdout == ruleset
    assert sh("ip", "-6", "route", "show").stdout + sh("ip", "route", "show", "table", "all").stdout == routes


def test_up_after_an_interrupted_down_rebuilds(builder, executor_guard):
    builder.network("n", "10.238.1.0/24")
    a, b = f"{builder.project}-a-1", f"{builder.project}-b-1"
    builder.container(a, ["n"])
    builder.container(b, ["n"])
    plan = builder.plan()
    reconciled_up(plan)
    a_inode = _netns_inode(a)
    # What a `down` killed part-way leaves: its mark in the journal, some objects gone.
    journal = state.Journal(builder.project)
    journal.mark_down()
    journal.close()
    sh("ip", "netns", "del", b)
    result = reconciled_up(plan)
    assert result.changed  # not "already up": what the down removed is made again, nothing else
    assert set(result.recreated) == {f"container:{b}"} and _netns_inode(a) == a_inode
    assert state.Journal(builder.project).read().complete
    sh("ping", "-c1", "-W2", "10.238.1.3", ns=a)
