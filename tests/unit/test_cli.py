"""The command line, as users drive it: exit statuses, what goes to stdout and stderr, file
discovery, project names, environment files, profiles, dry-run plans, graphs and hostile input.

Most tests call `cli.main([...])` in-process (fast); the ones about the process itself (no
traceback, `python -m compose_net`, hostile input within seconds) run it as a subprocess. State
lives in a temporary COMPOSE_NET_STATE_DIR; nothing here touches the kernel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from compose_net import cli
from compose_net.loader import LoadOptions, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/compose.yml"))
ERROR_LINE = re.compile(r"^[^\s:][^:]*:\d+: [A-Za-z0-9_.\-\[\]]+: \S.*$")
COMPOSE_VARS = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR", "PORT",
                "WEB_PORT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in COMPOSE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPOSE_NET_STATE_DIR", str(tmp_path / "state"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(argv, capsys, cwd=None, monkeypatch=None):
    """cli.main in-process: (status, stdout, stderr)."""
    if cwd is not None:
        monkeypatch.chdir(cwd)
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def run_proc(argv, cwd, env=None, timeout=20, stdin=None):
    """`python -m compose_net ...` as a subprocess: (status, stdout, stderr, seconds)."""
    full_env = {k: v for k, v in os.environ.items() if k not in COMPOSE_VARS}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "compose_net", *argv], cwd=cwd, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


SIMPLE = """\
services:
  web:
    image: nginx
    ports:
      - "${WEB_PORT:-8080}:80"
    networks: [front]
  db:
    image: postgres
    networks: [back]
networks:
  front:
  back:
    internal: true
"""


# --- bad input ----------------------------------------------------------------------------------

BAD = """\
services:
  web:
    image: nginx
    networks: [backnet]
    depends_on: [nosuch]
"""


def test_bad_input_exits_2_with_one_located_line_per_problem_and_no_traceback(tmp_path):
    write(tmp_path / "compose.yml", BAD)
    status, out, err, _ = run_proc(["config"], tmp_path)
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    for line in lines:
        assert ERROR_LINE.match(line), line
        assert line.startswith("compose.yml:")
    assert any("services.web.networks" in line and "backnet" in line for line in lines)
    assert any("services.web.depends_on" in line and "nosuch" in line for line in lines)


def test_bad_input_in_process_same_lines(tmp_path, capsys, monkeypatch):
    write(tmp_path / "compose.yml", BAD)
    status, out, err = run(["up", "--dry-run"], capsys, tmp_path, monkeypatch)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 2
    assert all(ERROR_LINE.match(line) for line in err.strip().splitlines())


def test_debug_shows_a_traceback(tmp_path):
    write(tmp_path / "compose.yml", BAD)
    status, out, err, _ = run_proc(["--debug", "config"], tmp_path)
    assert status != 0
    assert "Traceback" in err and "ConfigErrors" in err


def test_line_numbers_point_at_the_key(tmp_path, capsys, monkeypatch):
    write(tmp_path / "compose.yml", "services:\n  web:\n    image: x\n    networks:\n      - nope\n")
    status, _, err = run(["config"], capsys, tmp_path, monkeypatch)
    assert status == 2
    assert err.startswith("compose.yml:5: services.web.networks"), err


def test_no_compose_file_found(tmp_path, capsys, monkeypatch):
    status, out, err = run(["config"], capsys, tmp_path, monkeypatch)
    assert status == 2 and out == ""
    assert "no compose file found" in err and len(err.strip().splitlines()) == 1


# --- config -------------------------------------------------------------------------------------


def test_config_yaml_is_the_normalized_model(tmp_path, capsys, monkeypatch):
    write(tmp_path / "shop" / "compose.yml", SIMPLE)
    status, out, err = run(["config"], capsys, tmp_path / "shop", monkeypatch)
    assert status == 0, err
    data = yaml.safe_load(out)
    assert data["name"] == "shop"
    assert set(data["services"]) == {"web", "db"}
    assert data["networks"]["front"]["name"] == "shop_front"
    assert data["networks"]["back"]["name"] == "shop_back"
    assert data["services"]["web"]["networks"] == {"front": None}
    assert data["services"]["web"]["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]


def test_config_json_and_quiet(tmp_path, capsys, monkeypatch):
    write(tmp_path / "shop" / "compose.yml", SIMPLE)
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "shop", monkeypatch)
    assert status == 0
    data = json.loads(out)
    assert data["networks"]["front"]["name"] == "shop_front"
    status, out, err = run(["config", "-q"], capsys)
    assert status == 0 and out == "" and err == ""
    status, out, _ = run(["config", "--services"], capsys)
    assert status == 0 and out == "db\nweb\n"
    status, out, _ = run(["config", "--networks"], capsys)
    assert status == 0 and out == "back\nfront\n"


def test_config_adds_containers_and_addresses_under_x_compose_net(tmp_path, capsys, monkeypatch):
    write(tmp_path / "shop" / "compose.yml", """\
