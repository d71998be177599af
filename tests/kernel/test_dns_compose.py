"""The embedded DNS of a real project brought up with `compose-net up`: names from inside the
containers, a later `up` that adds a service while queries run, and `down`.

Only names the project knows are asked here: unknown ones would go to the machine's resolver
(the project's upstream), which tests never use."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from dnslib import DNSRecord

from conftest import sh
from test_dns_server import StubUpstream, in_netns, ips, query

pytestmark = pytest.mark.kernel

CLI = [sys.executable, "-m", "compose_net"]

BASE = """
services:
  web:
    image: x
    hostname: webhost
    networks:
      front:
        aliases: [www]
      back: {}
    links: ["db:database"]
  api:
    image: x
    deploy: {replicas: 3}
    networks: [back]
  db:
    image: x
    networks:
      back:
        aliases: [dbback]
      priv:
        aliases: [dbpriv]
  proxy:
    image: x
    networks: [front]
networks:
  front: {}
  back: {}
  priv: {internal: true}
"""

ADDED = """
  cache:
    image: x
    networks:
      back:
        aliases: [redis]
"""


def compose(project: str, workdir: Path, *args: str, check: bool = True):
    return sh(*CLI, "-p", project, "-f", str(workdir / "compose.yml"), *args, check=check, timeout=120,
              cwd=str(Path(__file__).resolve().parents[2]))


@pytest.fixture
def up_project(project_name, tmp_path):
    (tmp_path / "compose.yml").write_text(BASE)
    try:
        compose(project_name, tmp_path, "up")
        yield project_name, tmp_path
    finally:
        compose(project_name, tmp_path, "down", check=False)


def summary(project: str) -> dict:
    return json.loads(Path(f"/run/compose-net/{project}/project.json").read_text())


def address(project: str, container: str, network: str) -> str:
    ctr = next(c for c in summary(project)["containers"] if c["name"] == container)
    iface = next(i for i in ctr["interfaces"] if i["network"] == f"{project}_{network}")
    return iface["ipv4"].split("/")[0]


def test_names_of_a_compose_project(up_project):
    p, _ = up_project
    web, proxy = f"{p}-web-1", f"{p}-proxy-1"
    assert Path(f"/etc/netns/{web}/resolv.conf").read_text().startswith("nameserver 127.0.0.11")
    db_back = address(p, f"{p}-db-1", "back")
    assert ips(query(web, "db")) == [db_back]
    assert ips(query(web, "database")) == [db_back]
    assert ips(query(web, f"{p}-db-1")) == [db_back]
    assert ips(query(web, "dbback")) == [db_back]
    replicas = sorted(address(p, f"{p}-api-{i}", "back") for i in (1, 2, 3))
    assert sorted(ips(query(web, "api"))) == replicas
    assert ips(query(proxy, "www")) == [address(p, web, "front")]
    assert ips(query(proxy, "webhost")) == [address(p, web, "front")]
    assert ips(query(f"{p}-db-1", "web")) == [address(p, web, "back")]
    # dig the way a program in the container resolves: through the namespace's resolv.conf
    out = sh("ip", "netns", "exec", web, "dig", "+short", "+search", "api").stdout.split()
    assert sorted(out) == replicas


def test_up_adding_a_service_resolves_without_restart_and_loses_no_query(up_project):
    p, workdir = up_project
    web = f"{p}-web-1"
    pid = int(Path(f"/run/compose-net/{p}/dns.pid").read_text())
    db_back = address(p, f"{p}-db-1", "back")
    lost, answered, stop = [], [0], threading.Event()

    def loop():
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.connect(("127.0.0.11", 53))
            while not stop.is_set():
                q = DNSRecord.question("db")
                s.send(bytes(q.pack()))
                try:
                    r = DNSRecord.parse(s.recv(4096))
                except OSError as exc:
                    lost.append(repr(exc))
                    continue
                if r.header.id != q.header.id or ips(r) != [db_back]:
                    lost.append(str(r))
                answered[0] += 1

    t = threading.Thread(target=lambda: in_netns(web, loop))
    t.start()
    try:
        time.sleep(0.2)
        (workdir / "compose.yml").write_text(BASE.replace("\nnetworks:\n", ADDED + "networks:\n", 1))
        compose(p, workdir, "up")
        cache = address(p, f"{p}-cache-1", "back")
        assert ips(query(web, "redis")) == [cache]
        assert ips(query(f"{p}-cache-1", "db")) == [db_back]
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert not lost and answered[0] > 20
    assert int(Path(f"/run/compose-net/{p}/dns.pid").read_text()) == pid


def test_down_stops_the_server_and_removes_its_files(project_name, tmp_path):
    (tmp_path / "compose.yml").write_text(BASE)
    try:
        compose(project_name, tmp_path, "up")
        state = Path(f"/run/compose-net/{project_name}")
        pid = int((state / "dns.pid").read_text())
        assert Path(f"/proc/{pid}").exists()
    finally:
        compose(project_name, tmp_path, "down", check=False)
    assert not Path(f"/proc/{pid}").exists() or "compose_net.dns" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert not any((state / f).exists() for f in ("dns.pid", "dns.status", "dns.log"))
    assert not any(ns.startswith(project_name) for ns in os.listdir("/run/netns"))


def test_compose_net_dns_runs_the_server_in_the_foreground(up_project):
    import signal
    import subprocess

    from compose_net.dns import control

    p, workdir = up_project
    # while the background server runs, a second one refuses to start
    r = compose(p, workdir, "dns", check=False)
    assert r.returncode != 0 and "already runs" in r.stderr
    control.stop(p)
    state = Path(f"/run/compose-net/{p}")
    proc = subprocess.Popen([*CLI, "-p", p, "-f", str(workdir / "compose.yml"), "dns"],
                            cwd=str(Path(__file__).resolve().parents[2]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (state / "dns.status").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        assert json.loads((state / "dns.status").read_text())["pid"] == proc.pid
        assert ips(query(f"{p}-web-1", "db")) == [address(p, f"{p}-db-1", "back")]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert not (state / "dns.pid").exists() and not (state / "dns.status").exists()


MODES = """
services:
  web:
    image: x
    networks: [front]
  api:
    image: x
    deploy: {replicas: 3}
    networks: [front]
  fwd:
    image: x
    dns: ["127.0.0.153"]
    networks: [front]
  side:
    image: x
    network_mode: "service:web"
  hostc:
    image: x
    network_mode: host
  nonec:
    image: x
    network_mode: none
