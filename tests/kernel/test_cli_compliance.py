"""Issue 3 through the command line, as a user drives it: the files a container sees
(resolv.conf, hosts), `sysctls:`, MTU, `exec`, `ps`/`ls`/`network inspect`, progress output,
external networks, a kernel error and an injected failure after every op, and `down` from
another directory, twice."""

from __future__ import annotations

import json
import shlex
import shutil
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import kernel_snapshot, sh

COMPOSE = """
services:
  a:
    image: x
    hostname: alpha
    domainname: example.org
    dns: [192.0.2.53]
    dns_search: [corp.example]
    dns_opt: ["timeout:2", "attempts:3"]
    extra_hosts: ["somehost:162.242.195.82", "hg:host-gateway"]
    sysctls: {{net.ipv4.ip_default_ttl: "33", net.ipv4.conf.all.rp_filter: "2"}}
    networks: [n]
    expose: ["3000"]
  b:
    image: x
    deploy: {{replicas: 2}}
    networks: [n, m]
  lonely:
    image: x
    network_mode: none
    extra_hosts: ["x:10.1.2.3"]
  hostly: {{image: x, network_mode: host}}
  side: {{image: x, network_mode: "service:a"}}
networks:
  n:
    driver_opts: {{com.docker.network.driver.mtu: "1400"}}
    ipam: {{config: [{{subnet: {n}}}]}}
  m:
    internal: true
    ipam: {{config: [{{subnet: {m}}}]}}
"""

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def cli(*args: str, project: str | None = None, file: Path | None = None, check: bool = True,
        cwd: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "compose_net"]
    if project is not None:
        argv += ["-p", project]
    if file is not None:
        argv += ["-f", str(file)]
    proc = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"compose-net {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def _read(path: str) -> str:
    return Path(path).read_text()


def _mtu(ifname: str, ns: str | None = None) -> int:
    return json.loads(sh("ip", "-j", "link", "show", ifname, ns=ns).stdout)[0]["mtu"]


@pytest.fixture
def project(tmp_path, project_name):
    """The example above, up through the CLI (with --progress), taken down whatever happens."""
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(COMPOSE.format(n="10.231.0.0/24", m="10.231.1.0/24")))
    before = kernel_snapshot()
    try:
        up = cli("up", "--progress", project=project_name, file=path)
        yield project_name, path, up
    finally:
        cli("down", "--quiet", project=project_name, check=False, cwd="/")
    assert kernel_snapshot() == before


def test_container_files_sysctls_and_mtu(project):
    name, _, _ = project
    a, lonely = f"{name}-a-1", f"{name}-lonely-1"
    # dns: becomes the DNS server's upstream, not a nameserver line; the user's options come
    # first and ndots:0 is added after them, as Docker writes it
    assert _read(f"/etc/netns/{a}/resolv.conf") == (
        "nameserver 127.0.0.11\nsearch corp.example\noptions timeout:2 attempts:3 ndots:0\n")
    assert _read(f"/etc/netns/{a}/hosts") == HOSTS_HEADER + (
        "162.242.195.82\tsomehost\n"
        "10.231.0.1\thg\n"  # host-gateway: the host's address on the container's network
        "10.231.0.2\talpha.example.org alpha\n")
    # none: a copy of the host's resolv.conf; hosts has only the localhost lines (and extra_hosts)
    assert _read(f"/etc/netns/{lonely}/resolv.conf") == _host_resolv_conf()
    assert _read(f"/etc/netns/{lonely}/hosts") == HOSTS_HEADER + "10.1.2.3\tx\n"
    # host mode: no namespace, no files
    assert not Path(f"/run/netns/{name}-hostly-1").exists()
    assert not Path(f"/etc/netns/{name}-hostly-1").exists()
    # service:a: a second name for a's namespace, with a's files under its own name
    assert os.stat(f"/run/netns/{name}-side-1").st_ino == os.stat(f"/run/netns/{a}").st_ino
    for file in ("resolv.conf", "hosts", "hostname"):
        assert _read(f"/etc/netns/{name}-side-1/{file}") == _read(f"/etc/netns/{a}/{file}")

    # sysctls: set inside the container's namespace only
    assert sh("cat", "/proc/sys/net/ipv4/ip_default_ttl", ns=a).stdout.strip() == "33"
    assert sh("cat", "/proc/sys/net/ipv4/conf/all/rp_filter", ns=a).stdout.strip() == "2"
    assert _read("/proc/sys/net/ipv4/ip_default_ttl").strip() != "33"
    assert sh("cat", "/proc/sys/net/ipv4/ip_default_ttl", ns=f"{name}-b-1").stdout.strip() != "33"

    # MTU from driver_opts: bridge, host end of the veth, container end
    summary = json.loads(cli("ps", "--format", "json", project=name).stdout)
    iface = next(c for c in summary if c["Name"] == a)["Interfaces"][0]
    bridge = json.loads(cli("network", "inspect", f"{name}_n").stdout)[0]
    assert _mtu(iface["Interface"], ns=a) == 1400
    assert _mtu(iface["HostInterface"]) == 1400
    bridge_name = next(n["bridge"] for n in _summary(name)["networks"] if n["name"] == f"{name}_n")
    assert _mtu(bridge_name) == 1400
    assert bridge["Options"]["com.docker.network.driver.mtu"] == "1400"
    # the other network keeps the default
    b_m = next(c for c in summary if c["Name"] == f"{name}-b-1")["Interfaces"][1]
    assert b_m["Network"] == f"{name}_m" and _mtu(b_m["Interface"], ns=f"{name}-b-1") == 1500


