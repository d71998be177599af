"""The desired project as a networkx graph: what the planner walks, and nothing else.

    HOST ──publish──▶ container ──attach──▶ network
                      container ──order───▶ container   (depends_on, links: the target comes first)
                      container ──shares──▶ container   (network_mode service:X: X's first replica)

Nodes carry typed values under the attribute `value`: `HostNode`, `NetworkNode` (the model's
`Network`, the per-project `default` one included when services use it) and `ContainerNode`
(a service's replica). Edges are keyed by their kind and carry `Attach` (the model's
`Attachment`: interface name, priorities, addresses, MAC, aliases), `Order` (why one container
comes before another, with the key path that says so) or `Publish` (a `PortMapping`).

Questions the planner asks are answered here: the creation order (a topological order, the
declaration order among equals), the whole dependency cycle when there is one, which containers
sit on a network and in what order, which networks two containers share. networkx costs a tenth
of a second to import: only commands that plan pay it (`ps`, `ls`, `down` never import this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

from compose_net.errors import ConfigError, ConfigErrors
from compose_net.model import Attachment, Container, Network, PortMapping, Project, Service

if TYPE_CHECKING:  # pragma: no cover
    import networkx

HOST = ("host",)
ATTACH, ORDER, SHARES, PUBLISH = "attach", "order", "shares", "publish"


@dataclass(frozen=True)
class HostNode:
    """The machine itself: published ports lead from it."""


@dataclass(frozen=True)
class NetworkNode:
    network: Network


@dataclass(frozen=True)
class ContainerNode:
    container: Container
    service: Service
    rank: int  # declaration order of the service, then replica index: the tie-break of every order


@dataclass(frozen=True)
class Attach:
    attachment: Attachment


@dataclass(frozen=True)
class Order:
    """`source` must come after `target`: `kind` (depends_on, links, network_mode) at `keypath`."""

    kind: str
    keypath: str


@dataclass(frozen=True)
class Publish:
    port: PortMapping


def network_node(key: str) -> tuple[str, str]:
    return ("network", key)


def container_node(name: str) -> tuple[str, str]:
    return ("container", name)


def shared_service(service: Service) -> Optional[str]:
    """X for `network_mode: service:X`, else None."""
    mode = service.network_mode or ""
    return mode[len("service:"):] if mode.startswith("service:") else None


def dependencies(service: Service) -> list[tuple[str, str, str]]:
    """(service, kind, key path) of everything that must be up before `service`."""
    out = [(d.service, "depends_on", f"{service.keypath}.depends_on.{d.service}") for d in service.depends_on]
    out += [(link.service, "links", f"{service.keypath}.links") for link in service.links]
    shared = shared_service(service)
    if shared:
        out.append((shared, "network_mode", f"{service.keypath}.network_mode"))
    seen: set[str] = set()
    return [d for d in out if not (d[0] in seen or seen.add(d[0]))]


def build_graph(project: Project) -> "networkx.MultiDiGraph":
    import networkx as nx

    g = nx.MultiDiGraph(project=project.name)
    g.add_node(HOST, value=HostNode())
    for key, net in project.networks.items():
        g.add_node(network_node(key), value=NetworkNode(net))
    rank_of = {name: i for i, name in enumerate(project.services)}
    replicas: dict[str, list[tuple[str, str]]] = {}
    for c in project.containers:
        svc = project.services[c.service]
        node = container_node(c.name)
        g.add_node(node, value=ContainerNode(c, svc, rank_of[c.service] * 100_000 + c.index))
        replicas.setdefault(c.service, []).append(node)
        for a in svc.networks:
            if a.network in project.networks:
                g.add_edge(node, network_node(a.network), key=ATTACH, value=Attach(a))
        for p in svc.ports:
            g.add_edge(HOST, node, key=f"{PUBLISH}:{p.keypath}", value=Publish(p))
    for name, svc in project.services.items():
        shared = shared_service(svc)
        for target, kind, keypath in dependencies(svc):
            if target not in replicas:
                continue  # not in this project (an inactive profile, `up SERVICE`): no order to keep
            for node in replicas.get(name, ()):
                for dep in replicas[target]:
                    g.add_edge(node, dep, key=ORDER, value=Order(kind, keypath))
                if target == shared and target != name:
                    g.add_edge(node, replicas[target][0], key=SHARES, value=Order(kind, keypath))
    return g


def value(g: "networkx.MultiDiGraph", node: tuple) -> object:
    return g.nodes[node]["value"]


def containers(g: "networkx.MultiDiGraph") -> list[ContainerNode]:
    """Every container in declaration order (services, then replicas)."""
    found = [data["value"] for node, data in g.nodes(data=True) if node[0] == "container"]
    return sorted(found, key=lambda c: c.rank)


def networks(g: "networkx.MultiDiGraph") -> list[Network]:
    return [data["value"].network for node, data in g.nodes(data=True) if node[0] == "network"]


def creation_order(g: "networkx.MultiDiGraph", locate=None) -> list[ContainerNode]:
    """Containers in a topological order of the order edges (a dependency first), declaration
    order among those ready together. A cycle is a ConfigErrors with one line per edge of it."""
    import networkx as nx

    sub = nx.DiGraph()
    members = containers(g)
    sub.add_nodes_from(container_node(c.container.name) for c in members)
    for u, v, key in g.edges(keys=True):
        if key == ORDER:
            sub.add_edge(v, u)  # the dependency before the dependent
    rank = {container_node(c.container.name): c.rank for c in members}
    try:
        order = list(nx.lexicographical_topological_sort(sub, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        raise cycle_errors(g, locate) from None
    return [g.nodes[n]["value"] for n in order]


def cycle_errors(g: "networkx.MultiDiGraph", locate=None) -> ConfigErrors:
    """The dependency cycle of `g` as one error per edge, each at the key that makes the edge."""
    import networkx as nx

    services = nx.DiGraph()
    for u, v, key, data in g.edges(keys=True, data=True):
        if key == ORDER:
            a, b = g.nodes[u]["value"].service.name, g.nodes[v]["value"].service.name
            services.add_edge(a, b, why=data["value"])
    cycle = nx.find_cycle(services)
    return ConfigErrors(describe_cycle([(a, b, services.edges[a, b]["why"].keypath) for a, b in cycle], locate))


def describe_cycle(edges: list[tuple[str, str, str]], locate=None) -> list[ConfigError]:
    """One error per edge (a depends on b, at keypath) of a cycle, all naming the whole cycle."""
    names = [a for a, _, _ in edges] + [edges[0][0]]
    text = "dependency cycle: " + " → ".join(names)
    out = []
    for a, b, keypath in edges:
        file, line = locate(keypath) if locate else ("compose.yml", 0)
        out.append(ConfigError(file, line, keypath, f"{text} ({a} needs {b})"))
    return out


def service_cycles(edges: dict[str, list[tuple[str, str]]]) -> list[list[tuple[str, str, str]]]:
    """Every elementary dependency cycle of a service graph given as {service: [(target,
    keypath)]}: the loader's check, on plain data, before there is a model."""
    import networkx as nx

    g = nx.DiGraph()
    for a, targets in edges.items():
        for b, keypath in targets:
            if b in edges and not g.has_edge(a, b):
                g.add_edge(a, b, keypath=keypath)
    cycles = []
    for cycle in nx.simple_cycles(g):
        ring = cycle + [cycle[0]]
        cycles.append([(a, b, g.edges[a, b]["keypath"]) for a, b in zip(ring, ring[1:])])
    return cycles


