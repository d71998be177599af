"""Live operations against the kernel: `network connect/disconnect` on a running project, `network
rm` refusing while containers are attached, `network prune`, `run` on created networks (attached,
detached, killed), `run SERVICE`; every bad input refused with one line and nothing changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import kernel_snapshot, sh
from compose_net import state

COMPOSE = """\
services:
  a:
    image: x
    networks: [n1]
  b:
    image: x
    networks: [n2]
  c:
    image: x
networks:
  n1: {{ipam: {{config: [{{subnet: 10.243.{i}.0/24}}]}}}}
  n2: {{ipam: {{config: [{{subnet: 10.243.{j}.0/24}}]}}}}
"""
RESOLVE = "import socket, sys\ntry: print(socket.gethostbyname(sys.argv[1]))\nexcept OSError: print('none')"


def cli(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "compose_net", *args], capture_output=True, text=True,
                          timeout=120, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"compose-net {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def resolve(ns: str, name: str) -> str:
    return sh(sys.executable, "-c", RESOLVE, name, ns=ns).stdout.strip()


def reaches(ns: str, ip: str) -> bool:
    return sh("ping", "-c1", "-W1", ip, ns=ns, check=False).returncode == 0


class Project:
    def __init__(self, name: str, directory: Path):
        self.name = name
        self.file = directory / "compose.yml"
        i = int(name[1:3], 16) % 120
        self.file.write_text(COMPOSE.format(i=2 * i, j=2 * i + 1))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return cli("-p", self.name, "-f", str(self.file), *args, check=check)

    def c(self, service: str) -> str:
        return f"{self.name}-{service}-1"

    def net(self, key: str) -> str:
        return f"{self.name}_{key}"

    def ip(self, service: str, key: str) -> str:
        ctr = state.read_summary(self.name).container(self.c(service))
        return str(next(i for i in ctr.interfaces if i.network == self.net(key)).ipv4.ip)

    def interfaces(self, service: str) -> dict[str, str]:
        ctr = state.read_summary(self.name).container(self.c(service))
        return {i.network: i.ifname for i in ctr.interfaces}

    def recorded(self) -> tuple[str, str]:
        d = state.project_dir(self.name)
        return (d / "journal").read_text(), (d / "project.json").read_text()


@pytest.fixture
def project(kernel_lock, tmp_path, project_name):
    p = Project(project_name, tmp_path)
    before = kernel_snapshot()
    try:
        p.cli("up")
        yield p
    finally:
        p.cli("down", check=False)
    assert kernel_snapshot() == before


def test_connect_and_disconnect_a_running_container(project):
    p = project
    a, b = p.c("a"), p.c("b")
    assert resolve(a, "b") == "none" and not reaches(a, p.ip("b", "n2"))
    p.cli("network", "connect", "--alias", "extra", p.net("n2"), a)
    assert p.interfaces("a") == {p.net("n1"): "eth0", p.net("n2"): "eth1"}
    a2 = p.ip("a", "n2")
    assert "eth1" in sh("ip", "-o", "addr", "show", ns=a).stdout
    # reachable and resolvable both ways, at once
    assert resolve(a, "b") == p.ip("b", "n2") and reaches(a, p.ip("b", "n2"))
    assert resolve(b, a) == a2 and resolve(b, "extra") == a2 and reaches(b, a2)
    assert resolve(p.c("c"), "extra") == "none"  # not on n2
    # ps and network inspect show the endpoint
    inspect = json.loads(p.cli("network", "inspect", p.net("n2")).stdout)[0]
    assert a in {e["Name"] for e in inspect["Containers"].values()}
    # an unchanged up keeps it: nothing to do
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []
    p.cli("up")
    assert p.interfaces("a")[p.net("n2")] == "eth1" and reaches(b, a2)
    p.cli("network", "disconnect", p.net("n2"), a)
    assert p.interfaces("a") == {p.net("n1"): "eth0"}
    assert "eth1" not in sh("ip", "-o", "link", "show", ns=a).stdout
    assert resolve(a, "b") == "none" and resolve(b, a) == "none" and not reaches(b, a2)
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []
    # a network of its file: disconnected, kept so by up, connected again as the file says
    p.cli("network", "disconnect", p.net("n1"), a)
    assert p.interfaces("a") == {}
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []
    p.cli("network", "connect", p.net("n1"), a)
    assert p.interfaces("a") == {p.net("n1"): "eth0"}
    # connected again, then down removes it with the rest (the fixture checks the kernel)
    p.cli("network", "connect", p.net("n2"), a)
    assert reaches(a, p.ip("b", "n2"))


def test_no_query_lost_while_connecting_and_disconnecting(project, tmp_path):
    import re

    p = project
    perfs = []
    for service in ("a", "b"):
        queries = tmp_path / f"q-{service}"
        queries.write_text(f"{p.c(service)} A\n{service} A\n")
        perfs.append(subprocess.Popen(["ip", "netns", "exec", p.c(service), "dnsperf", "-s", "127.0.0.11", "-d",
                                       str(queries), "-l", "5", "-Q", "400"], stdout=subprocess.PIPE, text=True))
    time.sleep(0.8)
    for _ in range(2):
        p.cli("network", "connect", p.net("n2"), p.c("a"))
        p.cli("network", "disconnect", p.net("n2"), p.c("a"))
    for perf in perfs:
        out, _ = perf.communicate(timeout=60)
        completed = re.search(r"Queries completed:\s+(\d+)", out)
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        assert completed and int(completed.group(1)) > 1000 and lost and int(lost.group(1)) == 0, out


def test_a_disconnect_keeps_the_other_interface_names(project):
    p = project
    a = p.c("a")
    p.cli("network", "connect", p.net("n2"), a)
    p.cli("network", "disconnect", p.net("n1"), a)
    assert p.interfaces("a") == {p.net("n2"): "eth1"}
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []


def test_bad_connects_change_nothing(project):
    p = project
    a = p.c("a")
    p.cli("network", "connect", p.net("n2"), p.c("c"))
    before = p.recorded()
    n2 = p.ip("b", "n2")
    subnet = ".".join(n2.split(".")[:3])
    cases = [
        (("network", "connect", "nosuchnet", a), 1, "network nosuchnet not found"),
        (("network", "connect", p.net("n2"), "nosuch"), 1, "no such container: nosuch"),
        (("network", "connect", p.net("n1"), a), 1, "already exists in network"),
        (("network", "disconnect", p.net("n2"), a), 1, "is not connected to network"),
        (("network", "connect", "--ip", "10.9.9.9", p.net("n2"), a), 2, "is not a usable address"),
        (("network", "connect", "--ip", n2, p.net("n2"), a), 2, f"by container {p.c('b')}"),
        (("network", "connect", "--ip", f"{subnet}.1", p.net("n2"), a), 2, "by the gateway"),
        (("network", "connect", "--ip", "banana", p.net("n2"), a), 2, "not an IP address"),
        (("network", "connect", "--alias", "bad name", p.net("n2"), a), 2, "invalid DNS name"),
        (("network", "disconnect", p.net("n1"), "nosuch"), 1, "no such container"),
    ]
    for args, status, message in cases:
        got = p.cli(*args, check=False)
        assert got.returncode == status, (args, got.stderr)
        lines = got.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, got.stderr)
        assert "Traceback" not in got.stderr
    assert p.recorded() == before


def test_ip_needs_a_user_given_subnet(project, tmp_path):
    net = "t" + project.name[1:] + "x"
    cli("network", "create", net)
    try:
        got = project.cli("network", "connect", "--ip", "172.30.0.5", net, project.c("a"), check=False)
        assert got.returncode == 2 and "user configured subnet" in got.stderr
    finally:
        cli("network", "rm", net)


@pytest.fixture
def created(kernel_lock, project_name):
    """A network made by `network create` (10.244.X.0/24), removed with its ad-hoc containers."""
    name = project_name + "net"
    subnet = f"10.244.{int(project_name[1:3], 16)}.0/24"
    before = kernel_snapshot()
    cli("network", "create", name, "--subnet", subnet)
    try:
        yield name
    finally:
        summary = state.read_summary("net." + name)
        for adhoc in summary.live.containers if summary else ():
            cli("rm", adhoc.name, check=False)
        cli("network", "rm", name, check=False)
    assert kernel_snapshot() == before


def test_run_on_a_created_network(created, project_name):
    first, second = project_name + "-a", project_name + "-b"
    assert cli("run", "-d", "--name", first, "--hostname", "first-host", "--network", created).stdout.strip() == first
    script = textwrap.dedent(f"""
        import socket, subprocess, sys
        there = socket.gethostbyname({first!r})
        print(there, socket.gethostbyname("first-host"))
        back = subprocess.run(["ip", "netns", "exec", {first!r}, sys.executable, "-c",
                               "import socket; print(socket.gethostbyname({second!r}))"],
                              capture_output=True, text=True).stdout.strip()
        print(back, socket.gethostbyname(socket.gethostname()))
        ok = subprocess.run(["ping", "-c1", "-W2", there], stdout=subprocess.DEVNULL).returncode == 0
        sys.exit(3 if ok else 4)
        """)
    got = cli("run", "--name", second, "--network", created, "--", sys.executable, "-c", script, check=False)
    assert got.returncode == 3, got.stderr
    line1, line2 = got.stdout.splitlines()
    there, by_hostname = line1.split()
    back, mine = line2.split()
    assert there == by_hostname and back == mine
    summary = state.read_summary("net." + created)
    assert [c.name for c in summary.containers] == [first]
    assert not os.path.exists(f"/run/netns/{second}") and not os.path.exists(f"/etc/netns/{second}")
    # network rm refuses, naming every container on it
    refused = cli("network", "rm", created, check=False)
    assert refused.returncode == 1 and refused.stderr.strip() == f"error: network {created} has active endpoints: {first}"
    # bad input: nothing made
    before = kernel_snapshot()
    for args, status, message in [
        (("run", "--name", first, "--network", created, "--", "true"), 1, "already in use"),
        (("run", "--network", "nosuchnet", "--", "true"), 1, "network nosuchnet not found"),
        (("run", "--ip", "10.9.9.9", "--network", created, "--", "true"), 2, "not a usable address"),
        (("run", "--name", "bad name", "--network", created, "--", "true"), 2, "invalid name"),
        (("run", "--network", created, "--", "no-such-command-x"), 1, "executable file not found"),
    ]:
        got = cli(*args, check=False)
        assert got.returncode == status and message in got.stderr and len(got.stderr.splitlines()) == 1, got.stderr
    assert kernel_snapshot() == before
    assert cli("rm", first).stdout.strip() == first
    assert not os.path.exists(f"/run/netns/{first}")


def test_run_killed_leaves_nothing(created, project_name):
    name = project_name + "-k"
    proc = subprocess.Popen([sys.executable, "-m", "compose_net", "run", "--name", name, "--network", created,
                             "--", "sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/run/netns/{name}") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not os.path.exists(f"/run/netns/{name}")
    assert state.read_summary("net." + created).containers == ()


def test_detached_run_on_a_project_network_goes_with_down(project, project_name):
    p = project
    name = project_name + "-d"
    cli("run", "-d", "--name", name, "--network", p.net("n1"), "--", "sleep", "300")
    assert resolve(p.c("a"), name) == str(state.read_summary(p.name).container(name).interfaces[0].ipv4.ip)
    ps = json.loads(p.cli("ps", "--format", "json").stdout)
    assert name in {row["Name"] for row in ps}
    sleeper = [pid for pid in os.listdir("/proc") if pid.isdigit() and
               os.path.exists(f"/proc/{pid}/ns/net") and
               os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino]
    assert sleeper
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []
    p.cli("down")
    assert not any(os.path.exists(f"/proc/{pid}") for pid in sleeper)
    assert not os.path.exists(f"/run/netns/{name}")


def test_run_service_is_a_one_off_on_its_networks(project):
    import re

    p = project
    script = textwrap.dedent(f"""
        import os, socket
        print(*[n for n in os.listdir("/run/netns") if "-b-run-" in n])
        for name in ("a", {p.c("b")!r}):
            try:
                print(socket.gethostbyname(name))
            except OSError:
                print("none")
        """)
    got = p.cli("run", "b", "--", sys.executable, "-c", script)
    one_off, a, b = got.stdout.split()
    assert re.fullmatch(rf"{p.name}-b-run-[0-9a-f]{{6}}", one_off)
    assert a == "none" and b == p.ip("b", "n2")  # on b's networks only
    names = [c.name for c in state.read_summary(p.name).containers]
    assert names == [p.c("a"), p.c("b"), p.c("c")]
    assert not os.path.exists(f"/run/netns/{one_off}")
    assert json.loads(p.cli("up", "--dry-run", "--json").stdout) == []


def test_network_prune_removes_only_unused(created, project_name):
    spare = project_name + "spare"
    cli("network", "create", spare)
    cli("run", "-d", "--name", project_name + "-p", "--network", created)
    got = cli("network", "prune")
    assert spare in got.stdout.split() and created not in got.stdout.split()
    assert state.read_summary("net." + spare) is None and state.read_summary("net." + created) is not None
