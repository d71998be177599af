"""The desired project, laid out: names, subnets, addresses, interfaces, routes and ports.

Pure: the project's graph (`graph.build_graph`) and the host's facts come in; a `Layout` comes
out, which the planner reads twice: as the typed `Summary` that `up` records (and from which the
firewall and the DNS records are derived) and as the ops that build it. Drivers decide everything
about their kind of network (`drivers.get(net.driver)`); this module never asks which driver a
network has.

The walk: networks (each driver lays out its own; IPAM numbers them, skipping what the host and
other projects use), then containers in the graph's creation order (their mode, interfaces in
priority order, addresses from the network's pool in declaration order so a dependency change
does not renumber anyone, the default route), then published ports (ephemeral ones chosen, a
running project's kept), then the project's link group.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Optional

from compose_net import drivers, graph as pgraph, ipam, naming
from compose_net.dns.records import ttl_setting
from compose_net import hostfw
from compose_net.drivers.base import (ENDPOINT_SYSCTLS_OPT, HOST, LEGACY, MTU_OPT, NONE, SHARES, UNSUPPORTED,
                                      InterfaceLayout, NetworkLayout, interface_sysctls)
from compose_net.errors import ConfigError, PlanError
from compose_net.model import Container, Network, Project, Service
from compose_net.probe import HostFacts, first_host_address
from compose_net.summary import (ROUTED, ContainerState, InterfaceState, LinkState, Live, NetworkState,
                                 PolicyPortState, PolicyRuleState, PortState, SubnetState, Summary, VxlanState)

EMBEDDED_DNS = "127.0.0.11"

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
class Iface:
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
class Box:
    """One container as planned."""

    container: Container
    service: Service
    mode: Optional[str]  # None (networks), or a mode of drivers.base
    netns: Optional[str]
    shares: Optional[str] = None
    hostname: str = ""
    ifaces: list[Iface] = field(default_factory=list)
    ports: list[PortState] = field(default_factory=list)
    embedded_dns: bool = False

    @property
    def unit(self) -> str:
        return f"container:{self.container.name}"


def _mac_from_v4(addr: ipaddress.IPv4Address) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def _mac_from_name(text: str) -> str:
    h = hashlib.sha256(text.encode()).digest()
    return "02:42:" + ":".join(f"{b:02x}" for b in h[:4])


def _mtu(project: Project, net: Network) -> Optional[int]:
    raw = net.driver_opts.get(MTU_OPT)
    if raw is None or str(raw) == "":
        return None
    keypath = f"{net.keypath or 'networks.' + net.key}.driver_opts.{MTU_OPT}"
    try:
        value = int(str(raw))
    except ValueError:
        raise _err(project, keypath, f"MTU must be an integer, not {raw!r}") from None
    if value < 68 or value > 65535:
        raise _err(project, keypath, f"MTU {value} is out of range (68-65535)")
    return value


def _dyn_note(subnet: Optional[ipam.Subnet]) -> str:
    if subnet is None:
        return ""
    if subnet.ip_range is not None:
        return f"next free address in ip_range {subnet.ip_range} of {subnet.subnet}"
    return f"next free address in {subnet.subnet}"


class Layout:
    def __init__(self, g: Any, project: Project, facts: HostFacts, live: Live = Live()):
        self.graph = g
        self.live = live
        self.project = project
        self.facts = facts
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.own: Optional[Summary] = facts.projects.get(project.name)
        self.others = facts.other_projects(project.name)
        self.order = pgraph.creation_order(g, project.locate)
        self.modes = {
            c.service.name: drivers.container_mode(c.service.network_mode,
                                                   [n.driver for n, _ in pgraph.attachments(g, c.container.name)])
            for c in self.order
        }
        self._networks()
        self._containers()
        self._ports()
        self._group()

    # --- networks -----------------------------------------------------------------------------

    def _networks(self) -> None:
        project, facts = self.project, self.facts
        used_nets = {a.network for c in self.order if self.modes[c.service.name] is None
                     for _, a in pgraph.attachments(self.graph, c.container.name)}
        own_devs: set[str] = set()
        for net in pgraph.networks(self.graph):
            problems = [] if net.external else drivers.get(net.driver).check_network(
                net.driver_opts, net.internal, net.enable_ipv4, net.enable_ipv6)
            for path, message in problems:
                raise _err(project, f"{net.keypath or 'networks.' + net.key}.{path}", message)
            for name in drivers.get(net.driver).host_devices(net):
                if not naming.fits(name):
                    raise _err(project, f"{net.keypath or 'networks.' + net.key}.driver_opts.{naming.BRIDGE_NAME_OPT}",
                               f"bridge name {name!r} is longer than {naming.IFNAMSIZ} bytes")
                own_devs.add(name)
        previous = {n.name: [str(s.subnet) for s in n.subnets] for n in self.own.owned_networks()} if self.own else {}
        legacy = ipam.legacy_subnet(project, facts) if any(m == LEGACY for m in self.modes.values()) else None
        subnets = ipam.choose_subnets(project, facts, own_devs, previous=previous, legacy=legacy)
        self.networks: dict[str, NetworkLayout] = {}
        for net in pgraph.networks(self.graph):
            key = net.key
            base = NetworkLayout(
                key=key, name=net.name, driver=net.driver, unit=f"network:{net.name}", group=0,
                mtu=_mtu(project, net), internal=net.internal, external=net.external,
                masquerade=not net.internal, enable_ipv4=net.enable_ipv4, enable_ipv6=net.enable_ipv6,
                labels=dict(net.labels),
                keypath=net.keypath or f"networks.{key}", subnets=subnets.get(key, ()))
            if net.external:
                self.networks[key] = self._external(net, base, used=key in used_nets)
                continue
            layout, notes = drivers.get(net.driver).layout(net, base)
            layout = drivers.get(net.driver).in_cluster(layout, facts.cluster)
            self.notes += [s.note for s in layout.subnets] + notes
            self.networks[key] = layout
        if legacy is not None:
            from compose_net.drivers.bridge import BridgeDriver

            self.networks[""] = BridgeDriver.legacy_layout(legacy)
            self.notes.append(legacy.note)

    def _external(self, net: Network, base: NetworkLayout, used: bool) -> NetworkLayout:
        """An external network: not ours to create; its devices and subnets come from the state of
        the project (or `network create`) that made it."""
        for summary in self.others.values():
            for n in summary.owned_networks():
                if n.name == net.name:
                    subnets = tuple(ipam.Subnet(s.subnet, s.gateway, s.ip_range,
                                                note=f"{n.name}: subnet {s.subnet} (existing network)")
                                    for s in n.subnets)
                    return dataclasses.replace(
                        base, driver=n.driver or "bridge", masquerade=n.masquerade, internal=n.internal,
                        enable_ipv6=n.enable_ipv6, mtu=n.mtu or base.mtu, bridge=n.bridge, parent=n.parent,
                        mode=n.mode, subnets=subnets, forwards=True, enable_ipv4=n.enable_ipv4,
                        gateway_mode4=n.gateway_mode_ipv4, gateway_mode6=n.gateway_mode_ipv6,
                        trusted_interfaces=n.trusted_interfaces)
        if used:
            self.warnings.append(f"external network {net.name} does not exist here (create it with "
                                 f"`compose-net network create {net.name}`); up will fail")
        return dataclasses.replace(base, bridge=naming.bridge_name(net.name, net.driver_opts))

    def _used_on(self, name: str) -> list[ipaddress._BaseAddress]:
        """Addresses other projects' containers hold on the shared network `name`."""
        return [a.ip for summary in self.others.values() for c in summary.containers
                for i in c.interfaces if i.network == name for a in i.addresses]

    # --- containers ---------------------------------------------------------------------------

    def _containers(self) -> None:
        project = self.project
        # addresses first, per network, in declaration order (services, then replicas), so the
        # result does not depend on the dependency order the containers are built in
        members: dict[str, list] = {key: [] for key in self.networks}
        for c in pgraph.containers(self.graph):
            mode = self.modes[c.service.name]
            if mode == LEGACY:
                members[""].append(((c.container.name, ""), None, None))
            elif mode is None:
                for _, a in pgraph.attachments(self.graph, c.container.name):
                    net = self.networks.get(a.network)
                    if net is None or drivers.get(net.driver).container_mode is not None:
                        continue
                    if a.ipv6_address is not None and net.subnet(6) is None and net.subnets:
                        raise _err(project, f"{a.keypath or c.service.keypath + '.networks.' + a.network}.ipv6_address",
                                   f"static IPv6 address {a.ipv6_address} but network {net.name} has no IPv6 subnet")
                    members[a.network].append(((c.container.name, a.network), a.ipv4_address, a.ipv6_address))
        key_of = {net.name: key for key, net in self.networks.items()}
        previous: dict[tuple[str, str], dict[int, ipaddress._BaseAddress]] = {}
        for ctr in self.own.containers if self.own else ():
            for i in ctr.interfaces:
                key = key_of.get(i.network)
                if key is not None:
                    got = previous.setdefault((ctr.name, key), {})
                    for a in i.addresses:
                        got[a.version] = a.ip
        self.addresses: dict[tuple[str, str], dict[int, ipaddress._BaseAddress]] = {}
        for key, mem in members.items():
            net = self.networks[key]
            if not mem or not net.subnets:
                continue
            used = self._used_on(net.name) if net.external else []
            self.addresses.update(ipam.allocate(net.name, net.subnets, mem, used=used, project=project,
                                                previous=previous))
        # an overlay network spanning hosts: the cluster store leased its endpoints' addresses
        leased = self.facts.cluster.addresses if self.facts.cluster is not None else {}
        for (netname, container), addr in leased.items():
            key = key_of.get(netname)
            if key is not None and (container, key) in self.addresses:
                self.addresses[(container, key)] = {**self.addresses[(container, key)], 4: addr}

        self.boxes: dict[str, Box] = {}
        self.box_order: list[Box] = []
        for c in self.order:
            box = self._box(c.container, c.service)
            self.boxes[c.container.name] = box
            self.box_order.append(box)

    def _box(self, c: Container, svc: Service) -> Box:
        mode = self.modes[c.service]
        cid = naming.container_id(self.project.name, c.name)
        hostname = svc.hostname or cid[:12]
        if mode == HOST:
            return Box(c, svc, mode, None, hostname=svc.hostname or "")
        if mode == UNSUPPORTED:
            self.warnings.append(f"{c.name}: network_mode {svc.network_mode!r} is not supported; "
                                 f"the container gets no network")
            return Box(c, svc, mode, None, hostname=hostname)
        if mode == SHARES:
            host = self.boxes.get(pgraph.shares_with(self.graph, c.name) or "")
            while host is not None and host.shares is not None:
                host = self.boxes.get(host.shares)
            if host is None:
                self.warnings.append(f"{c.name}: network_mode {svc.network_mode!r} names no container here")
                return Box(c, svc, UNSUPPORTED, None, hostname=hostname)
            # its own names for the host's namespaces (none when the host has none: host mode)
            netns = naming.netns_name(c.name) if host.netns else None
            return Box(c, svc, mode, netns, shares=host.container.name, hostname=host.hostname,
                       embedded_dns=host.embedded_dns)
        box = Box(c, svc, mode, naming.netns_name(c.name), hostname=hostname)
        if mode == NONE:
            return box
        if mode == LEGACY:
            atts = [(self.networks[""], None)]
        else:
            atts = [(self.networks[a.network], a) for _, a in pgraph.attachments(self.graph, c.name)
                    if a.network in self.networks
                    and drivers.get(self.networks[a.network].driver).container_mode is None]
            atts.sort(key=lambda t: (-t[1].priority, t[1].order))
        taken = {a.interface_name for _, a in atts if a is not None and a.interface_name}
        n = 0
        for i, (net, a) in enumerate(atts):
            ifname = a.interface_name if a is not None else None
            if not ifname:
                while f"eth{n}" in taken:
                    n += 1
                ifname = f"eth{n}"
                taken.add(ifname)
            box.ifaces.append(self._iface(box, net, a, ifname, first=i == 0, cid=cid))
        self._default_routes(box)
        box.embedded_dns = mode is None and bool(box.ifaces)
        return box

    def _iface(self, box: Box, net: NetworkLayout, a: Any, ifname: str, first: bool, cid: str) -> Iface:
        c, svc = box.container, box.service
        addrs = self.addresses.get((c.name, net.key), {})
        v4, v6 = addrs.get(4), addrs.get(6)
        s4, s6 = net.subnet(4), net.subnet(6)
        mac = a.mac_address if a is not None else None
        if mac is None and first and svc.mac_address:
            mac = svc.mac_address
        if mac is None:
            mac = _mac_from_v4(v4) if v4 is not None else _mac_from_name(f"{c.name}/{net.name}")
        # (int, prefix) tuples: parsing "a.b.c.d/n" strings dominated big plans
        iface4 = ipaddress.IPv4Interface((int(v4), s4.subnet.prefixlen)) if v4 is not None and s4 else None
        iface6 = ipaddress.IPv6Interface((int(v6), s6.subnet.prefixlen)) if v6 is not None and s6 else None
        note4 = "static ipv4_address" if a is not None and a.ipv4_address is not None else _dyn_note(s4)
        note6 = "static ipv6_address" if a is not None and a.ipv6_address is not None else _dyn_note(s6)
        host_if = naming.veth_name(c.name, net.name) if net.bridge else None
        link_local = tuple(ipaddress.ip_interface((int(x), 16 if x.version == 4 else 64))
                           for x in (a.link_local_ips if a is not None else ()))
        sysctls: tuple[tuple[str, str], ...] = ()
        if a is not None and ENDPOINT_SYSCTLS_OPT in a.driver_opts:
            try:
                sysctls = interface_sysctls(a.driver_opts[ENDPOINT_SYSCTLS_OPT], ifname)
            except PlanError as exc:
                raise _err(self.project, f"{a.keypath or svc.keypath + '.networks.' + a.network}.driver_opts."
                           f"{ENDPOINT_SYSCTLS_OPT}", exc.message) from None
        layout = InterfaceLayout(c.name, box.unit, box.netns, net.key, ifname, host_if, mac, iface4, iface6,
                                 note4 if iface4 else "", note6 if iface6 else "", link_local,
                                 hairpin=bool(svc.ports), sysctls=sysctls)
        names: list[str] = []
        if box.mode != LEGACY:  # the legacy bridge has no name resolution (links only)
            names = [svc.name, c.name, *(a.aliases if a is not None else ()), cid[:12]]
            if svc.hostname:
                names.append(svc.hostname)
        aliases = tuple(dict.fromkeys(names))
        return Iface(layout, self.networks, a.priority if a else 0, a.gw_priority if a else 0, aliases)

    def _default_routes(self, box: Box) -> None:
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
                if it.net.gateway(version) is None and not it.net.routed:
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
        entries: list[tuple[Box, dict]] = []
        pending: list[tuple[dict, int, str, tuple]] = []
        for c in pgraph.containers(self.graph):
            box = self.boxes[c.container.name]
            lead = self._ports_lead_to(box)
            binding = self._host_binding(lead)
            for p in box.service.ports:
                if lead is not None and p.published is not None and all(
                        lead.gateway_mode(s.subnet.version) == ROUTED for s in lead.subnets):
                    # Docker logs the same: the mapping opens the container port at its address
                    self.warnings.append(f"{c.container.name}: host port {p.published} of {p.keypath or 'ports'} "
                                         f"is not used: network {lead.name} is in gateway mode routed")
                size = p.target_end - p.target + 1
                host_ip = p.host_ip if p.host_ip is not None else binding
                entry = {"protocol": p.protocol, "host_ip": host_ip, "published": p.published,
                         "published_end": p.published_end, "target": p.target, "target_end": p.target_end}
                if p.published is not None:
                    self._fixed_port(box, p, entry, size, bindings, used)
                else:
                    pending.append((entry, size, c.container.name, (p.protocol, host_ip, p.target, p.target_end)))
                entries.append((box, entry))
        self._ephemeral_ports(pending, used)
        for box, entry in entries:
            box.ports.append(PortState(**entry))
        self._loopback_publishing()

    def _ports_lead_to(self, box: Box) -> Optional[NetworkLayout]:
        """The network a container's published ports lead to: its default-route interface's on
        a bridge with a way out, else the first such (as the firewall chooses)."""
        owner = self.boxes.get(box.shares) if box.shares else box
        if owner is None:
            return None
        candidates = [it for it in owner.ifaces if it.net.bridge and not it.net.internal]
        chosen = next((it for it in candidates if it.default4 or it.default6), candidates[0] if candidates else None)
        return chosen.net if chosen is not None else None

    @staticmethod
    def _host_binding(net: Optional[NetworkLayout]) -> Optional[ipaddress._BaseAddress]:
        """The `host_binding_ipv4`/`_ipv6` of the network where a container's ports lead
        (`_ports_lead_to`): the host address of a `ports:` entry that gives none."""
        binding = net.host_binding if net is not None else None
        # Docker: 0.0.0.0 is every IPv4 and IPv6 address, as no binding is; `::` is IPv6 only
        return None if binding is not None and binding.version == 4 and binding.is_unspecified else binding

    def _fixed_port(self, box: Box, p: Any, entry: dict, size: int, bindings: dict, used: set) -> None:
        c = box.container
        host_ip = str(entry["host_ip"]) if entry["host_ip"] is not None else None
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

    def _ephemeral_ports(self, pending: list, used: set) -> None:
        # a running container keeps its ephemeral ports while they are still free
        previous: dict[tuple, int] = {}
        for ctr in self.own.containers if self.own else ():
            for p in ctr.ports:
                if p.published is not None:
                    previous[(ctr.name, p.protocol, p.host_ip, p.target, p.target_end)] = p.published
        still = []
        for entry, size, name, key in pending:
            port = previous.get((name, *key))
            block = [(entry["protocol"], x) for x in range(port, port + size)] if port else []
            if port and not any(b in used for b in block):
                used.update(block)
                entry["published"], entry["published_end"] = port, port + size - 1
            else:
                still.append((entry, size))
        requests = [(entry["protocol"], size) for entry, size in still]
        if requests:
            for (entry, size), port in zip(still, ipam.ephemeral_ports(requests, used)):
                entry["published"] = port
                entry["published_end"] = port + size - 1
                self.notes.append(f"ephemeral {entry['protocol']} port {port}"
                                  + (f"-{port + size - 1}" if size > 1 else "")
                                  + f" for target {entry['target']} (first free from {ipam.EPHEMERAL_FIRST})")

    def _loopback_publishing(self) -> None:
        """A port published on loopback is DNATed out of the bridge with a 127/8 source."""
        for box in self.boxes.values():
            if not box.ports or box.mode not in (None, LEGACY, SHARES):
                continue
            owner = self.boxes.get(box.shares) if box.shares else box
            if owner is None:
                continue
            if any(p.host_ip is None or p.host_ip.is_loopback for p in box.ports):
                for it in owner.ifaces:
                    if it.net.bridge and not it.net.route_localnet and (it.net.shared or not it.net.external):
                        self.networks[it.net.key] = dataclasses.replace(it.net, route_localnet=True)

    # --- link group ---------------------------------------------------------------------------

    def _group(self) -> None:
        own_links: set[str] = set()
        for net in pgraph.networks(self.graph):
            own_links.update(drivers.get(net.driver).host_devices(net))
        for net in self.networks.values():
            if not net.external:
                own_links.update(x for x in (net.bridge, net.vxlan, net.parent) if x)
        for box in self.boxes.values():
            own_links.update(it.layout.host_ifname for it in box.ifaces if it.layout.host_ifname)
        # links of the running project that this edit removes are still ours, not foreign
        for net in self.own.networks if self.own else ():
            if not net.external or net.shared:
                own_links.update(x for x in (net.bridge, net.vxlan.name if net.vxlan else None) if x)
        for ctr in self.own.containers if self.own else ():
            own_links.update(i.host_ifname for i in ctr.interfaces if i.host_ifname)
        others = [s.group for s in self.others.values() if s.group]
        previous = self.own.group if self.own else 0
        foreign = {g for name, g in self.facts.links.items() if name not in own_links}
        if previous and previous not in foreign and previous not in others:
            self.group = previous
        else:
            self.group = naming.link_group(self.project.name, self.facts.links, own_links, others)
        for key, net in list(self.networks.items()):
            if not net.shared:
                self.networks[key] = dataclasses.replace(net, group=self.group)

    # --- the recorded state ---------------------------------------------------------------------

    def summary(self) -> Summary:
        project = self.project
        given = {n.key: any(p.subnet is not None for p in n.ipam_pools) for n in pgraph.networks(self.graph)}
        nets = []
        for key, net in self.networks.items():
            if drivers.get(net.driver).container_mode is not None and not net.external:
                continue  # host and none networks have no kernel objects, nothing to record
            nets.append(NetworkState(
                name=net.name, key=key or None, id=naming.network_id(net.name), driver=net.driver,
                bridge=net.bridge, parent=net.parent, mode=net.mode, internal=net.internal,
                external=net.external, masquerade=net.masquerade, icc=net.icc, mtu=net.mtu,
                enable_ipv6=net.enable_ipv6, labels=dict(net.labels),
                subnets=tuple(SubnetState(s.subnet, s.gateway, s.ip_range) for s in net.subnets),
                shared=net.shared, vxlan=VxlanState(net.vxlan, net.vni) if net.vxlan else None,
                enable_ipv4=net.enable_ipv4, gateway_mode_ipv4=net.gateway_mode4, gateway_mode_ipv6=net.gateway_mode6,
                trusted_interfaces=net.trusted_interfaces, user_subnet=given.get(key, False)))
        return Summary(
            project=project.name, group=self.group, table=naming.table_name(project.name),
            working_dir=project.working_dir, files=tuple(project.files),
            dns_ttl=ttl_setting(project.environment), host_nameservers=tuple(self.facts.nameservers),
            foreign_bridges=hostfw.foreign_bridges(self.facts), networks=tuple(nets),
            containers=tuple(self._container_state(box) for box in self.box_order),
            live=self.live,
            cluster=self.facts.cluster.url if self.facts.cluster else None,
            cluster_host=str(self.facts.cluster.host) if self.facts.cluster else None)

    def _container_state(self, box: Box) -> ContainerState:
        svc, c = box.service, box.container
        any4 = any(x.default4 for x in box.ifaces)
        ifaces = []
        for it in box.ifaces:
            lay = it.layout
            gw4, gw6 = it.net.gateway(4), it.net.gateway(6)
            ifaces.append(InterfaceState(
                network=it.net.name, ifname=lay.ifname, host_ifname=lay.host_ifname, mac=lay.mac,
                ipv4=lay.ipv4, ipv6=lay.ipv6,
                gateway=gw4 if gw4 and lay.ipv4 else (gw6 if gw6 and lay.ipv6 else None),
                gateway6=gw6 if gw6 and lay.ipv6 else None,
                default_route=it.default4 or (it.default6 and not any4), default_route6=it.default6,
                aliases=it.aliases, link_local=lay.link_local))
        return ContainerState(
            name=c.name, service=c.service, index=c.index, id=naming.container_id(self.project.name, c.name),
            netns=box.netns, uts=box.netns if box.mode not in (HOST, UNSUPPORTED) else None,
            network_mode=svc.network_mode, shares=box.shares, hostname=box.hostname or None,
            domainname=svc.domainname, dns=svc.dns, dns_search=svc.dns_search, dns_opt=svc.dns_opt,
            links=tuple(LinkState(link.service, link.alias) for link in svc.links), interfaces=tuple(ifaces),
            ports=tuple(box.ports), expose=svc.expose, embedded_dns=box.embedded_dns,
            ingress=_rules(svc.ingress), egress=_rules(svc.egress))

    # --- files --------------------------------------------------------------------------------

    def resolv_conf(self, box: Box) -> str:
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

    def host_gateway(self, box: Box) -> Optional[str]:
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

    def _legacy_boxes(self) -> dict[str, Box]:
        """Each service's first container on the legacy bridge (what a link there points at)."""
        if not hasattr(self, "_legacy"):
            self._legacy: dict[str, Box] = {}
            for b in self.box_order:
                if b.mode == LEGACY and b.ifaces:
                    self._legacy.setdefault(b.container.service, b)
        return self._legacy

    def hosts(self, box: Box) -> str:
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
        if box.mode == LEGACY:
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


def _rules(rules):
    if rules is None:
        return None
    return tuple(PolicyRuleState(r.peers, tuple(PolicyPortState(p.first, p.last, p.protocol) for p in r.ports))
                 for r in rules)


def layout(project: Project, facts: Optional[HostFacts] = None, g: Any = None, live: Optional[Live] = None) -> Layout:
    """The laid-out project; `live` (default: the project's recorded live edits) is applied to
    its graph first (`plan.live`)."""
    from compose_net.plan import live as live_edits

    facts = facts if facts is not None else HostFacts()
    g = g if g is not None else pgraph.build_graph(project)
    own = facts.projects.get(project.name)
    if live is None:
        live = own.live if own is not None else Live()
    kept = live_edits.apply(g, project, live, own) if live else live
    return Layout(g, project, facts, kept)