def _host_resolv_conf() -> str:
    from compose_net.probe import probe_host

    return probe_host().resolv_conf


def _summary(name: str) -> dict:
    from compose_net import jsonform, state

    return jsonform.dump(state.read_summary(name))


def test_exec_runs_in_the_namespace_with_its_files_and_passes_the_status(project):
    name, _, _ = project
    got = cli("exec", "a", "--", "cat", "/etc/resolv.conf", "/etc/hosts", project=name).stdout
    assert got.startswith("nameserver 127.0.0.11\n") and "alpha.example.org alpha" in got
    # --index picks the replica; its address is the one ps shows
    ps = {c["Name"]: c for c in json.loads(cli("ps", "--format", "json", project=name).stdout)}
    second = ps[f"{name}-b-2"]["Interfaces"][0]["IPv4Address"]
    shown = cli("exec", "--index", "2", "b", "--", "ip", "-4", "-o", "addr", "show", "eth0", project=name).stdout
    assert second in shown
    # the exit status is the command's
    status = cli("exec", "b", "--", "sh", "-c", "exit 7", project=name, check=False)
    assert status.returncode == 7
    # service:a runs in a's namespace; host mode in the host's
    side = cli("exec", "side", "--", "ip", "-o", "link", "show", project=name).stdout
    assert "eth0" in side and "lo" in side
    assert "10.231.0.2/24" in cli("exec", "side", "--", "ip", "-4", "-o", "addr", project=name).stdout
    host_links = sh("ip", "-o", "link", "show").stdout.count("\n")
    assert cli("exec", "hostly", "--", "ip", "-o", "link", "show", project=name).stdout.count("\n") == host_links
    # a replica that does not exist is an error, exit 1
    missing = cli("exec", "--index", "3", "b", "--", "true", project=name, check=False)
    assert missing.returncode == 1 and "b" in missing.stderr
    # a command that does not exist exits 127, as `docker exec` does
    absent = cli("exec", "b", "--", "no-such-command-here", project=name, check=False)
    assert absent.returncode == 127 and "no-such-command-here" in absent.stderr


