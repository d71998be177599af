"""Live edits (`network connect/disconnect`, `run`) applied to the project's graph.

Pure. A project's `Live` record (in its recorded state) says what was connected, disconnected or
run on top of its compose file. `apply` edits the graph `graph.build_graph` made from the file
before the layout walks it, so the planner lays out a connected interface, an ad-hoc container
or a one-off of a service exactly as it lays out the file's own (addresses, ethN, DNS names,
firewall, files), and every plan of the project, `up`'s too, holds them. Edits that no longer
apply (the container or the service left the file, the file now gives the network itself) are
dropped; `apply` returns the ones kept, which the plan records.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from compose_net import graph as pgraph
from compose_net.model import Attachment, Container, Network, PortMapping, Project, Service
from compose_net.summary import AdHoc, ContainerState, Live, PortState, Summary

RANK = 10 ** 9  # ad-hoc containers come after every container of the file
MODES = ("host", "none")  # `run --network host|none`: a mode, not a network


def network_key(g: Any, project: Project, name: str) -> str:
    """The graph key of the network called `name`; a network the file does not have (made by
    `network create`, or another project's) is added as an external one."""
    for key, net in project.networks.items():
        if net.name == name:
            return key
    key = name if name not in project.networks else f"live:{name}"
    node = pgraph.network_node(key)
    if node not in g:
        g.add_node(node, value=pgraph.NetworkNode(Network(key=key, name=name, external=True,
                                                          keypath=f"networks.{key}")))
    return key


def apply(g: Any, project: Project, live: Live, recorded: Optional[Summary] = None) -> Live:
    """Edit `g` (the file's graph) with `live`; the edits that still apply. `recorded`: the
    project's state as it is up, whose interface names a container keeps when it loses one."""
    containers = tuple(ah for n, ah in enumerate(live.containers) if _add_container(g, project, ah, n))
    disconnections = tuple(d for d in live.disconnections if _remove_attach(g, d.container, d.network))
    for name in dict.fromkeys(d.container for d in disconnections):
        _pin(g, name, recorded.container(name) if recorded is not None else None)
    connections = []
    for n, c in enumerate(live.connections):
        node = pgraph.container_node(c.container)
        if node not in g or g.nodes[node]["value"].service.network_mode is not None:
            continue
        key = network_key(g, project, c.network)
        if g.has_edge(node, pgraph.network_node(key), key=pgraph.ATTACH):
            continue  # the file gives it this network now
        a = Attachment(network=key, aliases=c.aliases, ipv4_address=c.ipv4, ipv6_address=c.ipv6,
                       interface_name=c.ifname, order=1000 + n, keypath=f"x-live.connections[{n}]")
        g.add_edge(node, pgraph.network_node(key), key=pgraph.ATTACH, value=pgraph.Attach(a))
        connections.append(c)
    return Live(tuple(connections), disconnections, containers)


def _remove_attach(g: Any, container: str, network: str) -> bool:
    node = pgraph.container_node(container)
    if node not in g:
        return False
    for _, net, key in list(g.out_edges(node, keys=True)):
        if key == pgraph.ATTACH and g.nodes[net]["value"].network.name == network:
            g.remove_edge(node, net, key=pgraph.ATTACH)
            return True
    return False


def _pin(g: Any, container: str, state: Optional[ContainerState]) -> None:
    """The container's other interfaces keep their names (eth1 stays eth1 when eth0 goes)."""
    if state is None:
        return
    names = {i.network: i.ifname for i in state.interfaces}
    node = pgraph.container_node(container)
    for _, net, key, data in g.out_edges(node, keys=True, data=True):
        a = data["value"].attachment
        name = names.get(g.nodes[net]["value"].network.name)
        if key == pgraph.ATTACH and a.interface_name is None and name is not None:
            data["value"] = pgraph.Attach(dataclasses.replace(a, interface_name=name))


def _add_container(g: Any, project: Project, ah: AdHoc, n: int) -> bool:
    node = pgraph.container_node(ah.name)
    if node in g:
        return False  # the file has a container of that name now
    keypath = f"x-live.containers[{n}]"
    if ah.service is not None:
        base = project.services.get(ah.service)
        if base is None:
            return False
        service = _one_off(base, ah)
    else:
        service = _ad_hoc(g, project, ah, keypath)
    container = Container(ah.name, service.name, 1)
    g.add_node(node, value=pgraph.ContainerNode(container, service, RANK + n))
    for a in service.networks:
        g.add_edge(node, pgraph.network_node(a.network), key=pgraph.ATTACH, value=pgraph.Attach(a))
    for p in service.ports:
        g.add_edge(pgraph.HOST, node, key=f"{pgraph.PUBLISH}:{p.keypath}", value=pgraph.Publish(p))
    shared = pgraph.shared_service(service)
    if shared is not None:
        first = next((c for c in project.containers if c.service == shared), None)
        if first is None:
            g.remove_node(node)
            return False
        g.add_edge(node, pgraph.container_node(first.name), key=pgraph.SHARES,
                   value=pgraph.Order("network_mode", f"{keypath}.network_mode"))
    return True


def _one_off(base: Service, ah: AdHoc) -> Service:
    """`run SERVICE`, as `docker compose run --rm`: the service's networks and aliases, none of
    what belongs to its one container (static addresses, MAC, published ports, dependencies)."""
    nets = tuple(dataclasses.replace(a, aliases=tuple(dict.fromkeys(a.aliases + ah.aliases)), ipv4_address=None,
                                     ipv6_address=None, mac_address=None, link_local_ips=())
                 for a in base.networks)
    return dataclasses.replace(base, networks=nets, ports=tuple(_mapping(p, "") for p in ah.ports),
                               depends_on=(), mac_address=None, container_name=None,
                               hostname=ah.hostname or base.hostname)


def _ad_hoc(g: Any, project: Project, ah: AdHoc, keypath: str) -> Service:
    ports = tuple(_mapping(p, f"{keypath}.ports[{i}]") for i, p in enumerate(ah.ports))
    if ah.networks and ah.networks[0] in MODES:
        return Service(name=ah.name, network_mode=ah.networks[0], hostname=ah.hostname,
                       container_name=ah.name, keypath=keypath)
    nets = tuple(Attachment(network=network_key(g, project, name), aliases=ah.aliases,
                            ipv4_address=ah.ipv4 if i == 0 else None, ipv6_address=ah.ipv6 if i == 0 else None,
                            order=i, keypath=f"{keypath}.networks[{i}]")
                 for i, name in enumerate(ah.networks))
    return Service(name=ah.name, networks=nets, ports=ports, hostname=ah.hostname, container_name=ah.name,
                   keypath=keypath)


def _mapping(p: PortState, keypath: str) -> PortMapping:
    return PortMapping(target=p.target, target_end=p.target_end, published=p.published,
                       published_end=p.published_end, host_ip=p.host_ip, protocol=p.protocol, keypath=keypath)
