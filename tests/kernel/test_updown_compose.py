"""The executor driven from compose files through the loader and planner (and the CLI):
`up` twice, `up` after an edit, two projects at once, a failure after every op of a mid-size
example, and `kill -9` of `compose-net up` followed by `compose-net down`."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from compose_net import executor, jsonform, state
from compose_net.errors import OpFailed
from conftest import kernel_snapshot, sh

MID = """
services:
  web:
    image: x
    networks: [front, back]
    ports: ["18080:80"]
  api:
    image: x
    networks: [back]
    sysctls: {net.ipv4.ip_unprivileged_port_start: "0"}
  db:
    image: x
    networks:
      back: {ipv4_address: 10.226.1.50, aliases: [database]}
  job:
    image: x
    network_mode: none
networks:
  front: {ipam: {config: [{subnet: 10.226.0.0/24}]}}
  back: {ipam: {config: [{subnet: 10.226.1.0/24}]}}
"""


def _summary(project: str) -> dict:
    """The recorded state in its JSON form."""
    return jsonform.dump(state.read_summary(project))


def _plan(project: str, directory: Path, text: str):
    """What `up` of `text` applies now (the desired plan held against the journal and the kernel)."""
    from compose_net import observe
    from compose_net.loader import LoadOptions, load
    from compose_net.plan.planner import plan_changes, plan_up
    from compose_net.probe import probe_host

    path = directory / "compose.yml"
    path.write_text(textwrap.dedent(text))
    result = load(LoadOptions(files=(str(path),), project_name=project))
    facts = probe_host()
    recorded = state.Journal(project).read().ops
    desired = plan_up(result.project, facts)
    return plan_changes(result.project, facts, recorded, observe.read(observe.query(desired.ops + recorded)))


def _cli(*args: str, project: str, file: Path | None = None, check: bool = True, **kw):
    argv = [sys.executable, "-m", "compose_net", "-p", project]
    if file is not None:
        argv += ["-f", str(file)]
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"compose-net {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def _dns_running(project: str) -> bool:
    try:
        from compose_net.dns import control
    except ImportError:
        return False
    return control.is_running(project)


@pytest.fixture
def down_after(project_name):
    yield
    with state.host_lock():
        executor.down(project_name)


def test_up_twice_then_after_an_edit(project_name, tmp_path, down_after):
    first = _plan(project_name, tmp_path, """
        services:
          web: {image: x, networks: [n]}
          db: {image: x, networks: [n]}
        networks:
          n: {ipam: {config: [{subnet: 10.227.0.0/24}]}}
        """)
    with state.host_lock():
        assert executor.up(first).changed
    web = f"{project_name}-web-1"
    inode = os.stat(f"/run/netns/{web}").st_ino
    with state.host_lock():
        again = executor.up(_plan(project_name, tmp_path, (tmp_path / "compose.yml").read_text()))
    assert not again.changed and "nothing to change" in again.message

    edited = _plan(project_name, tmp_path, """
        services:
          web: {image: x, networks: [n]}
          db: {image: x, networks: [n, m]}
          cache: {image: x, networks: [m]}
        networks:
          n: {ipam: {config: [{subnet: 10.227.0.0/24}]}}
          m: {ipam: {config: [{subnet: 10.227.1.0/24}]}}
        """)
    with state.host_lock():
        result = executor.up(edited)
    assert result.updated
    assert result.removed == ()
    assert f"container:{project_name}-db-1" in result.recreated
    assert f"container:{project_name}-cache-1" in result.created
    assert os.stat(f"/run/netns/{web}").st_ino == inode  # its ops did not change: untouched
    summary = _summary(project_name)
    assert {c["name"] for c in summary["containers"]} == {web, f"{project_name}-db-1", f"{project_name}-cache-1"}
    cache_ip = next(i["ipv4"] for c in summary["containers"] if c["service"] == "cache" for i in c["interfaces"])
    sh("ping", "-c1", "-W2", cache_ip.split("/")[0], ns=f"{project_name}-db-1")
    # The DNS server was told: the recreated db (a new namespace under the same name) and the
    # new cache resolve each other's names through 127.0.0.11.
    resolve = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    assert any(op.kind == "dns_start" for op in edited.ops) and _dns_running(project_name)
    got = sh(sys.executable, "-c", resolve, "cache", ns=f"{project_name}-db-1").stdout.strip()
    assert got == cache_ip.split("/")[0]
    db_m = next(i["ipv4"] for c in summary["containers"] if c["service"] == "db"
                for i in c["interfaces"] if i["ipv4"].startswith("10.227.1."))
    got = sh(sys.executable, "-c", resolve, "db", ns=f"{project_name}-cache-1").stdout.strip()
    assert got == db_m.split("/")[0]
    assert list(state.Journal(project_name).read().ops) == list(edited.record)

    # Removing a service keeps the project's link group: only the removed unit goes.
    group = summary["group"]
    shrunk = _plan(project_name, tmp_path, """
        services:
          web: {image: x, networks: [n]}
          db: {image: x, networks: [n, m]}
        networks:
          n: {ipam: {config: [{subnet: 10.227.0.0/24}]}}
          m: {ipam: {config: [{subnet: 10.227.1.0/24}]}}
        """)
    with state.host_lock():
        result = executor.up(shrunk)
    assert result.removed == (f"container:{project_name}-cache-1",)
    assert result.recreated == () or all(not u.startswith("container:") for u in result.recreated)
    assert os.stat(f"/run/netns/{web}").st_ino == inode
    assert _summary(project_name)["group"] == group
    assert not Path(f"/run/netns/{project_name}-cache-1").exists()
    assert f"{project_name}-cache-1" not in sh("ip", "netns", "list").stdout


def test_two_projects_at_once_get_different_subnets(project_name, tmp_path):
    names = [project_name + "a", project_name + "b"]
    files = []
    for name in names:
        d = tmp_path / name
        d.mkdir()
        (d / "compose.yml").write_text("services:\n  s1: {image: x}\n  s2: {image: x}\n")
        files.append(d / "compose.yml")
    before = kernel_snapshot()
    argv = lambda name, f: [sys.executable, "-m", "compose_net", "-p", name, "-f", str(f), "up", "--quiet"]
    procs = [subprocess.Popen(argv(n, f), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, f in zip(names, files)]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        subnets = [ipaddress.ip_network(_summary(n)["networks"][0]["subnets"][0]["subnet"]) for n in names]
        assert not subnets[0].overlaps(subnets[1])
    finally:
        for name in names:
            _cli("down", "--quiet", project=name, check=False)
    assert kernel_snapshot() == before


def test_failure_after_every_op_of_a_mid_size_example(project_name, tmp_path, monkeypatch):
    plan = _plan(project_name, tmp_path, MID)
    kinds = {op.kind for op in plan.ops}
    assert {"netns_create", "veth_create", "nft_apply", "file_write"} <= kinds
    before = kernel_snapshot()
    ruleset = sh("nft", "list", "ruleset").stdout
    for k in range(1, len(plan.ops) + 1):
        monkeypatch.setenv("COMPOSE_NET_FAIL_AFTER", str(k))
        with pytest.raises(OpFailed) as info:
            with state.host_lock():
                executor.up(plan)
        assert info.value.seq == k
        assert kernel_snapshot() == before, f"rollback after op {k} ({plan.ops[k - 1].describe()}) left something"
        assert sh("nft", "list", "ruleset").stdout == ruleset
        assert not _dns_running(project_name)
    monkeypatch.delenv("COMPOSE_NET_FAIL_AFTER")
    try:
        with state.host_lock():
            executor.up(plan)
        sh("ping", "-c1", "-W2", "10.226.1.50", ns=f"{project_name}-api-1")
    finally:
        with state.host_lock():
            executor.down(project_name)
    assert kernel_snapshot() == before


@pytest.mark.parametrize("after", [3, 40])
def test_kill_9_of_the_cli_then_down_leaves_nothing(project_name, tmp_path, after):
    services = "\n".join(f"  s{i}: {{image: x, networks: [a{', b' if i % 2 else ''}]}}" for i in range(60))
    path = tmp_path / "compose.yml"
    path.write_text(f"services:\n{services}\nnetworks:\n  a: {{}}\n  b: {{}}\n")
    before = kernel_snapshot()
    proc = subprocess.Popen([sys.executable, "-m", "compose_net", "-p", project_name, "-f", str(path), "up", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            made = [n for n in os.listdir("/run/netns") if n.startswith(project_name)] if os.path.isdir("/run/netns") else []
            if len(made) >= after:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "up finished before it could be killed"
    _cli("down", "--quiet", project=project_name)
    assert kernel_snapshot() == before
    assert not _dns_running(project_name)


def test_network_modes_host_none_and_service(project_name, tmp_path, down_after):
    plan = _plan(project_name, tmp_path, """
        services:
          web: {image: x, networks: [n]}
          side: {image: x, network_mode: "service:web"}
          hostly: {image: x, network_mode: host}
          lonely: {image: x, network_mode: none}
        networks:
          n: {ipam: {config: [{subnet: 10.228.0.0/24}]}}
        """)
    with state.host_lock():
        executor.up(plan)
    mine = sorted(n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(project_name))
    # host: no namespace; service:web: a second name for web's; none: its own with lo only
    assert mine == [f"{project_name}-lonely-1", f"{project_name}-side-1", f"{project_name}-web-1"]
    assert os.stat(f"/run/netns/{project_name}-side-1").st_ino == os.stat(f"/run/netns/{project_name}-web-1").st_ino
    assert sorted(n for n in os.listdir("/run/utsns") if n.startswith(project_name)) == mine
    links = json.loads(sh("ip", "-j", "link", "show", ns=f"{project_name}-lonely-1").stdout)
    assert [(l["ifname"], "UP" in l["flags"]) for l in links] == [("lo", True)]
    assert sh("ip", "route", "show", ns=f"{project_name}-lonely-1").stdout == ""
    web = json.loads(sh("ip", "-j", "addr", "show", "eth0", ns=f"{project_name}-web-1").stdout)[0]
    assert [a["local"] for a in web["addr_info"] if a["family"] == "inet"] == ["10.228.0.2"]


def test_a_service_x_container_follows_x_through_an_edit(project_name, tmp_path, down_after):
    """Its names are bind mounts of X's namespaces: they follow X through an edit (X's UTS
    namespace made anew with the new hostname, X's address changed in place), so `ip netns exec`
    and `nsenter` by the sidecar's name see what X has."""
    text = """
        services:
          web: {{image: x, networks: {{n: {{ipv4_address: {ip}}}}}, hostname: {host}}}
          side: {{image: x, network_mode: "service:web"}}
        networks:
          n: {{ipam: {{config: [{{subnet: 10.228.1.0/24}}]}}}}
        """
    web, side = f"{project_name}-web-1", f"{project_name}-side-1"
    with state.host_lock():
        executor.up(_plan(project_name, tmp_path, text.format(ip="10.228.1.5", host="one")))
    before = os.stat(f"/run/netns/{web}").st_ino
    assert os.stat(f"/run/netns/{side}").st_ino == before
    with state.host_lock():
        result = executor.up(_plan(project_name, tmp_path, text.format(ip="10.228.1.6", host="two")))
    assert {f"container:{web}", f"container:{side}"} <= set(result.recreated)
    after = os.stat(f"/run/netns/{web}").st_ino
    assert after == before and os.stat(f"/run/netns/{side}").st_ino == after  # only the difference
    assert "10.228.1.6/24" in sh("ip", "-4", "-o", "addr", "show", "eth0", ns=side).stdout
    for name in (web, side):
        assert sh("nsenter", f"--uts=/run/utsns/{name}", "hostname").stdout.strip() == "two"
        assert Path(f"/etc/netns/{name}/hostname").read_text() == "two\n"


