"""What `ps`, `ls`, `network ls` and `network inspect` show: pure functions over summaries.

A summary is a project's recorded state (`summary.Summary`, its `project.json`). Table views return rows whose
first row is the header; JSON views return plain data shaped like the matching Docker output
(`docker compose ps/ls --format json`, `docker network ls --format json`, `docker network
inspect`). Networks made by `network create` are one-network projects whose summary is
`standalone`: they are networks, not projects, so `ls` leaves them out.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Optional

from compose_net import firewall
from compose_net.summary import ContainerState, NetworkState, Summary

ZERO_TIME = "0001-01-01T00:00:00Z"  # what Docker prints for an unknown time


# --- ps ------------------------------------------------------------------------------------

PS_HEADER = ["NAME", "SERVICE", "STATE", "NAMESPACE", "NETWORK", "INTERFACE", "IPV4", "IPV6", "MAC", "PORTS"]
RUNNING = "running"


def container_health(differences: Iterable[tuple[Any, str]]) -> dict[str, list[str]]:
    """What is wrong with each container, from `plan.reconcile.differences` over its recorded
    ops: container name -> the reasons, in op order (a container missing from it is intact)."""
    out: dict[str, list[str]] = {}
    for op, reason in differences:
        kind, _, name = op.unit.partition(":")
        if kind == "container" and reason not in out.setdefault(name, []):
            out[name].append(reason)
    return out


def _state(c: ContainerState, health: Optional[dict[str, list[str]]]) -> tuple[str, str]:
    """(State, Status) as `ps` shows them: running and up, or degraded and what is wrong."""
    problems = (health or {}).get(c.name)
    if not problems:
        return RUNNING, "up"
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return "degraded", shown


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def ps_rows(summary: Summary, health: Optional[dict[str, list[str]]] = None) -> list[list[str]]:
    """One row per interface; a container's name, service, state, namespace and ports appear on
    its first row only. A container without interfaces shows its network mode instead. `health`
    (`container_health`) says what the kernel lacks; without it every container reads running."""
    rows = [list(PS_HEADER)]
    for c in summary.containers:
        state, _ = _state(c, health)
        # another host's endpoint (cluster store): where it lives instead of a namespace here
        head = [c.name, c.service, state, c.netns or (f"on {c.host}" if c.host else "-")]
        ports = ", ".join(_port_texts(c, summary))
        if not c.interfaces:
            rows.append(head + [_mode_text(c), "", "", "", "", ports])
            continue
        for n, i in enumerate(c.interfaces):
            cells = [i.network, i.ifname, _text(i.ipv4), _text(i.ipv6), _text(i.mac)]
            rows.append((head if n == 0 else ["", "", "", ""]) + cells + [ports if n == 0 else ""])
    return rows


def ps_problems(summary: Summary, health: Optional[dict[str, list[str]]]) -> list[str]:
    """A line per degraded container saying what the kernel lacks (under the `ps` table)."""
    return [f"{c.name}: {_state(c, health)[1]}" for c in summary.containers if _state(c, health)[0] != RUNNING]


def ps_json(summary: Summary, health: Optional[dict[str, list[str]]] = None) -> list[dict[str, Any]]:
    """`docker compose ps --format json` fields that apply, plus the namespace and interfaces."""
    out = []
    for c in summary.containers:
        ifaces = c.interfaces
        state, status = _state(c, health)
        out.append({
            "ID": c.id,
            "Name": c.name,
            "Names": c.name,
            "Project": summary.project,
            "Service": c.service,
            "State": state,
            "Status": status,
            "Hostname": c.hostname or c.short_id,
            # Compose gives a container its primary network as HostConfig.NetworkMode
            "NetworkMode": _mode_text(c) if not ifaces else (c.network_mode or ifaces[0].network),
            "Namespace": c.netns,
            "Host": c.host,  # None: this host; else the underlay address of the host it runs on
            "Networks": ",".join(i.network for i in ifaces),
            "Ports": ", ".join(_port_texts(c, summary)),
            "Publishers": _publishers(c),
            "Interfaces": [{
                "Network": i.network,
                "Interface": i.ifname,
                "HostInterface": i.host_ifname,
                "MacAddress": _text(i.mac),
                "IPv4Address": _text(i.ipv4),
                "IPv6Address": _text(i.ipv6),
                "Gateway": _text(i.gateway),
                "DefaultRoute": i.default_route,
                "Aliases": list(i.aliases),
            } for i in ifaces],
        })
    return out


def _mode_text(c: ContainerState) -> str:
    if c.shares:
        return c.network_mode or f"service:{c.shares}"
    return c.network_mode or "none"


def _range(start: int, end: Optional[int]) -> str:
    return str(start) if end in (None, start) else f"{start}-{end}"


def _port_texts(c: ContainerState, summary: Summary) -> list[str]:
    """Docker's PORTS column: `0.0.0.0:8080->80/tcp, :::8080->80/tcp`, then exposed ports."""
    texts = []
    has_v6 = _has_v6(c, summary)
    for p in c.ports:
        target = _range(p.target, p.target_end)
        if p.published is None:
            texts.append(f"{target}/{p.protocol}")
            continue
        published = _range(p.published, p.published_end)
        if p.host_ip is not None:
            shown = f"[{p.host_ip}]" if p.host_ip.version == 6 else str(p.host_ip)
            texts.append(f"{shown}:{published}->{target}/{p.protocol}")
        else:
            texts.append(f"0.0.0.0:{published}->{target}/{p.protocol}")
            if has_v6:
                texts.append(f":::{published}->{target}/{p.protocol}")
    published_targets = {(p.protocol, p.target) for p in c.ports}
    for e in c.expose:
        port, _, proto = str(e).partition("/")
        proto = proto or "tcp"
        first = int(port.split("-")[0]) if port.split("-")[0].isdigit() else None
        if (proto, first) not in published_targets:
            texts.append(f"{port}/{proto}")
    return texts


