"""Stage 5: the merged file → Compose's canonical ("long") form, still plain data.

What changes: short syntax becomes long (ports, networks list → map, extra_hosts, depends_on),
the implicit `default` network appears when some service needs it, every top-level network gets
its full name, profiles leave services out, `environment` values become strings, numbers written
as strings after interpolation become numbers where Compose expects numbers.

Normalization never fails: an entry it cannot read stays as written and `checks` reports it
with the same parsers (`parse_port`, `parse_extra_host`), so all problems come out together.

Ports in normalized form: {"target": int, "target_end": int, "published": "8080" | "8080-8081" |
None, "host_ip": str | None, "protocol": str, "mode": str, ...}; a range stays one entry here
(the model keeps it whole) and `config_output` expands it to one mapping per port.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional

_RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")
INT_KEYS = ("scale",)


def _as_int(value: Any) -> Any:
    """"3" → 3 (after interpolation); anything else unchanged."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _port_range(text: str, what: str) -> tuple[int, int]:
    m = _RANGE_RE.match(text.strip())
    if not m:
        raise ValueError(f'invalid {what} port "{text}"')
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) is not None else start
    return start, end


def parse_port(value: Any) -> dict:
    """One `ports:` entry (short string, number or long mapping) → normalized dict.
    Raises ValueError with a human message."""
    if isinstance(value, bool):
        raise ValueError(f"invalid port {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"invalid port {value!r}")
        port = int(value)
        return {"target": port, "target_end": port, "published": None, "host_ip": None,
                "protocol": "tcp", "mode": "ingress"}
    if isinstance(value, dict):
        out: dict[str, Any] = {k: v for k, v in value.items() if not k.startswith("x-")}
        target = value.get("target")
        if target is None:
            raise ValueError("missing target port")
        t0, t1 = _port_range(str(target), "target")
        published = value.get("published")
        if published is not None and str(published).strip() == "":
            published = None
        if published is not None:
            _port_range(str(published), "published")
            published = str(published)
        out.update(target=t0, target_end=t1, published=published,
                   host_ip=value.get("host_ip") or None,
                   protocol=str(value.get("protocol", "tcp")).lower(), mode=value.get("mode", "ingress"))
        return out
    if not isinstance(value, str):
        raise ValueError(f"invalid port {value!r}")
    text = value.strip()
    protocol = "tcp"
    if "/" in text:
        text, _, protocol = text.rpartition("/")
        protocol = protocol.lower()
        if not protocol:
            raise ValueError(f'invalid port "{value}": empty protocol')
    host_ip: Optional[str] = None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f'invalid port "{value}": bad [IPv6] host address')
        host_ip = text[1:close]
        rest = text[close + 2 :].split(":")
        if len(rest) == 1:
            rest = ["", rest[0]]
    else:
        parts = text.split(":")
        if len(parts) > 3:
            # an unbracketed IPv6 host address: the last two fields are the ports
            host_ip = ":".join(parts[:-2])
            rest = parts[-2:]
        elif len(parts) == 3:
            host_ip = parts[0] or None
            rest = parts[1:]
        else:
            rest = parts if len(parts) == 2 else ["", parts[0]]
    published_text, target_text = rest
    if not target_text:
        raise ValueError(f'invalid port "{value}": no container port')
    t0, t1 = _port_range(target_text, "container")
    published = None
    if published_text:
        _port_range(published_text, "host")
        published = published_text
    return {"target": t0, "target_end": t1, "published": published, "host_ip": host_ip or None,
            "protocol": protocol, "mode": "ingress"}