services:
  web:
    image: nginx
    deploy: {replicas: 2}
    networks: [front]
  db:
    image: postgres
    networks:
      back: {ipv4_address: 10.9.0.20}
networks:
  front:
  back:
    ipam: {config: [{subnet: 10.9.0.0/24}]}
""")
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "shop", monkeypatch)
    assert status == 0
    ext = json.loads(out)["x-compose-net"]
    assert set(ext["containers"]) == {"shop-web-1", "shop-web-2", "shop-db-1"}
    db = ext["containers"]["shop-db-1"]["networks"]["shop_back"]
    assert db["ipv4_address"] == "10.9.0.20/24" and db["interface_name"] == "eth0"
    web = [ext["containers"][f"shop-web-{i}"]["networks"]["shop_front"]["ipv4_address"] for i in (1, 2)]
    assert len(set(web)) == 2
    assert ext["networks"]["shop_back"]["subnets"] == [{"subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}]
    # the YAML form carries it too and reads back as the same data
    status, out, _ = run(["config"], capsys)
    assert yaml.safe_load(out)["x-compose-net"] == ext


def test_config_still_prints_what_only_the_plan_rejects(tmp_path, capsys, monkeypatch):
    # 31 networks without a subnet exhaust the default pools: docker compose config leaves that
    # to the engine, so config prints the model (without x-compose-net, with a warning) and
    # up --dry-run fails with the network's location
    nets = [f"n{i}" for i in range(31)]
    write(tmp_path / "p" / "compose.yml", "services:\n  a:\n    image: x\n    networks: [" + ", ".join(nets)
          + "]\nnetworks:\n" + "".join(f"  {n}:\n" for n in nets))
    status, out, err = run(["config", "--format", "json"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0
    data = json.loads(out)
    assert len(data["networks"]) == 31 and "x-compose-net" not in data
    assert err.startswith("warning: x-compose-net left out:") and "n30" in err
    status, out, err = run(["up", "--dry-run"], capsys)
    assert status == 2 and out == ""
    # which network runs out first depends on the host's routes and other projects
    assert re.match(r"compose\.yml:(\d+): networks\.n(\d+): no free IPv4 subnet left", err.strip())
    assert ERROR_LINE.match(err.strip())


# --- discovery, files, names --------------------------------------------------------------------


def test_discovery_in_cwd_and_in_a_parent(tmp_path, capsys, monkeypatch):
    write(tmp_path / "proj" / "compose.yaml", SIMPLE)
    (tmp_path / "proj" / "deep" / "er").mkdir(parents=True)
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "proj", monkeypatch)
    assert status == 0 and json.loads(out)["name"] == "proj"
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "proj" / "deep" / "er", monkeypatch)
    # found in the parent: the project directory (and so the name) is the file's
    assert status == 0 and json.loads(out)["name"] == "proj"


def test_discovery_prefers_compose_yaml_and_reads_the_override(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yaml", "services:\n  a: {image: x}\n")
    write(tmp_path / "p" / "docker-compose.yml", "services:\n  b: {image: x}\n")
    write(tmp_path / "p" / "compose.override.yaml", "services:\n  c: {image: x}\n")
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0 and set(json.loads(out)["services"]) == {"a", "c"}


def test_several_files_merge_in_order(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", SIMPLE)
    write(tmp_path / "p" / "extra.yml", """\
services:
  web:
    image: nginx:2
    networks: [back]
    ports: ["9090:90"]
  cache:
    image: redis
networks:
  side:
""")
    status, out, err = run(["-f", "compose.yml", "-f", "extra.yml", "config", "--format", "json"], capsys,
                           tmp_path / "p", monkeypatch)
    assert status == 0, err
    data = json.loads(out)
    web = data["services"]["web"]
    assert web["image"] == "nginx:2"  # later file wins for scalars
    assert set(web["networks"]) == {"front", "back"}  # networks are unioned
    assert [p["published"] for p in web["ports"]] == ["8080", "9090"]  # ports append
    assert "cache" in data["services"] and "side" in data["networks"]


def test_compose_file_variable(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "a.yml", "services:\n  a: {image: x}\n")
    write(tmp_path / "p" / "b.yml", "services:\n  b: {image: x}\n")
    monkeypatch.setenv("COMPOSE_FILE", "a.yml:b.yml")
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0 and set(json.loads(out)["services"]) == {"a", "b"}
    monkeypatch.setenv("COMPOSE_PATH_SEPARATOR", ",")
    monkeypatch.setenv("COMPOSE_FILE", "b.yml")
    status, out, _ = run(["config", "--format", "json"], capsys)
    assert status == 0 and set(json.loads(out)["services"]) == {"b"}
    # -f wins over COMPOSE_FILE
    status, out, _ = run(["-f", "a.yml", "config", "--format", "json"], capsys)
    assert status == 0 and set(json.loads(out)["services"]) == {"a"}


def test_compose_variables_from_dotenv(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "a.yml", "services:\n  a: {image: x}\n  b: {image: x, profiles: [extra]}\n")
    write(tmp_path / "p" / ".env", "COMPOSE_FILE=a.yml\nCOMPOSE_PROJECT_NAME=fromdotenv\nCOMPOSE_PROFILES=extra\n")
    status, out, err = run(["config", "--format", "json"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0, err
    data = json.loads(out)
    assert data["name"] == "fromdotenv" and set(data["services"]) == {"a", "b"}


def _name(argv, capsys):
    status, out, err = run([*argv, "config", "--format", "json"], capsys)
    assert status == 0, err
    return json.loads(out)["name"]


def test_project_name_precedence(tmp_path, capsys, monkeypatch):
    write(tmp_path / "My Dir" / "compose.yml", "services:\n  a: {image: x}\n")
    monkeypatch.chdir(tmp_path / "My Dir")
    assert _name([], capsys) == "mydir"  # the directory's basename, normalized
    write(tmp_path / "My Dir" / "compose.yml", "name: Top Name!\nservices:\n  a: {image: x}\n")
    assert _name([], capsys) == "topname"  # name: wins over the directory, normalized
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "fromenv")
    assert _name([], capsys) == "fromenv"  # COMPOSE_PROJECT_NAME wins over name:
    assert _name(["-p", "fromflag"], capsys) == "fromflag"  # -p wins over everything
    assert _name(["--project-name", "long-form"], capsys) == "long-form"


def test_name_is_interpolated(tmp_path, capsys, monkeypatch):
    write(tmp_path / "d" / "compose.yml", "name: ${STAGE:-dev}-app\nservices:\n  a: {image: x}\n")
    monkeypatch.chdir(tmp_path / "d")
    assert _name([], capsys) == "dev-app"
    monkeypatch.setenv("STAGE", "prod")
    assert _name([], capsys) == "prod-app"


@pytest.mark.parametrize("bad", ["Upper", "-lead", "with space", "dot.ted", ""])
def test_invalid_project_name_flag(tmp_path, capsys, monkeypatch, bad):
    write(tmp_path / "d" / "compose.yml", "services:\n  a: {image: x}\n")
    status, out, err = run([f"--project-name={bad}", "config"], capsys, tmp_path / "d", monkeypatch)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "invalid project name" in err


def test_invalid_compose_project_name_variable(tmp_path, capsys, monkeypatch):
    write(tmp_path / "d" / "compose.yml", "services:\n  a: {image: x}\n")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "Bad Name")
    status, out, err = run(["config"], capsys, tmp_path / "d", monkeypatch)
    assert status == 2 and out == "" and "COMPOSE_PROJECT_NAME" in err
    # commands that work from state alone name the variable too
    status, out, err = run(["ps"], capsys)
    assert status == 2 and out == "" and err.startswith("(command line): COMPOSE_PROJECT_NAME: invalid project name")


def test_global_options_work_after_the_verb(tmp_path, capsys, monkeypatch):
    write(tmp_path / "d" / "other.yml", "services:\n  z: {image: x}\n")
    status, out, _ = run(["config", "-f", "other.yml", "-p", "after", "--format", "json"], capsys,
                         tmp_path / "d", monkeypatch)
    assert status == 0
    data = json.loads(out)
    assert data["name"] == "after" and list(data["services"]) == ["z"]


# --- environment ----------------------------------------------------------------------------------


def _published(capsys, argv=()):
    status, out, err = run([*argv, "config", "--format", "json"], capsys)
    assert status == 0, err
    return json.loads(out)["services"]["web"]["ports"][0]["published"]


def test_dotenv_env_file_and_shell_precedence(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", SIMPLE)
    monkeypatch.chdir(tmp_path / "p")
    assert _published(capsys) == "8080"  # the default in the file
    write(tmp_path / "p" / ".env", "WEB_PORT=8081  # a comment\n")
    assert _published(capsys) == "8081"
    write(tmp_path / "p" / "prod.env", "WEB_PORT='8082'\n")
    assert _published(capsys, ["--env-file", "prod.env"]) == "8082"  # instead of .env
    monkeypatch.setenv("WEB_PORT", "8083")
    assert _published(capsys, ["--env-file", "prod.env"]) == "8083"  # the shell wins


def test_missing_env_file_is_an_error(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", SIMPLE)
    status, out, err = run(["--env-file", "nope.env", "config"], capsys, tmp_path / "p", monkeypatch)
    assert status == 2 and out == "" and "nope.env" in err and "Traceback" not in err


def test_unset_variable_warns_and_required_one_fails(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", "services:\n  web:\n    image: ${IMAGE_TAG_UNSET_X}\n    build: .\n")
    status, out, err = run(["config"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0 and "IMAGE_TAG_UNSET_X" in err and "warning" in err
    write(tmp_path / "p" / "compose.yml", "services:\n  web:\n    image: ${IMAGE_TAG_UNSET_X:?set the tag}\n")
    status, out, err = run(["config"], capsys)
    assert status == 2 and out == ""
    assert err.strip() == ("compose.yml:3: services.web.image: required variable IMAGE_TAG_UNSET_X is missing a "
                           "value: set the tag")


# --- profiles -----------------------------------------------------------------------------------

PROFILED = """\
services:
  web:
    image: nginx
  debug:
    image: busybox
    profiles: [debug]
    depends_on: [helper]
  helper:
    image: busybox
    profiles: [tools]
  admin:
    image: busybox
    profiles: [ops]
    networks: [adminnet]