networks:
  front: {}
"""

# From inside a container, the way a program there resolves: glibc's getaddrinfo through the
# namespace's resolv.conf (ip netns exec bind-mounts it), one process asking many times.
SPREAD = """
import collections, socket, sys
firsts = collections.Counter()
for _ in range(60):
    infos = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)
    firsts[infos[0][4][0]] += 1
    assert len(infos) == 3, infos
print(" ".join(sorted(firsts)))
"""


@pytest.fixture
def stub():
    s = StubUpstream()
    yield s
    s.close()


def test_modes_forwarding_and_clients_spread_over_replicas(project_name, tmp_path, stub):
    p = project_name
    (tmp_path / "compose.yml").write_text(MODES)
    try:
        compose(p, tmp_path, "up")
        info = {c["name"]: c for c in summary(p)["containers"]}
        web, fwd = f"{p}-web-1", f"{p}-fwd-1"
        assert Path(f"/etc/netns/{fwd}/resolv.conf").read_text() == "nameserver 127.0.0.11\noptions ndots:0\n"
        # none: the host's resolv.conf copy and no embedded DNS socket in its namespace
        none_ns = info[f"{p}-nonec-1"]["netns"]
        copy = Path(f"/etc/netns/{none_ns}/resolv.conf").read_text()
        servers = [line.split()[1] for line in copy.splitlines() if line.startswith("nameserver")]
        assert servers == summary(p)["host_nameservers"] and "127.0.0.11" not in copy
        served = json.loads(Path(f"/run/compose-net/{p}/dns.status").read_text())["netns"]
        assert none_ns not in served and info[f"{p}-hostc-1"]["netns"] is None
        assert sorted(served) == sorted(info[n]["netns"] for n in (web, fwd, *(f"{p}-api-{i}" for i in (1, 2, 3))))
        # the sidecar lives in web's namespace: it asks through web's sockets, and its own
        # names are not the project's (the stub upstream answers 198.51.100.7 for anything)
        side = info[f"{p}-side-1"]
        assert side["shares"] == web and side["netns"] == f"{p}-side-1"  # its own name for web's namespace
        assert os.stat(f"/run/netns/{side['netns']}").st_ino == os.stat(f"/run/netns/{info[web]['netns']}").st_ino
        assert ips(query(fwd, "side")) == ["198.51.100.7"] and "side." in stub.asked
        # the container's dns: servers get what the project does not know; its names never go there
        assert ips(query(fwd, "Example.ORG")) == ["198.51.100.7"] and "example.org." in stub.asked
        replicas = sorted(address(p, f"{p}-api-{i}", "front") for i in (1, 2, 3))
        assert sorted(ips(query(fwd, "api"))) == replicas
        assert ips(query(fwd, f"web.{p}_front")) == [address(p, web, "front")]
        assert not any(n.startswith(("api", "web")) for n in stub.asked)
        # The shuffle reaches clients as far as glibc lets it: getaddrinfo sorts by RFC 3484
        # rule 9 (longest prefix shared with the source address, within its subnet), so among
        # replicas it keeps the DNS order only of those equally close to the client (as behind
        # Docker's DNS). Every one of those must come first for some lookups.
        me = int(ipaddress.ip_address(address(p, fwd, "front")))
        common = {r: 32 - (int(ipaddress.ip_address(r)) ^ me).bit_length() for r in replicas}
        closest = sorted(r for r in replicas if common[r] == max(common.values()))
        assert len(closest) >= 2  # else this would test nothing
        out = sh("ip", "netns", "exec", fwd, sys.executable, "-c", SPREAD, "api").stdout.split()
        assert out == closest
        # the PTR target names the network, and resolves back
        target = sh("dig", "+short", "-x", replicas[0], ns=fwd).stdout.strip()
        assert target.endswith(f".{p}_front.")
        assert sh("dig", "+short", target, ns=fwd).stdout.split() == [replicas[0]]
        # not an open resolver: the server has no socket in the host's namespace
        pid = Path(f"/run/compose-net/{p}/dns.pid").read_text().strip()
        assert f"pid={pid}," not in sh("ss", "-H", "-anup").stdout + sh("ss", "-H", "-antp").stdout
        assert f"pid={pid}," in sh("ss", "-H", "-lnup", ns=fwd).stdout
    finally:
        compose(p, tmp_path, "down", check=False)


def _kill_dns_server(state: Path) -> int:
    """kill -9 the project's DNS server and wait until it is gone; its pid."""
    pid = int((state / "dns.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 3
    while Path(f"/proc/{pid}").exists() and "compose_net" in Path(f"/proc/{pid}/cmdline").read_text() \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def test_up_after_the_server_was_killed_starts_it_again(up_project):
    p, workdir = up_project
    state = Path(f"/run/compose-net/{p}")
    pid = _kill_dns_server(state)
    (workdir / "compose.yml").write_text(BASE.replace("\nnetworks:\n", ADDED + "networks:\n", 1))
    compose(p, workdir, "up")
    pid2 = int((state / "dns.pid").read_text())
    assert pid2 != pid
    assert ips(query(f"{p}-web-1", "redis")) == [address(p, f"{p}-cache-1", "back")]


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def test_up_removing_a_service_frees_its_namespace(up_project):
    # The server closes the sockets it holds in a removed container's namespace when that
    # container goes: an open socket would keep the (unmounted) namespace alive.
    p, workdir = up_project
    proxy = next(c for c in summary(p)["containers"] if c["service"] == "proxy")
    veth = proxy["interfaces"][0]["host_ifname"]
    assert sh("ip", "link", "show", veth, check=False).returncode == 0
    pid = int(Path(f"/run/compose-net/{p}/dns.pid").read_text())
    before = _socket_inodes(pid)
    text = BASE.replace("  proxy:\n    image: x\n    networks: [front]\n", "")
    assert text != BASE
    (workdir / "compose.yml").write_text(text)
    compose(p, workdir, "up")
    deadline = time.monotonic() + 3
    while sh("ip", "link", "show", veth, check=False).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sh("ip", "link", "show", veth, check=False).returncode != 0
    assert proxy["netns"] not in os.listdir("/run/netns")
    # its UDP and TCP listening sockets are gone, the others stay (the same server)
    assert int(Path(f"/run/compose-net/{p}/dns.pid").read_text()) == pid
    after = _socket_inodes(pid)
    assert after < before and len(before - after) == 2
    assert ips(query(f"{p}-web-1", "db")) == [address(p, f"{p}-db-1", "back")]


def test_an_unchanged_up_starts_a_killed_server_again(up_project):
    p, workdir = up_project
    state = Path(f"/run/compose-net/{p}")
    pid = _kill_dns_server(state)
    proc = compose(p, workdir, "up")  # the compose file is unchanged: nothing in the kernel to do
    assert "repairing dns: the DNS server is not running" in proc.stderr.splitlines()
    assert int((state / "dns.pid").read_text()) != pid
    assert ips(query(f"{p}-web-1", "db")) == [address(p, f"{p}-db-1", "back")]
