"""Live operations: `network connect/disconnect`, `run`, `rm`, as edits of a project's live record.

Each operation checks its input against the recorded states of every project (nothing changes
when anything is wrong: `ConfigError`, exit 2, for a bad value; `RuntimeFailure`, exit 1, for
what the host's state refuses), makes the project's new `summary.Live`, and has the ordinary
planner plan the project with it (`plan.live` edits the graph). The plan is the difference
against the journal (`planner.plan_edit`, observing what the edit touches), applied by the
executor: the new veth, addresses and routes, the /etc/netns files, the recorded state, the
firewall table and a DNS reload, or their removal. Nothing here touches the kernel itself.

Whose edit: a connection belongs to the container's project; an ad-hoc container (`run`) to the
project of its first network (`net.NAME` for one made by `network create`, which then plans its
network and its ad-hoc containers); `run --network host|none` makes a one-container project
`run.NAME`. The project's model comes from its recorded files (`Summary.files`), or is rebuilt
from the recorded state for the projects made here.

The caller (cli) holds `state.host_lock()` around the calls that change something.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from typing import Any, Optional, Sequence

from compose_net import netadmin
from compose_net.errors import ConfigError, RuntimeFailure
from compose_net.plan.live import MODES
from compose_net.summary import (AdHoc, Connection, ContainerState, Disconnection, Live, NetworkState, PortState,
                                 Summary)

RUN_PREFIX = "run."
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}\Z")  # Docker's characters, one DNS label long
_LABEL_RE = re.compile(r"[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?\Z")


# --- finding things ---------------------------------------------------------------------------


def _container(facts: Any, name: str) -> tuple[Summary, ContainerState]:
    for summary in facts.projects.values():
        found = summary.container(name)
        if found is not None:
            return summary, found
    raise RuntimeFailure(f"no such container: {name}")


def _network(facts: Any, name: str) -> tuple[Summary, NetworkState]:
    for summary in facts.projects.values():
        for net in summary.owned_networks():
            if net.name == name:
                return summary, net
    raise RuntimeFailure(f"network {name} not found")


def _taken(facts: Any, network: str) -> dict[Any, str]:
    """Addresses on `network` and who holds them (containers of any project, the gateway)."""
    out: dict[Any, str] = {}
    for summary in facts.projects.values():
        for c in summary.containers:
            for i in c.interfaces:
                if i.network == network:
                    for a in i.addresses:
                        out[a.ip] = f"container {c.name}"
        net = summary.network(network)
        if net is not None and not net.external:
            for s in net.subnets:
                if s.gateway is not None:
                    out[s.gateway] = "the gateway"
    return out


# --- checks of the user's values --------------------------------------------------------------


def _bad(verb: str, option: str, message: str) -> ConfigError:
    return ConfigError(verb, 0, option, message)


def check_name(verb: str, option: str, value: str, what: str = "name") -> str:
    if not _NAME_RE.match(value):
        raise _bad(verb, option, f"invalid {what} {value!r}: use letters, digits, '_', '.', '-', starting with "
                                 "a letter or digit, at most 63 characters")
    return value


def check_dns_name(verb: str, option: str, value: str) -> str:
    """An alias or hostname: a DNS name the server answers and files hold."""
    labels = value.split(".")
    if not value or len(value) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise _bad(verb, option, f"invalid DNS name {value!r}: labels of letters, digits, '-', '_', "
                                 "at most 63 characters each")
    return value


def _address(verb: str, option: str, text: Optional[str], version: int, net: NetworkState,
             facts: Any) -> Optional[ipaddress._BaseAddress]:
    """--ip/--ip6 on `net`: an address of its user-given subnet that nobody holds."""
    if text is None:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise _bad(verb, option, f"{text!r} is not an IP address") from None
    if addr.version != version:
        raise _bad(verb, option, f"{addr} is not an IPv{version} address")
    if not net.user_subnet:
        raise _bad(verb, option, f"user specified IP address is supported only on networks with a user "
                                 f"configured subnet; network {net.name} has none")
    subnet = next((s.subnet for s in net.subnets if s.subnet.version == version), None)
    if subnet is None or addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise _bad(verb, option, f"{addr} is not a usable address of network {net.name}'s subnet "
                                 f"{subnet or f'(no IPv{version} subnet)'}")
    holder = _taken(facts, net.name).get(addr)
    if holder is not None:
        raise _bad(verb, option, f"address {addr} is already in use on network {net.name} by {holder}")
    return addr


# --- connect / disconnect ---------------------------------------------------------------------


def connect(network: str, container: str, aliases: Sequence[str] = (), ip: Optional[str] = None,
            ip6: Optional[str] = None, facts: Any = None) -> Any:
    """`network connect`: the container gets an interface on `network`, recorded."""
    verb = "network connect"
    facts = facts or _probe()
    aliases = tuple(dict.fromkeys(check_dns_name(verb, "--alias", a) for a in aliases))
    owner, ctr = _container(facts, container)
    _, net = _network(facts, network)
    if ctr.netns is None or ctr.shares or ctr.network_mode is not None:
        raise RuntimeFailure(f"container {container} has network_mode {ctr.network_mode or 'host'}: it shares "
                             "a namespace and cannot be connected to a network")
    if any(i.network == network for i in ctr.interfaces):
        raise RuntimeFailure(f"endpoint with name {container} already exists in network {network}")
    v4 = _address(verb, "--ip", ip, 4, net, facts)
    v6 = _address(verb, "--ip6", ip6, 6, net, facts)
    used = {i.ifname for i in ctr.interfaces}
    ifname = next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
    live = owner.live
    undone = Disconnection(container, network)
    if undone in live.disconnections and not (aliases or v4 or v6):
        # back on a network its file gives it: as the file says
        live = dataclasses.replace(live, disconnections=tuple(d for d in live.disconnections if d != undone))
    else:
        live = dataclasses.replace(live, connections=live.connections
                                   + (Connection(container, network, ifname, aliases, v4, v6),))
    return _apply(owner, live, facts, container)


def disconnect(network: str, container: str, force: bool = False, facts: Any = None) -> Any:
    """`network disconnect`: the container loses its interface on `network`."""
    facts = facts or _probe()
    owner, ctr = _container(facts, container)
    _network(facts, network)
    if not any(i.network == network for i in ctr.interfaces):
        raise RuntimeFailure(f"container {container} is not connected to network {network}")
    live = owner.live
    connections = tuple(c for c in live.connections if not (c.container == container and c.network == network))
    if connections != live.connections:
        live = dataclasses.replace(live, connections=connections)
    else:
        live = dataclasses.replace(live, disconnections=live.disconnections + (Disconnection(container, network),))
    return _apply(owner, live, facts, container)


# --- run / rm ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Started:
    project: str
    container: ContainerState


def run(networks: Sequence[str], name: Optional[str] = None, hostname: Optional[str] = None,
        aliases: Sequence[str] = (), ip: Optional[str] = None, publish: Sequence[str] = (),
        detach: bool = False, facts: Any = None) -> Started:
    """`run --network NET...`: make the ad-hoc container (the caller runs CMD in it)."""
    verb = "run"
    facts = facts or _probe()
    if not networks:
        raise _bad(verb, "--network", "give the network(s) to run on: --network NET (a network made by "
                                      "`network create`, a project's network by its full name, host or none)")
    if len(set(networks)) != len(networks):
        raise _bad(verb, "--network", "a network is given twice")
    if any(n in MODES for n in networks) and len(networks) > 1:
        raise _bad(verb, "--network", "host and none cannot be combined with other networks")
    name = check_name(verb, "--name", name) if name else f"run-{secrets.token_hex(3)}"
    _free_name(facts, name)
    hostname = check_dns_name(verb, "--hostname", hostname) if hostname else None
    aliases = tuple(dict.fromkeys(check_dns_name(verb, "--alias", a) for a in aliases))
    ports = tuple(parse_publish(p) for p in publish)
    if networks[0] in MODES:
        if ip or aliases or (ports and networks[0] == "none"):
            raise _bad(verb, "--ip" if ip else "--alias" if aliases else "--publish",
                       f"not possible with --network {networks[0]}")
        owner = Summary(RUN_PREFIX + name)
        v4 = None
    else:
        found = [_network(facts, n) for n in networks]
        owner = found[0][0]
        v4 = _address(verb, "--ip", ip, 4, found[0][1], facts)
    adhoc = AdHoc(name, tuple(networks), hostname=hostname, aliases=aliases, ipv4=v4, ports=ports, detach=detach)
    live = dataclasses.replace(owner.live, containers=owner.live.containers + (adhoc,))
    return Started(owner.project, _made(_apply(owner, live, facts, name), name))


def run_service(project: Any, service: str, facts: Any = None) -> Started:
    """`run SERVICE`: a one-off container of the service, `PROJECT-SERVICE-run-<6 hex>`."""
    facts = facts or _probe()
    if service not in project.services:
        raise ConfigError("run", 0, "SERVICE", f"no such service: {service}")
    owner = facts.projects.get(project.name)
    if owner is None:
        raise RuntimeFailure(f"project {project.name} is not up (`compose-net up` first)")
    name = f"{project.name}-{service}-run-{secrets.token_hex(3)}"
    _free_name(facts, name)
    live = dataclasses.replace(owner.live, containers=owner.live.containers + (AdHoc(name, service=service),))
    return Started(owner.project, _made(_apply(owner, live, facts, name, project), name))


def remove(name: str, facts: Any = None) -> str:
    """`rm NAME` (and the end of a `run` that is not detached): the ad-hoc container goes; a
    `run.NAME` project goes whole. Its processes are ended first."""
    from compose_net import executor
    from compose_net.executor import namespaces

    facts = facts or _probe()
    for summary in facts.projects.values():
        adhoc = next((a for a in summary.live.containers if a.name == name), None)
        if adhoc is None:
            continue
        ctr = summary.container(name)
        if ctr is not None and ctr.netns and not ctr.shares:
            namespaces.stop(ctr.netns)
        if summary.project == RUN_PREFIX + name:
            executor.down(summary.project)
        else:
            live = dataclasses.replace(summary.live, containers=tuple(a for a in summary.live.containers if a != adhoc))
            _apply(summary, live, facts, name)
        return summary.project
    _container(facts, name)  # a container of a compose file: say so, else: no such container
    raise RuntimeFailure(f"container {name} belongs to its compose file, not made by `run`: "
                         "`down` removes it")


def stop_adhoc(summary: Summary) -> None:
    """End the processes of the project's ad-hoc containers (before its `down`)."""
    from compose_net.executor import namespaces

    for adhoc in summary.live.containers:
        ctr = summary.container(adhoc.name)
        if ctr is not None and ctr.netns and not ctr.shares:
            namespaces.stop(ctr.netns)