networks:
  adminnet:
"""


def _services(capsys, argv=()):
    status, out, err = run([*argv, "config", "--format", "json"], capsys)
    assert status == 0, err
    data = json.loads(out)
    return set(data["services"]), set(data.get("networks", {}))


def test_profiles_from_flag_and_variable(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", PROFILED)
    monkeypatch.chdir(tmp_path / "p")
    assert _services(capsys) == ({"web"}, {"default"})
    assert _services(capsys, ["--profile", "ops"]) == ({"web", "admin"}, {"default", "adminnet"})
    assert _services(capsys, ["--profile", "debug", "--profile", "tools"])[0] == {"web", "debug", "helper"}
    monkeypatch.setenv("COMPOSE_PROFILES", "ops,tools")
    assert _services(capsys)[0] == {"web", "admin", "helper"}
    assert _services(capsys, ["--profile", "debug"])[0] == {"web", "admin", "helper", "debug"}


def test_enabled_service_depending_on_a_disabled_one_is_an_error(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", PROFILED)
    status, out, err = run(["--profile", "debug", "config"], capsys, tmp_path / "p", monkeypatch)
    assert status == 2 and out == ""
    assert "helper" in err and ERROR_LINE.match(err.strip())


def test_up_service_enables_its_profiles_and_those_of_its_dependencies(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", PROFILED)
    status, out, err = run(["up", "--dry-run", "--json", "debug"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0, err
    ops = json.loads(out)
    netns = {o["name"] for o in ops if o["op"] == "netns_create"}
    assert netns == {"p-debug-1", "p-helper-1"}
    # admin (another profile) and web (not asked for) stay out
    status, out, err = run(["up", "--dry-run", "admin"], capsys)
    assert status == 0, err
    assert "p-admin-1" in out and "p_adminnet" in out and "p-web-1" not in out


def test_up_unknown_service(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", PROFILED)
    status, out, err = run(["up", "--dry-run", "nosuch"], capsys, tmp_path / "p", monkeypatch)
    assert status == 2 and out == ""
    assert err.strip() == "compose.yml: services.nosuch: no such service: nosuch"


# --- up --dry-run ---------------------------------------------------------------------------------


def _expected_in_plan(directory: Path):
    """What the issue says the JSON plan must name: every created network's full name, every
    static address, every published port and every explicit bridge name."""
    project = load(LoadOptions(files=(str(directory / "compose.yml"),), environ={})).project
    names = [n.name for n in project.networks.values() if not n.external]
    bridges = [n.driver_opts["com.docker.network.bridge.name"] for n in project.networks.values()
               if "com.docker.network.bridge.name" in n.driver_opts]
    addresses = [str(a) for s in project.services.values() for att in s.networks
                 for a in (att.ipv4_address, att.ipv6_address) if a is not None]
    ports = [p for s in project.services.values() for p in s.ports if p.published is not None]
    return names, bridges, addresses, ports


@pytest.mark.parametrize("example", EXAMPLES)
def test_dry_run_of_every_example(example, capsys, monkeypatch):
    directory = ROOT / "examples" / example
    status, text, err = run(["up", "--dry-run"], capsys, directory, monkeypatch)
    assert status == 0, err
    assert "Traceback" not in err
    status, out, err = run(["up", "--dry-run", "--json"], capsys)
    assert status == 0, err
    ops = json.loads(out)
    assert isinstance(ops, list) and ops
    assert all(isinstance(o, dict) and isinstance(o.get("op"), str) and o["op"] for o in ops)
    names, bridges, addresses, ports = _expected_in_plan(directory)
    assert names
    for name in names:
        assert name in out and name in text, name
    for bridge in bridges:
        assert any(o.get("name") == bridge and o["op"] == "bridge_create" for o in ops), bridge
        assert bridge in text
    for address in addresses:
        assert any(address in json.dumps(o.get("address", "")) for o in ops if o["op"] == "addr_add"), address
        assert address in text
    summary = next(json.loads(o["content"]) for o in ops if o["op"] == "file_write" and o["unit"] == "state")
    ruleset = next((o["ruleset"] for o in ops if o["op"] == "nft_apply"), {})
    # the exact document, as a JSON object (not JSON text inside the JSON)
    assert isinstance(ruleset, dict) and ruleset["nftables"]
    ruleset = json.dumps(ruleset)
    planned_ports = {(p["protocol"], p["published"], p["target"]) for c in summary["containers"]
                     for p in c["ports"]}
    for port in ports:
        first = int(str(port.published).split("-")[0])
        assert (port.protocol, first, port.target) in planned_ports, port
        assert str(first) in ruleset
    # text and JSON are the same plan: as many numbered lines as ops
    numbered = [line for line in text.splitlines() if re.match(r"^\s+\d+\s\s\S", line)]
    assert len(numbered) == len(ops)


MISSING_PARENTS = """\
services:
  a:
    image: x
    networks:
      mv: {ipv4_address: 192.168.77.10}
      iv: {}
      ov: {}
  b:
    image: x
    networks: [ext]
