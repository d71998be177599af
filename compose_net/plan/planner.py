"""Project + host facts -> Plan: the ordered ops `up` applies, and the summary (project.json).

Pure: everything the plan depends on comes in as `Project` and `HostFacts`. One `_Layout` pass
decides names, subnets, addresses, interface order, default routes and ports; `summary()` and
`plan_up()` are two readings of it, so the summary written by the plan is exactly what the
firewall and the DNS server are computed from.

Order of ops: host sysctls; networks (bridges, their sysctls and gateway addresses); containers
in dependency order (namespace, IPv6 DAD off, per interface: link, up, addresses; default routes;
the user's `net.*` sysctls; /etc/netns/NAME/{resolv.conf,hosts}); the summary file; the
firewall's one table; the DNS server.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from compose_net import ipam, naming
from compose_net.dns.records import ttl_setting
from compose_net.drivers import get as get_driver
from compose_net.drivers.base import ICC_OPT, MASQ_OPT, MTU_OPT, InterfaceLayout, NetworkLayout
from compose_net.errors import ConfigError, PlanError
from compose_net.graph import service_order, shared_service
from compose_net.model import Container, Network, Project, Service
from compose_net.plan.ops import (
    DnsStart,
    FileWrite,
    NetnsAlias,
    NetnsCreate,
    NftApply,
    Op,
    Plan,
    RouteAdd,
    SysctlSet,
    UtsAlias,
    UtsCreate,
)
from compose_net.probe import HostFacts, first_host_address

EMBEDDED_DNS = "127.0.0.11"
SUMMARY_VERSION = 1
DEFAULT_V4 = ipaddress.IPv4Network("0.0.0.0/0")
DEFAULT_V6 = ipaddress.IPv6Network("::/0")

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def one_token(value: object, what: str) -> str:
    """`value` as one word of resolv.conf or hosts. The loader has checked every such value
    already; this second line of defence refuses anything that would end the word or the line
    (whitespace, control characters), so no value, however it got here, adds a line of its own."""
    text = str(value)
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise PlanError(f"refusing to write {what} {text!r}: it must be one word, without whitespace or "
                        "control characters")
    return text


def _err(project: Project, keypath: str, message: str) -> ConfigError:
    return ipam.config_error(project, keypath, message)


@dataclass
class _Iface:
    layout: InterfaceLayout
    nets: dict[str, NetworkLayout]  # the layout's table, so a network's later changes show here
    priority: int
    gw_priority: int
    aliases: tuple[str, ...]
    default4: bool = False
    default6: bool = False

    @property
    def net(self) -> NetworkLayout:
        return self.nets[self.layout.network]


@dataclass
class _Box:
    """One container as planned."""

    container: Container
    service: Service
    mode: Optional[str]  # None (networks), "host", "none", "bridge", "shares", "unsupported"
    netns: Optional[str]
    shares: Optional[str] = None
    hostname: str = ""
    ifaces: list[_Iface] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    embedded_dns: bool = False


def _effective_mode(project: Project, svc: Service) -> Optional[str]:
    if svc.network_mode:
        if svc.network_mode.startswith("service:"):
            return "shares"
        if svc.network_mode in ("host", "none", "bridge"):
            return svc.network_mode
        return "unsupported"
    drivers = {project.networks[a.network].driver for a in svc.networks if a.network in project.networks}
    if drivers == {"host"}:
        return "host"
    if drivers == {"none"}:
        return "none"
    return None


def _mac_from_v4(addr: ipaddress.IPv4Address) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def _mac_from_name(text: str) -> str:
    h = hashlib.sha256(text.encode()).digest()
    return "02:42:" + ":".join(f"{b:02x}" for b in h[:4])


def _int_opt(project: Project, net: Network, opt: str) -> Optional[int]:
    raw = net.driver_opts.get(opt)
    if raw is None or str(raw) == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise _err(project, f"{net.keypath or 'networks.' + net.key}.driver_opts.{opt}",
                   f"must be an integer, not {raw!r}") from None
    if value < 68 or value > 65535:
        raise _err(project, f"{net.keypath or 'networks.' + net.key}.driver_opts.{opt}",
                   f"MTU {value} is out of range (68-65535)")
    return value


def _dyn_note(subnet: Optional[ipam.Subnet]) -> str:
    if subnet is None:
        return ""
    if subnet.ip_range is not None:
        return f"next free address in ip_range {subnet.ip_range} of {subnet.subnet}"
    return f"next free address in {subnet.subnet}"


def _false(value: Optional[str]) -> bool:
    return str(value).strip().lower() in ("false", "0", "no", "off")


class _Layout:
    def __init__(self, project: Project, facts: HostFacts):
        self.project = project
        self.facts = facts
        self.warnings: list[str] = []
        self.notes: list[str] = []
        own_summary = facts.projects.get(project.name) or {}
        self.own_summary = own_summary
        self.others = facts.other_projects(project.name)
        self.order = service_order(project)
        self.modes = {name: _effective_mode(project, svc) for name, svc in project.services.items()}
        self._networks()
        self._containers()
        self._ports()
        self._group()

    # --- networks -----------------------------------------------------------------------------

    def _networks(self) -> None:
        project, facts = self.project, self.facts
        used_nets = {a.network for name, svc in project.services.items() if self.modes[name] is None
                     for a in svc.networks}
        bridges: dict[str, str] = {}
        for key, net in project.networks.items():
            if net.driver not in ("bridge", "overlay", "macvlan", "ipvlan", "host", "none"):
                raise _err(project, f"{net.keypath or 'networks.' + key}.driver", f"unknown driver {net.driver!r}")
            if net.driver in ("bridge", "overlay") and not net.external:
                name = naming.bridge_name(net.name, net.driver_opts)
                if not naming.fits(name):
                    raise _err(project, f"{net.keypath or 'networks.' + key}.driver_opts.{naming.BRIDGE_NAME_OPT}",
                               f"bridge name {name!r} is longer than {naming.IFNAMSIZ} bytes")
                bridges[key] = name
        own_devs = set(bridges.values())
        previous = {n["name"]: [x["subnet"] for x in n.get("subnets", ())]
                    for n in self.own_summary.get("networks", ()) if not n.get("external")}
        subnets = ipam.choose_subnets(project, facts, own_devs, previous=previous)
        self.networks: dict[str, NetworkLayout] = {}
        for key, net in project.networks.items():
            kp = net.keypath or f"networks.{key}"
            mtu = _int_opt(project, net, MTU_OPT)
            common = dict(key=key, name=net.name, driver=net.driver, unit=f"network:{net.name}", group=0,
                          mtu=mtu, internal=net.internal, external=net.external,
                          masquerade=not _false(net.driver_opts.get(MASQ_OPT)) and not net.internal,
                          icc=not _false(net.driver_opts.get(ICC_OPT)), enable_ipv6=net.enable_ipv6,
                          labels=dict(net.labels), keypath=kp)
            if net.external:
                self.networks[key] = self._external(net, common, used=key in used_nets)
                continue
            nets = subnets.get(key, ())
            for s in nets:
                self.notes.append(s.note)
            if net.driver in ("bridge", "overlay"):
                extra = {}
                if net.driver == "overlay":
                    extra = dict(vxlan=naming.vxlan_name(net.name), vni=naming.vxlan_vni(net.name))
                self.networks[key] = NetworkLayout(**common, subnets=nets, bridge=bridges[key], **extra)
            elif net.driver in ("macvlan", "ipvlan"):
                parent = net.driver_opts.get("parent")
                own_parent = not parent
                if own_parent:
                    # Docker gives a parentless macvlan/ipvlan network a dummy link; this tool makes
                    # a bridge of its own instead (no dummy driver needed): the containers reach
                    # each other and nothing else, as on Docker's dummy parent
                    parent = naming.dummy_parent_name(net.name)
                    self.notes.append(f"{net.name}: no driver_opts.parent, so a private parent link {parent} "
                                      f"is created (Docker uses a dummy link)")
                if net.driver == "macvlan":
                    from compose_net.drivers.macvlan import MODES
                    mode = net.driver_opts.get("macvlan_mode", "bridge")
                    flag = None
                    if mode not in MODES:
                        raise _err(project, f"{kp}.driver_opts.macvlan_mode",
                                   f"unknown macvlan mode {mode!r} (one of {', '.join(MODES)})")
                else:
                    from compose_net.drivers.ipvlan import FLAGS, MODES
                    mode = net.driver_opts.get("ipvlan_mode", "l2")
                    flag = net.driver_opts.get("ipvlan_flag", "bridge")
                    if mode not in MODES:
                        raise _err(project, f"{kp}.driver_opts.ipvlan_mode",
                                   f"unknown ipvlan mode {mode!r} (one of {', '.join(MODES)})")
                    if flag not in FLAGS:
                        raise _err(project, f"{kp}.driver_opts.ipvlan_flag",
                                   f"unknown ipvlan flag {flag!r} (one of {', '.join(FLAGS)})")
                    if mode != "l2":
                        # in l3 modes the parent routes: containers have no gateway on the LAN,
                        # and the address a gateway would take is handed out like any other
                        l3 = []
                        for s in nets:
                            note = s.note.split(", gateway ")[0] + f", no gateway (ipvlan {mode}: the parent routes)"
                            self.notes[self.notes.index(s.note)] = note
                            l3.append(ipam.Subnet(s.subnet, None, s.ip_range, s.aux, s.auto, s.keypath, note))
                        nets = tuple(l3)
                common["masquerade"] = False
                self.networks[key] = NetworkLayout(**common, subnets=nets, parent=parent, mode=mode, flag=flag,
                                                   own_parent=own_parent)
            else:
                self.networks[key] = NetworkLayout(**common)
        if any(m == "bridge" for m in self.modes.values()):
            self.networks[""] = NetworkLayout(
                key="", name=naming.LEGACY_NETWORK, driver="bridge", unit=f"shared:{naming.LEGACY_BRIDGE}",
                group=naming.LEGACY_GROUP, bridge=naming.LEGACY_BRIDGE, external=True, shared=True,
                subnets=(ipam.Subnet(ipam.LEGACY_SUBNET, ipam.LEGACY_GATEWAY,
                                     note=f"{naming.LEGACY_NETWORK}: the legacy default bridge "
                                     f"{ipam.LEGACY_SUBNET} on {naming.LEGACY_BRIDGE}, shared by all projects"),),
            )

    def _external(self, net: Network, common: dict, used: bool) -> NetworkLayout:
        """An external network: not ours to create; its bridge and subnet come from the state of
        the project (or `network create`) that made it."""
        for other, summary in self.others.items():
            for n in summary.get("networks", ()):
                if n.get("name") == net.name and not n.get("external"):
                    return NetworkLayout(**{**common, "driver": n.get("driver") or "bridge",
                                            "masquerade": bool(n.get("masquerade", True)),
                                            "internal": bool(n.get("internal")),
                                            "enable_ipv6": bool(n.get("enable_ipv6")),
                                            "mtu": n.get("mtu") or common["mtu"]},
                                         bridge=n.get("bridge"), parent=n.get("parent"), mode=n.get("mode"),
                                         subnets=ipam.subnets_from_summary(n))
        if used:
            self.warnings.append(f"external network {net.name} does not exist here (create it with "
                                 f"`compose-net network create {net.name}`); up will fail")
        return NetworkLayout(**common, bridge=naming.bridge_name(net.name, net.driver_opts))

    def _used_on(self, name: str) -> list[ipaddress._BaseAddress]:
        """Addresses other projects' containers hold on the shared network `name`."""
        out = []
        for summary in self.others.values():
            for c in summary.get("containers", ()):
                for i in c.get("interfaces", ()):
                    if i.get("network") != name:
                        continue
                    for fam in ("ipv4", "ipv6"):
                        if i.get(fam):
                            out.append(ipaddress.ip_interface(i[fam]).ip)
        return out

    # --- containers ---------------------------------------------------------------------------

    def _containers(self) -> None:
        project = self.project
        # addresses first, per network, in declaration order (services, then replicas), so the
        # result does not depend on the dependency order the containers are built in
        members: dict[str, list] = {key: [] for key in self.networks}
        for c in project.containers:
            svc = project.services[c.service]
            mode = self.modes[c.service]
            if mode == "bridge":
                members[""].append(((c.name, ""), None, None))
            elif mode is None:
                for a in svc.networks:
                    net = self.networks.get(a.network)
                    if net is None or net.driver in ("host", "none"):
                        continue
                    if a.ipv6_address is not None and net.subnet(6) is None and net.subnets:
                        raise _err(project, f"{a.keypath or svc.keypath + '.networks.' + a.network}.ipv6_address",
                                   f"static IPv6 address {a.ipv6_address} but network {net.name} has no IPv6 subnet")
                    members[a.network].append(((c.name, a.network), a.ipv4_address, a.ipv6_address))
        key_of = {net.name: key for key, net in self.networks.items()}
        previous: dict[tuple[str, str], dict[int, ipaddress._BaseAddress]] = {}
        for c in self.own_summary.get("containers", ()):
            for i in c.get("interfaces", ()):
                key = key_of.get(i.get("network"))
                if key is None:
                    continue
                got = previous.setdefault((c.get("name"), key), {})
                for version, fam in ((4, "ipv4"), (6, "ipv6")):
                    if i.get(fam):
                        got[version] = ipaddress.ip_interface(i[fam]).ip
        self.addresses: dict[tuple[str, str], dict[int, ipaddress._BaseAddress]] = {}
        for key, mem in members.items():
            net = self.networks[key]
            if not mem or not net.subnets:
                continue
            used = self._used_on(net.name) if net.external else []
            self.addresses.update(ipam.allocate(net.name, net.subnets, mem, used=used, project=project,
                                                previous=previous))

        self.boxes: dict[str, _Box] = {}
        self.box_order: list[_Box] = []
        first_of: dict[str, str] = {}
        for c in project.containers:
            first_of.setdefault(c.service, c.name)
        by_service: dict[str, list[Container]] = {}
        for c in project.containers:
            by_service.setdefault(c.service, []).append(c)
        for sname in self.order:
            svc = project.services[sname]
            for c in by_service.get(sname, ()):
                box = self._box(c, svc, first_of)
                self.boxes[c.name] = box
                self.box_order.append(box)

    def _box(self, c: Container, svc: Service, first_of: dict[str, str]) -> _Box:
        mode = self.modes[c.service]
        cid = naming.container_id(self.project.name, c.name)
        hostname = svc.hostname or cid[:12]
        if mode == "host":
            return _Box(c, svc, mode, None, hostname=svc.hostname or "")
        if mode == "unsupported":
            self.warnings.append(f"{c.name}: network_mode {svc.network_mode!r} is not supported; "
                                 f"the container gets no network")
            return _Box(c, svc, mode, None, hostname=hostname)
        if mode == "shares":
            target = shared_service(svc)
            first = first_of.get(target or "")
            host = self.boxes.get(first or "")
            while host is not None and host.shares is not None:
                host = self.boxes.get(host.shares)
            if host is None:
                self.warnings.append(f"{c.name}: network_mode {svc.network_mode!r} names no container here")
                return _Box(c, svc, "unsupported", None, hostname=hostname)
            # its own names for the host's namespaces (none when the host has none: host mode)
            netns = naming.netns_name(c.name) if host.netns else None
            return _Box(c, svc, mode, netns, shares=host.container.name, hostname=host.hostname,
                        embedded_dns=host.embedded_dns)
        netns = naming.netns_name(c.name)
        box = _Box(c, svc, mode, netns, hostname=hostname)
        if mode == "none":
            return box
        unit = f"container:{c.name}"
        if mode == "bridge":
            atts = [(self.networks[""], 0, 0, None, None, 0)]
        else:
            atts = []
            for a in svc.networks:
                net = self.networks.get(a.network)
                if net is None or net.driver in ("host", "none"):
                    continue
                atts.append((net, a.priority, a.gw_priority, a.interface_name, a.mac_address, a.order, a))
            atts.sort(key=lambda t: (-t[1], t[5]))
        taken = {t[3] for t in atts if t[3]}
        n = 0
        for i, att in enumerate(atts):
            net, prio, gwprio, ifname, mac = att[0], att[1], att[2], att[3], att[4]
            a = att[6] if len(att) > 6 else None
            if not ifname:
                while f"eth{n}" in taken:
                    n += 1
                ifname = f"eth{n}"
                taken.add(ifname)
            addrs = self.addresses.get((c.name, net.key), {})
            v4 = addrs.get(4)
            v6 = addrs.get(6)
            s4, s6 = net.subnet(4), net.subnet(6)
            if mac is None and i == 0 and svc.mac_address:
                mac = svc.mac_address
            if mac is None:
                mac = _mac_from_v4(v4) if v4 is not None else _mac_from_name(f"{c.name}/{net.name}")
            # (int, prefix) tuples: parsing "a.b.c.d/n" strings dominated big plans
            iface4 = ipaddress.IPv4Interface((int(v4), s4.subnet.prefixlen)) if v4 is not None and s4 else None
            iface6 = ipaddress.IPv6Interface((int(v6), s6.subnet.prefixlen)) if v6 is not None and s6 else None
            note4 = ("static ipv4_address" if a is not None and a.ipv4_address is not None else _dyn_note(s4))
            note6 = ("static ipv6_address" if a is not None and a.ipv6_address is not None else _dyn_note(s6))
            host_if = naming.veth_name(c.name, net.name) if net.bridge else None
            link_local = tuple(ipaddress.ip_interface((int(x), 16 if x.version == 4 else 64))
                               for x in (a.link_local_ips if a is not None else ()))
            layout = InterfaceLayout(c.name, unit, netns, net.key, ifname, host_if, mac, iface4, iface6,
                                     note4 if iface4 else "", note6 if iface6 else "", link_local,
                                     hairpin=bool(svc.ports))
            names = [svc.name, c.name, *(a.aliases if a is not None else ()), cid[:12]]
            if svc.hostname:
                names.append(svc.hostname)
            if mode == "bridge":
                names = []  # the legacy bridge has no name resolution (links only)
            seen: set[str] = set()
            aliases = tuple(x for x in names if not (x in seen or seen.add(x)))
            box.ifaces.append(_Iface(layout, self.networks, prio, gwprio, aliases))
        self._default_routes(box)
        box.embedded_dns = mode is None and bool(box.ifaces)
        return box

    def _default_routes(self, box: _Box) -> None:
        """Via the network with the highest gw_priority, then priority (the eth order), never
        via an internal network; per address family."""
        for version in (4, 6):
            best = None
            for pos, it in enumerate(box.ifaces):
                if it.net.internal:
                    continue
                has_addr = it.layout.ipv4 if version == 4 else it.layout.ipv6
                if has_addr is None:
                    continue
                routable = it.net.gateway(version) is not None or (it.net.driver == "ipvlan" and it.net.mode != "l2")
                if not routable:
                    continue
                key = (-it.gw_priority, pos)
                if best is None or key < best[0]:
                    best = (key, it)
            if best is not None:
                if version == 4:
                    best[1].default4 = True
                else:
                    best[1].default6 = True

    # --- ports --------------------------------------------------------------------------------

    def _ports(self) -> None:
        used = self.facts.used_ports(exclude_project=self.project.name)
        bindings: dict[tuple[str, int], list[tuple[Optional[str], str]]] = {}
        pending: list[tuple[dict, int]] = []
        pending_keys: list[tuple[str, tuple]] = []
        for c in self.project.containers:
            box = self.boxes[c.name]
            for p in box.service.ports:
                size = p.target_end - p.target + 1
                host_ip = str(p.host_ip) if p.host_ip is not None else None
                entry = {"protocol": p.protocol, "host_ip": host_ip, "published": p.published,
                         "published_end": p.published_end, "target": p.target, "target_end": p.target_end}
                if p.published is not None:
                    pub_end = p.published_end if p.published_end is not None else p.published
                    span = pub_end - p.published + 1
                    if span > size and size == 1:
                        # a published range for one target port: replica N takes the Nth port
                        port = p.published + c.index - 1
                        if port > pub_end:
                            raise _err(self.project, p.keypath or f"{box.service.keypath}.ports",
                                       f"published range {p.published}-{pub_end} has no port left for {c.name}")
                        entry["published"] = entry["published_end"] = port
                    else:
                        entry["published_end"] = pub_end
                    for port in range(entry["published"], entry["published_end"] + 1):
                        for other_ip, owner in bindings.get((p.protocol, port), ()):
                            if other_ip is None or host_ip is None or other_ip == host_ip:
                                raise _err(self.project, p.keypath or f"{box.service.keypath}.ports",
                                           f"{c.name} and {owner} both publish {p.protocol} port {port}"
                                           + (f" on {host_ip}" if host_ip else ""))
                        bindings.setdefault((p.protocol, port), []).append((host_ip, c.name))
                        used.add((p.protocol, port))
                else:
                    pending.append((entry, size))
                    pending_keys.append((c.name, (p.protocol, host_ip, p.target, p.target_end)))
                box.ports.append(entry)
        # a running container keeps its ephemeral ports while they are still free
        previous: dict[tuple, int] = {}
        for c in self.own_summary.get("containers", ()):
            for p in c.get("ports", ()):
                if p.get("published") is not None:
                    previous[(c.get("name"), p.get("protocol"), p.get("host_ip"), p.get("target"),
                              p.get("target_end"))] = p["published"]
        still: list[tuple[dict, int]] = []
        for (entry, size), (name, key) in zip(pending, pending_keys):
            port = previous.get((name, *key))
            block = [(entry["protocol"], x) for x in range(port, port + size)] if port else []
            if port and not any(b in used for b in block):
                used.update(block)
                entry["published"], entry["published_end"] = port, port + size - 1
            else:
                still.append((entry, size))
        pending = still
        requests = [(entry["protocol"], size) for entry, size in pending]
        if requests:
            for (entry, size), port in zip(pending, ipam.ephemeral_ports(requests, used)):
                entry["published"] = port
                entry["published_end"] = port + size - 1
                self.notes.append(f"ephemeral {entry['protocol']} port {port}"
                                  + (f"-{port + size - 1}" if size > 1 else "")
                                  + f" for target {entry['target']} (first free from {ipam.EPHEMERAL_FIRST})")
        # a port published on loopback is DNATed out of the bridge with a 127/8 source
        for box in self.boxes.values():
            if not box.ports or box.mode not in (None, "bridge", "shares"):
                continue
            owner = self.boxes.get(box.shares) if box.shares else box
            if owner is None:
                continue
            if any(p["host_ip"] is None or ipaddress.ip_address(p["host_ip"]).is_loopback for p in box.ports):
                for it in owner.ifaces:
                    if it.net.bridge and not it.net.route_localnet and (it.net.shared or not it.net.external):
                        self._set_net(it.net.key, route_localnet=True)

    def _set_net(self, key: str, **changes: Any) -> None:
        import dataclasses

        self.networks[key] = dataclasses.replace(self.networks[key], **changes)

    # --- link group ---------------------------------------------------------------------------

    def _group(self) -> None:
        own_links: set[str] = set()
        for net in self.networks.values():
            if net.external:
                continue
            own_links.update(x for x in (net.bridge, net.vxlan, net.parent) if x)
        for box in self.boxes.values():
            own_links.update(it.layout.host_ifname for it in box.ifaces if it.layout.host_ifname)
        # links of the running project that this edit removes are still ours, not foreign
        for net in self.own_summary.get("networks", ()):
            if not net.get("external") or net.get("shared"):
                own_links.update(net.get(k) for k in ("bridge", "vxlan") if net.get(k))
        for c in self.own_summary.get("containers", ()):
            own_links.update(i["host_ifname"] for i in c.get("interfaces", ()) if i.get("host_ifname"))
        others = [int(s["group"]) for s in self.others.values() if isinstance(s.get("group"), int)]
        previous = self.own_summary.get("group")
        foreign = {g for name, g in self.facts.links.items() if name not in own_links}
        if isinstance(previous, int) and previous and previous not in foreign and previous not in others:
            self.group = previous
        else:
            self.group = naming.link_group(self.project.name, self.facts.links, own_links, others)
        for key, net in list(self.networks.items()):
            if not net.shared:
                self._set_net(key, group=self.group)

    # --- summary ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        project = self.project
        nets = []
        for key, net in self.networks.items():
            if net.driver in ("host", "none") and not net.external:
                continue
            entry = {
                "name": net.name, "key": key or None, "id": naming.network_id(net.name), "driver": net.driver,
                "bridge": net.bridge, "parent": net.parent, "mode": net.mode,
                "internal": net.internal, "external": net.external, "masquerade": net.masquerade,
                "icc": net.icc, "mtu": net.mtu, "enable_ipv6": net.enable_ipv6, "labels": dict(net.labels),
                "subnets": [{"subnet": str(s.subnet), "gateway": str(s.gateway) if s.gateway else None,
                             "ip_range": str(s.ip_range) if s.ip_range else None} for s in net.subnets],
            }
            if net.shared:
                entry["shared"] = True
            if net.vxlan:
                entry["vxlan"] = {"name": net.vxlan, "vni": net.vni}
            nets.append(entry)
        containers = []
        for box in self.box_order:
            svc = box.service
            c = box.container
            ifaces = []
            for it in box.ifaces:
                lay = it.layout
                gw4, gw6 = it.net.gateway(4), it.net.gateway(6)
                ifaces.append({
                    "network": it.net.name, "ifname": lay.ifname, "host_ifname": lay.host_ifname,
                    "mac": lay.mac, "ipv4": str(lay.ipv4) if lay.ipv4 else None,
                    "ipv6": str(lay.ipv6) if lay.ipv6 else None,
                    "gateway": str(gw4) if gw4 and lay.ipv4 else (str(gw6) if gw6 and lay.ipv6 else None),
                    "gateway6": str(gw6) if gw6 and lay.ipv6 else None,
                    "default_route": it.default4 or (it.default6 and not any(x.default4 for x in box.ifaces)),
                    "default_route6": it.default6,
                    "aliases": list(it.aliases),
                    "link_local": [str(x) for x in lay.link_local],
                })
            containers.append({
                "name": c.name, "service": c.service, "index": c.index,
                "id": naming.container_id(project.name, c.name), "netns": box.netns,
                "uts": box.netns if box.mode not in ("host", "unsupported") else None,
                "network_mode": svc.network_mode, "shares": box.shares,
                "hostname": box.hostname or None, "domainname": svc.domainname,
                "dns": [str(d) for d in svc.dns], "dns_search": list(svc.dns_search), "dns_opt": list(svc.dns_opt),
                "links": [{"service": link.service, "alias": link.alias} for link in svc.links],
                "interfaces": ifaces, "ports": box.ports, "expose": list(svc.expose),
                "embedded_dns": box.embedded_dns,
            })
        return {
            "version": SUMMARY_VERSION, "project": project.name, "group": self.group,
            "table": naming.table_name(project.name), "working_dir": project.working_dir,
            "files": list(project.files), "dns_ttl": ttl_setting(project.environment),
            "host_nameservers": [str(s) for s in self.facts.nameservers],
            "networks": nets, "containers": containers,
        }

    # --- files --------------------------------------------------------------------------------

    def resolv_conf(self, box: _Box) -> str:
        svc = box.service
        if box.embedded_dns:
            lines = [f"nameserver {EMBEDDED_DNS}"]
            if svc.dns_search:
                lines.append("search " + " ".join(one_token(d, "search domain") for d in svc.dns_search))
            opts = [one_token(o, "resolver option") for o in svc.dns_opt]
            if not any(o.startswith("ndots:") for o in opts):
                # after the user's options, as Docker's libnetwork appends its resolver's
                opts.append("ndots:0")
            lines.append("options " + " ".join(opts))
            return "\n".join(lines) + "\n"
        # no embedded DNS: the host's file, with the service's own dns/dns_search/dns_opt
        # replacing the matching lines, as Docker does on the default bridge
        host = self.facts.resolv_conf or "".join(f"nameserver {s}\n" for s in self.facts.nameservers)
        kept = []
        for line in host.splitlines():
            word = line.split()[0] if line.split() else ""
            if (word == "nameserver" and svc.dns) or (word in ("search", "domain") and svc.dns_search) \
                    or (word == "options" and svc.dns_opt):
                continue
            kept.append(line)
        kept += [f"nameserver {one_token(d, 'nameserver')}" for d in svc.dns]
        if svc.dns_search:
            kept.append("search " + " ".join(one_token(d, "search domain") for d in svc.dns_search))
        if svc.dns_opt:
            kept.append("options " + " ".join(one_token(o, "resolver option") for o in svc.dns_opt))
        return "\n".join(kept) + "\n" if kept else ""

    def host_gateway(self, box: _Box) -> Optional[str]:
        """`host-gateway` in extra_hosts: the gateway of the container's default-route network
        (the host's address on that bridge, so the container reaches the host directly); with
        no such network, the host's first address."""
        for version in (4, 6):
            for it in box.ifaces:
                if (it.default4 if version == 4 else it.default6) and it.net.gateway(version) and it.net.bridge:
                    return str(it.net.gateway(version))
        for it in box.ifaces:
            if it.net.bridge and it.net.gateway(4):
                return str(it.net.gateway(4))
        addr = first_host_address(self.facts)
        return str(addr) if addr else None

    def _legacy_boxes(self) -> dict[str, _Box]:
        """Each service's first container on the legacy bridge (what a link there points at)."""
        if not hasattr(self, "_legacy"):
            self._legacy: dict[str, _Box] = {}
            for b in self.box_order:
                if b.mode == "bridge" and b.ifaces:
                    self._legacy.setdefault(b.container.service, b)
        return self._legacy

    def hosts(self, box: _Box) -> str:
        svc = box.service
        lines = [HOSTS_HEADER.rstrip("\n")]
        for eh in svc.extra_hosts:
            addr = eh.address
            if addr == "host-gateway":
                gw = self.host_gateway(box)
                if gw is None:
                    self.warnings.append(f"{box.container.name}: no address for host-gateway ({eh.hostname})")
                    continue
                addr = gw
            lines.append(f"{one_token(addr, 'address')}\t{one_token(eh.hostname, 'host name')}")
        if box.mode == "bridge":
            # the legacy bridge has no embedded DNS: links are /etc/hosts lines, as Docker writes them
            for link in svc.links:
                target = self._legacy_boxes().get(link.service)
                if target is None or target.ifaces[0].layout.ipv4 is None:
                    continue
                names = dict.fromkeys(one_token(n, "link name") for n in (link.alias, link.service, target.container.name))
                lines.append(f"{target.ifaces[0].layout.ipv4.ip}\t{' '.join(names)}")
        host = one_token(box.hostname, "hostname")
        name = f"{host}.{one_token(svc.domainname, 'domainname')} {host}" if svc.domainname else host
        for it in box.ifaces:
            for a in (it.layout.ipv4, it.layout.ipv6):
                if a is not None:
                    lines.append(f"{a.ip}\t{name}")
        return "\n".join(lines) + "\n"