def _free_name(facts: Any, name: str) -> None:
    from compose_net.executor import namespaces

    for summary in facts.projects.values():
        if summary.container(name) is not None or any(a.name == name for a in summary.live.containers):
            raise RuntimeFailure(f"the container name {name} is already in use (project {summary.project})")
    if namespaces.exists(name) or namespaces.uts_exists(name):
        raise RuntimeFailure(f"the name {name} is already in use by a namespace under /run/netns or /run/utsns")


def parse_publish(text: str) -> PortState:
    """`[IP:]HOST:CONTAINER[/PROTO]` or `CONTAINER[/PROTO]` (an ephemeral host port)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise _bad("run", "--publish", f"{text!r}: unknown protocol {proto!r}")
    host_ip = None
    if spec.startswith("["):
        close = spec.find("]")
        host_ip, spec = spec[1:close], spec[close + 2:]
    elif spec.count(":") == 2:
        host_ip, spec = spec.split(":", 1)
    parts = spec.split(":")
    try:
        ip = ipaddress.ip_address(host_ip) if host_ip else None
        numbers = [int(p) for p in parts]
    except ValueError:
        raise _bad("run", "--publish", f"{text!r}: expected [IP:]HOST:CONTAINER[/PROTO]") from None
    if len(numbers) not in (1, 2) or not all(0 < n < 65536 for n in numbers):
        raise _bad("run", "--publish", f"{text!r}: expected [IP:]HOST:CONTAINER[/PROTO], ports 1-65535")
    published = numbers[0] if len(numbers) == 2 else None
    return PortState(target=numbers[-1], target_end=numbers[-1], protocol=proto, host_ip=ip,
                     published=published, published_end=published)


# --- planning and applying --------------------------------------------------------------------


def _probe() -> Any:
    from compose_net.probe import probe_host

    return probe_host(firewall=True)  # a live edit plans: the host's other firewalls are facts too


def model(summary: Summary) -> Any:
    """The project model of a recorded project: from its files, or rebuilt for projects made
    here (`net.NAME`, `run.NAME`)."""
    from compose_net.model import Project

    if summary.project.startswith(netadmin.PREFIX) and summary.standalone:
        return netadmin.recorded_project(summary)
    if summary.project.startswith(RUN_PREFIX):
        return Project(name=summary.project, working_dir="/", services={}, networks={}, containers=())
    if not summary.files:
        raise RuntimeFailure(f"project {summary.project} records no compose file to plan it from")
    from compose_net.loader import LoadOptions, load

    return load(LoadOptions(files=tuple(summary.files), project_name=summary.project,
                            project_directory=summary.working_dir or None)).project


def _apply(owner: Summary, live: Live, facts: Any, touched: str, project: Any = None) -> Any:
    """Plan `owner`'s project with `live` and apply the difference; the plan's new state.
    Refused when any container but `touched` would change too (the file was edited since `up`,
    or is read without the profiles or environment `up` had): a live edit changes one thing."""
    from compose_net import executor, observe, state
    from compose_net.plan import planner

    project = project if project is not None else model(owner)
    store = None
    if owner.cluster:
        project, facts, store = _in_cluster(owner, project, facts, live)
    desired = planner.plan_up(project, facts, live=live)
    if owner.standalone:
        desired = netadmin.finish(desired, owner.created)
    recorded = state.Journal(owner.project).read().ops
    observed = observe.read(observe.query(planner.edit_scope(desired, recorded)))
    plan = planner.plan_edit(owner.project, facts, desired, recorded, observed)
    _unchanged_besides(owner, plan.state, touched)
    if plan.state.live != live:
        dropped = [x for x in (*live.connections, *live.disconnections, *live.containers)
                   if x not in (*plan.state.live.connections, *plan.state.live.disconnections,
                                *plan.state.live.containers)]
        raise RuntimeFailure(f"project {owner.project} cannot take this edit: {dropped[0]}")
    executor.up(plan)
    if store is not None:
        from compose_net import cluster

        cluster.register(store, plan.state, cluster.ttl_setting(os.environ))
    return plan.state


def _in_cluster(owner: Summary, project: Any, facts: Any, live: Live) -> tuple[Any, Any, Any]:
    """A project that spans hosts is edited as its `up` plans it: this host's services only,
    their names, subnets and addresses as the cluster store fixes them (a connected or ad-hoc
    container's address on an overlay network is leased there too)."""
    from compose_net import cluster
    from compose_net.graph import select

    here = tuple(dict.fromkeys(c.service for c in owner.containers if c.service in project.services))
    project = select(project, here)
    store = cluster.store_of(owner)
    project, facts = cluster.prepare(store, owner.cluster, project, facts, cluster.ttl_setting(os.environ),
                                     live=live)
    return project, facts, store


def _unchanged_besides(owner: Summary, new: Summary, touched: str) -> None:
    for ctr in owner.containers:
        if ctr.name != touched and new.container(ctr.name) != ctr:
            raise RuntimeFailure(f"project {owner.project}: its compose file ({', '.join(owner.files) or '-'}) now "
                                 f"plans container {ctr.name} differently from what is up; run `up` first "
                                 "(with the options it was brought up with)")


def _made(state: Summary, name: str) -> ContainerState:
    found = state.container(name)
    if found is None:
        raise RuntimeFailure(f"container {name} was not made")
    return found
