"""Stage 6: semantic checks on normalized data that need no host facts.

Rules are tables keyed by key-path patterns (`*` = any name, `[]` = any list item): each rule
gets the concrete key path and the value there. Project-wide rules (cycles, overlaps,
duplicates) run once. Every problem is collected; `run_checks` returns them all.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from compose_net.errors import ConfigError, one_line
from compose_net.keypath import Part, format_path, locate
from compose_net.loader import inputs, policy
from compose_net.loader.normalize import parse_extra_host, parse_port, parse_volume, volume_is_named
from compose_net.loader.source import Loc
from compose_net.model import BUILTIN_DRIVERS, PROTOCOLS

IFNAMSIZ = 15
# Names a DNS query carries: a label holds 63 bytes, a whole name 253 (RFC 1035 2.3.4).
DNS_LABEL_MAX = 63
DNS_NAME_MAX = 253
# The kernel keeps a container's host name and domain name in its UTS namespace, 64 bytes each
# (sethostname/setdomainname refuse more).
UTS_NAME_MAX = 64
# A container's name is its namespace's file name (/run/netns/NAME, /etc/netns/NAME: 255 bytes),
# and a name the embedded DNS answers, alone and as CONTAINER.NETWORK. One label's worth keeps
# it a valid DNS name everywhere it is used, with room for the network after it.
CONTAINER_NAME_MAX = DNS_LABEL_MAX
# CONTAINER.NETWORK is a DNS name: with a container name of at most 63 bytes and the dot, a
# network name may hold the rest of the 253.
NETWORK_NAME_MAX = DNS_NAME_MAX - CONTAINER_NAME_MAX - 1
# The project names its nftables table (`cn-PROJECT`, 255 bytes at most) and its state directory.
PROJECT_NAME_MAX = 255 - len("cn-")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}")
# what the kernel refuses in a link name (whitespace, "/", ":"), and control characters too
_IFNAME_BAD = re.compile(r"[\s/:\x00-\x1f\x7f]")
# Patterns are used with fullmatch: `$` would let a trailing newline through.
_CONTAINER_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # Docker's characters for names
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")  # RFC 1123
HOST_RULE = 'use labels of letters, digits and "-" (not first or last), separated by "."'
# What Docker's embedded DNS answers: service names, aliases and links may hold "_" too
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9_-]+")
DNS_RULE = 'use labels of letters, digits, "_" and "-", separated by "."'
# A resolver option: `name` or `name:value` (ndots:2, timeout:1, rotate, edns0, ...)
_DNS_OPTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(:[\x21-\x7e]+)?")
# One part of a sysctl name (net.ipv4.conf.eth0.rp_filter, or with "/": net/ipv4/conf/eth0.100/...)
_SYSCTL_PART_RE = re.compile(r"[A-Za-z0-9_@:+-][A-Za-z0-9_@:+.-]*")
_EXPOSE_RE = re.compile(r"\d+(-\d+)?(/(tcp|udp|sctp))?", re.I)
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
    warnings: list = field(default_factory=list)  # ConfigWarning: legal, but surely not meant
    static: dict = field(default_factory=dict)  # (network, address) -> keypath
    bindings: dict = field(default_factory=dict)  # (protocol, port) -> [(host_ip, keypath)]
    subnet_cache: dict = field(default_factory=dict)  # network key -> [ip_network]
    # where relative paths start: the project directory, or for a file that `extends` or
    # `include` pulls in (named as the Loc tree names it) its own; None: paths are not checked
    project_dir: Optional[str] = None
    file_dirs: dict = field(default_factory=dict)

    @property
    def services(self) -> dict:
        return self.data.get("services") or {}

    @property
    def networks(self) -> dict:
        return self.data.get("networks") or {}

    def error(self, parts: list, message: str) -> None:
        file, line = locate(self.loc, self.raw, parts)
        self.errors.append(ConfigError(file, line, format_path(parts), message))

    def warn(self, parts: list, message: str) -> None:
        from compose_net.errors import ConfigWarning, Where

        file, line = locate(self.loc, self.raw, parts)
        self.warnings.append(ConfigWarning(Where(file, line, format_path(parts)), message))

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
    text = str(value).strip()
    if "%" in text:
        # Python takes any text after "%" as an IPv6 zone, newlines included; Docker takes no
        # zone at all (net.ParseIP)
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _net(value: Any) -> Optional[ipaddress._BaseNetwork]:
    text = str(value).strip()
    if "%" in text:
        return None  # no zones, as in _ip
    try:
        return ipaddress.ip_network(text, strict=True)
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


# --- names: every value that becomes a DNS name, a file line or a kernel object's name ---------

def shown(value: Any, limit: int = 80) -> str:
    """A value as the user wrote it, quoted and on one line: control characters escaped (a
    newline in a hostile value must not start a line of its own here either), a long value cut
    (the message says how long it is where that matters)."""
    text = str(value)
    body = one_line(text[:limit].replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{body}..."' if len(text) > limit else f'"{body}"'


def name_problem(text: str, what: str, label: re.Pattern, rule: str, limit: int, why: str = "",
                 rooted: bool = False) -> Optional[str]:
    """Why `text` is not a valid dotted name of its kind (each label matching `label`, at most
    63 bytes; the whole at most `limit` bytes), or None. `rooted`: a trailing dot is allowed."""
    size = len(text.encode())
    if not text:
        return f"{what} must not be empty"
    if size > limit:
        return f"{what} {shown(text)} is {size} bytes long, more than {limit}" + (f" ({why})" if why else "")
    labels = text[:-1].split(".") if rooted and text.endswith(".") else text.split(".")
    for part in labels:
        if not part:
            return f"invalid {what} {shown(text)}: empty label (a leading, trailing or double dot)"
        if len(part.encode()) > DNS_LABEL_MAX:
            return f"{what} {shown(text)} has a label of {len(part.encode())} bytes, more than {DNS_LABEL_MAX}"
        if not label.fullmatch(part):
            return f"invalid {what} {shown(text)}: {rule}"
    return None


def _name_rule(what: str, label: re.Pattern, rule: str, limit: int, why: str = "",
               empty_means_unset: bool = False) -> Callable[[Context, list, Any], None]:
    def check(ctx: Context, parts: list, value: Any) -> None:
        if empty_means_unset and value in ("", None):
            return
        problem = name_problem(str(value), what, label, rule, limit, why)
        if problem:
            ctx.error(parts, problem)

    return check


# RFC 1123 host names; the kernel's UTS namespace holds 64 bytes of each
# (empty, as `hostname: ${HOST:-}` gives, is Docker's "not set")
check_hostname = _name_rule("hostname", _HOST_LABEL_RE, HOST_RULE, UTS_NAME_MAX, "the kernel's host name", True)
check_domainname = _name_rule("domainname", _HOST_LABEL_RE, HOST_RULE, UTS_NAME_MAX, "the kernel's domain name", True)
# names the embedded DNS answers
check_alias = _name_rule("alias", _DNS_LABEL_RE, DNS_RULE, DNS_NAME_MAX)


def check_search_domain(ctx: Context, parts: list, value: Any) -> None:
    text = str(value)
    if text == ".":
        return  # Docker's way of saying "no search domain"
    problem = name_problem(text, "search domain", _HOST_LABEL_RE, HOST_RULE, DNS_NAME_MAX, rooted=True)
    if problem:
        ctx.error(parts, problem)


def check_dns_option(ctx: Context, parts: list, value: Any) -> None:
    if not _DNS_OPTION_RE.fullmatch(str(value)):
        ctx.error(parts, f"invalid resolver option {shown(value)}: expected one word, NAME or NAME:VALUE")


def check_sysctls(ctx: Context, parts: list, value: Any) -> None:
    """A sysctl name becomes a path under /proc/sys, its value the file's content."""
    if not isinstance(value, dict):
        return
    for key, setting in value.items():
        name = str(key)
        steps = name.split("/" if "/" in name else ".")
        if not all(_SYSCTL_PART_RE.fullmatch(step) and step not in (".", "..") for step in steps):
            ctx.error(parts + [key], f"invalid sysctl name {shown(name)}")
        elif setting is not None and any(not ch.isprintable() and ch != "\t" for ch in str(setting)):
            ctx.error(parts + [key], f"sysctl {name} value {shown(setting)} holds a control character")