def _layout(project: Project, facts: Optional[HostFacts]) -> _Layout:
    return _Layout(project, facts if facts is not None else HostFacts())


def summary(project: Project, facts: Optional[HostFacts] = None) -> dict[str, Any]:
    """The project.json `up` writes (see docs/design.md)."""
    return _layout(project, facts).summary()


def _firewall_op(summary_dict: dict[str, Any]) -> Op:
    from compose_net import firewall

    table = firewall.table(summary_dict)
    return NftApply("firewall", naming.TABLE_FAMILY, summary_dict["table"], table.document, rules=table.rules)


def _container_ops(lay: _Layout, box: _Box) -> list[Op]:
    """A container's own namespaces, interfaces, routes, sysctls and /etc/netns files."""
    unit = f"container:{box.container.name}"
    ns = box.netns
    svc = box.service
    ops: list[Op] = [NetnsCreate(unit, ns), UtsCreate(unit, ns, box.hostname, svc.domainname)]
    if any(it.layout.ipv6 for it in box.ifaces):
        # new links inherit `default`: addresses are usable at once instead of after DAD
        ops.append(SysctlSet(unit, ns, "net.ipv6.conf.default.accept_dad", "0"))
        ops.append(SysctlSet(unit, ns, "net.ipv6.conf.all.accept_dad", "0"))
    for it in box.ifaces:
        ops += get_driver(it.net.driver).attach_ops(it.net, it.layout)
    for it in box.ifaces:
        if it.default4:
            ops.append(RouteAdd(unit, ns, DEFAULT_V4, it.layout.ifname, it.net.gateway(4),
                                note=f"default route via {it.net.name}"))
        if it.default6:
            ops.append(RouteAdd(unit, ns, DEFAULT_V6, it.layout.ifname, it.net.gateway(6),
                                note=f"IPv6 default route via {it.net.name}"))
    for key, value in svc.sysctls.items():
        if key.startswith("net."):
            ops.append(SysctlSet(unit, ns, key, str(value)))
        else:
            lay.warnings.append(f"{box.container.name}: sysctl {key} is not a network sysctl; ignored")
    return ops + _etc_files(lay, box, box)


