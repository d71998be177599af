"""Per-service policy (`x-compose-net.ingress`/`egress`) enforced by the project's table, between
containers of the same bridge (br_netfilter) and from the host; an edit that removes a rule opens
the path through `up`, which changes only the table and the recorded state.

Every "blocked" expectation has a control: the same probe gets through with the table removed.
"""

from __future__ import annotations

import json
import uuid

import pytest

from test_firewall_rules import probe
from test_isolation import without_table
from test_ports import Up, cli

POLICY = """
services:
  db:
    image: x
    networks: [back]
    x-compose-net:
      ingress:
        - from: [api]
          ports: ["5432/tcp", "5432/udp"]
  api:
    image: x
    networks: [back]
    x-compose-net:
      egress:
        - to: [db]
  intruder: {image: x, networks: [back]}
networks:
  back: {ipam: {config: [{subnet: 10.218.1.0/24}]}}
"""

# the same project with db's rule naming the intruder too, api's egress gone
OPENED = POLICY.replace("from: [api]", "from: [api, intruder]").replace(
    "    x-compose-net:\n      egress:\n        - to: [db]\n", "")


@pytest.fixture(scope="module")
def world(kernel_lock, tmp_path_factory):
    project = Up(tmp_path_factory.mktemp("policy"), POLICY, uuid.uuid4().hex[:7])
    try:
        project.start({"db": ("tcp:5432", "udp:5432", "tcp:6000"), "api": ("tcp:80",),
                       "intruder": ("tcp:80", "tcp:5432")})
        yield project
    finally:
        project.stop()


def test_a_named_peer_reaches_the_named_ports_on_the_same_bridge(world):
    api = world.ip("api")
    assert probe(world.ns("api"), "tcp", world.ip("db"), 5432) == f"db:5432 {api}"
    assert probe(world.ns("api"), "udp", world.ip("db"), 5432) == f"db:5432 {api}"


def test_a_port_the_rule_does_not_name_is_dropped(world):
    assert probe(world.ns("api"), "tcp", world.ip("db"), 6000) == "timeout"
    assert without_table(world, lambda: probe(world.ns("api"), "tcp", world.ip("db"), 6000)) == \
        f"db:6000 {world.ip('api')}"


def test_a_peer_the_rule_does_not_name_is_dropped_on_the_same_bridge(world):
    assert probe(world.ns("intruder"), "tcp", world.ip("db"), 5432) == "timeout"
    assert without_table(world, lambda: probe(world.ns("intruder"), "tcp", world.ip("db"), 5432)) == \
        f"db:5432 {world.ip('intruder')}"


def test_the_host_is_dropped_unless_named(world):
    assert probe(None, "tcp", world.ip("db"), 5432) == "timeout"


def test_egress_lets_only_its_peers_be_reached_and_replies_pass(world):
    assert probe(world.ns("api"), "tcp", world.ip("intruder"), 80) == "timeout"
    # api has no ingress: the intruder reaches it, and api's replies pass its own egress
    assert probe(world.ns("intruder"), "tcp", world.ip("api"), 80) == f"api:80 {world.ip('intruder')}"


def test_an_edit_that_removes_a_rule_opens_it_through_up_and_touches_nothing_else(world):
    world.file.write_text(OPENED)
    try:
        plan = json.loads(cli("up", "--dry-run", "--json", project=world.project, file=world.file).stdout)
        kinds = {op["unit"] for op in plan}
        assert kinds <= {"firewall", "state", "dns"}, kinds
        assert any(op["unit"] == "firewall" for op in plan)
        cli("up", "--quiet", project=world.project, file=world.file)
        assert probe(world.ns("intruder"), "tcp", world.ip("db"), 5432) == f"db:5432 {world.ip('intruder')}"
        assert probe(world.ns("api"), "tcp", world.ip("intruder"), 80) == f"intruder:80 {world.ip('api')}"
        assert probe(world.ns("intruder"), "tcp", world.ip("db"), 6000) == "timeout"
        assert cli("check", project=world.project, file=world.file, check=False).returncode == 0
    finally:
        world.file.write_text(POLICY)
        cli("up", "--quiet", project=world.project, file=world.file)
    assert probe(world.ns("intruder"), "tcp", world.ip("db"), 5432) == "timeout"


def test_an_unchanged_project_plans_nothing(world):
    # the table as the kernel lists it has the shape of the planned one: no repair every up
    assert cli("check", project=world.project, file=world.file, check=False).returncode == 0