# --- what docker compose refuses besides names ------------------------------------------------


def check_image_or_build(ctx: Context, parts: list, svc: Any) -> None:
    if isinstance(svc, dict) and not svc.get("image") and svc.get("build") is None and svc.get("provider") is None:
        ctx.error(parts, f"service {shown(parts[1])} has neither an image nor a build context specified")


def check_build_platforms(ctx: Context, parts: list, platforms: Any) -> None:
    platform = (ctx.services.get(parts[1]) or {}).get("platform")
    if isinstance(platforms, list) and platforms and platform and platform not in platforms:
        listed = ", ".join(str(p) for p in platforms)
        ctx.error(parts, f"build.platforms MUST include service.platform {shown(platform)} (it lists {listed})")


def _env_files(value: Any) -> Iterator[tuple[list, str, bool]]:
    """(parts under env_file, path, required) of each entry of `env_file` in any of its forms."""
    if isinstance(value, str):
        yield [], value, True
    elif isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, str):
                yield [i], entry, True
            elif isinstance(entry, dict) and "path" in entry:
                required = entry.get("required", True)
                yield [i, "path"], str(entry["path"]), not (required is False or str(required).lower() == "false")


def check_env_file(ctx: Context, parts: list, value: Any) -> None:
    """As compose: a missing env_file is an error unless `required: false`. A relative path
    starts from the project directory (in a file `extends` or `include` pulls in: that file's)."""
    if ctx.project_dir is None:
        return
    for sub, path, required in _env_files(value):
        if not required:
            continue
        file, _ = locate(ctx.loc, ctx.raw, parts + sub)
        base = ctx.file_dirs.get(file, ctx.project_dir)
        full = os.path.join(base, os.path.expanduser(path))
        where = "" if base == ctx.project_dir or os.path.isabs(path) else \
            f" (next to {shown(os.path.relpath(base, ctx.project_dir))})"
        inputs.note(full)
        if not os.path.exists(full):
            ctx.error(parts + sub, f"env file {shown(path)} not found{where}")
        elif os.path.isdir(full):
            ctx.error(parts + sub, f"env file {shown(path)} is a directory{where}")