networks:
  mv:
    driver: macvlan
    driver_opts: {parent: cnnosuch0.10, macvlan_mode: bridge}
    ipam: {config: [{subnet: 192.168.77.0/24}]}
  iv:
    driver: ipvlan
    driver_opts: {parent: cnnosuch1, ipvlan_mode: l2}
  ov:
    driver: overlay
  ext:
    external: true
    name: cn-no-such-external
"""


def test_dry_run_succeeds_without_parents_kernel_support_or_external_network(tmp_path, capsys, monkeypatch):
    write(tmp_path / "mv" / "compose.yml", MISSING_PARENTS)
    status, out, err = run(["up", "--dry-run", "--json"], capsys, tmp_path / "mv", monkeypatch)
    assert status == 0, err
    ops = json.loads(out)
    kinds = {o["op"] for o in ops}
    assert {"macvlan_create", "ipvlan_create", "vxlan_create"} <= kinds
    assert "192.168.77.10" in out and "mv_ov" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert any("cnnosuch0" in w for w in warnings)
    assert any("cnnosuch1" in w for w in warnings)
    assert any("cn-no-such-external" in w for w in warnings)


def test_dry_run_service_plans_only_it_and_its_dependencies(capsys, monkeypatch):
    status, out, err = run(["up", "--dry-run", "--json", "api"], capsys, ROOT / "examples" / "three-tier",
                           monkeypatch)
    assert status == 0, err
    ops = json.loads(out)
    netns = {o["name"] for o in ops if o["op"] == "netns_create"}
    assert netns == {"shop-api-1", "shop-db-1"}
    assert not any("shop-web-1" in json.dumps(o) for o in ops if o["op"] != "file_write")
    status, out, err = run(["up", "--dry-run", "--json", "db"], capsys)
    ops = json.loads(out)
    assert {o["name"] for o in ops if o["op"] == "netns_create"} == {"shop-db-1"}
    # db sits only on the backend: the frontend network is not created
    assert "shop_frontend" not in {o["unit"][8:] for o in ops if o["unit"].startswith("network:")}


# --- down, state-only commands ---------------------------------------------------------------------


def test_down_dry_run_for_a_project_that_is_not_up(tmp_path, capsys, monkeypatch):
    status, out, err = run(["down", "--dry-run", "-p", "cnnotup"], capsys, tmp_path, monkeypatch)
    assert status == 0
    assert "cnnotup" in out and "nothing to do" in out
    status, out, err = run(["down", "--dry-run", "--json", "-p", "cnnotup"], capsys)
    assert status == 0 and json.loads(out) == []


def test_down_dry_run_reads_the_journal(tmp_path, capsys, monkeypatch):
    """A project whose journal records an up: the dry run lists its teardown."""
    from compose_net import state
    from compose_net.plan.planner import plan_up
    from compose_net.probe import HostFacts

    project = load(LoadOptions(files=(str(ROOT / "examples" / "three-tier" / "compose.yml"),), environ={})).project
    plan = plan_up(project, HostFacts())
    journal = state.Journal("shop")
    journal.record(plan.ops)
    journal.mark_complete()
    journal.close()
    status, out, err = run(["down", "--dry-run", "-p", "shop"], capsys, tmp_path, monkeypatch)
    assert status == 0, err
    assert out.startswith("project shop: down,") and "shop-web-1" in out
    status, out, _ = run(["down", "--dry-run", "--json", "-p", "shop"], capsys)
    ops = json.loads(out)
    assert ops and all(isinstance(o["op"], str) for o in ops)


def test_down_of_a_project_that_is_not_up(tmp_path, capsys, monkeypatch):
    status, out, err = run(["down", "-p", "cnnotup"], capsys, tmp_path, monkeypatch)
    assert status == 0 and "not up" in err


def test_ps_ls_network_ls_when_nothing_is_up(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(["ps", "-p", "cnnotup"], capsys)
    assert status == 0 and "not up" in err
    assert out.split()[:2] == ["NAME", "SERVICE"] and len(out.strip().splitlines()) == 1
    status, out, _ = run(["ps", "-p", "cnnotup", "--format", "json"], capsys)
    assert status == 0 and json.loads(out) == []
    status, out, _ = run(["ls"], capsys)
    assert status == 0 and out.split() == ["NAME", "STATUS", "CONFIG", "FILES"]
    status, out, _ = run(["ls", "--format", "json"], capsys)
    assert status == 0 and json.loads(out) == []
    status, out, _ = run(["network", "ls"], capsys)
    assert status == 0 and out.split()[:2] == ["NETWORK", "ID"] and len(out.strip().splitlines()) == 1
    status, out, _ = run(["network", "ls", "--format", "json"], capsys)
    assert status == 0 and json.loads(out) == []


def test_exec_without_a_command(tmp_path, capsys, monkeypatch):
    status, out, err = run(["exec", "-p", "cnnotup", "web"], capsys, tmp_path, monkeypatch)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no command" in err


def test_exec_on_a_project_that_is_not_up(tmp_path, capsys, monkeypatch):
    status, out, err = run(["exec", "-p", "cnnotup", "web", "--", "true"], capsys, tmp_path, monkeypatch)
    assert status == 1 and out == ""
    assert err.strip() == "error: project cnnotup is not up"


# --- graph ----------------------------------------------------------------------------------------


def test_graph_mermaid_and_dot(capsys, monkeypatch):
    status, out, err = run(["graph"], capsys, ROOT / "examples" / "internal-db", monkeypatch)
    assert status == 0, err
    assert out.startswith("graph LR")
    for needle in ("ledger_public", "ledger_data", "10.30.0.0/24 gw 10.30.0.1", "ledger-app-1",
                   "10.30.0.10/24", "127.0.0.1:8000->8000/tcp"):
        assert needle in out, needle
    status, out, _ = run(["graph", "--format", "dot"], capsys)
    assert status == 0
    assert out.startswith('graph "ledger" {') and out.rstrip().endswith("}")
    assert "ledger_data" in out and "10.30.0.20/24" in out and " -- " in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graph_output_svg(tmp_path, capsys, monkeypatch):
    target = tmp_path / "topology.svg"
    status, out, err = run(["graph", "--output", str(target)], capsys, ROOT / "examples" / "three-tier",
                           monkeypatch)
    assert status == 0, err
    text = target.read_text()
    assert "<svg" in text and "shop_frontend" in text
    png = tmp_path / "topology.png"
    status, out, err = run(["graph", "-o", str(png)], capsys)
    assert status == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_output_unknown_type(tmp_path, capsys, monkeypatch):
    status, out, err = run(["graph", "--output", str(tmp_path / "x.txt")], capsys, ROOT / "examples" / "three-tier",
                           monkeypatch)
    assert status == 2 and "svg" in err


# --- hostile input --------------------------------------------------------------------------------


def _assert_one_clean_line(status, out, err, seconds, needle):
    assert status == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0].lower(), lines[0]
    assert seconds < 5


def test_alias_bomb(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 9) + "]")
    write(tmp_path / "compose.yml", "x-bomb:\n" + "\n".join("  " + x for x in lines)
          + "\nservices:\n  web: {image: x}\n")
    _assert_one_clean_line(*run_proc(["config"], tmp_path), "alias")


def test_deep_nesting(tmp_path):
    write(tmp_path / "compose.yml", "services:\n  web:\n    image: x\n    x-deep: " + "[" * 50_000 + "]" * 50_000 + "\n")
    _assert_one_clean_line(*run_proc(["up", "--dry-run"], tmp_path), "nest")
    write(tmp_path / "compose.yml", "x-deep: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n")
    _assert_one_clean_line(*run_proc(["config"], tmp_path), "nest")
    # block style: nesting by indentation
    write(tmp_path / "compose.yml", "x-deep:\n" + "".join(" " * i + "- \n" for i in range(1, 2000)))
    _assert_one_clean_line(*run_proc(["config"], tmp_path), "nest")


def test_binary_file_with_f(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 64)
    _assert_one_clean_line(*run_proc(["-f", "blob.bin", "config"], tmp_path), "binary")
    _assert_one_clean_line(*run_proc(["-f", sys.executable, "up", "--dry-run"], tmp_path), "binary")


def test_eleven_mib_file(tmp_path):
    body = "services:\n  web: {image: x}\n" + "".join(f"x-k{i}: {'z' * 100}\n" for i in range(110_000))
    write(tmp_path / "compose.yml", body)
    assert (tmp_path / "compose.yml").stat().st_size > 11 * 2**20
    _assert_one_clean_line(*run_proc(["config"], tmp_path), "10 mib")


def test_invalid_utf8_and_not_a_mapping(tmp_path):
    (tmp_path / "compose.yml").write_bytes(b"services:\n  web: {image: \xff\xfe}\n")
    status, out, err, _ = run_proc(["config"], tmp_path)
    assert status == 2 and out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1
    write(tmp_path / "compose.yml", "- just\n- a list\n")
    status, out, err, _ = run_proc(["config"], tmp_path)
    assert status == 2 and out == "" and "Traceback" not in err


def test_python_dash_m_and_help(tmp_path):
    status, out, err, _ = run_proc(["--help"], tmp_path)
    assert status == 0 and "compose-net" in out and "config" in out and "up" in out
    status, out, err, _ = run_proc(["bogus-verb"], tmp_path)
    assert status == 2 and "Traceback" not in err


def test_config_keeps_extensions_and_sections_it_does_not_use(tmp_path, capsys, monkeypatch):
    write(tmp_path / "p" / "compose.yml", """\
