"""Address pools: where they come from (project, COMPOSE_NET_DEFAULT_ADDRESS_POOLS, the host file,
Docker's built-in ones), in what order, how a subnet is chosen and explained, and the error when
they run out."""

import dataclasses
import ipaddress
import json
import re
import time

import pytest

from compose_net import cli, ipam
from compose_net.errors import PlanError
from compose_net.model import AddressPool
from compose_net.probe import HostFacts, HostRoute
from compose_net.summary import from_data
from planning_projects import att, net, project, svc

N = ipaddress.ip_network
VAR = ipam.POOLS_VARIABLE


def many(n: int, name: str = "shop", pools=(), env=None, **netkw):
    keys = [f"n{i:02d}" for i in range(n)]
    p = project(name, [svc("s", *[att(k) for k in keys])], [net(k, name, **netkw) for k in keys])
    return dataclasses.replace(p, address_pools=tuple(pools), environment=dict(env or {}))


def chosen(p, facts=None):
    return {k: str(v[0].subnet) for k, v in ipam.choose_subnets(p, facts or HostFacts()).items()}


def daemon(pools, path="/etc/compose-net/daemon.json", **other):
    return HostFacts(daemon_json=json.dumps({**other, "default-address-pools": pools}), daemon_json_path=path)


# --- the sources ---------------------------------------------------------------------------------


def test_flag_syntax_of_dockerd_several_pools():
    pools = ipam.pools_from_flag("base=10.10.0.0/16,size=24; base=fd00:1::/48,size=64;")
    assert [(str(p.base), p.size, p.source) for p in pools] == [("10.10.0.0/16", 24, VAR), ("fd00:1::/48", 64, VAR)]


@pytest.mark.parametrize("text, message", [
    ("base=10.10.0.1/16,size=24", "base \"10.10.0.1/16\" has host bits set (did you mean 10.10.0.0/16?)"),
    ("base=office,size=24", "is not a network"),
    ("base=10.10.0.0/16,size=8", "size 8 is smaller than the base's prefix length 16"),
    ("base=10.10.0.0/16,size=31", "size 31 is over 30"),
    ("base=10.10.0.0/16", "missing size"),
    ("base=10.10.0.0/16,size=24,gw=1", 'unknown field "gw=1"'),
    ("base=10.10.0.0/16 size=24", "is not a network"),
])
def test_flag_errors_name_the_variable_the_pool_and_the_value(text, message):
    with pytest.raises(PlanError) as e:
        ipam.pools_from_flag("base=10.9.0.0/16,size=24;" + text)
    assert str(e.value).startswith(f"{VAR}: pool 2 (") and message in str(e.value)


def test_daemon_json_key_as_dockerd_reads_it_other_keys_ignored():
    facts = daemon([{"base": "10.20.0.0/16", "size": 24}], debug=True, bip="10.0.0.1/24")
    pools = ipam.host_pools({}, facts)
    assert [(str(p.base), p.size, p.source) for p in pools] == [("10.20.0.0/16", 24, "/etc/compose-net/daemon.json")]
    assert ipam.host_pools({}, HostFacts(daemon_json='{"debug": true}')) == ipam.BUILTIN_POOLS


@pytest.mark.parametrize("text, where, message", [
    ('{"default-address-pools": [{"base": "10.20.0.0/16", "size": 33}]}',
     "default-address-pools[0].size", "size 33 is over 30"),
    ('{"default-address-pools": [{"base": "10.20.0.0/16", "size": 24}, {"base": "x", "size": 24}]}',
     "default-address-pools[1].base", 'base "x" is not a network'),
    ('{"default-address-pools": [{"base": "10.20.0.0/16", "size": true}]}',
     "default-address-pools[0].size", "is not a whole number"),
    ('{"default-address-pools": {"base": "10.20.0.0/16"}}', "default-address-pools", "must be a list"),
    ('{"default-address-pools": [{"base": "10.20.0.0/16", "size": 24, "gw": 1}]}',
     "default-address-pools[0]", 'unknown key "gw"'),
    ('{"default-address-pools": [\n  {"base": }]}', "default-address-pools", "not valid JSON"),
])
def test_daemon_json_errors_name_the_file_and_the_key(text, where, message):
    with pytest.raises(PlanError) as e:
        ipam.host_pools({}, HostFacts(daemon_json=text, daemon_json_path="/srv/daemon.json"))
    assert re.match(rf"/srv/daemon\.json(:\d+)?: {re.escape(where)}: ", str(e.value)), str(e.value)
    assert message in str(e.value)