def check_volume(ctx: Context, parts: list, value: Any) -> None:
    if isinstance(value, str):
        try:
            source, _ = parse_volume(value)
        except ValueError as e:
            ctx.error(parts, f"invalid spec {shown(value)}: {e}")
            return
        named = volume_is_named(source)
    elif isinstance(value, dict):
        source = str(value.get("source") or "")
        named = value.get("type") == "volume" and bool(source)
    else:
        return
    if named and source not in (ctx.data.get("volumes") or {}):
        ctx.error(parts, f"service {shown(parts[1])} refers to undefined volume {shown(source)}")


# --- rules per key path ------------------------------------------------------------------------


def check_attachment(ctx: Context, parts: list, cfg: Any) -> None:
    network = parts[3]
    if network not in ctx.networks:
        if network in (ctx.raw.get("networks") or {}):
            ctx.error(parts, f'network {shown(network)} is used only by services no active profile enables')
        else:
            hint = difflib.get_close_matches(network, list(ctx.networks), n=1)
            ctx.error(parts, f'undefined network {shown(network)}' + (f' (did you mean {shown(hint[0])}?)' if hint else ""))
        return


def check_static_address(ctx: Context, parts: list, value: Any) -> None:
    network = (ctx.networks.get(parts[3]) or {}) if isinstance(ctx.networks.get(parts[3]), dict) else {}
    if parts[-1] == "ipv4_address" and network.get("enable_ipv4") is False and value:
        ctx.error(parts, f"IPv4 address {shown(value)} on network {shown(parts[3])}, which has enable_ipv4: false")
        return
    _check_static_address(ctx, parts, value)