x-common: &common {image: x}
services:
  a: *common
volumes:
  data: {}
models:
  llm: {model: ai/smollm2}
""")
    status, out, _ = run(["config", "--format", "json"], capsys, tmp_path / "p", monkeypatch)
    assert status == 0
    data = json.loads(out)
    assert data["x-common"] == {"image": "x"}
    assert data["models"] == {"llm": {"model": "ai/smollm2"}}
    assert "data" in data["volumes"]


def test_project_directory_and_stdin(tmp_path, capsys, monkeypatch):
    write(tmp_path / "files" / "c.yml", SIMPLE)
    write(tmp_path / "Proj_Dir" / ".env", "WEB_PORT=4242\n")
    monkeypatch.chdir(tmp_path)
    status, out, err = run(["-f", "files/c.yml", "--project-directory", "Proj_Dir", "config", "--format", "json"],
                           capsys)
    assert status == 0, err
    data = json.loads(out)
    # the project directory names the project and holds the .env
    assert data["name"] == "proj_dir"
    assert data["services"]["web"]["ports"][0]["published"] == "4242"
    status, out, err, _ = run_proc(["-f", "-", "-p", "fromstdin", "config", "--format", "json"], tmp_path,
                                   stdin=SIMPLE)
    assert status == 0, err
    assert json.loads(out)["networks"]["front"]["name"] == "fromstdin_front"


def test_up_service_keeps_the_services_that_are_up(tmp_path, capsys, monkeypatch):
    """`up db` on a project whose web and api are up plans them too: an up of db alone would
    tear them down as removed (docker compose up db leaves them running)."""
    import dataclasses

    from compose_net.plan.planner import summary
    from compose_net.summary import to_text

    directory = ROOT / "examples" / "three-tier"
    project = load(LoadOptions(files=(str(directory / "compose.yml"),), environ={})).project
    state_dir = tmp_path / "state" / "shop"
    state_dir.mkdir(parents=True)
    up_now = summary(project)
    up_now = dataclasses.replace(up_now, containers=tuple(c for c in up_now.containers if c.service == "web"))
    (state_dir / "project.json").write_text(to_text(up_now))
    status, out, err = run(["up", "--dry-run", "--json", "db"], capsys, directory, monkeypatch)
    assert status == 0, err
    netns = {o["name"] for o in json.loads(out) if o["op"] == "netns_create"}
    assert netns == {"shop-db-1", "shop-web-1", "shop-api-1"}  # web is up, and needs api


def test_graph_output_without_graphviz(tmp_path):
    (tmp_path / "bin").mkdir()
    status, out, err, _ = run_proc(["graph", "--output", str(tmp_path / "g.svg")], ROOT / "examples" / "three-tier",
                                   env={"PATH": str(tmp_path / "bin")})
    assert status == 1 and out == ""
    assert err.strip() == "error: Graphviz `dot` is not installed (apt-get install graphviz)"
    assert not (tmp_path / "g.svg").exists()


def test_runtime_errors_exit_1_and_debug_shows_their_traceback(tmp_path):
    status, out, err, _ = run_proc(["network", "inspect", "cn-no-such-net"], tmp_path,
                                   env={"COMPOSE_NET_STATE_DIR": str(tmp_path / "state")})
    assert status == 1 and json.loads(out) == [] and "no such network: cn-no-such-net" in err
    status, out, err, _ = run_proc(["--debug", "exec", "-p", "cnnotup", "web", "--", "true"], tmp_path,
                                   env={"COMPOSE_NET_STATE_DIR": str(tmp_path / "state")})
    assert status == 1 and "Traceback" in err and "project cnnotup is not up" in err


def test_progress_times_keep_three_digits_below_a_second():
    # a network is made in about a millisecond: fixed 0.01 s steps printed 0.00s for all
    assert [cli.format_seconds(s) for s in (0.00098, 0.0131, 0.3349, 2.5)] == ["0.98ms", "13.1ms", "335ms", "2.50s"]
    assert cli.format_event(("network", "p_n", "created", 0.00098)).split()[-2:] == ["Created", "0.98ms"]
    assert cli.format_event(("network", "p_n", "removed")).rstrip().endswith("Removed")