def test_legacy_bridge_is_shared_and_left_to_the_last_project(project_name, tmp_path):
    names = [project_name + "a", project_name + "b"]
    files = []
    for name in names:
        d = tmp_path / name
        d.mkdir()
        (d / "compose.yml").write_text("services:\n  old: {image: x, network_mode: bridge}\n")
        files.append(d / "compose.yml")
    before = kernel_snapshot()
    if "cn0" in before["links"]:
        pytest.skip("a cn0 bridge of some other project exists on this host")
    try:
        for name, f in zip(names, files):
            _cli("up", "--quiet", project=name, file=f)
        out = _cli("up", project=names[1], file=files[1], env={**os.environ, "COMPOSE_NET_PROGRESS": "1"}).stdout
        assert sh("ip", "link", "show", "cn0", check=False).returncode == 0
        ips = [next(i["ipv4"] for i in _summary(n)["containers"][0]["interfaces"]).split("/")[0] for n in names]
        assert ips[0] != ips[1]
        _cli("down", "--quiet", project=names[0])
        assert sh("ip", "link", "show", "cn0", check=False).returncode == 0  # still used by b
        sh("ping", "-c1", "-W2", "172.17.0.1", ns=f"{names[1]}-old-1")
        _cli("down", "--quiet", project=names[1])
        assert sh("ip", "link", "show", "cn0", check=False).returncode != 0  # the last one out
    finally:
        for name in names:
            _cli("down", "--quiet", project=name, check=False)
    assert kernel_snapshot() == before


