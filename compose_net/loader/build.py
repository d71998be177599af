"""Stage 7: normalized (and checked) data → `model.Project` with ipaddress types.

Runs only on data that passed `checks`, so conversions here do not fail on user input.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Mapping

from compose_net.keypath import locate, parse_path
from compose_net.loader import policy
from compose_net.loader.source import Loc
from compose_net.model import (AddressPool, Attachment, Container, Dependency, ExtraHost, IpamPool, Link, Network, PortMapping,
                               Project, Service)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _ip(value: Any):
    return ipaddress.ip_address(str(value).strip()) if value not in (None, "") else None


def _network(key: str, cfg: dict) -> Network:
    ipam = cfg.get("ipam") if isinstance(cfg.get("ipam"), dict) else {}
    pools = []
    for i, pool in enumerate(ipam.get("config") or []):
        pools.append(IpamPool(
            subnet=ipaddress.ip_network(str(pool["subnet"]).strip()) if pool.get("subnet") else None,
            gateway=_ip(pool.get("gateway")),
            ip_range=ipaddress.ip_network(str(pool["ip_range"]).strip()) if pool.get("ip_range") else None,
            aux_addresses={str(k): _ip(v) for k, v in (pool.get("aux_addresses") or {}).items()},
            keypath=f"networks.{key}.ipam.config[{i}]",
        ))
    return Network(
        key=key,
        name=cfg["name"],
        driver=str(cfg.get("driver") or "bridge"),
        driver_opts=_str_map(cfg.get("driver_opts")),
        internal=cfg.get("internal") is True,
        external=cfg.get("external") is True,
        attachable=cfg.get("attachable") is True,
        enable_ipv4=cfg.get("enable_ipv4") is not False,
        enable_ipv6=cfg.get("enable_ipv6") is True,
        labels=_str_map(cfg.get("labels")),
        ipam_driver=ipam.get("driver"),
        ipam_pools=tuple(pools),
        keypath=f"networks.{key}",
    )


def _mac(value: Any):
    return str(value).replace("-", ":").lower() if value else None


def _attachments(name: str, nets: Any) -> tuple[Attachment, ...]:
    out = []
    for order, (net, cfg) in enumerate((nets or {}).items()):
        cfg = cfg if isinstance(cfg, dict) else {}
        out.append(Attachment(
            network=net,
            aliases=tuple(str(a) for a in cfg.get("aliases") or ()),
            ipv4_address=_ip(cfg.get("ipv4_address")),
            ipv6_address=_ip(cfg.get("ipv6_address")),
            link_local_ips=tuple(_ip(a) for a in cfg.get("link_local_ips") or ()),
            mac_address=_mac(cfg.get("mac_address")),
            priority=int(cfg.get("priority") or 0),
            gw_priority=int(cfg.get("gw_priority") or 0),
            interface_name=cfg.get("interface_name"),
            driver_opts=_str_map(cfg.get("driver_opts")),
            order=order,
            keypath=f"services.{name}.networks.{net}",
        ))
    return tuple(out)


def _port(name: str, i: int, p: dict) -> PortMapping:
    published = p.get("published")
    p0 = p1 = None
    if published:
        a, _, b = str(published).partition("-")
        p0, p1 = int(a), int(b or a)
        if p0 == p1 == 0:
            p0 = p1 = None  # host port 0: any free port, like no published port
    return PortMapping(
        target=p["target"], target_end=p["target_end"], published=p0, published_end=p1,
        host_ip=_ip(p.get("host_ip")), protocol=p.get("protocol", "tcp"), mode=p.get("mode", "ingress"),
        name=p.get("name"), app_protocol=p.get("app_protocol"), keypath=f"services.{name}.ports[{i}]",
    )


def replicas_of(svc: dict) -> int:
    deploy = svc.get("deploy") if isinstance(svc.get("deploy"), dict) else {}
    for value in (deploy.get("replicas"), svc.get("scale")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 1


def _service(name: str, svc: dict) -> Service:
    ingress, egress = policy.parse(name, svc)
    mode = svc.get("network_mode")
    if mode == "default":
        mode = None
    links = []
    for link in svc.get("links") or ():
        target, _, alias = str(link).partition(":")
        links.append(Link(service=target, alias=alias or target))
    extra = []
    for i, entry in enumerate(svc.get("extra_hosts") or ()):
        host, _, ip = str(entry).partition("=")
        extra.append(ExtraHost(hostname=host, address=ip, keypath=f"services.{name}.extra_hosts[{i}]"))
    deps = []
    for dep, cfg in (svc.get("depends_on") or {}).items():
        cfg = cfg if isinstance(cfg, dict) else {}
        deps.append(Dependency(service=dep, condition=cfg.get("condition", "service_started"),
                               required=cfg.get("required", True) is not False, restart=cfg.get("restart") is True))
    return Service(
        name=name,
        network_mode=mode,
        networks=() if mode else _attachments(name, svc.get("networks")),
        ports=tuple(_port(name, i, p) for i, p in enumerate(svc.get("ports") or ())),
        expose=tuple(str(e) for e in svc.get("expose") or ()),
        dns=tuple(_ip(d) for d in svc.get("dns") or ()),
        dns_search=tuple(str(d) for d in svc.get("dns_search") or ()),
        dns_opt=tuple(str(d) for d in svc.get("dns_opt") or ()),
        extra_hosts=tuple(extra),
        hostname=svc.get("hostname"),
        domainname=svc.get("domainname"),
        mac_address=_mac(svc.get("mac_address")),
        sysctls=_str_map(svc.get("sysctls")),
        depends_on=tuple(deps),
        links=tuple(links),
        replicas=replicas_of(svc),
        container_name=svc.get("container_name"),
        profiles=tuple(str(p) for p in svc.get("profiles") or ()),
        labels=_str_map(svc.get("labels")),
        ingress=ingress,
        egress=egress,
        keypath=f"services.{name}",
    )


def build_project(data: dict, loc: Loc, raw: dict, working_dir: str, files: tuple[str, ...],
                  environment: Mapping[str, str]) -> Project:
    name = data["name"]
    services = {sname: _service(sname, svc) for sname, svc in (data.get("services") or {}).items()}
    networks = {key: _network(key, cfg) for key, cfg in (data.get("networks") or {}).items()}
    containers = []
    for sname, svc in services.items():
        for index in range(1, svc.replicas + 1):
            cname = svc.container_name if svc.container_name else f"{name}-{sname}-{index}"
            containers.append(Container(name=cname, service=sname, index=index))

    ext = data.get("x-compose-net") if isinstance(data.get("x-compose-net"), dict) else {}
    pools = tuple(AddressPool(ipaddress.ip_network(str(p["base"]).strip()), int(p["size"]),
                              keypath=f"x-compose-net.default_address_pools[{i}]")
                  for i, p in enumerate(ext.get("default_address_pools") or []))

    def locate_keypath(keypath: str) -> tuple[str, int]:
        return locate(loc, raw, parse_path(keypath))

    return Project(
        name=name,
        working_dir=working_dir,
        services=services,
        networks=networks,
        containers=tuple(containers),
        files=files,
        address_pools=pools,
        environment=dict(environment),
        locate=locate_keypath,
    )