def _has_v6(c: ContainerState, summary: Summary) -> bool:
    """Whether the firewall publishes the ports on IPv6 too (the target interface has a v6 address)."""
    iface = firewall.published_interface(summary, c)
    return bool(iface and iface.ipv6)


def _publishers(c: ContainerState) -> list[dict[str, Any]]:
    """Docker's per-port `Publishers` list (a range is listed port by port, as Docker does)."""
    out = []
    for p in c.ports:
        target, target_end = p.target, p.target_end or p.target
        if p.published is None:
            for t in range(target, target_end + 1):
                out.append({"URL": "", "TargetPort": t, "PublishedPort": 0, "Protocol": p.protocol})
            continue
        published_end = p.published_end or p.published
        for n in range(published_end - p.published + 1):
            t = target + n if target_end != target else target
            out.append({"URL": str(p.host_ip) if p.host_ip else "0.0.0.0", "TargetPort": t,
                        "PublishedPort": p.published + n, "Protocol": p.protocol})
    return out


# --- ls ------------------------------------------------------------------------------------


def ls_rows(summaries: Iterable[Summary], health: Optional[dict[str, dict[str, list[str]]]] = None) -> list[list[str]]:
    rows = [["NAME", "STATUS", "CONFIG FILES"]]
    for item in ls_json(summaries, health):
        rows.append([item["Name"], item["Status"], item["ConfigFiles"]])
    return rows


def ls_json(summaries: Iterable[Summary], health: Optional[dict[str, dict[str, list[str]]]] = None) -> list[dict[str, Any]]:
    """`docker compose ls --format json`: Name, Status, ConfigFiles. Status is `running(N)` when
    all N containers are intact, else `degraded(K/N)` with K intact (`health`: project ->
    `container_health`)."""
    out = []
    for s in sorted(summaries, key=lambda s: s.project):
        if s.standalone:
            continue
        broken = (health or {}).get(s.project) or {}
        intact = sum(1 for c in s.containers if not broken.get(c.name))
        total = len(s.containers)
        out.append({
            "Name": s.project,
            "Status": f"running({total})" if intact == total else f"degraded({intact}/{total})",
            "ConfigFiles": ",".join(s.files),
        })
    return out


