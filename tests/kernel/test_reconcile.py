"""`up` reconciles: the kernel is held against the plan, and exactly what is missing or wrong is
made again. A drift matrix (every kind of object deleted or altered behind the project's back),
`up --dry-run` printing exactly what `up` applies, `ps`/`ls`/`check` telling the truth, and a
property test over random edits and damage.

Each case: bring a small project up, damage one thing, then
- `check` exits 1 naming the difference, `ps`/`ls` show the damage;
- `up --dry-run --json` prints the repair, which is exactly what the planner gives `up` and
  exactly what `up` applies (the executor runs a plan's ops and nothing else);
- after `up`: `check` exits 0, the containers the damage did not touch kept their namespaces,
  and reachability, isolation, the published port and names all work.
"""

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

from compose_net import observe, state
from conftest import kernel_snapshot, sh

COMPOSE = """
services:
  web:
    image: x
    networks: [front]
    ports: ["{port}:8000"]
  api:
    image: x
    networks: [front, back]
  db:
    image: x
    networks: [back]
networks:
  front: {{ipam: {{config: [{{subnet: 10.241.{net}.0/24}}]}}}}
  back: {{internal: true, ipam: {{config: [{{subnet: 10.241.{net2}.0/24}}]}}}}
"""


def cli(*args: str, project: str, file: Path, check: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "compose_net", "-p", project, "-f", str(file), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"compose-net {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


class Project:
    def __init__(self, name: str, directory: Path, index: int):
        self.name = name
        self.file = directory / "compose.yml"
        self.port = 18600 + index
        self.file.write_text(textwrap.dedent(COMPOSE.format(port=self.port, net=2 * index, net2=2 * index + 1)))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return cli(*args, project=self.name, file=self.file, check=check)

    def ns(self, service: str) -> str:
        return f"{self.name}-{service}-1"

    def summary(self):
        return state.read_summary(self.name)

    def ip(self, service: str, network: str) -> str:
        c = self.summary().container(self.ns(service))
        return str(next(i for i in c.interfaces if i.network == f"{self.name}_{network}").ipv4.ip)

    def inodes(self) -> dict[str, int]:
        return {s: os.stat(f"/run/netns/{self.ns(s)}").st_ino for s in ("web", "api", "db")
                if os.path.exists(f"/run/netns/{self.ns(s)}")}

    def dry_run(self) -> list[dict]:
        return json.loads(self.cli("up", "--dry-run", "--json").stdout)

    def bridge(self, network: str) -> str:
        return self.summary().network(f"{self.name}_{network}").bridge


@pytest.fixture(scope="module")
def server_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("srv") / "server.py"
    path.write_text(textwrap.dedent("""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 8000)); s.listen(8)
        print("ready", flush=True)
        while True:
            c, peer = s.accept(); c.sendall(sys.argv[1].encode()); c.close()
        """))
    return path


@pytest.fixture
def project(kernel_lock, tmp_path, project_name, server_script):
    p = Project(project_name, tmp_path, int(project_name[1:3], 16) % 100)
    before = kernel_snapshot()
    servers: list[subprocess.Popen] = []
    try:
        p.cli("up")
        proc = subprocess.Popen(["ip", "netns", "exec", p.ns("web"), sys.executable, str(server_script), "web"],
                                stdout=subprocess.PIPE, text=True)
        servers.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        p.servers = servers
        yield p
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        p.cli("down", check=False)
    assert kernel_snapshot() == before


def works(p: Project) -> None:
    """Everything the project promises: names, reachability, isolation, the published port."""
    resolve = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    assert sh(sys.executable, "-c", resolve, "db", ns=p.ns("api")).stdout.strip() == p.ip("db", "back")
    assert sh(sys.executable, "-c", resolve, "web", ns=p.ns("api")).stdout.strip() == p.ip("web", "front")
    sh("ping", "-c1", "-W2", p.ip("db", "back"), ns=p.ns("api"))
    sh("ping", "-c1", "-W2", p.ip("web", "front"), ns=p.ns("api"))
    # isolation: web and db share no network
    assert sh("ping", "-c1", "-W1", p.ip("db", "back"), ns=p.ns("web"), check=False).returncode != 0
    # the published port, from the host (DNAT in the project's table)
    got = sh(sys.executable, "-c", "import socket; s = socket.create_connection(('127.0.0.1', %d), 3); "
             "print(s.recv(16).decode())" % p.port).stdout.strip()
    assert got == "web"


def repaired(p: Project, damage, expect_units: set[str], untouched: set[str]) -> list[dict]:
    """Damage the project, check what `check`, `ps` and `--dry-run` say, `up`, and check that
    exactly the repair was applied. Returns the printed plan."""
    inodes = p.inodes()
    damage()
    check = p.cli("check", check=False)
    assert check.returncode == 1 and check.stdout.strip(), check.stdout + check.stderr
    printed = p.dry_run()
    assert printed, "a damaged project needs a repair"
    assert {op["unit"] for op in printed} == expect_units, printed
    # what `up` applies is what the planner gives it: the same plan, computed the same way
    assert _planned(p) == printed
    up = p.cli("up")
    assert "repairing " in up.stderr
    assert p.dry_run() == [], "after the repair nothing is left to do"
    assert p.cli("check").returncode == 0
    after = p.inodes()
    for service in untouched:
        assert after[service] == inodes[service], f"{service} was touched"
    works(p)
    return printed


def _planned(p: Project) -> list[dict]:
    """The plan the CLI's `up` gives the executor, computed in this process."""
    from compose_net.loader import LoadOptions, load
    from compose_net.plan.planner import plan_changes, plan_up
    from compose_net.probe import probe_host

    project = load(LoadOptions(files=(str(p.file),), project_name=p.name)).project
    facts = probe_host()
    recorded = state.Journal(p.name).read().ops
    desired = plan_up(project, facts)
    plan = plan_changes(project, facts, recorded, observe.read(observe.query(desired.ops + recorded)))
    return json.loads(json.dumps(plan.to_json()))


def test_an_intact_project_has_nothing_to_do(project):
    works(project)
    assert project.dry_run() == []
    up = project.cli("up")
    assert "nothing to change" in up.stderr
    assert project.cli("check").returncode == 0
    ps = json.loads(project.cli("ps", "--format", "json").stdout)
    assert {c["State"] for c in ps} == {"running"}


def test_a_reused_plan_still_sees_every_change_of_its_inputs(project):
    """An unchanged `up` reuses the desired plan the last `up` kept (no load, no planning); a
    new `.env`, an environment variable or an edit is still seen at once."""
    port = project.port
    text = project.file.read_text().replace(f'"{port}:8000"', f'"${{WEB_PORT:-{port}}}:8000"')
    project.file.write_text(text)
    desired = state.project_dir(project.name) / state.DESIRED
    project.cli("up")  # the file changed: planned anew (the same ops), and kept
    project.cli("up")
    kept = desired.stat().st_mtime_ns
    assert "nothing to change" in project.cli("up").stderr
    assert desired.stat().st_mtime_ns == kept, "an unchanged up made its plan again"

    def published() -> set[int]:
        return {p["PublishedPort"] for c in json.loads(project.cli("ps", "--format", "json").stdout)
                for p in c["Publishers"] if p["PublishedPort"]}

    (project.file.parent / ".env").write_text(f"WEB_PORT={port + 1000}\n")
    project.cli("up")
    assert published() == {port + 1000}
    env = {**os.environ, "WEB_PORT": str(port + 2000)}
    proc = subprocess.run([sys.executable, "-m", "compose_net", "-p", project.name, "-f", str(project.file), "up"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert published() == {port + 2000}
    (project.file.parent / ".env").unlink()
    project.cli("up")
    assert published() == {port}
    works(project)


def test_firewall_table_deleted(project):
    printed = repaired(project, lambda: sh("nft", "delete", "table", "inet", f"cn-{project.name}"),
                       {"firewall"}, {"web", "api", "db"})
    assert [op["op"] for op in printed] == ["nft_apply"]


def test_firewall_rule_content_altered(project):
    table = f"cn-{project.name}"
    printed = repaired(project, lambda: sh("nft", "flush", "chain", "inet", table, "forward"),
                       {"firewall"}, {"web", "api", "db"})
    assert [op["op"] for op in printed] == ["nft_apply"]


def test_bridge_deleted(project):
    front = project.bridge("front")
    printed = repaired(project, lambda: sh("ip", "link", "del", front),
                       {f"network:{project.name}_front", f"container:{project.ns('web')}",
                        f"container:{project.ns('api')}"}, {"web", "api", "db"})
    kinds = [op["op"] for op in printed]
    assert kinds.count("bridge_create") == 1 and kinds.count("veth_create") == 2  # web's and api's front ends
    assert not [op for op in printed if op["unit"] == f"container:{project.ns('db')}"]


def test_veth_host_end_deleted(project):
    veth = next(i.host_ifname for i in project.summary().container(project.ns("db")).interfaces)
    printed = repaired(project, lambda: sh("ip", "link", "del", veth),
                       {f"container:{project.ns('db')}"}, {"web", "api", "db"})
    assert [op["op"] for op in printed][:2] == ["veth_create", "link_up"]


def test_container_namespace_deleted(project):
    printed = repaired(project, lambda: sh("ip", "netns", "del", project.ns("db")),
                       {f"container:{project.ns('db')}", "dns"}, {"web", "api"})
    assert printed[0]["op"] == "netns_create"
    assert printed[-1]["op"] == "dns_start"  # the server listens in the new namespace


def test_address_deleted(project):
    addr = f"{project.ip('api', 'back')}/24"
    printed = repaired(project, lambda: sh("ip", "addr", "del", addr, "dev", "eth1", ns=project.ns("api")),
                       {f"container:{project.ns('api')}"}, {"web", "api", "db"})
    assert "addr_add" in [op["op"] for op in printed]


def test_route_deleted(project):
    printed = repaired(project, lambda: sh("ip", "route", "del", "default", ns=project.ns("web")),
                       {f"container:{project.ns('web')}"}, {"web", "api", "db"})
    assert [op["op"] for op in printed] == ["route_add"]


def test_files_altered(project):
    def damage():
        Path(f"/etc/netns/{project.ns('api')}/resolv.conf").write_text("nameserver 203.0.113.66\n")
        Path(f"/etc/netns/{project.ns('api')}/hosts").unlink()

    printed = repaired(project, damage, {f"container:{project.ns('api')}"}, {"web", "api", "db"})
    assert [op["op"] for op in printed] == ["file_write", "file_write"]


def test_dns_server_killed(project):
    pid = int(Path(f"/run/compose-net/{project.name}/dns.pid").read_text())

    def damage():
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.01)

    printed = repaired(project, damage, {"dns"}, {"web", "api", "db"})
    assert [op["op"] for op in printed] == ["dns_start"]


def test_ps_ls_and_check_tell_the_truth(project):
    sh("ip", "netns", "del", project.ns("db"))
    try:
        ps = {c["Name"]: c for c in json.loads(project.cli("ps", "--format", "json").stdout)}
        assert ps[project.ns("db")]["State"] == "degraded"
        assert "namespace" in ps[project.ns("db")]["Status"]
        assert ps[project.ns("web")]["State"] == "running"
        ps = project.cli("ps")
        assert " degraded " in ps.stdout and f"{project.ns('db')}: namespace" in ps.stderr
        ls = {p["Name"]: p for p in json.loads(project.cli("ls", "--format", "json").stdout)}
        assert ls[project.name]["Status"] == "degraded(2/3)"
        check = project.cli("check", check=False)
        assert check.returncode == 1
        assert any(line.startswith(f"container:{project.ns('db')}: namespace") for line in check.stdout.splitlines())
        checked = json.loads(project.cli("check", "--json", check=False).stdout)
        assert {d["unit"] for d in checked} >= {f"container:{project.ns('db')}"}
    finally:
        project.cli("up")
    ls = {p["Name"]: p for p in json.loads(project.cli("ls", "--format", "json").stdout)}
    assert ls[project.name]["Status"] == "running(3)"


def test_an_edit_is_exactly_its_difference(project):
    inodes = project.inodes()
    text = project.file.read_text().replace("  db:\n    image: x\n    networks: [back]\n",
                                            "  db:\n    image: x\n    networks: [back]\n"
                                            "  cache:\n    image: x\n    networks: [back]\n")
    project.file.write_text(text)
    printed = project.dry_run()
    units = {op["unit"] for op in printed}
    assert f"container:{project.name}-cache-1" in units
    assert not {u for u in units if u.startswith("container:") and "cache" not in u}
    project.cli("up")
    assert project.dry_run() == []
    after = project.inodes()
    assert after == inodes  # web, api and db untouched
    resolve = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    sh(sys.executable, "-c", resolve, "cache", ns=project.ns("db"))
    works(project)


# --- a property: whatever was edited or damaged, `up` makes the kernel what the file says ------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

SERVICES = ("a", "b", "c", "d")


def _compose(services: dict[str, tuple[str, ...]], index: int) -> str:
    lines = ["services:"]
    for name, nets in services.items():
        lines.append(f"  {name}:\n    image: x\n    networks: [{', '.join(nets)}]")
    lines.append("networks:")
    lines.append(f"  n1: {{ipam: {{config: [{{subnet: 10.243.{index}.0/26}}]}}}}")
    lines.append(f"  n2: {{ipam: {{config: [{{subnet: 10.243.{index}.64/26}}]}}}}")
    return "\n".join(lines) + "\n"


EDITS = st.sampled_from(["add", "remove", "move"])
DAMAGE = st.sampled_from(["netns", "veth", "addr", "route", "table", "file", "bridge"])
STEPS = st.lists(st.tuples(st.sampled_from(["edit", "damage"]), EDITS, DAMAGE, st.sampled_from(SERVICES)),
                 min_size=1, max_size=4)


def _damage(p: Project, what: str, service: str) -> None:
    summary = p.summary()
    ctr = summary.container(p.ns(service)) if summary else None
    if ctr is None:
        return
    if what == "netns":
        sh("ip", "netns", "del", ctr.netns, check=False)
    elif what == "veth":
        sh("ip", "link", "del", ctr.interfaces[0].host_ifname, check=False)
    elif what == "addr":
        sh("ip", "addr", "flush", "dev", "eth0", ns=ctr.netns, check=False)
    elif what == "route":
        sh("ip", "route", "flush", "table", "main", ns=ctr.netns, check=False)
    elif what == "table":
        sh("nft", "delete", "table", "inet", f"cn-{p.name}", check=False)
    elif what == "file":
        Path(f"/etc/netns/{ctr.netns}/hosts").write_text("127.0.0.1 evil\n")
    elif what == "bridge":
        sh("ip", "link", "del", summary.network(ctr.interfaces[0].network).bridge, check=False)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=STEPS)
def test_after_up_the_kernel_is_what_the_file_says(kernel_lock, tmp_path_factory, steps):
    import uuid

    name = "t" + uuid.uuid4().hex[:8]
    directory = tmp_path_factory.mktemp(name)
    index = int(name[1:3], 16) % 200
    p = Project(name, directory, index)
    services = {"a": ("n1",), "b": ("n1", "n2"), "c": ("n2",)}
    p.file.write_text(_compose(services, index))
    before = kernel_snapshot()
    try:
        p.cli("up")
        for kind, edit, damage, service in steps:
            if kind == "edit":
                if edit == "add":
                    services.setdefault(service, ("n1",))
                elif edit == "remove" and len(services) > 1:
                    services.pop(service, None)
                elif edit == "move" and service in services:
                    services[service] = ("n2",) if services[service] != ("n2",) else ("n1", "n2")
                p.file.write_text(_compose(services, index))
            else:
                _damage(p, damage, service)
            p.cli("up")
            assert p.cli("check", check=False).returncode == 0, p.cli("check", check=False).stdout
            assert p.dry_run() == []
            for s in services:  # every service resolves its neighbours on a shared network
                other = next((o for o in services if o != s and set(services[o]) & set(services[s])), None)
                if other:
                    got = sh(sys.executable, "-c", "import socket, sys; print(socket.gethostbyname(sys.argv[1]))",
                             other, ns=p.ns(s)).stdout.strip()
                    net = sorted(set(services[o]) & set(services[s]) for o in [other])[0]
                    assert got in {p.ip(other, n) for n in services[other]}
    finally:
        p.cli("down", check=False)
    assert kernel_snapshot() == before
