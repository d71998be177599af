"""Per-service policy: the loader's parse and warnings, the firewall's chains, and the
reachability matrix (`reach`) read from the same facts."""

from __future__ import annotations

import json
import textwrap

import pytest

from compose_net import firewall, policy, reach
from compose_net.loader import LoadOptions, load
from compose_net.model import PolicyPort, PolicyRule
from compose_net.plan.planner import summary
from compose_net.probe import HostFacts
from compose_net.summary import from_text, to_text

SHOP = """
name: shop
services:
  db:
    image: x
    networks: [back]
    x-compose-net:
      ingress:
        - from: [api, host]
          ports: ["5432/tcp", "6000-6010/udp"]
  api:
    image: x
    networks: [back, front]
    ports: ["8080:80"]
    x-compose-net:
      ingress:
        - from: [outside, web]
      egress:
        - to: [db]
  web:
    image: x
    networks: [front]
  side:
    image: x
    network_mode: service:web
  cache:
    image: x
    networks: [quiet]
    ports: ["127.0.0.1:6379:6379"]
networks:
  back: {}
  front: {}
  quiet: {internal: true}
"""


def loaded(tmp_path, text):
    (tmp_path / "compose.yml").write_text(textwrap.dedent(text))
    return load(LoadOptions(files=("compose.yml",), cwd=str(tmp_path), environ={}))


@pytest.fixture
def shop(tmp_path):
    result = loaded(tmp_path, SHOP)
    return result, summary(result.project, HostFacts())


def test_policy_is_parsed_into_the_model(shop):
    result, _ = shop
    db = result.project.services["db"]
    assert db.ingress == (PolicyRule(("api", "host"), (PolicyPort(5432, 5432, "tcp"), PolicyPort(6000, 6010, "udp")),
                                     "services.db.x-compose-net.ingress[0]"),)
    assert db.egress is None
    assert result.project.services["web"].ingress is None
    assert result.project.services["api"].egress[0].peers == ("db",)


def test_the_recorded_state_carries_the_policy_through_its_json_form(shop):
    _, state = shop
    again = from_text(to_text(state))
    assert again == state
    assert again.container("shop-db-1").ingress[0].peers == ("api", "host")
    assert again.container("shop-web-1").ingress is None


def test_a_rule_that_can_never_match_is_a_warning(tmp_path):
    result = loaded(tmp_path, """
        services:
          a: {image: x, networks: [one]}
          b:
            image: x
            networks: [two]
            x-compose-net:
              ingress:
                - from: [a, outside]
        networks: {one: {}, two: {}}
    """)
    lines = [str(w) for w in result.warnings]
    assert lines == [
        'compose.yml:9: services.b.x-compose-net.ingress[0].from[0]: warning: never matches: "a" shares no '
        'network with "b" and reaches no port "b" publishes',
        'compose.yml:9: services.b.x-compose-net.ingress[0].from[1]: warning: never matches: outside reaches '
        '"b" only through published ports, and it publishes none',
    ]


def test_a_published_port_makes_a_peer_on_another_network_a_match(tmp_path):
    result = loaded(tmp_path, """
        services:
          a: {image: x, networks: [one]}
          b:
            image: x
            networks: [two]
            ports: ["80"]
            x-compose-net: {ingress: [{from: [a, outside]}]}
        networks: {one: {}, two: {}}
    """)
    assert result.warnings == ()


def test_firewall_jumps_to_policy_first_and_each_chain_ends_in_a_drop(shop):
    _, state = shop
    doc = firewall.ruleset(state)["nftables"]
    forward = [i["add"]["rule"] for i in doc if "rule" in i.get("add", {}) and i["add"]["rule"]["chain"] == "forward"]
    first = forward[0]
    assert first["expr"][-1] == {"jump": {"target": "ingress-shop-db-1"}}
    chains = {i["add"]["chain"]["name"]: i["add"]["chain"] for i in doc if "chain" in i.get("add", {})}
    for name in ("ingress-shop-db-1", "ingress-shop-db-1-host", "ingress-shop-api-1", "egress-shop-api-1",
                 "egress-shop-api-1-host"):
        assert name in chains
        rules = [i["add"]["rule"] for i in doc if "rule" in i.get("add", {}) and i["add"]["rule"]["chain"] == name]
        assert rules[-1]["expr"] == [{"drop": None}]
        assert all(r["expr"][-1] in ({"return": None}, {"drop": None}) for r in rules)
    assert chains["policy-output"]["hook"] == "output" and chains["policy-input"]["hook"] == "input"
    words = [w for g, w in firewall.table(state).rules if g == firewall.POLICY]
    assert "shop-db-1 ingress[0]: the host, 5432/tcp: allowed" in words
    assert "shop-db-1 ingress[0]: the host, 6000-6010/udp: allowed" in words


def test_no_policy_no_policy_chains(tmp_path):
    state = summary(loaded(tmp_path, "services: {a: {image: x}}\n").project, HostFacts())
    doc = firewall.ruleset(state)["nftables"]
    names = [i["add"]["chain"]["name"] for i in doc if "chain" in i.get("add", {})]
    assert not any(n.startswith(("policy-", "ingress-", "egress-")) for n in names)
    assert policy.resolve(state).ingress == {}


