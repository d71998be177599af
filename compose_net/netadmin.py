"""`network create` / `network rm`: networks that projects attach to as `external`.

A network made here is a one-network project named `net.NAME` (a dot never appears in a Compose
project name, so it cannot clash with one): planned by the ordinary planner (bridge, gateway
address, its own firewall table), applied by the executor with its own journal, and removed by
the executor's `down` from that journal. Its summary is `standalone` (so `ls` does not
list it as a project) and `created`; other projects find its bridge and subnet there.

The caller (cli) holds `state.host_lock()` around these calls.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from typing import Any, Mapping, Optional

from compose_net import naming
from compose_net.errors import ConfigError, RuntimeFailure
from compose_net.model import IpamPool, Network, Project
from compose_net.plan.ops import FileWrite, Plan, SysctlSet
from compose_net.summary import Summary, to_text

PREFIX = "net."


def project_name(network: str) -> str:
    return PREFIX + network


def _check_name(name: str) -> None:
    ok = name and name[0].isalnum() and all(ch.isalnum() or ch in "_.-" for ch in name)
    if not ok:
        raise ConfigError("network create", 0, "NAME",
                          f"invalid network name {name!r}: use letters, digits, '_', '.', '-', "
                          "starting with a letter or digit")


def _pool(subnet: Optional[str], gateway: Optional[str]) -> IpamPool:
    try:
        net = ipaddress.ip_network(subnet, strict=False) if subnet else None
        gw = ipaddress.ip_address(gateway) if gateway else None
    except ValueError as exc:
        raise ConfigError("network create", 0, "--subnet" if subnet else "--gateway", str(exc)) from None
    if gw is not None and net is None:
        raise ConfigError("network create", 0, "--gateway", "a gateway needs --subnet")
    if net is not None and gw is not None and (gw not in net or gw.version != net.version):
        raise ConfigError("network create", 0, "--gateway", f"gateway {gw} is not in subnet {net}")
    return IpamPool(subnet=net, gateway=gw, keypath="ipam.config[0]")


def standalone_project(name: str, subnet: Optional[str] = None, gateway: Optional[str] = None,
                       internal: bool = False, driver: str = "bridge",
                       environment: Optional[Mapping[str, str]] = None) -> Project:
    """The one-network project `net.NAME` that `network create NAME` plans (`environment` holds
    COMPOSE_NET_DEFAULT_ADDRESS_POOLS when the caller's shell sets it)."""
    _check_name(name)
    if driver != "bridge":
        raise ConfigError("network create", 0, "--driver",
                          f"driver {driver!r}: `network create` makes bridge networks only")
    pools = (_pool(subnet, gateway),) if subnet or gateway else ()
    net = Network(key=name, name=name, driver="bridge", internal=internal, ipam_pools=pools,
                  enable_ipv6=any(p.subnet is not None and p.subnet.version == 6 for p in pools),
                  keypath=f"networks.{name}")
    return Project(name=project_name(name), working_dir="/", services={}, networks={name: net}, containers=(),
                   environment=dict(environment or {}))


def recorded_project(summary: Summary) -> Project:
    """The project of a network made here, again from its recorded state (its containers are
    the live edits `run` made on it, applied by the planner)."""
    net = summary.networks[0]
    given = net.user_subnet and net.subnets
    first = net.subnets[0] if given else None
    return standalone_project(net.name, str(first.subnet) if first else None,
                              str(first.gateway) if first and first.gateway else None, net.internal)


def plan_create(name: str, subnet: Optional[str] = None, gateway: Optional[str] = None,
                internal: bool = False, driver: str = "bridge", facts: Any = None,
                created: Optional[str] = None, environment: Optional[Mapping[str, str]] = None) -> Plan:
    """The plan that makes network `name` (pure given `facts`)."""
    from compose_net.plan.planner import plan_up

    project = standalone_project(name, subnet, gateway, internal, driver, environment)
    return finish(plan_up(project, facts), created or _now())


def finish(plan: Plan, created: Optional[str]) -> Plan:
    """A standalone network's plan: its state says so (and when it was made); its bridge may
    DNAT ports published on loopback out of it."""
    summary_path = naming.summary_path(plan.project)
    ops = []
    state = dataclasses.replace(plan.state, standalone=True, created=created or _now())
    internal = bool(state.networks) and state.networks[0].internal
    for op in plan.ops:
        if isinstance(op, FileWrite) and op.path == summary_path:
            op = dataclasses.replace(op, content=to_text(state))
        ops.append(op)
        if op.kind == "bridge_create" and not internal:
            # Projects attaching to this network may publish ports on 127.0.0.1 through it.
            ops.append(SysctlSet(op.unit, None, f"net.ipv4.conf.{op.name}.route_localnet", "1",
                                 note="ports published on loopback are DNATed out of this bridge"))
    return dataclasses.replace(plan, ops=tuple(ops), state=state)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _summaries() -> dict[str, Summary]:
    from compose_net import state

    out = {}
    for project in state.list_projects():
        summary = state.read_summary(project)
        if summary is not None:
            out[project] = summary
    return out


def create(name: str, subnet: Optional[str] = None, gateway: Optional[str] = None,
           internal: bool = False, driver: str = "bridge",
           environment: Optional[Mapping[str, str]] = None) -> Optional[Summary]:
    """Make network `name`; returns its summary. Fails if a network of that name exists."""
    from compose_net import executor
    from compose_net.probe import probe_host

    _check_name(name)
    for project, summary in _summaries().items():
        for net in summary.owned_networks():
            if net.name == name:
                raise RuntimeFailure(f"network with name {name} already exists"
                                     + ("" if project == project_name(name) else f" (project {project})"))
    plan = plan_create(name, subnet, gateway, internal, driver, probe_host(firewall=True), environment=environment)
    executor.up(plan)
    from compose_net import state

    return state.read_summary(project_name(name))


def remove(name: str) -> None:
    """Remove a network made by `create`; refused while containers of some project use it."""
    from compose_net import executor, state

    project = project_name(name)
    summaries = _summaries()
    if project not in summaries and not state.Journal(project).exists():
        owners = [p for p, s in summaries.items() if any(n.name == name for n in s.owned_networks())]
        if owners:
            raise RuntimeFailure(f"network {name} belongs to project {owners[0]}: "
                                 f"`compose-net -p {owners[0]} down` removes it")
        raise RuntimeFailure(f"no such network: {name}")
    users = _users(summaries, name)
    if users:
        raise RuntimeFailure(f"network {name} has active endpoints: {', '.join(users)}")
    executor.down(project)


def _users(summaries: dict[str, Summary], name: str) -> list[str]:
    """Every container, of any project (ad-hoc ones on the network itself included), with an
    interface on network `name`."""
    return sorted(c.name for s in summaries.values() for c in s.containers
                  for i in c.interfaces if i.network == name)


def prune() -> list[str]:
    """Remove every network made by `create` that no container uses; their names."""
    from compose_net import executor

    summaries = _summaries()
    removed = []
    for project, summary in sorted(summaries.items()):
        if not (summary.standalone and project.startswith(PREFIX)):
            continue
        name = project[len(PREFIX):]
        if not _users(summaries, name) and not summary.containers:
            executor.down(project)
            removed.append(name)
    return removed
