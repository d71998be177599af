"""What `ps`, `ls`, `network ls` and `network inspect` show: pure functions over summaries.

A summary is a project's `project.json` (format in docs/design.md). Table views return rows whose
first row is the header; JSON views return plain data shaped like the matching Docker output
(`docker compose ps/ls --format json`, `docker network ls --format json`, `docker network
inspect`). Networks made by `network create` are one-network projects whose summary carries
`"standalone": true`: they are networks, not projects, so `ls` leaves them out.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, Iterable, Optional

from compose_net import firewall

ZERO_TIME = "0001-01-01T00:00:00Z"  # what Docker prints for an unknown time


# --- ps ------------------------------------------------------------------------------------

PS_HEADER = ["NAME", "SERVICE", "NAMESPACE", "NETWORK", "INTERFACE", "IPV4", "IPV6", "MAC", "PORTS"]


def ps_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per interface; a container's name, service, namespace and ports appear on its
    first row only. A container without interfaces shows its network mode instead."""
    rows = [list(PS_HEADER)]
    for c in summary.get("containers", ()):
        head = [c["name"], c.get("service", ""), c.get("netns") or "-"]
        ports = ", ".join(_port_texts(c, summary))
        ifaces = c.get("interfaces") or ()
        if not ifaces:
            rows.append(head + [_mode_text(c), "", "", "", "", ports])
            continue
        for n, i in enumerate(ifaces):
            cells = [i.get("network", ""), i.get("ifname") or "", i.get("ipv4") or "", i.get("ipv6") or "",
                     i.get("mac") or ""]
            rows.append((head if n == 0 else ["", "", ""]) + cells + [ports if n == 0 else ""])
    return rows