def test_matrix_cells(shop):
    _, state = shop
    m = reach.matrix(state)
    label = {(m.short[c.source], m.short[c.target]): c.label() for c in m.cells(every=True)}
    assert label[("api-1", "db-1")] == "5432/tcp, 6000-6010/udp"
    assert label[("web-1", "db-1")] == "-"  # isolation
    assert label[("db-1", "api-1")] == "-"  # api's ingress names no db
    assert label[("web-1", "api-1")] == "all"
    assert label[("side-1", "api-1")] == "all"  # web's namespace
    assert label[("host", "db-1")] == "5432/tcp, 6000-6010/udp"
    assert label[("host", "api-1")] == "-"
    assert label[("outside", "api-1")] == "8080->80/tcp"
    assert label[("outside", "db-1")] == "-"
    assert label[("api-1", "outside")] == "-"  # api's egress names db only
    assert label[("web-1", "outside")] == "all"
    assert label[("cache-1", "outside")] == "-"  # internal
    assert label[("cache-1", "host")] == "all"  # its gateway: local delivery
    # published on 127.0.0.1 from an internal network: the firewall DNATs nothing to it
    assert label[("host", "cache-1")] == "all"
    assert label[("web-1", "cache-1")] == "-"


def test_a_cell_says_why(shop):
    _, state = shop
    m = reach.matrix(state)
    cell = m.cell("shop-api-1", "shop-db-1")
    assert cell.ways[0].why == ("shared network shop_back (%s); db ingress[0]: from api, host, 5432/tcp, "
                                "6000-6010/udp; api egress[0]: to db, every port" % state.network("shop_back").bridge)
    assert m.cell("shop-db-1", "shop-api-1").blocked == ("api ingress: no rule names db",)
    assert m.cell("shop-web-1", "shop-db-1").blocked == ("isolation: no shared network",)


def test_json_form_and_graphs(shop):
    _, state = shop
    m = reach.matrix(state)
    data = reach.to_json(m, m.find("outside"), m.find("api"))
    assert data["cells"] == [{"from": "outside", "to": "shop-api-1", "open": True, "ways": [
        {"route": "published", "ports": ["80/tcp"], "published": ["8080/tcp"],
         "why": "published port 0.0.0.0:8080 -> shop-api-1 %s:80/tcp; api ingress[0]: from outside, web, "
                "every port" % state.container("shop-api-1").interfaces[0].ipv4.ip}],
        "closed": ["outside: no new connection into a project bridge (only published ports)"]}]
    assert 'n1 -> n0 [label="5432/tcp, 6000-6010/udp"];' in reach.render_graph(m, "dot")
    assert '-->|"8080->80/tcp"|' in reach.render_graph(m, "mermaid")
    text = reach.render_text(m)
    assert text.splitlines()[0].split() == ["from", "\\", "to", "db-1", "api-1", "web-1", "side-1", "cache-1",
                                            "host", "outside"]


def test_find_names_services_containers_and_words(shop):
    _, state = shop
    m = reach.matrix(state)
    assert m.find("db") == ["shop-db-1"] and m.find("db-1") == ["shop-db-1"] and m.find("host") == ["host"]
    with pytest.raises(LookupError):
        m.find("nope")


def test_verify_plans_a_probe_per_port_in_question_with_the_matrix_answer(shop):
    from compose_net import reach_verify

    _, state = shop
    m = reach.matrix(state)
    probes = {(p.source, p.target, p.route, p.protocol, p.port): p.expected for p in reach_verify.plan_probes(m)}
    any_port = reach_verify.ANY_PORT
    assert probes[("shop-api-1", "shop-db-1", "direct", "tcp", 5432)] is True
    assert probes[("shop-api-1", "shop-db-1", "direct", "tcp", any_port)] is False
    assert probes[("shop-api-1", "shop-db-1", "direct", "udp", 6000)] is True
    assert probes[("shop-web-1", "shop-db-1", "direct", "tcp", any_port)] is False
    assert probes[("outside", "shop-api-1", "published", "tcp", 8080)] is True
    assert probes[("shop-db-1", "shop-api-1", "published", "tcp", 8080)] is False
    assert probes[("shop-web-1", "shop-api-1", "published", "tcp", 8080)] is True
    assert ("host", "shop-cache-1", "published", "tcp", 6379) not in probes  # internal: nothing published
    # the same namespace is not probed; host <-> outside is not the project's
    assert not any(k[0] == "shop-side-1" and k[1] == "shop-web-1" for k in probes)
    assert not any({k[0], k[1]} == {"host", "outside"} for k in probes)


def test_sampling_keeps_policy_and_published_cells_and_says_how(shop):
    from compose_net import reach_verify

    _, state = shop
    m = reach.matrix(state)
    probes = reach_verify.plan_probes(m)
    chosen, how = reach_verify.sample(m, probes, 40)
    assert len(chosen) == 40 and how.startswith(f"sampled 40 of {len(probes)} probes")
    assert reach_verify.sample(m, probes, 10_000) == (probes, None)


def test_cli_reach_prints_the_matrix_and_refuses_an_unknown_name(tmp_path, capsys):
    from compose_net import cli

    (tmp_path / "compose.yml").write_text(textwrap.dedent(SHOP))
    assert cli.main(["-f", str(tmp_path / "compose.yml"), "reach", "api", "db"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("api-1 -> db-1: 5432/tcp, 6000-6010/udp\n")
    assert cli.main(["-f", str(tmp_path / "compose.yml"), "reach", "--json", "outside"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c["to"] for c in data["cells"] if c["open"]} == {"shop-api-1"}
    assert cli.main(["-f", str(tmp_path / "compose.yml"), "reach", "nope"]) == 2
    assert "no service or container 'nope'" in capsys.readouterr().err
