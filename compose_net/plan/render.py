"""Plans as people and programs read them: numbered text, JSON, and the topology as a graph.

Numbering is the plan's list order from 1, the same numbers `COMPOSE_NET_FAIL_AFTER=K` counts.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from compose_net.model import Project
from compose_net.plan.ops import Op, Plan
from compose_net.summary import ContainerState, NetworkState, Summary

_UNIT_TITLES = {"host": "host", "state": "state", "firewall": "firewall", "host-firewall": "other firewalls of the host", "dns": "dns"}


def _unit_title(unit: str) -> str:
    kind, _, name = unit.partition(":")
    if kind == "network":
        return f"network {name}"
    if kind == "container":
        return f"container {name}"
    if kind == "shared":
        return f"shared {name}"
    return _UNIT_TITLES.get(unit, unit)


def _network_detail(summary: Optional[Summary], name: str) -> str:
    net = summary.network(name) if summary else None
    if net is None:
        return ""
    parts = [f"{s.subnet}, gateway {s.gateway}" if s.gateway else str(s.subnet) for s in net.subnets]
    extra = [net.driver] + (["internal"] if net.internal else [])
    return f" ({'; '.join(extra + parts)})"


def _lines(ops: Iterable[Op], summary: Optional[Summary] = None) -> list[str]:
    ops = list(ops)
    width = len(str(len(ops)))
    out: list[str] = []
    unit = None
    for i, op in enumerate(ops, 1):
        if op.unit != unit:
            unit = op.unit
            title = _unit_title(unit)
            if unit.startswith("network:") or unit.startswith("shared:"):
                title += _network_detail(summary, "bridge" if unit.startswith("shared:") else unit[8:])
            out.append(title)
        out.append(f"  {i:>{width}}  {op.describe()}")
        if op.note:
            out.append(f"  {'':>{width}}    # {op.note}")
        out += [f"  {'':>{width}}    {line}" for line in op.details()]
    return out


def render_text(plan: Plan) -> str:
    summary = plan.state
    nets = len(summary.networks) if summary else len({o.unit for o in plan.ops if o.unit.startswith("network:")})
    ctrs = len(summary.containers) if summary else len({o.unit for o in plan.ops if o.unit.startswith("container:")})
    out = [f"project {plan.project}: {nets} network{'s' if nets != 1 else ''}, "
           f"{ctrs} container{'s' if ctrs != 1 else ''}, {len(plan.ops)} ops", ""]
    out += _lines(plan.ops, summary)
    if plan.notes:
        out += ["", "notes:"] + [f"  - {n}" for n in plan.notes]
    if plan.warnings:
        out += ["", "warnings:"] + [f"  ! {w}" for w in plan.warnings]
    return "\n".join(out) + "\n"


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=True) + "\n"


def render_down_text(project: str, ops: Iterable[Op]) -> str:
    ops = list(ops)
    out = [f"project {project}: down, {len(ops)} ops", ""]
    out += _lines(ops)
    return "\n".join(out) + "\n"


# --- topology ---------------------------------------------------------------------------------


def _span(start: Optional[int], end: Optional[int]) -> str:
    return f"{start}" if end in (None, start) else f"{start}-{end}"


def _ports_text(container: ContainerState) -> list[str]:
    out = []
    for p in container.ports:
        host = f"{p.host_ip}:" if p.host_ip else ""
        out.append(f"{host}{_span(p.published, p.published_end)}->{_span(p.target, p.target_end)}/{p.protocol}")
    return out


def _node_id(prefix: str, name: str) -> str:
    return prefix + "_" + "".join(ch if ch.isalnum() else "_" for ch in name)


class _Ids:
    """Node ids readable from the names and unique even when two names differ only in
    punctuation (services `a-b` and `a_b`)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()

    def __call__(self, prefix: str, name: str) -> str:
        key = (prefix, name)
        if key not in self.ids:
            base = candidate = _node_id(prefix, name)
            n = 1
            while candidate in self.taken:
                n += 1
                candidate = f"{base}_{n}"
            self.taken.add(candidate)
            self.ids[key] = candidate
        return self.ids[key]


