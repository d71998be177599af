"""The project's networkx graph: nodes, typed edges, creation order, cycles, selection."""

import pytest

from compose_net import graph as pgraph
from compose_net.errors import ConfigError, ConfigErrors
from compose_net.graph import ATTACH, HOST, SHARES, build_graph, container_node, creation_order, network_node, select
from compose_net.model import Dependency, Link, PortMapping
from planning_projects import att, net, project, svc, three_tier


def order_of(p):
    return [c.container.name for c in creation_order(build_graph(p))]


def test_order_follows_dependencies_then_declaration():
    p = project("p", [
        svc("web", att("n"), depends_on=(Dependency("api"),)),
        svc("z", att("n")),
        svc("api", att("n"), links=(Link("db", "database"),)),
        svc("side", network_mode="service:web"),
        svc("db", att("n")),
    ], [net("n", "p")])
    assert order_of(p) == ["p-z-1", "p-db-1", "p-api-1", "p-web-1", "p-side-1"]


def test_replicas_follow_their_service_and_dependents_wait_for_all_of_them():
    p = project("p", [svc("web", att("n"), depends_on=(Dependency("db"),)), svc("db", att("n"), replicas=3)],
                [net("n", "p")])
    assert order_of(p) == ["p-db-1", "p-db-2", "p-db-3", "p-web-1"]


def test_unknown_dependencies_are_ignored():
    p = project("p", [svc("a", att("n"), depends_on=(Dependency("gone"),))], [net("n", "p")])
    assert order_of(p) == ["p-a-1"]


def test_a_cycle_is_reported_whole_one_line_per_edge():
    cyc = project("p", [svc("a", att("n"), depends_on=(Dependency("b"),)),
                        svc("b", att("n"), depends_on=(Dependency("c"),)),
                        svc("c", att("n"), network_mode="service:a")], [net("n", "p")])
    with pytest.raises(ConfigErrors) as info:
        order_of(cyc)
    lines = [str(e) for e in info.value.errors]
    assert len(lines) == 3
    assert all("dependency cycle: " in line for line in lines)
    assert {e.keypath for e in info.value.errors} == {
        "services.a.depends_on.b", "services.b.depends_on.c", "services.c.network_mode"}
    # the whole ring, whichever service it starts at
    ring = lines[0].split("dependency cycle: ")[1].split(" (")[0].split(" → ")
    assert len(ring) == 4 and ring[0] == ring[-1] and set(ring) == {"a", "b", "c"}


def test_service_cycles_on_plain_data():
    cycles = pgraph.service_cycles({"a": [("b", "services.a.depends_on.b")], "b": [("a", "services.b.links[0]")],
                                    "c": [("zz", "services.c.depends_on.zz")]})
    assert len(cycles) == 1
    assert sorted(k for _, _, k in cycles[0]) == ["services.a.depends_on.b", "services.b.links[0]"]


def test_select_takes_dependencies_transitively():
    p = three_tier()
    sub = select(p, ["api"])
    assert list(sub.services) == ["api", "db"]
    assert [c.name for c in sub.containers] == ["shop-api-1", "shop-db-1"]
    assert set(sub.networks) == {"front", "back"}
    only_db = select(p, ["db"])
    assert list(only_db.services) == ["db"] and set(only_db.networks) == {"back"}
    with pytest.raises(ConfigError):
        select(p, ["nope"])


def test_graph_has_typed_attachments_sharing_replicas_and_publishing():
    port = PortMapping(target=80, target_end=80, published=8080, published_end=8080, keypath="services.web.ports[0]")
    p = project("p", [
        svc("web", att("front", aliases=("www",), priority=5, interface_name="wan0"), replicas=2, ports=(port,)),
        svc("side", network_mode="service:web"),
        svc("solo", network_mode="host"),
    ], [net("front", "p")])
    g = build_graph(p)
    assert container_node("p-web-2") in g and container_node("p-solo-1") in g
    attach = g.edges[container_node("p-web-1"), network_node("front"), ATTACH]["value"].attachment
    assert attach.aliases == ("www",) and attach.priority == 5 and attach.interface_name == "wan0"
    assert SHARES in g.get_edge_data(container_node("p-side-1"), container_node("p-web-1"))
    assert pgraph.shares_with(g, "p-side-1") == "p-web-1"
    assert g.nodes[container_node("p-solo-1")]["value"].service.network_mode == "host"
    assert pgraph.publishes(g, "p-web-2") == [port]
    assert g.has_edge(HOST, container_node("p-web-1"))
    assert [c.container.name for c, _ in pgraph.members(g, "front")] == ["p-web-1", "p-web-2"]


def test_shared_networks():
    g = build_graph(three_tier())
    assert pgraph.shared_networks(g, "shop-web-1", "shop-api-1") == {"front"}
    assert pgraph.shared_networks(g, "shop-web-1", "shop-db-1") == set()
