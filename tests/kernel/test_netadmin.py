"""`network create` / `network rm` (netadmin): a one-network project applied by the executor."""

from __future__ import annotations

import ipaddress
import json
import uuid
from pathlib import Path

import pytest

from conftest import sh
from compose_net import jsonform, netadmin, state, views
from compose_net.errors import ConfigError, RuntimeFailure
from compose_net.executor import nft
from compose_net.plan.ops import BridgeCreate, FileWrite, NftApply, SysctlSet
from compose_net.probe import HostFacts


@pytest.fixture(scope="module", autouse=True)
def state_root(kernel_lock):
    # The host lock file is created once and stays (state.py): make it before the leak check.
    with state.host_lock():
        pass


def test_plan_create_is_a_bridge_with_gateway_firewall_and_standalone_summary():
    plan = netadmin.plan_create("shared-x", subnet="10.215.9.0/24", gateway="10.215.9.254",
                                facts=HostFacts(), created="2026-11-28T10:00:00Z")
    assert plan.project == "net.shared-x"
    bridges = [op for op in plan.ops if isinstance(op, BridgeCreate)]
    assert len(bridges) == 1
    br = bridges[0].name
    assert any(op.kind == "addr_add" and op.dev == br and str(op.address) == "10.215.9.254/24" for op in plan.ops)
    assert SysctlSet(bridges[0].unit, None, f"net.ipv4.conf.{br}.route_localnet", "1") in plan.ops
    (write,) = [op for op in plan.ops if isinstance(op, FileWrite)]
    summary = json.loads(write.content)
    assert summary["standalone"] is True and summary["created"] == "2026-11-28T10:00:00Z"
    assert summary["networks"][0]["name"] == "shared-x" and not summary["networks"][0]["external"]
    (fw,) = [op for op in plan.ops if isinstance(op, NftApply)]
    assert fw.table == "cn-net.shared-x" and '"masquerade"' in json.dumps(fw.ruleset)
    # internal: no masquerade, no route_localnet
    plan = netadmin.plan_create("iso", subnet="10.215.8.0/24", internal=True, facts=HostFacts())
    assert not any(isinstance(op, SysctlSet) and "route_localnet" in op.key for op in plan.ops)
    assert '"masquerade"' not in json.dumps(next(op for op in plan.ops if isinstance(op, NftApply)).ruleset)


@pytest.mark.parametrize("kw, message", [
    ({"gateway": "10.0.0.1"}, "needs --subnet"),
    ({"subnet": "10.215.9.0/24", "gateway": "10.9.9.9"}, "not in subnet"),
    ({"subnet": "10.215.9.0/33"}, "10.215.9.0/33"),
    ({"driver": "overlay"}, "bridge networks only"),
])
def test_plan_create_rejects_bad_input(kw, message):
    with pytest.raises(ConfigError, match=message):
        netadmin.plan_create("x", facts=HostFacts(), **kw)
    with pytest.raises(ConfigError, match="invalid network name"):
        netadmin.plan_create("-bad", facts=HostFacts())


def _summaries():
    return [s for p in state.list_projects() if (s := state.read_summary(p))]


def test_create_inspect_and_remove(kernel_lock):
    name = "t" + uuid.uuid4().hex[:8] + "net"
    project = netadmin.project_name(name)
    try:
        with state.host_lock():
            summary = jsonform.dump(netadmin.create(name, subnet="10.215.1.0/24", gateway="10.215.1.1"))
        (net,) = summary["networks"]
        br = net["bridge"]
        addrs = sh("ip", "-o", "addr", "show", "dev", br).stdout
        assert "inet 10.215.1.1/24" in addrs
        assert Path(f"/proc/sys/net/ipv4/conf/{br}/route_localnet").read_text().strip() == "1"
        assert nft.table_exists("inet", f"cn-{project}")
        inspected = views.network_inspect(_summaries(), name)
        assert inspected["Name"] == name and inspected["Internal"] is False
        assert inspected["IPAM"]["Config"] == [{"Subnet": "10.215.1.0/24", "Gateway": "10.215.1.1"}]
        assert inspected["Labels"] == {} and inspected["Created"] == summary["created"]
        assert name in [row[1] for row in views.network_ls_rows(_summaries())]
        assert project not in [row[0] for row in views.ls_rows(_summaries())]
        with state.host_lock(), pytest.raises(RuntimeFailure, match="already exists"):
            netadmin.create(name)
        with state.host_lock():
            netadmin.remove(name)
        assert sh("ip", "link", "show", br, check=False).returncode != 0
        assert not nft.table_exists("inet", f"cn-{project}")
        assert not state.project_dir(project).exists()
        with state.host_lock(), pytest.raises(RuntimeFailure, match="no such network"):
            netadmin.remove(name)
    finally:
        from compose_net import executor
        executor.down(project)