def parse_volume(spec: str) -> tuple[str, str]:
    """A short `volumes:` entry (SOURCE:TARGET[:MODE], TARGET) -> (source, target), read as
    compose-go reads it: a colon right after a single letter is a Windows drive's, colons
    inside ${...} do not count. Raises ValueError with compose's reason."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    if len(spec) <= 2:
        return "", spec
    sections: list[str] = []
    buffer = ""
    depth = 0  # inside ${...}
    for i, char in enumerate(spec + "\0"):
        if char == "$" and spec[i + 1 : i + 2] == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == ":" and len(buffer) == 1 and buffer.isalpha():
            pass  # C:\path
        elif char in ":\0" and not depth:
            if not buffer:
                raise ValueError("empty section between colons")
            if len(sections) == 2 and char == ":":
                raise ValueError("too many colons")
            sections.append(buffer)
            buffer = ""
            continue
        buffer += char
    if len(sections) == 1:
        return "", sections[0]
    return sections[0], sections[1]


def volume_is_named(source: str) -> bool:
    """A short volume's source names a volume, not a host path (compose-go's isFilePath)."""
    if not source or source[0] in "./~" or source.startswith("\\\\"):
        return False
    return not (len(source) > 1 and source[0].isalpha() and source[1] == ":")


def parse_extra_host(entry: str) -> tuple[str, str]:
    """`host:ip` or `host=ip` (IPv6 may be bracketed) → (host, ip). Raises ValueError."""
    if not isinstance(entry, str):
        raise ValueError(f"invalid extra_hosts entry {entry!r}")
    if "=" in entry:
        host, _, ip = entry.partition("=")
    elif ":" in entry:
        host, _, ip = entry.partition(":")
    else:
        raise ValueError(f'invalid extra_hosts entry "{entry}": expected HOST:IP or HOST=IP')
    host, ip = host.strip(), ip.strip()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not host or not ip:
        raise ValueError(f'invalid extra_hosts entry "{entry}": expected HOST:IP or HOST=IP')
    return host, ip


def _extra_hosts(value: Any) -> Any:
    entries: list[str] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                entries.append(f"{host}={ip}")
        return entries
    if isinstance(value, list):
        for item in value:
            try:
                host, ip = parse_extra_host(item)
                entries.append(f"{host}={ip}")
            except ValueError:
                entries.append(item)  # checks reports it
        return entries
    return value


def _env_value(value: Any) -> Any:
    """Compose prints numbers and booleans of `environment`, `labels`... as strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _list_or_dict(value: Any, environ: Optional[Mapping[str, str]] = None) -> Any:
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str):
                continue
            key, eq, val = item.partition("=")
            out[key] = val if eq else (environ.get(key) if environ is not None else None)
        return out
    if isinstance(value, dict):
        return {k: _env_value(v) if v is not None or environ is None else environ.get(k) for k, v in value.items()}
    return value


def _networks(value: Any) -> Any:
    if isinstance(value, list):
        return {str(name): None for name in value}
    if isinstance(value, dict):
        out = {}
        for name, cfg in value.items():
            if isinstance(cfg, dict):
                cfg = dict(cfg)
                for key in ("priority", "gw_priority"):
                    if key in cfg:
                        cfg[key] = _as_int(cfg[key])
            out[name] = cfg
        return out
    return value


def _depends_on(value: Any) -> Any:
    if isinstance(value, list):
        return {str(name): {"condition": "service_started", "required": True} for name in value}
    if isinstance(value, dict):
        out = {}
        for name, cfg in value.items():
            cfg = dict(cfg) if isinstance(cfg, dict) else {}
            cfg.setdefault("condition", "service_started")
            cfg.setdefault("required", True)
            out[name] = cfg
        return out
    return value


