"""The project as a graph: which containers sit on which networks, and what starts before what.

`build_graph` gives a networkx graph for analysis and drawing (imported lazily: networkx alone
costs a quarter of a second to import, and `up` only needs the order). `service_order` and
`select` are plain Python over the model.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import TYPE_CHECKING, Iterable, Optional

from compose_net.errors import ConfigError
from compose_net.model import Project, Service

if TYPE_CHECKING:  # pragma: no cover
    import networkx


def shared_service(service: Service) -> Optional[str]:
    """X for `network_mode: service:X`, else None."""
    mode = service.network_mode or ""
    return mode[len("service:"):] if mode.startswith("service:") else None


def dependencies(service: Service) -> list[str]:
    """Services that must be up before `service`: depends_on, links and service:X, in that order."""
    out = [d.service for d in service.depends_on] + [link.service for link in service.links]
    shared = shared_service(service)
    if shared:
        out.append(shared)
    seen: set[str] = set()
    return [s for s in out if not (s in seen or seen.add(s))]


def service_order(project: Project) -> tuple[str, ...]:
    """Services in dependency order; among those ready at the same time, declaration order wins.
    Dependencies on services that are not in the project (inactive profiles, `up SERVICE`) are
    ignored. A cycle is a ConfigError naming one service on it."""
    names = list(project.services)
    rank = {name: i for i, name in enumerate(names)}
    blockers: dict[str, int] = {name: 0 for name in names}
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name, svc in project.services.items():
        for dep in dependencies(svc):
            if dep in rank and dep != name:
                blockers[name] += 1
                dependents[dep].append(name)
            elif dep == name:
                blockers[name] += 1  # a self-dependency is a cycle of one
    ready = [(rank[n], n) for n in names if blockers[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for nxt in dependents[name]:
            blockers[nxt] -= 1
            if blockers[nxt] == 0:
                heapq.heappush(ready, (rank[nxt], nxt))
    if len(order) != len(names):
        stuck = [n for n in names if blockers[n] > 0]
        svc = project.services[stuck[0]]
        keypath = f"{svc.keypath or 'services.' + svc.name}.depends_on"
        try:
            file, line = project.locate(keypath)
        except Exception:
            file, line = "compose.yml", 0
        raise ConfigError(file, line, keypath, "dependency cycle between services " + ", ".join(stuck))
    return tuple(order)


def select(project: Project, services: Iterable[str]) -> Project:
    """The part of `project` that `up SERVICE...` brings up: those services, everything they
    depend on (transitively), and the networks these use."""
    wanted: list[str] = []
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
        todo.extend(dependencies(project.services[name]))
    wanted = [n for n in project.services if n in seen]
    used_nets = {a.network for n in wanted for a in project.services[n].networks}
    return dataclasses.replace(
        project,
        services={n: project.services[n] for n in wanted},
        networks={k: v for k, v in project.networks.items() if k in used_nets},
        containers=tuple(c for c in project.containers if c.service in seen),
    )


def build_graph(project: Project) -> "networkx.MultiDiGraph":
    """Nodes ("network", KEY) with the Network, ("container", NAME) with service, index and
    network_mode; edges container -> network per attachment (aliases, addresses, priorities,
    interface name, MAC), container -> container `shares` for service:X, and
    service-level `depends` edges between containers' first replicas."""
    import networkx as nx

    g = nx.MultiDiGraph()
    for key, net in project.networks.items():
        g.add_node(("network", key), kind="network", network=net, name=net.name)
    first: dict[str, str] = {}
    for c in project.containers:
        svc = project.services[c.service]
        first.setdefault(c.service, c.name)
        g.add_node(("container", c.name), kind="container", service=c.service, index=c.index,
                   network_mode=svc.network_mode)
        for a in svc.networks:
            g.add_edge(("container", c.name), ("network", a.network), kind="attachment",
                       aliases=a.aliases, ipv4_address=a.ipv4_address, ipv6_address=a.ipv6_address,
                       priority=a.priority, gw_priority=a.gw_priority, interface_name=a.interface_name,
                       mac_address=a.mac_address or svc.mac_address, order=a.order)
    for c in project.containers:
        svc = project.services[c.service]
        shared = shared_service(svc)
        if shared and shared in first:
            g.add_edge(("container", c.name), ("container", first[shared]), kind="shares")
        for dep in dependencies(svc):
            if dep in first and dep != shared:
                g.add_edge(("container", c.name), ("container", first[dep]), kind="depends")
    return g