def test_a_rollback_leaves_the_shared_bridge_and_its_other_users(project_name, tmp_path, monkeypatch):
    first, second = project_name + "a", project_name + "b"
    for name in (first, second):
        (tmp_path / name).mkdir()
    (tmp_path / first / "compose.yml").write_text("services:\n  old: {image: x, network_mode: bridge}\n")
    before = kernel_snapshot()
    if "cn0" in before["links"]:
        pytest.skip("a cn0 bridge of some other project exists on this host")
    try:
        _cli("up", "--quiet", project=first, file=tmp_path / first / "compose.yml")
        plan = _plan(second, tmp_path / second, "services:\n  legacy: {image: x, network_mode: bridge}\n  web: {image: x}\n")
        for k in range(1, len(plan.ops) + 1):
            monkeypatch.setenv("COMPOSE_NET_FAIL_AFTER", str(k))
            with pytest.raises(OpFailed):
                with state.host_lock():
                    executor.up(plan)
            # the first project's container still reaches the shared bridge's gateway
            sh("ping", "-c1", "-W2", "172.17.0.1", ns=f"{first}-old-1")
            assert not state.Journal(second).exists()
    finally:
        monkeypatch.delenv("COMPOSE_NET_FAIL_AFTER", raising=False)
        _cli("down", "--quiet", project=second, check=False)
        _cli("down", "--quiet", project=first, check=False)
    assert kernel_snapshot() == before