def _check_static_address(ctx: Context, parts: list, value: Any) -> None:
    service, network, key = parts[1], parts[3], parts[4]
    version = 4 if key == "ipv4_address" else 6
    addr = _ip(value)
    if addr is None or addr.version != version:
        ctx.error(parts, f'invalid IPv{version} address {shown(value)}')
        return
    if network not in ctx.networks:
        return  # reported as an undefined network
    subnets = [s for s in _subnets(ctx, network) if s.version == version]
    net_cfg = ctx.networks.get(network) or {}
    if version == 6 and net_cfg.get("enable_ipv6") is not True:
        ctx.error(parts, f'static IPv6 address {addr} but network {shown(network)} does not set enable_ipv6: true')
    if not subnets:
        ctx.error(parts, f'static address {addr} needs a user-configured IPv{version} subnet in '
                         f'networks.{network}.ipam.config')
    elif not any(addr in s for s in subnets):
        listed = ", ".join(str(s) for s in subnets)
        ctx.error(parts, f'address {addr} is outside the subnets of network {shown(network)} ({listed})')
    elif any(addr == s.network_address or (s.version == 4 and s.prefixlen < 31 and addr == s.broadcast_address)
             for s in subnets if addr in s):
        ctx.error(parts, f"address {addr} is the network or broadcast address of its subnet")
    replicas = ctx.replicas(service)
    if replicas > 1:
        ctx.error(parts, f"static address {addr} cannot be shared by {replicas} replicas")
    key2 = (network, addr)
    if key2 in ctx.static:
        ctx.error(parts, f"address {addr} is already used by {ctx.static[key2]}")
    else:
        ctx.static[key2] = format_path(parts)


def check_endpoint_opts(ctx: Context, parts: list, value: Any) -> None:
    """Per attachment `driver_opts`: the per-endpoint sysctls become files under /proc/sys."""
    from compose_net.drivers.base import ENDPOINT_SYSCTLS_OPT, endpoint_sysctls

    if isinstance(value, dict) and ENDPOINT_SYSCTLS_OPT in value:
        for message in endpoint_sysctls(value[ENDPOINT_SYSCTLS_OPT])[1]:
            ctx.error(parts + [ENDPOINT_SYSCTLS_OPT], message)


def check_priority(ctx: Context, parts: list, value: Any) -> None:
    if isinstance(value, float) and not value.is_integer():
        ctx.error(parts, f"{parts[-1]} must be an integer, not {value}")


def check_mac(ctx: Context, parts: list, value: Any) -> None:
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value):
        ctx.error(parts, f'invalid MAC address {shown(value)}')


def check_link_local(ctx: Context, parts: list, value: Any) -> None:
    if _ip(value) is None:
        ctx.error(parts, f'invalid IP address {shown(value)}')


def check_interface_name(ctx: Context, parts: list, value: Any) -> None:
    text = str(value)
    if len(text.encode()) > IFNAMSIZ:
        ctx.error(parts, f'interface name {shown(text)} is longer than {IFNAMSIZ} bytes')
    elif not text or text in (".", "..") or _IFNAME_BAD.search(text):
        ctx.error(parts, f'invalid interface name {shown(text)}')


def check_network_mode(ctx: Context, parts: list, value: Any) -> None:
    service = parts[1]
    raw_svc = (ctx.raw.get("services") or {}).get(service) or {}
    text = str(value)
    if raw_svc.get("networks"):
        ctx.error(parts, f"network_mode {shown(text)} cannot be used together with networks")
    if text.startswith("service:"):
        target = text[len("service:"):]
        if not target:
            ctx.error(parts, f"network_mode {shown(text)} needs a service name")
        elif target == service:
            ctx.error(parts, f"network_mode {shown(text)}: a service cannot share its own network namespace")
        else:
            # with replicas, Docker joins the first one: allowed
            ctx.service_ref(parts, target, "network_mode refers to")
    elif text.startswith("container:"):
        if not text[len("container:"):]:
            ctx.error(parts, f"network_mode {shown(text)} needs a container name")
    elif text not in NETWORK_MODES:
        ctx.error(parts, f'invalid network_mode {shown(text)}: expected host, none, bridge, service:NAME or container:NAME')


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
            ctx.error(parts, f"{what} port {a if a == b else f'{a}-{b}'} is out of range 0-65535")
            ok = False
        elif a > b:
            ctx.error(parts, f"{what} port range {a}-{b} is reversed")
            ok = False
    if ok and t0 == 0:
        ctx.error(parts, "container port 0 is not a port")
        ok = False
    protocol = value.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        ctx.error(parts, f'invalid protocol {shown(protocol)}: expected tcp, udp or sctp')
        ok = False
    host_ip = value.get("host_ip")
    if host_ip is not None and _ip(host_ip) is None:
        ctx.error(parts, f'invalid host address {shown(host_ip)}')
        ok = False
    mode = value.get("mode", "ingress")
    if mode not in ("ingress", "host"):
        ctx.error(parts, f'invalid port mode {shown(mode)}: expected ingress or host')
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
    if not _EXPOSE_RE.fullmatch(str(value)):
        ctx.error(parts, f'invalid exposed port {shown(value)}: expected PORT[-PORT][/PROTOCOL]')