def test_every_container_has_a_namespace_name_and_its_own_hostname(project):
    """`ip netns exec` works for every container, service:X included; `hostname`, /etc/hostname
    and /etc/hosts agree inside, as in a Docker container; host mode keeps the host's."""
    name, _, _ = project
    summary = _summary(name)
    hostnames = {c["name"]: c["hostname"] for c in summary["containers"]}
    assert hostnames[f"{name}-a-1"] == "alpha"
    assert hostnames[f"{name}-side-1"] == "alpha"  # service:a: a's hostname, as Docker gives it
    ids = {c["name"]: c["id"] for c in summary["containers"]}
    assert hostnames[f"{name}-b-1"] == ids[f"{name}-b-1"][:12]  # Docker's default: the short id
    for c in summary["containers"]:
        if c["network_mode"] == "host":
            assert not Path(f"/run/netns/{c['name']}").exists() and not Path(f"/run/utsns/{c['name']}").exists()
            continue
        assert sh("ip", "netns", "exec", c["name"], "true", check=False).returncode == 0, c["name"]
        assert sh("nsenter", f"--uts=/run/utsns/{c['name']}", "hostname").stdout.strip() == hostnames[c["name"]]
    for service, index in (("a", 1), ("b", 1), ("b", 2), ("lonely", 1), ("side", 1)):
        container = f"{name}-{service}-{index}"
        args = ("exec", "--index", str(index), service, "--")
        assert cli(*args, "hostname", project=name).stdout.strip() == hostnames[container], container
        assert cli(*args, "cat", "/etc/hostname", project=name).stdout == hostnames[container] + "\n"
        hosts = cli(*args, "cat", "/etc/hosts", project=name).stdout.splitlines()
        if service != "lonely":  # none: only the localhost lines, as Docker writes them
            assert hosts[-1].split("\t")[1].split()[-1] == hostnames[container], hosts
    # the NIS domain name too, and `hostname -f` finds the name in /etc/hosts
    assert cli("exec", "a", "--", "cat", "/proc/sys/kernel/domainname", project=name).stdout.strip() == "example.org"
    assert cli("exec", "a", "--", "hostname", "-f", project=name).stdout.strip() == "alpha.example.org"
    # every exec enters the same namespace: a change made in one is seen by the next
    cli("exec", "b", "--", "hostname", "renamed", project=name)
    assert cli("exec", "b", "--", "hostname", project=name).stdout.strip() == "renamed"
    assert cli("exec", "--index", "2", "b", "--", "hostname", project=name).stdout.strip() == hostnames[f"{name}-b-2"]
    # host mode: the host's own name, and the exit status of the command still passes through
    assert cli("exec", "hostly", "--", "hostname", project=name).stdout == sh("hostname").stdout
    assert cli("exec", "side", "--", "sh", "-c", "exit 5", project=name, check=False).returncode == 5


def test_ps_ls_and_network_inspect(project):
    name, path, up = project
    ps = json.loads(cli("ps", "--format", "json", project=name).stdout)
    assert {c["Name"] for c in ps} == {f"{name}-{s}" for s in ("a-1", "b-1", "b-2", "lonely-1", "hostly-1", "side-1")}
    a = next(c for c in ps if c["Name"] == f"{name}-a-1")
    assert a["Service"] == "a" and a["Project"] == name and a["Namespace"] == f"{name}-a-1"
    assert a["Hostname"] == "alpha"
    assert [(i["Network"], i["Interface"], i["IPv4Address"], i["MacAddress"]) for i in a["Interfaces"]] == [
        (f"{name}_n", "eth0", "10.231.0.2/24", "02:42:0a:e7:00:02")]
    assert "3000/tcp" in a["Ports"]  # expose is shown, and nothing is published for it
    table = cli("ps", project=name).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "SERVICE", "STATE", "NAMESPACE"]
    assert any(line.startswith(f"{name}-b-2 ") for line in table)

    listed = {p["Name"]: p for p in json.loads(cli("ls", "--format", "json").stdout)}
    assert listed[name]["Status"] == "running(6)" and listed[name]["ConfigFiles"] == str(path)
    assert name in cli("ls").stdout

    (net,) = json.loads(cli("network", "inspect", f"{name}_n").stdout)
    assert {"Name", "Id", "Driver", "Scope", "Internal", "IPAM", "Containers"} <= set(net)
    assert (net["Name"], net["Driver"], net["Scope"], net["Internal"]) == (f"{name}_n", "bridge", "local", False)
    assert len(net["Id"]) == 64
    assert net["IPAM"]["Config"] == [{"Subnet": "10.231.0.0/24", "Gateway": "10.231.0.1"}]
    members = {c["Name"]: c for c in net["Containers"].values()}
    assert set(members) == {f"{name}-a-1", f"{name}-b-1", f"{name}-b-2"}
    assert members[f"{name}-a-1"]["IPv4Address"] == "10.231.0.2/24"
    assert members[f"{name}-a-1"]["MacAddress"] == "02:42:0a:e7:00:02"
    (internal,) = json.loads(cli("network", "inspect", f"{name}_m").stdout)
    assert internal["Internal"] is True
    assert f"{name}_n" in cli("network", "ls").stdout

    # expose makes no rule: the project's table has no DNAT at all
    table = json.loads(sh("nft", "-j", "list", "table", "inet", _summary(name)["table"]).stdout)
    assert not [x for x in table["nftables"] if "rule" in x and '"dnat": {' in json.dumps(x["rule"])]
    assert "ports" not in {x["chain"]["name"] for x in table["nftables"] if "chain" in x}