def render_graph(project: Project, plan: Plan, fmt: str = "mermaid") -> str:
    """The topology: networks (subnet, gateway), containers (interfaces, addresses, ports), and
    an edge per interface. `fmt` is "mermaid" or "dot"."""
    summary = plan.state or Summary(plan.project)
    nets, ctrs = summary.networks, summary.containers
    node = _Ids()
    for n in nets:
        node("net", n.name)
    for c in ctrs:
        node("c", c.name)
    if fmt == "dot":
        return _dot(plan.project, nets, ctrs, node)
    if fmt != "mermaid":
        raise ValueError(f"unknown graph format {fmt!r}")
    out = ["graph LR"]
    for n in nets:
        label = "<br/>".join(_net_lines(n))
        out.append(f'  {node("net", n.name)}{{{{"{label}"}}}}')
    for c in ctrs:
        lines = _container_lines(c)
        out.append(f'  {node("c", c.name)}["{"<br/>".join(lines)}"]')
        for i in c.interfaces:
            addrs = " ".join(str(a) for a in i.addresses)
            out.append(f'  {node("c", c.name)} -- "{i.ifname} {addrs}" --- {node("net", i.network)}')
        if c.shares:
            out.append(f'  {node("c", c.name)} -. shares netns .-> {node("c", c.shares)}')
    return "\n".join(out) + "\n"


def _net_lines(n: NetworkState) -> list[str]:
    subnets = [f"{s.subnet} gw {s.gateway}" if s.gateway else str(s.subnet) for s in n.subnets]
    return [n.name, n.driver + (" internal" if n.internal else ""), *subnets]


def _container_lines(c: ContainerState) -> list[str]:
    lines = [c.name]
    if c.network_mode and not c.interfaces:
        lines.append(f"network_mode: {c.network_mode}")
    return lines + _ports_text(c)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(project: str, nets: tuple[NetworkState, ...], ctrs: tuple[ContainerState, ...], node: _Ids) -> str:
    out = [f"graph {_q(project)} {{", "  rankdir=LR;", "  node [fontname=\"monospace\"];"]
    for n in nets:
        label = "\\n".join(_net_lines(n))
        out.append(f'  {node("net", n.name)} [shape=ellipse, label="{label}"];')
    for c in ctrs:
        lines = _container_lines(c)
        label = "\\n".join(lines)
        out.append(f'  {node("c", c.name)} [shape=box, label="{label}"];')
        for i in c.interfaces:
            addrs = " ".join(str(a) for a in i.addresses)
            out.append(f'  {node("c", c.name)} -- {node("net", i.network)} [label="{i.ifname} {addrs}"];')
        if c.shares:
            out.append(f'  {node("c", c.name)} -- {node("c", c.shares)} [style=dashed, label="shares netns"];')
    out.append("}")
    return "\n".join(out) + "\n"


# --- config -----------------------------------------------------------------------------------


def config_extension(summary: Summary) -> dict[str, Any]:
    """What `config` adds under `x-compose-net`: each network's subnets and bridge, each
    container's interfaces with their addresses (from the planner's summary)."""
    networks: dict[str, Any] = {}
    for n in summary.networks:
        entry: dict[str, Any] = {"driver": n.driver}
        if n.bridge:
            entry["bridge"] = n.bridge
        if n.parent:
            entry["parent"] = n.parent
        entry["subnets"] = [{k: str(v) for k, v in (("subnet", s.subnet), ("gateway", s.gateway),
                                                    ("ip_range", s.ip_range)) if v is not None}
                            for s in n.subnets]
        networks[n.name] = entry
    containers: dict[str, Any] = {}
    for c in summary.containers:
        entry = {"service": c.service, "index": c.index}
        if c.network_mode:
            entry["network_mode"] = c.network_mode
        if c.netns:
            entry["netns"] = c.netns
        interfaces: dict[str, Any] = {}
        for i in c.interfaces:
            iface: dict[str, Any] = {"interface_name": i.ifname}
            for value, out_key in ((i.ipv4, "ipv4_address"), (i.ipv6, "ipv6_address"), (i.mac, "mac_address")):
                if value:
                    iface[out_key] = str(value)
            if i.default_route or i.default_route6:
                iface["default_route"] = True
            interfaces[i.network] = iface
        if interfaces:
            entry["networks"] = interfaces
        ports = _ports_text(c)
        if ports:
            entry["ports"] = ports
        containers[c.name] = entry
    # sorted like the rest of `config`'s output
    return {"networks": dict(sorted(networks.items())), "containers": dict(sorted(containers.items()))}