def check_dns(ctx: Context, parts: list, value: Any) -> None:
    if _ip(value) is None:
        ctx.error(parts, f'dns server {shown(value)} must be an IP address')


def check_extra_host(ctx: Context, parts: list, value: Any) -> None:
    try:
        host, ip = parse_extra_host(value)
    except ValueError as e:
        ctx.error(parts, str(e))
        return
    problem = name_problem(host, "extra host name", _DNS_LABEL_RE, DNS_RULE, DNS_NAME_MAX)
    if problem:
        ctx.error(parts, problem)
    if ip != "host-gateway" and _ip(ip) is None:
        ctx.error(parts, f'invalid address {shown(ip)} for extra host {shown(host)}')


def check_depends_on(ctx: Context, parts: list, value: Any) -> None:
    service, target = parts[1], parts[3]
    if isinstance(value, dict) and value.get("required") is False and target not in ctx.services:
        return  # an optional dependency may be missing
    if target == service:
        ctx.error(parts, f"service {shown(target)} cannot depend on itself")
        return
    ctx.service_ref(parts, target, "depends on")


def check_link(ctx: Context, parts: list, value: Any) -> None:
    target, colon, alias = str(value).partition(":")
    if not target or (colon and not alias):
        ctx.error(parts, f'invalid link {shown(value)}: expected SERVICE or SERVICE:ALIAS')
        return
    if alias:
        # the alias is a name the embedded DNS answers (and a hosts line on the legacy bridge)
        problem = name_problem(alias, "link alias", _DNS_LABEL_RE, DNS_RULE, DNS_NAME_MAX)
        if problem:
            ctx.error(parts, problem)
    if target == parts[1]:
        ctx.error(parts, f"link {shown(value)}: a service cannot link to itself")
        return
    ctx.service_ref(parts, target, "links to")


def check_container_name(ctx: Context, parts: list, value: Any) -> None:
    """Docker's characters, and at most one DNS label's worth (CONTAINER_NAME_MAX): the name is
    a namespace's file name and a name the embedded DNS answers, also as CONTAINER.NETWORK."""
    text = str(value)
    if not _CONTAINER_NAME_RE.fullmatch(text):
        ctx.error(parts, f'invalid container name {shown(text)}: use letters, digits, "_", "." and "-", '
                         "starting with a letter or digit")
    else:
        problem = name_problem(text, "container name", _DNS_LABEL_RE, DNS_RULE, CONTAINER_NAME_MAX,
                               "a name the embedded DNS answers")
        if problem:
            ctx.error(parts, problem)
    replicas = ctx.replicas(parts[1])
    if replicas > 1:
        ctx.error(parts, f"container_name {shown(text)} cannot be used with {replicas} replicas (names must be unique)")


def check_gpus(ctx: Context, parts: list, value: Any) -> None:
    # the schema takes a string or a list (it has no oneOf); as a string, only "all"
    if isinstance(value, str) and value != "all":
        ctx.error(parts, f"{shown(value)} is not one of: all")