def test_progress_lines_then_up_again_says_nothing_changes(project):
    name, path, up = project
    lines = up.stdout.splitlines()
    # one line per network and per container that has a namespace, each with its timing
    for what in (f"Network {name}_n", f"Network {name}_m", f"Container {name}-a-1",
                 f"Container {name}-b-2", f"Container {name}-lonely-1"):
        line = next((x for x in lines if what + " " in x), None)
        assert line is not None, f"no progress line for {what}: {up.stdout}"
        assert "Created" in line and line.rstrip().endswith("s")
    assert lines[-1].split()[1:3] == ["project", name] and "is up" in lines[-1]
    # without a terminal and without --progress: quiet
    again = cli("up", project=name, file=path)
    assert again.stdout == "" and "already up" in again.stderr
    assert cli("up", "--quiet", project=name, file=path).stderr == ""
    said = cli("up", "--progress", project=name, file=path).stdout
    assert "already up" in said and "Created" not in said


def test_down_from_another_directory_twice(tmp_path, project_name):
    path = tmp_path / "compose.yml"
    path.write_text("services:\n  s: {image: x, networks: [n]}\nnetworks:\n  n: {ipam: {config: [{subnet: 10.231.2.0/24}]}}\n")
    before = kernel_snapshot()
    ruleset = sh("nft", "list", "ruleset").stdout
    try:
        cli("up", project=project_name, file=path)
        path.unlink()  # the file is gone: down works from the recorded state
        down = cli("down", "--progress", project=project_name, cwd="/")
        lines = down.stdout.splitlines()
        assert [x.split()[1:4] for x in lines[:2]] == [
            ["Container", f"{project_name}-s-1", "Removed"], ["Network", f"{project_name}_n", "Removed"]], down.stdout
        assert "project" in lines[-1] and "is down" in lines[-1]
        assert kernel_snapshot() == before
        assert sh("nft", "list", "ruleset").stdout == ruleset
        again = cli("down", project=project_name, cwd="/")
        assert again.returncode == 0 and "not up" in again.stderr
        assert kernel_snapshot() == before
    finally:
        cli("down", "--quiet", project=project_name, check=False, cwd="/")


def test_external_network_from_network_create(tmp_path, project_name):
    net = project_name + "x"
    path = tmp_path / "compose.yml"
    path.write_text(textwrap.dedent(f"""
        services:
          w: {{image: x, networks: [shared]}}
        networks:
          shared: {{external: true, name: {net}}}
        """))
    before = kernel_snapshot()
    try:
        # missing: exit 1 before anything changes
        missing = cli("up", project=project_name, file=path, check=False)
        assert missing.returncode == 1, missing.stderr
        assert net in missing.stderr and "nothing was changed" in missing.stderr
        assert kernel_snapshot() == before

        cli("network", "create", net, "--subnet", "10.231.3.0/24")
        made = kernel_snapshot()
        cli("up", project=project_name, file=path)
        assert sh("ping", "-c1", "-W2", "10.231.3.1", ns=f"{project_name}-w-1").returncode == 0
        (inspected,) = json.loads(cli("network", "inspect", net).stdout)
        assert [c["Name"] for c in inspected["Containers"].values()] == [f"{project_name}-w-1"]
        cli("down", project=project_name)
        assert kernel_snapshot() == made  # the external network stays
        cli("network", "rm", net)
        assert kernel_snapshot() == before
    finally:
        cli("down", "--quiet", project=project_name, check=False)
        cli("network", "rm", net, check=False)


