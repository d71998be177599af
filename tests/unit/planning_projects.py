"""Hand-built `Project` values for the planning tests (no loader needed)."""

from __future__ import annotations

import ipaddress

from compose_net.model import Attachment, Container, ExtraHost, IpamPool, Link, Network, PortMapping, Project, Service, Dependency


def net(key: str, project: str = "shop", **kw) -> Network:
    name = kw.pop("name", f"{project}_{key}")
    return Network(key=key, name=name, keypath=f"networks.{key}", **kw)


def pool(subnet: str, gateway: str | None = None, ip_range: str | None = None, aux: dict | None = None,
         keypath: str = "") -> IpamPool:
    return IpamPool(subnet=ipaddress.ip_network(subnet), gateway=ipaddress.ip_address(gateway) if gateway else None,
                    ip_range=ipaddress.ip_network(ip_range) if ip_range else None,
                    aux_addresses={k: ipaddress.ip_address(v) for k, v in (aux or {}).items()}, keypath=keypath)


def att(network: str, order: int = 0, **kw) -> Attachment:
    for k in ("ipv4_address", "ipv6_address"):
        if isinstance(kw.get(k), str):
            kw[k] = ipaddress.ip_address(kw[k])
    return Attachment(network=network, order=order, **kw)


def svc(name: str, *attachments: Attachment, **kw) -> Service:
    return Service(name=name, networks=tuple(attachments), keypath=f"services.{name}", **kw)


def project(name: str, services: list[Service], networks: list[Network]) -> Project:
    containers = []
    for s in services:
        for i in range(1, s.replicas + 1):
            containers.append(Container(s.container_name or f"{name}-{s.name}-{i}", s.name, i))
    return Project(name=name, working_dir=f"/srv/{name}", services={s.name: s for s in services},
                   networks={n.key: n for n in networks}, containers=tuple(containers))


def three_tier(name: str = "shop") -> Project:
    return project(name, [
        svc("web", att("front"), ports=(PortMapping(target=80, target_end=80, published=8080, published_end=8080),),
            depends_on=(Dependency("api"),)),
        svc("api", att("front", 0), att("back", 1, aliases=("backend-api",)), depends_on=(Dependency("db"),)),
        svc("db", att("back")),
    ], [net("front", name), net("back", name, internal=True)])