def test_precedence_project_then_environment_over_file_over_builtin():
    file = daemon([{"base": "10.20.0.0/16", "size": 24}])
    env = {VAR: "base=10.30.0.0/16,size=24"}
    own = (AddressPool(N("10.40.0.0/23"), 24, "x-compose-net.default_address_pools[0]"),)
    assert chosen(many(1), HostFacts())["n00"] == "172.18.0.0/16"
    assert chosen(many(1), file)["n00"] == "10.20.0.0/24"
    assert chosen(many(1, env=env), file)["n00"] == "10.30.0.0/24"
    # the project's pools first; once they are full, the host's (the variable's, not the file's)
    got = chosen(many(3, pools=own, env=env), file)
    assert list(got.values()) == ["10.40.0.0/24", "10.40.1.0/24", "10.30.0.0/24"]


def test_an_empty_variable_leaves_the_file():
    file = daemon([{"base": "10.20.0.0/16", "size": 24}])
    assert chosen(many(1, env={VAR: "  "}), file)["n00"] == "10.20.0.0/24"


# --- allocation ----------------------------------------------------------------------------------


def test_sixty_networks_get_sixty_24s_from_one_line():
    got = chosen(many(60, env={VAR: "base=10.10.0.0/16,size=24"}))
    assert list(got.values()) == [f"10.10.{i}.0/24" for i in range(60)]


def test_the_plan_says_which_pool_and_what_it_skipped_and_why():
    facts = HostFacts(routes=(HostRoute(N("10.10.0.0/24"), "eth1"),), projects={"other": from_data({
        "project": "other", "networks": [{"name": "other_x", "subnets": [{"subnet": "10.10.1.0/24"}]}]})})
    s = ipam.choose_subnets(many(2, env={VAR: "base=10.10.0.0/16,size=24"}), facts)
    assert str(s["n00"][0].subnet) == "10.10.2.0/24"
    assert s["n00"][0].note == ("shop_n00: subnet 10.10.2.0/24 (next free /24 of pool 10.10.0.0/16, "
                                f"{VAR}; skipped 10.10.0.0/24 (host route via eth1), 10.10.1.0/24 "
                                "(project other's network other_x)), gateway 10.10.2.1")
    # the project's own networks are not worth a mention
    assert str(s["n01"][0].subnet) == "10.10.3.0/24" and "10.10.2.0" not in s["n01"][0].note


def test_a_prefix_wider_than_the_block_is_skipped_in_one_step():
    facts = HostFacts(routes=(HostRoute(N("10.0.0.0/9"), "vpn0"),))
    started = time.perf_counter()
    s = ipam.choose_subnets(many(3, env={VAR: "base=10.0.0.0/8,size=24"}), facts)
    assert time.perf_counter() - started < 0.5
    assert [str(v[0].subnet) for v in s.values()] == ["10.128.0.0/24", "10.128.1.0/24", "10.128.2.0/24"]
    assert "skipped 10.0.0.0/9 (host route via vpn0)" in s["n00"][0].note


def test_a_running_network_keeps_its_subnet_while_it_is_in_the_pools_and_moves_when_they_change():
    p = many(1, env={VAR: "base=10.10.0.0/16,size=24"})
    previous = {"shop_n00": ["10.10.7.0/24"]}
    assert str(ipam.choose_subnets(p, HostFacts(), previous=previous)["n00"][0].subnet) == "10.10.7.0/24"
    moved = dataclasses.replace(p, environment={VAR: "base=10.50.0.0/16,size=24"})
    assert str(ipam.choose_subnets(moved, HostFacts(), previous=previous)["n00"][0].subnet) == "10.50.0.0/24"


def test_ipv6_pools_number_ipv6_networks():
    p = many(2, env={VAR: "base=10.10.0.0/16,size=24;base=fd00:abcd::/48,size=64"}, enable_ipv6=True)
    got = ipam.choose_subnets(p, HostFacts())
    assert [str(s.subnet) for s in got["n01"]] == ["10.10.1.0/24", "fd00:abcd:0:1::/64"]
    assert "of pool fd00:abcd::/48" in got["n01"][1].note


