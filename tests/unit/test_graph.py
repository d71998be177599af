import pytest

from compose_net.errors import ConfigError
from compose_net.graph import build_graph, select, service_order
from compose_net.model import Dependency, Link
from planning_projects import att, net, project, svc, three_tier


def test_order_follows_dependencies_then_declaration():
    p = project("p", [
        svc("web", att("n"), depends_on=(Dependency("api"),)),
        svc("z", att("n")),
        svc("api", att("n"), links=(Link("db", "database"),)),
        svc("side", network_mode="service:web"),
        svc("db", att("n")),
    ], [net("n", "p")])
    assert service_order(p) == ("z", "db", "api", "web", "side")


def test_unknown_dependencies_are_ignored_and_cycles_are_errors():
    p = project("p", [svc("a", att("n"), depends_on=(Dependency("gone"),))], [net("n", "p")])
    assert service_order(p) == ("a",)
    cyc = project("p", [svc("a", att("n"), depends_on=(Dependency("b"),)), svc("b", att("n"), network_mode="service:a")],
                  [net("n", "p")])
    with pytest.raises(ConfigError, match="cycle"):
        service_order(cyc)


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


def test_graph_has_attachments_sharing_and_replicas():
    p = project("p", [
        svc("web", att("front", aliases=("www",), priority=5, interface_name="wan0"), replicas=2),
        svc("side", network_mode="service:web"),
        svc("solo", network_mode="host"),
    ], [net("front", "p")])
    g = build_graph(p)
    assert ("container", "p-web-2") in g and ("container", "p-solo-1") in g
    edges = g.get_edge_data(("container", "p-web-1"), ("network", "front"))
    (data,) = edges.values()
    assert data["aliases"] == ("www",) and data["priority"] == 5 and data["interface_name"] == "wan0"
    shares = g.get_edge_data(("container", "p-side-1"), ("container", "p-web-1"))
    assert [d["kind"] for d in shares.values()] == ["shares"]
    assert g.nodes[("container", "p-solo-1")]["network_mode"] == "host"
