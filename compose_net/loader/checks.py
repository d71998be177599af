"""Stage 6: semantic checks on normalized data that need no host facts.

Rules are tables keyed by key-path patterns (`*` = any name, `[]` = any list item): each rule
gets the concrete key path and the value there. Project-wide rules (cycles, overlaps,
duplicates) run once. Every problem is collected; `run_checks` returns them all.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from compose_net.errors import ConfigError
from compose_net.keypath import Part, format_path, locate
from compose_net.loader.normalize import parse_extra_host, parse_port
from compose_net.loader.source import Loc
from compose_net.model import BUILTIN_DRIVERS, PROTOCOLS

IFNAMSIZ = 15
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_IFNAME_BAD = re.compile(r"[\s/:]")
_CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_EXPOSE_RE = re.compile(r"^\d+(-\d+)?(/(tcp|udp|sctp))?$", re.I)
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")
IPVLAN_FLAGS = ("bridge", "private", "vepa")
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
NETWORK_MODES = ("host", "none", "bridge", "default")
NETWORK_FLAGS = ("external", "internal", "attachable", "enable_ipv4", "enable_ipv6")
# Every replica is a network namespace; a bound keeps `deploy.replicas: 1e300` from expanding.
MAX_REPLICAS = 10_000


@dataclass
class Context:
    data: dict  # normalized
    loc: Loc  # of the merged files
    raw: dict  # merged data before normalization (profiles not applied)
    errors: list[ConfigError] = field(default_factory=list)
    static: dict = field(default_factory=dict)  # (network, address) -> keypath
    bindings: dict = field(default_factory=dict)  # (protocol, port) -> [(host_ip, keypath)]
    subnet_cache: dict = field(default_factory=dict)  # network key -> [ip_network]

    @property
    def services(self) -> dict:
        return self.data.get("services") or {}

    @property
    def networks(self) -> dict:
        return self.data.get("networks") or {}

    def error(self, parts: list, message: str) -> None:
        file, line = locate(self.loc, self.raw, parts)
        self.errors.append(ConfigError(file, line, format_path(parts), message))

    def service_ref(self, parts: list, name: str, what: str) -> bool:
        """True when `name` is an enabled service; else one error naming why not."""
        if name in self.services:
            return True
        if name in (self.raw.get("services") or {}):
            self.error(parts, f'{what} service "{name}", which no active profile enables')
        else:
            self.error(parts, f'{what} undefined service "{name}"')
        return False

    def replicas(self, service: str) -> int:
        svc = self.services.get(service) or {}
        deploy = svc.get("deploy") if isinstance(svc.get("deploy"), dict) else {}
        for value in (deploy.get("replicas"), svc.get("scale")):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return 1


def iter_matches(data: Any, pattern: str) -> Iterator[tuple[list, Any]]:
    """(concrete parts, value) for every node matching a pattern like `services.*.ports[]`."""
    steps: list[Part] = []
    for seg in pattern.split("."):
        if seg.endswith("[]"):
            steps.append(seg[:-2])
            steps.append("[]")
        else:
            steps.append(seg)
    current: list[tuple[list, Any]] = [([], data)]
    for step in steps:
        nxt: list[tuple[list, Any]] = []
        for parts, value in current:
            if step == "*":
                if isinstance(value, dict):
                    nxt.extend((parts + [k], v) for k, v in value.items())
            elif step == "[]":
                if isinstance(value, list):
                    nxt.extend((parts + [i], v) for i, v in enumerate(value))
            elif isinstance(value, dict) and step in value:
                nxt.append((parts + [step], value[step]))
        current = nxt
    return iter(current)


def _ip(value: Any) -> Optional[ipaddress._BaseAddress]:
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None


def _net(value: Any) -> Optional[ipaddress._BaseNetwork]:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError:
        return None


def _subnets(ctx: Context, network: str) -> list:
    # parsed once per network: every static address of a large project asks again
    if network not in ctx.subnet_cache:
        ctx.subnet_cache[network] = _parse_subnets(ctx, network)
    return ctx.subnet_cache[network]


def _parse_subnets(ctx: Context, network: str) -> list:
    net = ctx.networks.get(network) or {}
    ipam = net.get("ipam") if isinstance(net.get("ipam"), dict) else {}
    out = []
    for cfg in ipam.get("config") or []:
        if isinstance(cfg, dict):
            subnet = _net(cfg.get("subnet")) if cfg.get("subnet") else None
            if subnet is not None:
                out.append(subnet)
    return out


# --- rules per key path ------------------------------------------------------------------------


def check_attachment(ctx: Context, parts: list, cfg: Any) -> None:
    network = parts[3]
    if network not in ctx.networks:
        if network in (ctx.raw.get("networks") or {}):
            ctx.error(parts, f'network "{network}" is used only by services no active profile enables')
        else:
            hint = difflib.get_close_matches(network, list(ctx.networks), n=1)
            ctx.error(parts, f'undefined network "{network}"' + (f' (did you mean "{hint[0]}"?)' if hint else ""))
        return


def check_static_address(ctx: Context, parts: list, value: Any) -> None:
    service, network, key = parts[1], parts[3], parts[4]
    version = 4 if key == "ipv4_address" else 6
    addr = _ip(value)
    if addr is None or addr.version != version:
        ctx.error(parts, f'invalid IPv{version} address "{value}"')
        return
    if network not in ctx.networks:
        return  # reported as an undefined network
    subnets = [s for s in _subnets(ctx, network) if s.version == version]
    net_cfg = ctx.networks.get(network) or {}
    if version == 6 and net_cfg.get("enable_ipv6") is not True:
        ctx.error(parts, f'static IPv6 address {addr} but network "{network}" does not set enable_ipv6: true')
    if not subnets:
        ctx.error(parts, f'static address {addr} needs a user-configured IPv{version} subnet in '
                         f'networks.{network}.ipam.config')
    elif not any(addr in s for s in subnets):
        listed = ", ".join(str(s) for s in subnets)
        ctx.error(parts, f'address {addr} is outside the subnets of network "{network}" ({listed})')
    elif any(addr == s.network_address or (s.version == 4 and s.prefixlen < 31 and addr == s.broadcast_address)
             for s in subnets if addr in s):
        ctx.error(parts, f"address {addr} is the network or broadcast address of its subnet")
    replicas = ctx.replicas(service)
    if replicas > 1:
        ctx.error(parts, f"a static address cannot be shared by {replicas} replicas")
    key2 = (network, addr)
    if key2 in ctx.static:
        ctx.error(parts, f"address {addr} is already used by {ctx.static[key2]}")
    else:
        ctx.static[key2] = format_path(parts)


def check_priority(ctx: Context, parts: list, value: Any) -> None:
    if isinstance(value, float) and not value.is_integer():
        ctx.error(parts, f"{parts[-1]} must be an integer, not {value}")


def check_mac(ctx: Context, parts: list, value: Any) -> None:
    if not isinstance(value, str) or not _MAC_RE.match(value):
        ctx.error(parts, f'invalid MAC address "{value}"')


def check_link_local(ctx: Context, parts: list, value: Any) -> None:
    if _ip(value) is None:
        ctx.error(parts, f'invalid IP address "{value}"')


def check_interface_name(ctx: Context, parts: list, value: Any) -> None:
    text = str(value)
    if len(text.encode()) > IFNAMSIZ:
        ctx.error(parts, f'interface name "{text}" is longer than {IFNAMSIZ} bytes')
    elif not text or text in (".", "..") or _IFNAME_BAD.search(text):
        ctx.error(parts, f'invalid interface name "{text}"')


def check_network_mode(ctx: Context, parts: list, value: Any) -> None:
    service = parts[1]
    raw_svc = (ctx.raw.get("services") or {}).get(service) or {}
    if raw_svc.get("networks"):
        ctx.error(parts, "network_mode cannot be used together with networks")
    text = str(value)
    if text.startswith("service:"):
        target = text[len("service:"):]
        if not target:
            ctx.error(parts, "network_mode service: needs a service name")
        elif target == service:
            ctx.error(parts, "a service cannot share its own network namespace")
        else:
            # with replicas, Docker joins the first one: allowed
            ctx.service_ref(parts, target, "network_mode refers to")
    elif text.startswith("container:"):
        if not text[len("container:"):]:
            ctx.error(parts, "network_mode container: needs a container name")
    elif text not in NETWORK_MODES:
        ctx.error(parts, f'invalid network_mode "{text}": expected host, none, bridge, service:NAME or container:NAME')


def check_port(ctx: Context, parts: list, value: Any) -> None:
    if not isinstance(value, dict) or "target_end" not in value:
        try:
            value = parse_port(value)
        except ValueError as e:
            ctx.error(parts, str(e))
            return
    t0, t1 = value["target"], value["target_end"]
    ok = True
    spans = [("container", t0, t1)]
    if value["published"]:
        spans.append(("host",) + _range(value["published"]))
    for what, a, b in spans:
        if not (0 <= a <= 65535 and 0 <= b <= 65535):
            ctx.error(parts, f"{what} port out of range 0-65535")
            ok = False
        elif a > b:
            ctx.error(parts, f"{what} port range {a}-{b} is reversed")
            ok = False
    if ok and t0 == 0:
        ctx.error(parts, "container port 0 is not a port")
        ok = False
    protocol = value.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        ctx.error(parts, f'invalid protocol "{protocol}": expected tcp, udp or sctp')
        ok = False
    host_ip = value.get("host_ip")
    if host_ip is not None and _ip(host_ip) is None:
        ctx.error(parts, f'invalid host address "{host_ip}"')
        ok = False
    mode = value.get("mode", "ingress")
    if mode not in ("ingress", "host"):
        ctx.error(parts, f'invalid port mode "{mode}": expected ingress or host')
    if not ok or not value["published"]:
        return
    p0, p1 = _range(value["published"])
    if t1 != t0 and (p1 - p0) != (t1 - t0):
        ctx.error(parts, f"host port range {p0}-{p1} and container port range {t0}-{t1} differ in size")
        return
    replicas = ctx.replicas(parts[1])
    if replicas > 1 and t0 == t1 and p0 != 0 and p1 - p0 + 1 < replicas:
        ctx.error(parts, f"published port {value['published']} cannot be bound by {replicas} replicas")
    addr = _ip(host_ip) if host_ip else None
    # a single container port with a host range takes one free port of the range, and host
    # port 0 means "any free port": neither is a fixed binding
    fixed = range(p0, p1 + 1) if (t1 != t0 or p0 == p1) and p0 != 0 else range(0)
    reported = False  # one message per entry, not one per port of a clashing range
    for port in fixed:
        key = (protocol, port)
        for other_addr, other_path in ctx.bindings.get(key, ()):
            if not reported and _binds_overlap(addr, other_addr):
                where = str(addr) if addr else "all addresses"
                ctx.error(parts, f"host port {port}/{protocol} on {where} is already published by {other_path}")
                reported = True
                break
        ctx.bindings.setdefault(key, []).append((addr, format_path(parts)))


def _binds_overlap(a: Any, b: Any) -> bool:
    """Two host addresses of a published port collide: equal, or one is a wildcard that covers
    the other (no host_ip = every address of both families; 0.0.0.0 / :: = one family)."""
    if a is None or b is None or a == b:
        return True
    if a.version != b.version:
        return False
    return a.is_unspecified or b.is_unspecified


def _range(text: str) -> tuple[int, int]:
    a, _, b = str(text).partition("-")
    return int(a), int(b or a)


def check_expose(ctx: Context, parts: list, value: Any) -> None:
    if not _EXPOSE_RE.match(str(value)):
        ctx.error(parts, f'invalid exposed port "{value}": expected PORT[-PORT][/PROTOCOL]')


def check_dns(ctx: Context, parts: list, value: Any) -> None:
    if _ip(value) is None:
        ctx.error(parts, f'dns server "{value}" must be an IP address')


def check_extra_host(ctx: Context, parts: list, value: Any) -> None:
    try:
        host, ip = parse_extra_host(value)
    except ValueError as e:
        ctx.error(parts, str(e))
        return
    if ip != "host-gateway" and _ip(ip) is None:
        ctx.error(parts, f'invalid address "{ip}" for extra host "{host}"')


def check_depends_on(ctx: Context, parts: list, value: Any) -> None:
    service, target = parts[1], parts[3]
    if isinstance(value, dict) and value.get("required") is False and target not in ctx.services:
        return  # an optional dependency may be missing
    if target == service:
        ctx.error(parts, "a service cannot depend on itself")
        return
    ctx.service_ref(parts, target, "depends on")


def check_link(ctx: Context, parts: list, value: Any) -> None:
    target, _, alias = str(value).partition(":")
    if not target or (_ and not alias):
        ctx.error(parts, f'invalid link "{value}": expected SERVICE or SERVICE:ALIAS')
        return
    if target == parts[1]:
        ctx.error(parts, "a service cannot link to itself")
        return
    ctx.service_ref(parts, target, "links to")


def check_container_name(ctx: Context, parts: list, value: Any) -> None:
    if not _CONTAINER_NAME_RE.match(str(value)):
        ctx.error(parts, f'invalid container name "{value}"')
    replicas = ctx.replicas(parts[1])
    if replicas > 1:
        ctx.error(parts, f"container_name cannot be used with {replicas} replicas (names must be unique)")


def check_replicas(ctx: Context, parts: list, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(parts, f'replicas must be an integer, not "{value}"')
    elif value < 0:
        ctx.error(parts, f"replicas cannot be negative ({value})")
    elif value > MAX_REPLICAS:
        ctx.error(parts, f"more than {MAX_REPLICAS} replicas are not supported")


def check_scale(ctx: Context, parts: list, value: Any) -> None:
    check_replicas(ctx, parts, value)
    svc = ctx.services.get(parts[1]) or {}
    deploy = svc.get("deploy") if isinstance(svc.get("deploy"), dict) else {}
    if "replicas" in deploy and deploy["replicas"] != value:
        ctx.error(parts, f"scale ({value}) and deploy.replicas ({deploy['replicas']}) differ")


def check_network(ctx: Context, parts: list, cfg: Any) -> None:
    if not isinstance(cfg, dict):
        return
    key = parts[1]
    for flag in NETWORK_FLAGS:
        # the schema lets strings through for interpolation; after it, only true/false are
        # booleans (compose-go's cast), anything else would silently read as false
        if flag in cfg and not isinstance(cfg[flag], bool) and cfg[flag] is not None:
            ctx.error(parts + [flag], f'must be a boolean (true or false), not "{cfg[flag]}"')
    if cfg.get("external") is True:
        extra = [k for k in cfg if k not in ("name", "external") and not k.startswith("x-")]
        for k in extra:
            ctx.error(parts + [k], f'external network "{key}" cannot set {k} (only name)')
        return
    driver = cfg.get("driver", "bridge")
    if driver not in BUILTIN_DRIVERS:
        hint = difflib.get_close_matches(str(driver), BUILTIN_DRIVERS, n=1)
        ctx.error(parts + ["driver"], f'unknown network driver "{driver}"'
                  + (f' (did you mean "{hint[0]}"?)' if hint else f" (expected one of {', '.join(BUILTIN_DRIVERS)})"))
    opts = cfg.get("driver_opts") if isinstance(cfg.get("driver_opts"), dict) else {}
    opath = parts + ["driver_opts"]
    if OPT_BRIDGE_NAME in opts:
        name = str(opts[OPT_BRIDGE_NAME])
        if len(name.encode()) > IFNAMSIZ:
            ctx.error(opath + [OPT_BRIDGE_NAME], f'bridge name "{name}" is longer than {IFNAMSIZ} bytes')
        elif not name or _IFNAME_BAD.search(name) or name in (".", ".."):
            ctx.error(opath + [OPT_BRIDGE_NAME], f'invalid bridge name "{name}"')
    if OPT_MTU in opts:
        mtu = str(opts[OPT_MTU]).strip()
        if not re.fullmatch(r"\d+", mtu):
            ctx.error(opath + [OPT_MTU], f'MTU must be an integer, not "{mtu}"')
        elif not 68 <= int(mtu) <= 65535:
            ctx.error(opath + [OPT_MTU], f"MTU {mtu} is outside 68-65535")
    if driver == "macvlan" and "macvlan_mode" in opts and opts["macvlan_mode"] not in MACVLAN_MODES:
        ctx.error(opath + ["macvlan_mode"], f'invalid macvlan mode "{opts["macvlan_mode"]}": '
                  f"expected {', '.join(MACVLAN_MODES)}")
    if driver == "ipvlan":
        if "ipvlan_mode" in opts and opts["ipvlan_mode"] not in IPVLAN_MODES:
            ctx.error(opath + ["ipvlan_mode"], f'invalid ipvlan mode "{opts["ipvlan_mode"]}": '
                      f"expected {', '.join(IPVLAN_MODES)}")
        if "ipvlan_flag" in opts and opts["ipvlan_flag"] not in IPVLAN_FLAGS:
            ctx.error(opath + ["ipvlan_flag"], f'invalid ipvlan flag "{opts["ipvlan_flag"]}": '
                      f"expected {', '.join(IPVLAN_FLAGS)}")
    if driver in ("macvlan", "ipvlan") and "parent" in opts:
        parent = str(opts["parent"])
        if len(parent.encode()) > IFNAMSIZ or not parent or _IFNAME_BAD.search(parent):
            ctx.error(opath + ["parent"], f'invalid parent interface "{parent}"')


def check_ipam_config(ctx: Context, parts: list, cfg: Any) -> None:
    if not isinstance(cfg, dict):
        return
    subnet = None
    if "subnet" in cfg:
        text = str(cfg["subnet"])
        subnet = _net(text)
        if subnet is None:
            try:
                loose = ipaddress.ip_network(text.strip(), strict=False)
                ctx.error(parts + ["subnet"], f'subnet "{text}" has host bits set (did you mean {loose}?)')
            except ValueError:
                ctx.error(parts + ["subnet"], f'invalid subnet "{text}": expected CIDR like 172.28.0.0/16')
    for key in ("gateway", "ip_range"):
        if key not in cfg:
            continue
        text = str(cfg[key])
        value = _ip(text) if key == "gateway" else _net(text)
        if value is None:
            what = "IP address" if key == "gateway" else "CIDR range"
            ctx.error(parts + [key], f'invalid {key} "{text}": expected an {what}')
        elif "subnet" not in cfg:
            ctx.error(parts + [key], f"{key} needs a subnet in the same ipam.config entry")
        elif subnet is not None:
            inside = value in subnet if key == "gateway" else (value.version == subnet.version and value.subnet_of(subnet))
            if not inside:
                ctx.error(parts + [key], f"{key} {value} is outside subnet {subnet}")
    aux = cfg.get("aux_addresses")
    if isinstance(aux, dict):
        for name, text in aux.items():
            addr = _ip(text)
            if addr is None:
                ctx.error(parts + ["aux_addresses", name], f'invalid address "{text}"')
            elif subnet is not None and addr not in subnet:
                ctx.error(parts + ["aux_addresses", name], f"address {addr} is outside subnet {subnet}")


SERVICE_RULES: list[tuple[str, Callable[[Context, list, Any], None]]] = [
    ("services.*.networks.*", check_attachment),
    ("services.*.networks.*.ipv4_address", check_static_address),
    ("services.*.networks.*.ipv6_address", check_static_address),
    ("services.*.networks.*.mac_address", check_mac),
    ("services.*.networks.*.priority", check_priority),
    ("services.*.networks.*.gw_priority", check_priority),
    ("services.*.networks.*.link_local_ips[]", check_link_local),
    ("services.*.networks.*.interface_name", check_interface_name),
    ("services.*.mac_address", check_mac),
    ("services.*.network_mode", check_network_mode),
    ("services.*.deploy.replicas", check_replicas),
    ("services.*.scale", check_scale),
    ("services.*.container_name", check_container_name),
    ("services.*.ports[]", check_port),
    ("services.*.expose[]", check_expose),
    ("services.*.dns[]", check_dns),
    ("services.*.extra_hosts[]", check_extra_host),
    ("services.*.depends_on.*", check_depends_on),
    ("services.*.links[]", check_link),
    ("networks.*", check_network),
    ("networks.*.ipam.config[]", check_ipam_config),
]


# --- project-wide rules ------------------------------------------------------------------------


def check_duplicate_container_names(ctx: Context) -> None:
    seen: dict[str, str] = {}
    for name, svc in ctx.services.items():
        cname = svc.get("container_name")
        if cname is None:
            continue
        if cname in seen:
            ctx.error(["services", name, "container_name"], f'container name "{cname}" is already used by service "{seen[cname]}"')
        else:
            seen[cname] = name


def check_duplicate_interface_names(ctx: Context) -> None:
    for name, svc in ctx.services.items():
        nets = svc.get("networks")
        if not isinstance(nets, dict):
            continue
        seen: dict[str, str] = {}
        for net, cfg in nets.items():
            ifname = cfg.get("interface_name") if isinstance(cfg, dict) else None
            if ifname is None:
                continue
            if ifname in seen:
                ctx.error(["services", name, "networks", net, "interface_name"],
                          f'interface name "{ifname}" is already used on network "{seen[ifname]}"')
            seen[ifname] = net


def check_overlapping_subnets(ctx: Context) -> None:
    subnets: list[tuple[Any, list]] = []
    for key, cfg in ctx.networks.items():
        if not isinstance(cfg, dict) or cfg.get("external") is True:
            continue
        ipam = cfg.get("ipam") if isinstance(cfg.get("ipam"), dict) else {}
        for i, pool in enumerate(ipam.get("config") or []):
            if isinstance(pool, dict) and pool.get("subnet"):
                net = _net(pool["subnet"])
                if net is not None:
                    subnets.append((net, ["networks", key, "ipam", "config", i, "subnet"]))
    # sorted by start address, an overlap always shows between neighbours (no quadratic scan)
    subnets.sort(key=lambda item: (item[0].version, int(item[0].network_address), item[0].prefixlen))
    widest: Optional[tuple[Any, list]] = None
    for net, parts in subnets:
        if widest is not None and widest[0].version == net.version and net.subnet_of(widest[0]):
            ctx.error(parts, f"subnet {net} overlaps {widest[0]} of {format_path(widest[1])}")
            continue
        if widest is None or widest[0].version != net.version or \
                int(net.broadcast_address) > int(widest[0].broadcast_address):
            widest = (net, parts)


def check_dependency_cycles(ctx: Context) -> None:
    edges: dict[str, list[tuple[str, list]]] = {}
    for name, svc in ctx.services.items():
        out = edges.setdefault(name, [])
        deps = svc.get("depends_on")
        if isinstance(deps, dict):
            out.extend((d, ["services", name, "depends_on", d]) for d in deps)
        for i, link in enumerate(svc.get("links") or []):
            out.append((str(link).partition(":")[0], ["services", name, "links", i]))
        mode = svc.get("network_mode")
        if isinstance(mode, str) and mode.startswith("service:"):
            out.append((mode[len("service:"):], ["services", name, "network_mode"]))
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    reported: set[frozenset] = set()
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, i = stack[-1]
            targets = edges.get(node, [])
            if i >= len(targets):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            target, where = targets[i]
            if target not in edges or target == node:
                continue  # unknown services and self-references have their own messages
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    ctx.error(where, "dependency cycle: " + " -> ".join(cycle))
            elif not state.get(target):
                state[target] = 1
                stack.append((target, 0))
                path.append(target)


PROJECT_RULES: list[Callable[[Context], None]] = [
    check_duplicate_container_names,
    check_duplicate_interface_names,
    check_overlapping_subnets,
    check_dependency_cycles,
]


def run_checks(data: dict, loc: Loc, raw: dict) -> list[ConfigError]:
    ctx = Context(data, loc, raw)
    for pattern, rule in SERVICE_RULES:
        for parts, value in iter_matches(data, pattern):
            rule(ctx, parts, value)
    for project_rule in PROJECT_RULES:
        project_rule(ctx)
    return ctx.errors