def _sharer_ops(lay: _Layout, box: _Box, owner: _Box, owner_ops: list[Op]) -> list[Op]:
    """`network_mode: service:X`: names of its own for X's network and UTS namespaces and a copy
    of X's files, as Docker gives it X's interfaces, hostname, hosts and resolv.conf."""
    unit = f"container:{box.container.name}"
    # a digest of X's ops: when X is made anew, these names must follow (see NetnsAlias)
    digest = hashlib.sha256("\n".join(op.to_json_text() for op in owner_ops).encode()).hexdigest()[:12]
    return [NetnsAlias(unit, box.netns, owner.netns, digest),
            UtsAlias(unit, box.netns, owner.netns, digest)] + _etc_files(lay, box, owner)


def _etc_files(lay: _Layout, box: _Box, source: _Box) -> list[Op]:
    """/etc/netns/NAME/{resolv.conf,hosts,hostname} of `box`, with `source`'s contents."""
    unit = f"container:{box.container.name}"
    name = box.container.name
    return [FileWrite(unit, naming.netns_file(name, "resolv.conf"), lay.resolv_conf(source)),
            FileWrite(unit, naming.netns_file(name, "hosts"), lay.hosts(source)),
            FileWrite(unit, naming.netns_file(name, "hostname"), source.hostname + "\n")]