def test_a_project_attaches_and_the_network_outlives_it(kernel_lock):
    from compose_net import executor
    from compose_net.model import Attachment, Container, Network, Project, Service
    from compose_net.plan.planner import plan_up
    from compose_net.probe import probe_host

    name = "t" + uuid.uuid4().hex[:8] + "ext"
    app = "t" + uuid.uuid4().hex[:8]
    try:
        with state.host_lock():
            summary = jsonform.dump(netadmin.create(name))  # IPAM picks the subnet
        (net,) = summary["networks"]
        subnet = ipaddress.ip_network(net["subnets"][0]["subnet"])
        gateway = net["subnets"][0]["gateway"]
        project = Project(
            name=app, working_dir="/tmp",
            services={"web": Service(name="web", networks=(Attachment(network="ext"),))},
            networks={"ext": Network(key="ext", name=name, external=True)},
            containers=(Container(name=f"{app}-web-1", service="web", index=1),))
        with state.host_lock():
            executor.up(plan_up(project, probe_host()))
        try:
            addr = sh("ip", "-o", "-4", "addr", "show", "dev", "eth0", ns=f"{app}-web-1").stdout
            ip = ipaddress.ip_interface(addr.split()[3])
            assert ip.ip in subnet
            assert sh("ping", "-c1", "-W1", "-q", gateway, ns=f"{app}-web-1", check=False).returncode == 0
            inspected = views.network_inspect(_summaries(), name)
            assert [c["Name"] for c in inspected["Containers"].values()] == [f"{app}-web-1"]
            with state.host_lock(), pytest.raises(RuntimeFailure, match="active endpoints"):
                netadmin.remove(name)
        finally:
            executor.down(app)
        # the project left; the network stays until removed
        assert sh("ip", "link", "show", net["bridge"], check=False).returncode == 0
        with state.host_lock():
            netadmin.remove(name)
        assert sh("ip", "link", "show", net["bridge"], check=False).returncode != 0
    finally:
        executor.down(app)
        executor.down(netadmin.project_name(name))


def test_cli_network_create_ls_inspect_rm(kernel_lock):
    import subprocess
    import sys

    def cli(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "compose_net", *args], capture_output=True, text=True, timeout=60)
        assert not check or proc.returncode == 0, proc.stderr
        return proc

    name = "t" + uuid.uuid4().hex[:8] + "cli"
    try:
        assert cli("network", "create", name, "--subnet", "10.215.3.0/24", "--internal").stdout.strip() == name
        assert name in cli("network", "ls").stdout
        listed = {n["Name"]: n for n in json.loads(cli("network", "ls", "--format", "json").stdout)}
        assert listed[name]["Internal"] == "true" and listed[name]["Driver"] == "bridge"
        (inspected,) = json.loads(cli("network", "inspect", name).stdout)
        assert inspected["Internal"] is True and inspected["Scope"] == "local"
        assert inspected["IPAM"]["Config"] == [{"Subnet": "10.215.3.0/24", "Gateway": "10.215.3.1"}]
        again = cli("network", "create", name, check=False)
        assert again.returncode == 1 and "already exists" in again.stderr
        assert cli("network", "rm", name).stdout.strip() == name
        gone = cli("network", "inspect", name, check=False)
        assert gone.returncode == 1 and "no such network" in gone.stderr
        assert not state.project_dir(netadmin.project_name(name)).exists()
    finally:
        from compose_net import executor
        executor.down(netadmin.project_name(name))
