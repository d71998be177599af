"""Crash safety: a failure after any op rolls back everything, and `kill -9` of `up` at any
point leaves nothing that `down` does not remove."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from compose_net import executor, state
from compose_net.errors import OpFailed
from compose_net.plan import ops as O
from conftest import PlanBuilder, kernel_snapshot, reconciled_up, sh


def _mid_size(builder: PlanBuilder):
    """Two networks, a container on both, one on each, one with no network, sysctls, files."""
    p = builder.project
    builder.network("front", "10.231.0.0/24")
    builder.network("back", "10.231.1.0/24", mtu=1450)
    builder.container(f"{p}-web-1", ["front", "back"], default="front")
    builder.add(O.UtsCreate(f"container:{p}-web-1", f"{p}-web-1", "web", "example.org"))
    builder.container(f"{p}-db-1", ["back"], sysctls={"net.ipv4.ip_unprivileged_port_start": "0"})
    builder.container(f"{p}-proxy-1", ["front"])
    none = f"{p}-job-1"
    builder.add(O.NetnsCreate(f"container:{none}", none))
    builder.add(O.FileWrite(f"container:{none}", f"/etc/netns/{none}/resolv.conf", "nameserver 192.0.2.53\n"))
    side = f"{p}-side-1"  # network_mode: service:web
    builder.add(O.NetnsAlias(f"container:{side}", side, f"{p}-web-1"))
    builder.add(O.UtsAlias(f"container:{side}", side, f"{p}-web-1"))
    builder.add(O.FileWrite(f"container:{side}", f"/etc/netns/{side}/hostname", "web\n"))
    builder.add(O.FileWrite("state", str(state.summary_path(p)), json.dumps({"version": 1, "project": p}), 0o600))
    return builder.plan()


def test_failure_after_every_op_rolls_back_everything(builder, monkeypatch):
    plan = _mid_size(builder)
    before = kernel_snapshot()
    for k in range(1, len(plan.ops) + 1):
        monkeypatch.setenv("COMPOSE_NET_FAIL_AFTER", str(k))
        with pytest.raises(OpFailed) as info:
            executor.up(plan)
        assert info.value.seq == k
        assert info.value.description == plan.ops[k - 1].describe()
        assert kernel_snapshot() == before, f"rollback after op {k} left something"
        assert not state.Journal(plan.project).exists()
    monkeypatch.delenv("COMPOSE_NET_FAIL_AFTER")
    try:
        assert executor.up(plan).changed  # a following `up` works
        sh("ping", "-c1", "-W2", "10.231.1.2", ns=f"{plan.project}-db-1")
    finally:
        executor.down(plan.project)
    assert kernel_snapshot() == before


def test_a_kernel_error_names_the_op_and_rolls_back(builder):
    plan = _mid_size(builder)
    name = f"{builder.project}-db-1"
    unit = f"container:{name}"
    # A gateway outside every connected network: the kernel refuses the route.
    bad = O.RouteAdd(unit, name, ipaddress.ip_network("192.0.2.0/24"), "eth0", ipaddress.ip_address("203.0.113.1"))
    ops = list(plan.ops)
    at = max(i for i, op in enumerate(ops) if op.unit == unit and op.kind == "route_add") + 1
    ops.insert(at, bad)
    before = kernel_snapshot()
    with pytest.raises(OpFailed) as info:
        executor.up(O.Plan(plan.project, tuple(ops)))
    assert info.value.seq == at + 1
    assert "203.0.113.1" in info.value.description
    assert "unreachable" in info.value.reason.lower() or "gateway" in info.value.reason.lower()
    assert kernel_snapshot() == before


UP_SCRIPT = """
import json, sys
from compose_net import executor
from compose_net.plan.ops import Plan, op_from_json
ops = tuple(op_from_json(o) for o in json.load(open(sys.argv[1])))
print("start", flush=True)
executor.up(Plan(sys.argv[2], ops))
print("done", flush=True)
"""


@pytest.mark.parametrize("after", [1, 12, 30])
def test_kill_9_during_up_then_down_leaves_nothing(project_name, tmp_path, after):
    b = PlanBuilder(project_name)
    b.network("a", "10.232.0.0/16")
    b.network("b", "10.233.0.0/16")
    for i in range(40):
        b.container(f"{project_name}-c-{i}", ["a", "b"] if i % 2 else ["a"])
    plan = b.plan()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_json()))
    before = kernel_snapshot()
    proc = subprocess.Popen([sys.executable, "-c", UP_SCRIPT, str(path), project_name], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "start"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            made = [n for n in os.listdir("/run/netns") if n.startswith(project_name)] if os.path.isdir("/run/netns") else []
            if len(made) >= after or proc.poll() is not None:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_midway = proc.returncode == -signal.SIGKILL
    executor.down(project_name)
    assert kernel_snapshot() == before
    assert killed_midway  # (else the test proved less than it claims)


def test_up_after_a_kill_starts_afresh(project_name, tmp_path):
    b = PlanBuilder(project_name)
    b.network("a", "10.234.0.0/24")
    for i in range(20):
        b.container(f"{project_name}-c-{i}", ["a"])
    plan = b.plan()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_json()))
    before = kernel_snapshot()
    proc = subprocess.Popen([sys.executable, "-c", UP_SCRIPT, str(path), project_name], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        while not (os.path.isdir("/run/netns") and any(n.startswith(f"{project_name}-c-5") for n in os.listdir("/run/netns"))):
            if proc.poll() is not None:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    try:
        result = reconciled_up(plan)  # finds an unfinished journal: makes what is missing
        assert result.changed
        sh("ping", "-c1", "-W2", "10.234.0.21", ns=f"{project_name}-c-0")
        assert state.Journal(project_name).read().complete
    finally:
        executor.down(project_name)
    assert kernel_snapshot() == before


def test_rollback_never_removes_what_a_refused_create_found(builder, monkeypatch):
    """Preflight aside (a name can be taken between preflight and apply), a create refused with
    EEXIST names someone else's object: the rollback must leave it alone."""
    from compose_net.executor import preflight

    monkeypatch.setattr(preflight, "check", lambda *a, **k: None)
    builder.network("n", "10.230.0.0/24")
    name = f"{builder.project}-a-1"
    builder.container(name, ["n"])
    foreign_link = next(op.name for op in builder.ops if op.kind == "veth_create")
    plan = builder.plan()
    sh("ip", "netns", "add", name)
    try:
        with pytest.raises(OpFailed) as info:
            executor.up(plan)
        assert "exists" in info.value.reason
        assert name in sh("ip", "netns", "list").stdout
    finally:
        sh("ip", "netns", "del", name)
    sh("ip", "link", "add", foreign_link, "type", "dummy", check=False)
    if sh("ip", "link", "show", foreign_link, check=False).returncode != 0:
        sh("ip", "link", "add", foreign_link, "type", "bridge")
    try:
        with pytest.raises(OpFailed) as info:
            executor.up(plan)
        assert "exists" in info.value.reason.lower()
        assert sh("ip", "link", "show", foreign_link, check=False).returncode == 0
    finally:
        sh("ip", "link", "del", foreign_link)


def test_a_taken_uts_name_is_refused_before_anything_changes_and_never_removed(builder, monkeypatch):
    from compose_net.errors import RuntimeFailure
    from compose_net.executor import preflight

    builder.network("n", "10.230.1.0/24")
    name = f"{builder.project}-a-1"
    builder.container(name, ["n"])
    builder.add(O.UtsCreate(f"container:{name}", name, "a"))
    plan = builder.plan()
    before = kernel_snapshot()
    os.makedirs("/run/utsns", exist_ok=True)
    taken = f"/run/utsns/{name}"
    open(taken, "w").close()
    try:
        with pytest.raises(RuntimeFailure, match="uts namespace .* already exists"):
            executor.up(plan)
        # and when the name is taken between preflight and apply, the rollback leaves it alone
        monkeypatch.setattr(preflight, "check", lambda *a, **k: None)
        with pytest.raises(OpFailed) as info:
            executor.up(plan)
        assert "already exists" in info.value.reason and os.path.exists(taken)
    finally:
        os.unlink(taken)
    assert kernel_snapshot() == before