def plan_up(project: Project, facts: Optional[HostFacts] = None) -> Plan:
    """Every op `up` applies, in order, with the IPAM notes and the host warnings."""
    # Planning allocates hundreds of thousands of small objects and makes no reference cycles:
    # with the collector on, its full passes over a growing heap made 5,000 services cost 7x
    # what 1,000 do. Pausing it keeps planning linear.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan_up(project, facts if facts is not None else HostFacts())
    finally:
        if was_enabled:
            gc.enable()


def _plan_up(project: Project, facts: HostFacts) -> Plan:
    lay = _layout(project, facts)
    summ = lay.summary()
    ops: list[Op] = []

    networks = [n for n in lay.networks.values() if not (n.external and not n.shared)]
    if any(n.bridge or n.driver in ("macvlan", "ipvlan") for n in networks) or any(
            b.ifaces for b in lay.boxes.values()):
        ops.append(SysctlSet("host", None, "net.ipv4.ip_forward", "1",
                             note="containers' traffic is routed through the host"))
        if any(n.enable_ipv6 or n.subnet(6) for n in lay.networks.values()):
            ops.append(SysctlSet("host", None, "net.ipv6.conf.all.forwarding", "1"))
    used_keys = {it.net.key for b in lay.boxes.values() for it in b.ifaces}
    for net in sorted(networks, key=lambda n: n.shared):
        if net.shared and net.key not in used_keys:
            continue
        net_ops, warnings = get_driver(net.driver).network_ops(net, facts)
        ops += net_ops
        lay.warnings += warnings

    planned: dict[str, list[Op]] = {}
    for box in lay.box_order:
        if box.netns is None or box.mode in ("host", "unsupported"):
            continue
        if box.shares is not None:
            owner = lay.boxes[box.shares]
            box_ops = _sharer_ops(lay, box, owner, planned[owner.container.name])
        else:
            box_ops = _container_ops(lay, box)
        planned[box.container.name] = box_ops
        ops += box_ops

    path = naming.summary_path(project.name)
    # compact: the C encoder is ten times faster than the indenting one on a big project
    ops.append(FileWrite("state", path, json.dumps(summ, separators=(",", ":")) + "\n", mode=0o600))
    ops.append(_firewall_op(summ))
    if any(b.embedded_dns for b in lay.boxes.values()):
        ops.append(DnsStart("dns", project.name, path))
    return Plan(project.name, tuple(ops), tuple(lay.notes), tuple(dict.fromkeys(lay.warnings)))