def test_a_kernel_error_exits_1_naming_the_op_and_the_error(tmp_path, project_name):
    path = tmp_path / "compose.yml"
    # the kernel refuses a TTL of 0 (EINVAL) when the sysctl is written inside the namespace
    path.write_text("services:\n  s:\n    image: x\n    networks: [n]\n    sysctls: {net.ipv4.ip_default_ttl: '0'}\n"
                    "networks:\n  n: {ipam: {config: [{subnet: 10.231.4.0/24}]}}\n")
    before = kernel_snapshot()
    try:
        failed = cli("up", project=project_name, file=path, check=False)
        assert failed.returncode == 1
        assert "net.ipv4.ip_default_ttl" in failed.stderr and "Invalid argument" in failed.stderr, failed.stderr
        assert "op " in failed.stderr
        assert kernel_snapshot() == before
    finally:
        cli("down", "--quiet", project=project_name, check=False)


MID = """
services:
  web:
    image: x
    networks: [front, back]
    ports: ["18090:80"]
  api:
    image: x
    networks: [back]
    sysctls: {net.ipv4.ip_unprivileged_port_start: "0"}
  db:
    image: x
    networks:
      back: {ipv4_address: 10.231.6.50, aliases: [database]}
  side:
    image: x
    network_mode: "service:db"
  job:
    image: x
    network_mode: none
networks:
  front: {ipam: {config: [{subnet: 10.231.5.0/24}]}}
  back: {ipam: {config: [{subnet: 10.231.6.0/24}]}}
"""


def test_injected_failure_after_every_op_through_the_cli(tmp_path, project_name):
    from compose_net.plan.ops import op_from_json

    path = tmp_path / "compose.yml"
    path.write_text(MID)
    planned = json.loads(cli("up", "--dry-run", "--json", project=project_name, file=path).stdout)
    ops = [op_from_json(o) for o in planned]
    assert {"netns_create", "veth_create", "sysctl", "nft_apply", "file_write", "dns_start"} <= {
        op.kind for op in ops}
    before = kernel_snapshot()
    ruleset = sh("nft", "list", "ruleset").stdout
    try:
        for k, op in enumerate(ops, 1):
            failed = cli("up", project=project_name, file=path, check=False,
                         env={"COMPOSE_NET_FAIL_AFTER": str(k)})
            assert failed.returncode == 1, failed.stderr
            assert f"op {k} failed: {op.describe()}: injected failure" in failed.stderr, failed.stderr
            assert kernel_snapshot() == before, f"rollback after op {k} ({op.describe()}) left something"
            assert sh("nft", "list", "ruleset").stdout == ruleset
        cli("up", project=project_name, file=path)
        assert sh("ping", "-c1", "-W2", "10.231.6.50", ns=f"{project_name}-api-1").returncode == 0
    finally:
        cli("down", "--quiet", project=project_name, check=False)
    assert kernel_snapshot() == before


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_progress_on_a_terminal_without_asking(tmp_path, project_name):
    path = tmp_path / "compose.yml"
    path.write_text("services:\n  s: {image: x, networks: [n]}\nnetworks:\n  n: {ipam: {config: [{subnet: 10.231.7.0/24}]}}\n")
    before = kernel_snapshot()
    command = shlex.join([sys.executable, "-m", "compose_net", "-p", project_name, "-f", str(path), "up"])
    try:
        # `script` runs the command on a pseudo-terminal: progress shows without --progress
        shown = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stdout
        assert f"Network {project_name}_n" in shown.stdout and f"Container {project_name}-s-1" in shown.stdout
        assert "Created" in shown.stdout
    finally:
        cli("down", "--quiet", project=project_name, check=False)
    assert kernel_snapshot() == before