def ps_json(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """`docker compose ps --format json` fields that apply, plus the namespace and interfaces."""
    out = []
    project = summary.get("project", "")
    for c in summary.get("containers", ()):
        ifaces = c.get("interfaces") or ()
        out.append({
            "ID": c.get("id", ""),
            "Name": c["name"],
            "Names": c["name"],
            "Project": project,
            "Service": c.get("service", ""),
            "State": "running",
            "Status": "up",
            "Hostname": c.get("hostname") or (c.get("id") or "")[:12],
            # Compose gives a container its primary network as HostConfig.NetworkMode
            "NetworkMode": _mode_text(c) if not ifaces else (c.get("network_mode") or ifaces[0].get("network", "")),
            "Namespace": c.get("netns"),
            "Networks": ",".join(i.get("network", "") for i in ifaces),
            "Ports": ", ".join(_port_texts(c, summary)),
            "Publishers": _publishers(c),
            "Interfaces": [{
                "Network": i.get("network"),
                "Interface": i.get("ifname"),
                "HostInterface": i.get("host_ifname"),
                "MacAddress": i.get("mac") or "",
                "IPv4Address": i.get("ipv4") or "",
                "IPv6Address": i.get("ipv6") or "",
                "Gateway": i.get("gateway") or "",
                "DefaultRoute": bool(i.get("default_route")),
                "Aliases": list(i.get("aliases") or ()),
            } for i in ifaces],
        })
    return out


def _mode_text(c: dict[str, Any]) -> str:
    mode = c.get("network_mode")
    if c.get("shares"):
        return mode or f"service:{c['shares']}"
    return mode or "none"


def _range(start: int, end: Optional[int]) -> str:
    return str(start) if end in (None, start) else f"{start}-{end}"


def _port_texts(c: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Docker's PORTS column: `0.0.0.0:8080->80/tcp, :::8080->80/tcp`, then exposed ports."""
    texts = []
    has_v6 = _has_v6(c, summary)
    for p in c.get("ports") or ():
        proto = p.get("protocol") or "tcp"
        target = _range(p["target"], p.get("target_end"))
        if p.get("published") is None:
            texts.append(f"{target}/{proto}")
            continue
        published = _range(p["published"], p.get("published_end"))
        host_ip = p.get("host_ip")
        if host_ip:
            shown = f"[{host_ip}]" if ipaddress.ip_address(host_ip).version == 6 else host_ip
            texts.append(f"{shown}:{published}->{target}/{proto}")
        else:
            texts.append(f"0.0.0.0:{published}->{target}/{proto}")
            if has_v6:
                texts.append(f":::{published}->{target}/{proto}")
    published_targets = {(p.get("protocol") or "tcp", p["target"]) for p in c.get("ports") or ()}
    for e in c.get("expose") or ():
        port, _, proto = str(e).partition("/")
        proto = proto or "tcp"
        first = int(port.split("-")[0]) if port.split("-")[0].isdigit() else None
        if (proto, first) not in published_targets:
            texts.append(f"{port}/{proto}")
    return texts


def _has_v6(c: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether the firewall publishes the ports on IPv6 too (the target interface has a v6 address)."""
    iface = firewall.published_interface(summary, c)
    return bool(iface and iface.get("ipv6"))


def _publishers(c: dict[str, Any]) -> list[dict[str, Any]]:
    """Docker's per-port `Publishers` list (a range is listed port by port, as Docker does)."""
    out = []
    for p in c.get("ports") or ():
        proto = p.get("protocol") or "tcp"
        target, target_end = p["target"], p.get("target_end") or p["target"]
        published = p.get("published")
        if published is None:
            for t in range(target, target_end + 1):
                out.append({"URL": "", "TargetPort": t, "PublishedPort": 0, "Protocol": proto})
            continue
        published_end = p.get("published_end") or published
        for n in range(published_end - published + 1):
            t = target + n if target_end != target else target
            out.append({"URL": p.get("host_ip") or "0.0.0.0", "TargetPort": t,
                         "PublishedPort": published + n, "Protocol": proto})
    return out


# --- ls ------------------------------------------------------------------------------------


def ls_rows(summaries: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = [["NAME", "STATUS", "CONFIG FILES"]]
    for item in ls_json(summaries):
        rows.append([item["Name"], item["Status"], item["ConfigFiles"]])
    return rows


def ls_json(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`docker compose ls --format json`: Name, Status (`running(N)`), ConfigFiles."""
    out = []
    for s in sorted(summaries, key=lambda s: s.get("project", "")):
        if s.get("standalone"):
            continue
        out.append({
            "Name": s.get("project", ""),
            "Status": f"running({len(s.get('containers', ()))})",
            "ConfigFiles": ",".join(s.get("files") or ()),
        })
    return out


# --- networks ------------------------------------------------------------------------------


def _networks(summaries: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every network once, as (network entry, owning summary): an external network appears in
    each project that uses it, so the entry of the project that made it wins."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for s in summaries:
        for net in s.get("networks", ()):
            name = net["name"]
            if name not in found or (found[name][0].get("external") and not net.get("external")):
                found[name] = (net, s)
    return sorted(found.values(), key=lambda pair: pair[0]["name"])


def network_ls_rows(summaries: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
    for item in network_ls_json(summaries):
        rows.append([item["ID"], item["Name"], item["Driver"], item["Scope"]])
    return rows


def network_ls_json(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`docker network ls --format json` (Docker prints every field as a string)."""
    out = []
    for net, s in _networks(summaries):
        labels = _labels(net, s)
        out.append({
            "CreatedAt": s.get("created") or ZERO_TIME,
            "Driver": net.get("driver") or "bridge",
            "ID": net.get("id", "")[:12],
            "IPv6": _bool_text(net.get("enable_ipv6")),
            "Internal": _bool_text(net.get("internal")),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Name": net["name"],
            "Scope": "local",
        })
    return out


def network_inspect(summaries: Iterable[dict[str, Any]], name: str) -> Optional[dict[str, Any]]:
    """One network shaped like an element of `docker network inspect`; `name` may also be the
    id or a prefix of it. None when no summary knows the network."""
    summaries = list(summaries)
    pairs = _networks(summaries)
    match = next((p for p in pairs if p[0]["name"] == name), None)
    if match is None and name:
        by_id = [p for p in pairs if p[0].get("id", "").startswith(name)]
        match = by_id[0] if len(by_id) == 1 else None
    if match is None:
        return None
    net, owner = match
    config = []
    for sub in net.get("subnets", ()):
        entry = {"Subnet": sub["subnet"]}
        if sub.get("ip_range"):
            entry["IPRange"] = sub["ip_range"]
        if sub.get("gateway"):
            entry["Gateway"] = sub["gateway"]
        config.append(entry)
    containers = {}
    for s in summaries:
        for c in s.get("containers", ()):
            for i in c.get("interfaces") or ():
                if i.get("network") != net["name"]:
                    continue
                cid = c.get("id") or hashlib.sha256(c["name"].encode()).hexdigest()
                containers[cid] = {
                    "Name": c["name"],
                    "EndpointID": hashlib.sha256(f"{cid}/{net.get('id', net['name'])}".encode()).hexdigest(),
                    "MacAddress": i.get("mac") or "",
                    "IPv4Address": i.get("ipv4") or "",
                    "IPv6Address": i.get("ipv6") or "",
                }
    return {
        "Name": net["name"],
        "Id": net.get("id", ""),
        "Created": owner.get("created") or ZERO_TIME,
        "Scope": "local",
        "Driver": net.get("driver") or "bridge",
        "EnableIPv6": bool(net.get("enable_ipv6")),
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": bool(net.get("internal")),
        "Attachable": bool(net.get("attachable", False)),
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": _options(net),
        "Labels": _labels(net, owner),
    }


def _options(net: dict[str, Any]) -> dict[str, str]:
    """The driver options that differ from the defaults, under Docker's keys."""
    opts: dict[str, str] = {}
    driver = net.get("driver") or "bridge"
    if driver == "bridge":
        if net.get("bridge") and not str(net["bridge"]).startswith("cn"):
            opts["com.docker.network.bridge.name"] = net["bridge"]
        if net.get("icc") is False:
            opts["com.docker.network.bridge.enable_icc"] = "false"
        if net.get("masquerade") is False and not net.get("internal"):
            opts["com.docker.network.bridge.enable_ip_masquerade"] = "false"
    elif driver in ("macvlan", "ipvlan"):
        if net.get("parent"):
            opts["parent"] = net["parent"]
        if net.get("mode"):
            opts[f"{driver}_mode"] = net["mode"]
    if net.get("mtu"):
        opts["com.docker.network.driver.mtu"] = str(net["mtu"])
    return opts


def _labels(net: dict[str, Any], owner: dict[str, Any]) -> dict[str, str]:
    labels = dict(net.get("labels") or {})
    if not owner.get("standalone") and not net.get("external") and net.get("key"):
        labels.setdefault("com.docker.compose.network", net["key"])
        labels.setdefault("com.docker.compose.project", owner.get("project", ""))
    return labels


def _bool_text(value: Any) -> str:
    return "true" if value else "false"