# --- networks ------------------------------------------------------------------------------


def _networks(summaries: Iterable[Summary]) -> list[tuple[NetworkState, Summary]]:
    """Every network once, as (network, owning summary): an external network appears in each
    project that uses it, so the entry of the project that made it wins."""
    found: dict[str, tuple[NetworkState, Summary]] = {}
    for s in summaries:
        for net in s.networks:
            if net.name not in found or (found[net.name][0].external and not net.external):
                found[net.name] = (net, s)
    return sorted(found.values(), key=lambda pair: pair[0].name)


def network_ls_rows(summaries: Iterable[Summary]) -> list[list[str]]:
    rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    for item in network_ls_json(summaries):
        rows.append([item["ID"], item["Name"], item["Driver"], item["Scope"]])
    return rows


def network_ls_json(summaries: Iterable[Summary]) -> list[dict[str, Any]]:
    """`docker network ls --format json` (Docker prints every field as a string)."""
    out = []
    for net, s in _networks(summaries):
        labels = _labels(net, s)
        out.append({
            "CreatedAt": s.created or ZERO_TIME,
            "Driver": net.driver,
            "ID": net.id[:12],
            "IPv6": _bool_text(net.enable_ipv6),
            "Internal": _bool_text(net.internal),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Name": net.name,
            "Scope": _scope(net, s),
        })
    return out


def _scope(net: NetworkState, owner: Summary) -> str:
    # Docker's overlay networks over a cluster store (before swarm mode) were "global"
    return "global" if owner.cluster and net.vxlan else "local"


def network_inspect(summaries: Iterable[Summary], name: str) -> Optional[dict[str, Any]]:
    """One network shaped like an element of `docker network inspect`; `name` may also be the
    id or a prefix of it. None when no summary knows the network."""
    summaries = list(summaries)
    pairs = _networks(summaries)
    match = next((p for p in pairs if p[0].name == name), None)
    if match is None and name:
        by_id = [p for p in pairs if p[0].id.startswith(name)]
        match = by_id[0] if len(by_id) == 1 else None
    if match is None:
        return None
    net, owner = match
    config = []
    for sub in net.subnets:
        entry = {"Subnet": str(sub.subnet)}
        if sub.ip_range:
            entry["IPRange"] = str(sub.ip_range)
        if sub.gateway:
            entry["Gateway"] = str(sub.gateway)
        config.append(entry)
    containers = {}
    for s in summaries:
        for c in s.containers:
            for i in c.interfaces:
                if i.network != net.name:
                    continue
                cid = c.id or hashlib.sha256(c.name.encode()).hexdigest()
                containers[cid] = {
                    "Name": c.name,
                    "EndpointID": hashlib.sha256(f"{cid}/{net.id or net.name}".encode()).hexdigest(),
                    "MacAddress": _text(i.mac),
                    "IPv4Address": _text(i.ipv4),
                    "IPv6Address": _text(i.ipv6),
                }
                if c.host:  # another host's endpoint, known from the cluster store
                    containers[cid]["Host"] = c.host
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": owner.created or ZERO_TIME,
        "Scope": _scope(net, owner),
        "Driver": net.driver,
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": net.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": _options(net),
        "Labels": _labels(net, owner),
    }


def _options(net: NetworkState) -> dict[str, str]:
    """The driver options that differ from the defaults, under Docker's keys."""
    from compose_net import drivers

    opts = drivers.get(net.driver).inspect_options(net)
    if net.mtu:
        opts["com.docker.network.driver.mtu"] = str(net.mtu)
    return opts


def _labels(net: NetworkState, owner: Summary) -> dict[str, str]:
    labels = dict(net.labels)
    if not owner.standalone and not net.external and net.key:
        labels.setdefault("com.docker.compose.network", net.key)
        labels.setdefault("com.docker.compose.project", owner.project)
    return labels


def _bool_text(value: Any) -> str:
    return "true" if value else "false"