def _ports(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        try:
            out.append(parse_port(item))
        except ValueError:
            out.append(item)  # checks reports it with the parser's message
    return out


def _string_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


def active_profiles(cli_profiles: Iterable[str], environ: Mapping[str, str]) -> frozenset[str]:
    profiles = set(p for p in cli_profiles if p)
    env = environ.get("COMPOSE_PROFILES", "")
    profiles.update(p.strip() for p in env.split(",") if p.strip())
    return frozenset(profiles)


def raw_dependencies(service: Any) -> list[str]:
    """Names a service (merged data, not yet normalized) depends on: depends_on, links and
    network_mode service:X."""
    if not isinstance(service, dict):
        return []
    out: list[str] = []
    depends = service.get("depends_on")
    if isinstance(depends, (list, dict)):
        out.extend(str(d) for d in depends)
    links = service.get("links")
    if isinstance(links, list):
        out.extend(str(link).split(":", 1)[0] for link in links)
    mode = service.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:"):
        out.append(mode[len("service:"):])
    return out


def targeted_services(services: Mapping[str, Any], targets: Iterable[str]) -> frozenset[str]:
    """The services `up SERVICE...` names and everything they depend on, transitively: Compose
    enables these whatever their profiles (compose-go's EnableServices)."""
    seen: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in seen or name not in services:
            continue
        seen.add(name)
        todo.extend(raw_dependencies(services[name]))
    return frozenset(seen)


def service_enabled(service: Any, profiles: frozenset[str]) -> bool:
    wanted = service.get("profiles") if isinstance(service, dict) else None
    if not wanted or not isinstance(wanted, list):
        return True
    return "*" in profiles or any(p in profiles for p in wanted)


def uses_default_network(service: Any) -> bool:
    return isinstance(service, dict) and not service.get("networks") and service.get("network_mode") is None


def normalize_service(service: dict, environ: Mapping[str, str]) -> dict:
    out = dict(service)
    if "networks" in out:
        out["networks"] = _networks(out["networks"])
    if uses_default_network(out):
        out["networks"] = {"default": None}
    if "ports" in out:
        out["ports"] = _ports(out["ports"])
    if "expose" in out and isinstance(out["expose"], list):
        out["expose"] = [str(x) for x in out["expose"]]
    for key in ("dns", "dns_search", "tmpfs"):
        if key in out:
            out[key] = _string_list(out[key])
    if "extra_hosts" in out:
        out["extra_hosts"] = _extra_hosts(out["extra_hosts"])
    if "depends_on" in out:
        out["depends_on"] = _depends_on(out["depends_on"])
    if "environment" in out:
        out["environment"] = _list_or_dict(out["environment"], environ)
    for key in ("labels", "sysctls", "annotations"):
        if key in out:
            out[key] = _list_or_dict(out[key])
    if "sysctls" in out and isinstance(out["sysctls"], dict):
        out["sysctls"] = {k: _env_value(v) for k, v in out["sysctls"].items()}
    for key in INT_KEYS:
        if key in out:
            out[key] = _as_int(out[key])
    deploy = out.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        out["deploy"] = dict(deploy, replicas=_as_int(deploy["replicas"]))
    return out


def _truthy(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def normalize_network(key: str, network: Any, project: str) -> dict:
    out = dict(network) if isinstance(network, dict) else {}
    external = out.get("external")
    if isinstance(external, dict):
        # the deprecated `external: {name: X}`
        if external.get("name") and not out.get("name"):
            out["name"] = external["name"]
        external = True
    external = _truthy(external)
    if external is not None:
        out["external"] = external
    for flag in ("internal", "attachable", "enable_ipv4", "enable_ipv6"):
        if flag in out:
            out[flag] = _truthy(out[flag])
    if "labels" in out:
        out["labels"] = _list_or_dict(out["labels"])
    if "driver_opts" in out and isinstance(out["driver_opts"], dict):
        out["driver_opts"] = {k: _env_value(v) for k, v in out["driver_opts"].items()}
    if not out.get("name"):
        out["name"] = key if external is True else f"{project}_{key}"
    return out


def normalize(data: dict, project: str, profiles: frozenset[str], environ: Mapping[str, str],
              enabled: frozenset[str] = frozenset()) -> dict:
    """The merged, interpolated, validated data → the canonical data `config` prints.
    `enabled`: services kept whatever their profiles (those `up SERVICE...` targets)."""
    out: dict[str, Any] = {"name": project}
    all_services = data.get("services") or {}
    services = {}
    for name, svc in all_services.items():
        if name not in enabled and not service_enabled(svc, profiles):
            continue
        services[name] = normalize_service(svc if isinstance(svc, dict) else {}, environ)
    out["services"] = services

    declared = data.get("networks") or {}
    used: set[str] = set()
    for svc in services.values():
        nets = svc.get("networks")
        if isinstance(nets, dict):
            used.update(nets)
    left_out_only: set[str] = set()
    for name, svc in all_services.items():
        if name not in services and isinstance(svc, dict):
            nets = svc.get("networks")
            names = nets if isinstance(nets, (list, dict)) else ([] if svc.get("network_mode") else ["default"])
            left_out_only.update(str(n) for n in names)
    networks = {}
    for key, network in declared.items():
        if key in left_out_only and key not in used:
            continue  # used only by services their profiles leave out: Compose drops it too
        networks[key] = normalize_network(key, network, project)
    if "default" in used and "default" not in networks:
        networks["default"] = normalize_network("default", {}, project)
    out["networks"] = networks
    for key in ("volumes", "secrets", "configs", "models"):
        if data.get(key):
            out[key] = data[key]
    for key, value in data.items():
        if key.startswith("x-"):
            out[key] = value
    return out