def test_overlay_network_on_a_single_host(project_name, tmp_path, down_after):
    plan = _plan(project_name, tmp_path, """
        services:
          a: {image: x, networks: [o]}
          b: {image: x, networks: [o]}
        networks:
          o: {driver: overlay, ipam: {config: [{subnet: 10.229.0.0/24}]}}
        """)
    vxlan = next(op for op in plan.ops if op.kind == "vxlan_create")
    with state.host_lock():
        executor.up(plan)
    info = json.loads(sh("ip", "-j", "-d", "link", "show", vxlan.name).stdout)[0]
    assert info["linkinfo"]["info_kind"] == "vxlan"
    assert info["linkinfo"]["info_data"]["id"] == vxlan.vni
    assert info["master"] == vxlan.master
    sh("ping", "-c1", "-W2", "10.229.0.3", ns=f"{project_name}-a-1")


def test_macvlan_from_a_compose_file(project_name, tmp_path, veth_parent, down_after):
    plan = _plan(project_name, tmp_path, f"""
        services:
          a: {{image: x, networks: {{m: {{ipv4_address: 10.224.0.10}}}}}}
          b: {{image: x, networks: [m]}}
        networks:
          m:
            driver: macvlan
            driver_opts: {{parent: {veth_parent}, macvlan_mode: bridge}}
            ipam: {{config: [{{subnet: 10.224.0.0/24}}]}}
        """)
    with state.host_lock():
        executor.up(plan)
    link = json.loads(sh("ip", "-j", "-d", "addr", "show", "eth0", ns=f"{project_name}-a-1").stdout)[0]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == ["10.224.0.10"]
    sh("ping", "-c1", "-W2", "10.224.0.10", ns=f"{project_name}-b-1")


def _cli_refuses(project_name, tmp_path, kind: str, driver: str, parent: str, subnet: str, words: str) -> None:
    """`up` of a network needing link kind `kind` exits 1 before any change on a kernel without it."""
    from compose_net.executor.netlink import Rtnl

    sock = Rtnl()
    try:
        if sock.kind_supported(kind):
            pytest.skip(f"this kernel has {kind}: the refusal cannot be observed")
    finally:
        sock.close()
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(f"""
        services:
          a: {{image: x, networks: [m]}}
        networks:
          m:
            driver: {driver}
            driver_opts: {{parent: {parent}}}
            ipam: {{config: [{{subnet: {subnet}}}]}}
        """))
    before = kernel_snapshot()
    proc = _cli("up", project=project_name, file=path, check=False)
    assert proc.returncode == 1, proc.stderr
    assert words in proc.stderr and "nothing was changed" in proc.stderr
    assert kernel_snapshot() == before


def test_cli_refuses_a_vlan_parent_this_kernel_cannot_make(project_name, tmp_path, veth_parent):
    _cli_refuses(project_name, tmp_path, "vlan", "macvlan", f"{veth_parent}.10", "10.225.0.0/24", "vlan")


def test_cli_refuses_ipvlan_on_a_kernel_without_it(project_name, tmp_path, veth_parent):
    _cli_refuses(project_name, tmp_path, "ipvlan", "ipvlan", veth_parent, "10.223.0.0/24", "no ipvlan support")