def check_replicas(ctx: Context, parts: list, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(parts, f'replicas must be an integer, not {shown(value)}')
    elif value < 0:
        ctx.error(parts, f"replicas cannot be negative ({value})")
    elif value > MAX_REPLICAS:
        ctx.error(parts, f"replicas {shown(value, 24)}: more than {MAX_REPLICAS} are not supported")


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
            ctx.error(parts + [flag], f'must be a boolean (true or false), not {shown(cfg[flag])}')
    if cfg.get("external") is True:
        extra = [k for k in cfg if k not in ("name", "external") and not k.startswith("x-")]
        for k in extra:
            ctx.error(parts + [k], f'external network {shown(key)} cannot set {k} (only name)')
        return
    driver = cfg.get("driver", "bridge")
    if driver not in BUILTIN_DRIVERS:
        hint = difflib.get_close_matches(str(driver), BUILTIN_DRIVERS, n=1)
        ctx.error(parts + ["driver"], f'unknown network driver {shown(driver)}'
                  + (f' (did you mean {shown(hint[0])}?)' if hint else f" (expected one of {', '.join(BUILTIN_DRIVERS)})"))
    opts = cfg.get("driver_opts") if isinstance(cfg.get("driver_opts"), dict) else {}
    opath = parts + ["driver_opts"]
    if OPT_BRIDGE_NAME in opts:
        name = str(opts[OPT_BRIDGE_NAME])
        if len(name.encode()) > IFNAMSIZ:
            ctx.error(opath + [OPT_BRIDGE_NAME], f'bridge name {shown(name)} is longer than {IFNAMSIZ} bytes')
        elif not name or _IFNAME_BAD.search(name) or name in (".", ".."):
            ctx.error(opath + [OPT_BRIDGE_NAME], f'invalid bridge name {shown(name)}')
    if OPT_MTU in opts:
        mtu = str(opts[OPT_MTU]).strip()
        if not re.fullmatch(r"\d+", mtu):
            ctx.error(opath + [OPT_MTU], f'MTU must be an integer, not {shown(mtu)}')
        elif not 68 <= int(mtu) <= 65535:
            ctx.error(opath + [OPT_MTU], f"MTU {mtu} is outside 68-65535")
    if driver == "macvlan" and "macvlan_mode" in opts and opts["macvlan_mode"] not in MACVLAN_MODES:
        ctx.error(opath + ["macvlan_mode"], f'invalid macvlan mode {shown(opts["macvlan_mode"])}: '
                  f"expected {', '.join(MACVLAN_MODES)}")
    if driver == "ipvlan":
        if "ipvlan_mode" in opts and opts["ipvlan_mode"] not in IPVLAN_MODES:
            ctx.error(opath + ["ipvlan_mode"], f'invalid ipvlan mode {shown(opts["ipvlan_mode"])}: '
                      f"expected {', '.join(IPVLAN_MODES)}")
        if "ipvlan_flag" in opts and opts["ipvlan_flag"] not in IPVLAN_FLAGS:
            ctx.error(opath + ["ipvlan_flag"], f'invalid ipvlan flag {shown(opts["ipvlan_flag"])}: '
                      f"expected {', '.join(IPVLAN_FLAGS)}")
    if driver in ("macvlan", "ipvlan") and "parent" in opts:
        parent = str(opts["parent"])
        if len(parent.encode()) > IFNAMSIZ or not parent or _IFNAME_BAD.search(parent):
            ctx.error(opath + ["parent"], f'invalid parent interface {shown(parent)}')
    if driver in BUILTIN_DRIVERS:
        _check_with_driver(ctx, parts, cfg, driver, opts)


# driver options the loader checks above in its own words; the driver's check says the same
_CHECKED_HERE = {f"driver_opts.{k}" for k in (OPT_BRIDGE_NAME, "macvlan_mode", "ipvlan_mode", "ipvlan_flag", "parent")}


def _check_with_driver(ctx: Context, parts: list, cfg: dict, driver: str, opts: dict) -> None:
    """What the driver says of the network as a whole (drivers own their options), and the
    IPv4 settings an IPv6-only network cannot have."""
    from compose_net import drivers

    flags = {k: cfg.get(k) for k in ("internal", "enable_ipv4", "enable_ipv6")}
    if any(v is not None and not isinstance(v, bool) for v in flags.values()):
        return  # reported above
    problems = drivers.get(driver).check_network({str(k): "" if v is None else str(v) for k, v in opts.items()},
                                                 internal=flags["internal"] is True,
                                                 enable_ipv4=flags["enable_ipv4"] is not False,
                                                 enable_ipv6=flags["enable_ipv6"] is True)
    for path, message in problems:
        if path not in _CHECKED_HERE:
            ctx.error(parts + (["driver_opts", path[len("driver_opts."):]] if path.startswith("driver_opts.")
                               else path.split(".")), message)
    if flags["enable_ipv4"] is False:
        ipam = cfg.get("ipam") if isinstance(cfg.get("ipam"), dict) else {}
        for i, pool in enumerate(ipam.get("config") or []):
            subnet = _net(pool.get("subnet")) if isinstance(pool, dict) else None
            if subnet is not None and subnet.version == 4:
                ctx.error(parts + ["ipam", "config", i, "subnet"],
                          f"IPv4 subnet {subnet} on a network with enable_ipv4: false")


def check_ipam_config(ctx: Context, parts: list, cfg: Any) -> None:
    if not isinstance(cfg, dict):
        return
    subnet = None
    if "subnet" in cfg:
        text = str(cfg["subnet"])
        subnet = _net(text)
        if subnet is None:
            try:
                if "%" in text:
                    raise ValueError(text)
                loose = ipaddress.ip_network(text.strip(), strict=False)
                ctx.error(parts + ["subnet"], f'subnet {shown(text)} has host bits set (did you mean {loose}?)')
            except ValueError:
                ctx.error(parts + ["subnet"], f'invalid subnet {shown(text)}: expected CIDR like 172.28.0.0/16')
    for key in ("gateway", "ip_range"):
        if key not in cfg:
            continue
        text = str(cfg[key])
        value = _ip(text) if key == "gateway" else _net(text)
        if value is None:
            what = "IP address" if key == "gateway" else "CIDR range"
            ctx.error(parts + [key], f'invalid {key} {shown(text)}: expected an {what}')
        elif "subnet" not in cfg:
            ctx.error(parts + [key], f"{key} {value} needs a subnet in the same ipam.config entry")
        elif subnet is not None:
            inside = value in subnet if key == "gateway" else (value.version == subnet.version and value.subnet_of(subnet))
            if not inside:
                ctx.error(parts + [key], f"{key} {value} is outside subnet {subnet}")
    aux = cfg.get("aux_addresses")
    if isinstance(aux, dict):
        for name, text in aux.items():
            addr = _ip(text)
            if addr is None:
                ctx.error(parts + ["aux_addresses", name], f'invalid address {shown(text)}')
            elif subnet is not None and addr not in subnet:
                ctx.error(parts + ["aux_addresses", name], f"address {addr} is outside subnet {subnet}")


SERVICE_RULES: list[tuple[str, Callable[[Context, list, Any], None]]] = [
    ("services.*.networks.*", check_attachment),
    ("services.*.networks.*.ipv4_address", check_static_address),
    ("services.*.networks.*.ipv6_address", check_static_address),
    ("services.*.networks.*.mac_address", check_mac),
    ("services.*.networks.*.priority", check_priority),
    ("services.*.networks.*.driver_opts", check_endpoint_opts),
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
    ("services.*.dns_search[]", check_search_domain),
    ("services.*.dns_opt[]", check_dns_option),
    ("services.*.hostname", check_hostname),
    ("services.*.domainname", check_domainname),
    ("services.*.networks.*.aliases[]", check_alias),
    ("services.*.sysctls", check_sysctls),
    ("services.*.gpus", check_gpus),
    ("services.*.extra_hosts[]", check_extra_host),
    ("services.*.depends_on.*", check_depends_on),
    ("services.*.links[]", check_link),
    ("services.*", check_image_or_build),
    ("services.*.build.platforms", check_build_platforms),
    ("services.*.env_file", check_env_file),
    ("services.*.volumes[]", check_volume),
    ("networks.*", check_network),
    ("networks.*.ipam.config[]", check_ipam_config),
]


# --- project-wide rules ------------------------------------------------------------------------


# what `config` prints under x-compose-net (the planned networks and containers): read back, ignored
EXTENSION_OUTPUT_KEYS = ("networks", "containers")


def check_extension(ctx: Context) -> None:
    """`x-compose-net`: the project's own settings. `default_address_pools` is the JSON of
    daemon.json's `default-address-pools`, each entry checked as the host's are."""
    from compose_net.ipam import pool_problems

    ext = ctx.data.get("x-compose-net")
    if ext is None:
        return
    if not isinstance(ext, dict):
        ctx.error(["x-compose-net"], f"must be a mapping, not {shown(ext)}")
        return
    for key in ext:
        if key != "default_address_pools" and key not in EXTENSION_OUTPUT_KEYS:
            ctx.error(["x-compose-net", key], f"unknown key {shown(key)} (expected default_address_pools)")
    pools = ext.get("default_address_pools")
    if pools is None:
        return
    parts: list = ["x-compose-net", "default_address_pools"]
    if not isinstance(pools, list):
        ctx.error(parts, "must be a list of {base: NETWORK, size: BITS}")
        return
    for i, item in enumerate(pools):
        if not isinstance(item, dict):
            ctx.error(parts + [i], "must be a mapping like {base: 10.10.0.0/16, size: 24}")
            continue
        for key in item:
            if key not in ("base", "size"):
                ctx.error(parts + [i, key], f"unknown key {shown(key)} (expected base and size)")
        _, problems = pool_problems(item.get("base"), item.get("size"))
        for field_name, message in problems:
            ctx.error(parts + [i] + ([field_name] if field_name in item else []), message)


def check_project_name(ctx: Context) -> None:
    name = str(ctx.data.get("name") or "")
    if len(name.encode()) > PROJECT_NAME_MAX:
        ctx.error(["name"], f"project name {shown(name)} is {len(name.encode())} bytes long, more than "
                            f"{PROJECT_NAME_MAX} (it names the project's nftables table cn-NAME)")


def check_service_names(ctx: Context) -> None:
    """A service name is a DNS name (the embedded DNS answers it), and without container_name it
    makes the containers' names PROJECT-SERVICE-N, which must fit like a container_name."""
    project = str(ctx.data.get("name") or "")
    for name, svc in ctx.services.items():
        problem = name_problem(str(name), "service name", _DNS_LABEL_RE, DNS_RULE, DNS_NAME_MAX)
        if problem:
            ctx.error(["services", name], problem)
            continue
        replicas = ctx.replicas(name)
        if svc.get("container_name") is not None or not 1 <= replicas <= MAX_REPLICAS:
            continue
        last = f"{project}-{name}-{replicas}"
        if len(last.encode()) > CONTAINER_NAME_MAX:
            ctx.error(["services", name], f"container name {shown(last)} is {len(last.encode())} bytes long, more "
                                          f"than {CONTAINER_NAME_MAX} (a name the embedded DNS answers): "
                                          "shorten the project or service name, or set container_name")


def check_network_names(ctx: Context) -> None:
    """A network's full name is answered in CONTAINER.NETWORK names and their reverse lookups."""
    raw_networks = ctx.raw.get("networks") if isinstance(ctx.raw.get("networks"), dict) else {}
    for key, cfg in ctx.networks.items():
        name = str(cfg.get("name") or "") if isinstance(cfg, dict) else ""
        raw = raw_networks.get(key)
        where = ["networks", key, "name"] if isinstance(raw, dict) and "name" in raw else ["networks", key]
        if not _CONTAINER_NAME_RE.fullmatch(name):
            ctx.error(where, f'invalid network name {shown(name)}: use letters, digits, "_", "." and "-", '
                             "starting with a letter or digit")
            continue
        problem = name_problem(name, "network name", _DNS_LABEL_RE, DNS_RULE, NETWORK_NAME_MAX,
                               "CONTAINER.NETWORK must stay a DNS name of at most 253 bytes")
        if problem:
            ctx.error(where, problem)


def check_duplicate_container_names(ctx: Context) -> None:
    seen: dict[str, str] = {}
    for name, svc in ctx.services.items():
        cname = svc.get("container_name")
        if cname is None:
            continue
        if cname in seen:
            ctx.error(["services", name, "container_name"], f'container name {shown(cname)} is already used by service {shown(seen[cname])}')
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
                          f'interface name {shown(ifname)} is already used on network {shown(seen[ifname])}')
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
    check_project_name,
    check_service_names,
    check_network_names,
    check_duplicate_container_names,
    check_duplicate_interface_names,
    check_overlapping_subnets,
    check_dependency_cycles,
    check_extension,
    policy.check,
]


def run_checks(data: dict, loc: Loc, raw: dict, project_dir: Optional[str] = None,
               file_dirs: Optional[dict] = None, warnings: Optional[list] = None) -> list[ConfigError]:
    """Every problem of the normalized `data`. `project_dir` (and `file_dirs`, display name of a
    file -> the directory its relative paths start from) enable the checks of paths; `warnings`,
    when given, receives the warnings (ConfigWarning)."""
    ctx = Context(data, loc, raw, project_dir=project_dir, file_dirs=dict(file_dirs or {}))
    for pattern, rule in SERVICE_RULES:
        for parts, value in iter_matches(data, pattern):
            rule(ctx, parts, value)
    for project_rule in PROJECT_RULES:
        project_rule(ctx)
    if warnings is not None:
        warnings.extend(ctx.warnings)
    return ctx.errors