def attachments(g: "networkx.MultiDiGraph", container: str) -> list[tuple[Network, Attachment]]:
    """The container's networks with its attachment to each, in declaration order."""
    out = []
    for _, net, key, data in g.out_edges(container_node(container), keys=True, data=True):
        if key == ATTACH:
            out.append((g.nodes[net]["value"].network, data["value"].attachment))
    return sorted(out, key=lambda pair: pair[1].order)


def members(g: "networkx.MultiDiGraph", key: str) -> list[tuple[ContainerNode, Attachment]]:
    """The containers attached to network `key` and how, in declaration order."""
    out = []
    for node, _, ekey, data in g.in_edges(network_node(key), keys=True, data=True):
        if ekey == ATTACH:
            out.append((g.nodes[node]["value"], data["value"].attachment))
    return sorted(out, key=lambda pair: pair[0].rank)


def shared_networks(g: "networkx.MultiDiGraph", a: str, b: str) -> set[str]:
    """Keys of the networks containers `a` and `b` are both attached to."""
    def nets(name: str) -> set[str]:
        return {v[1] for _, v, k in g.out_edges(container_node(name), keys=True) if k == ATTACH}

    return nets(a) & nets(b)


def shares_with(g: "networkx.MultiDiGraph", container: str) -> Optional[str]:
    """The container whose namespace `container` joins (network_mode service:X), if any."""
    for _, target, key in g.out_edges(container_node(container), keys=True):
        if key == SHARES:
            return target[1]
    return None


def publishes(g: "networkx.MultiDiGraph", container: str) -> list[PortMapping]:
    return [data["value"].port for _, _, key, data in g.in_edges(container_node(container), keys=True, data=True)
            if key.startswith(PUBLISH)]


def select(project: Project, services: Iterable[str]) -> Project:
    """The part of `project` that `up SERVICE...` brings up: those services, everything they
    depend on (transitively), and the networks these use."""
    todo = list(services)
    for name in todo:
        if name not in project.services:
            raise ConfigError("compose.yml", 0, f"services.{name}", f"no such service: {name}")
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in project.services:
            continue
        seen.add(name)
        todo.extend(dep for dep, _, _ in dependencies(project.services[name]))
    wanted = [n for n in project.services if n in seen]
    used_nets = {a.network for n in wanted for a in project.services[n].networks}
    return dataclasses.replace(
        project,
        services={n: project.services[n] for n in wanted},
        networks={k: v for k, v in project.networks.items() if k in used_nets},
        containers=tuple(c for c in project.containers if c.service in seen),
    )


def iter_order_edges(g: "networkx.MultiDiGraph") -> Iterator[tuple[str, str, Order]]:
    for u, v, key, data in g.edges(keys=True, data=True):
        if key == ORDER:
            yield u[1], v[1], data["value"]