# --- exhaustion ----------------------------------------------------------------------------------


def test_exhausted_pools_are_all_named_with_their_use_by_whom_and_how_to_add_one():
    facts = HostFacts(routes=(HostRoute(N("10.10.0.0/24"), "eth1"),), projects={"other": from_data({
        "project": "other", "networks": [{"name": "other_x", "subnets": [{"subnet": "10.10.1.0/24"}]},
                                         {"name": "other_y", "subnets": [{"subnet": "10.11.0.0/25"}]}]})},
        daemon_json_path="/etc/compose-net/daemon.json")
    env = {VAR: "base=10.10.0.0/22,size=24;base=10.11.0.0/24,size=25"}
    with pytest.raises(PlanError) as e:
        ipam.choose_subnets(many(4, env=env), facts)
    text = str(e.value)
    assert text.startswith("compose.yml: networks.n03: no free IPv4 subnet left for network shop_n03")
    assert (f"10.10.0.0/22 in /24s ({VAR}): 4 of 4 used (2 by this project, 1 by host route via eth1, "
            "1 by project other)") in text
    assert f"10.11.0.0/24 in /25s ({VAR}): 2 of 2 used (1 by project other, 1 by this project)" in text
    assert "add a pool: COMPOSE_NET_DEFAULT_ADDRESS_POOLS='base=" in text
    assert "default-address-pools in /etc/compose-net/daemon.json" in text
    assert "x-compose-net.default_address_pools" in text and "\n" not in text


# --- from the file to the plan -------------------------------------------------------------------


def test_cli_project_pools_and_a_bad_variable(tmp_path, capsys, monkeypatch):
    (tmp_path / "compose.yml").write_text(
        "services:\n  a: {image: x, networks: [n1, n2]}\nnetworks:\n  n1: {}\n  n2: {}\n"
        "x-compose-net:\n  default_address_pools:\n    - {base: 10.99.0.0/24, size: 25}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPOSE_NET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COMPOSE_NET_DAEMON_JSON", str(tmp_path / "none.json"))
    monkeypatch.delenv(VAR, raising=False)
    assert cli.main(["up", "--dry-run", "-p", "pooltest"]) == 0
    out = capsys.readouterr().out
    assert "subnet 10.99.0.0/25 (next free /25 of pool 10.99.0.0/24, x-compose-net.default_address_pools[0])" in out
    assert "subnet 10.99.0.128/25" in out
    assert cli.main(["config", "--format", "json", "-p", "pooltest"]) == 0
    ext = json.loads(capsys.readouterr().out)["x-compose-net"]
    assert ext["default_address_pools"] == [{"base": "10.99.0.0/24", "size": 25}] and ext["networks"]
    monkeypatch.setenv(VAR, "base=10.10.0.0/16,size=33")
    assert cli.main(["up", "--dry-run", "-p", "pooltest"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"error: {VAR}: pool 1 ('base=10.10.0.0/16,size=33'): size 33 is over 30: "
                                 "a /33 leaves no address for a container beside the gateway\n")
    monkeypatch.delenv(VAR)
    (tmp_path / "none.json").write_text('{"default-address-pools": [{"base": "10.1.0.0/16", "size": 8}]}')
    assert cli.main(["up", "--dry-run", "-p", "pooltest"]) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path}/none.json: default-address-pools[0].size: size 8 is smaller")


def test_network_create_takes_the_pools_of_the_shell():
    from compose_net import netadmin
    plan = netadmin.plan_create("lan", facts=HostFacts(), environment={VAR: "base=10.77.0.0/16,size=24"})
    assert str(plan.state.networks[0].subnets[0].subnet) == "10.77.0.0/24"


def test_the_variable_may_come_from_the_projects_env_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "compose.yml").write_text("services:\n  a: {image: x}\n")
    (tmp_path / ".env").write_text(f"{VAR}=base=10.66.0.0/16,size=24\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPOSE_NET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COMPOSE_NET_DAEMON_JSON", str(tmp_path / "none.json"))
    monkeypatch.delenv(VAR, raising=False)
    assert cli.main(["up", "--dry-run", "-p", "envpools"]) == 0
    assert f"subnet 10.66.0.0/24 (next free /24 of pool 10.66.0.0/16, {VAR})" in capsys.readouterr().out
