"""`compose-net config`: the normalized project as YAML or JSON, like `docker compose config`.

Services and their keys are sorted (Compose prints them sorted), every network carries its full
name, ports are in long form with a range expanded to one mapping per port (published as a
string, as Compose prints it). The YAML is written so that our own YAML 1.2 reader reads back
exactly the same values (strings that would read as numbers or booleans are quoted).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from compose_net.loader.source import resolve_plain

# top-level sections this tool does not use but `config` prints as given
TOP_LEVEL_KEPT = ("volumes", "secrets", "configs", "models")
_PORT_KEYS = ("name", "mode", "host_ip", "target", "published", "protocol", "app_protocol")


def _ports(ports: list) -> list[dict]:
    out = []
    for p in ports:
        t0, t1 = p["target"], p["target_end"]
        published = p.get("published")
        p0 = int(str(published).partition("-")[0]) if published else None
        for i in range(t1 - t0 + 1):
            entry: dict[str, Any] = {}
            for key in _PORT_KEYS:
                if key == "target":
                    entry["target"] = t0 + i
                elif key == "published":
                    if published is None:
                        continue
                    # a host range for one container port stays a range (one port of it is chosen)
                    entry["published"] = str(p0 + i) if t1 != t0 else str(published)
                elif key == "host_ip":
                    if p.get("host_ip"):
                        entry["host_ip"] = str(p["host_ip"])
                elif p.get(key) is not None:
                    entry[key] = p[key]
            out.append(entry)
    return out


def _service(svc: dict) -> dict:
    out = {}
    for key in sorted(svc):
        value = svc[key]
        if key == "ports" and isinstance(value, list):
            value = _ports(value)
        out[key] = value
    return out


def config_dict(config: dict) -> dict:
    """The printable form of `LoadResult.config`."""
    out: dict[str, Any] = {"name": config["name"]}
    services = config.get("services") or {}
    out["services"] = {name: _service(services[name]) for name in sorted(services)}
    networks = config.get("networks") or {}
    if networks:
        out["networks"] = {key: dict(sorted(cfg.items())) for key, cfg in sorted(networks.items())}
    for key in TOP_LEVEL_KEPT:
        if config.get(key):
            out[key] = config[key]
    for key, value in config.items():
        if key.startswith("x-"):
            out[key] = value  # extensions stay, as `docker compose config` prints them
    return out


# libyaml's emitter when PyYAML has it: the pure-Python one takes a second for 1,000 services
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> Any:
    # PyYAML decides quoting with YAML 1.1 rules; quote too whatever YAML 1.2 core would not
    # read back as this string ("0o17", "1e3", "True"...).
    if not isinstance(resolve_plain(data), str) or data != data.strip():
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def _no_aliases(self: Any, data: Any) -> bool:
    return True


_Dumper.ignore_aliases = _no_aliases  # type: ignore[method-assign]


def render(result: Any, fmt: str = "yaml", extension: Any = None) -> str:
    """`extension`: what the planner adds under `x-compose-net` (containers and addresses)."""
    data = config_dict(result.config)
    if extension:
        own = data.get("x-compose-net")  # the user's settings (default_address_pools) stay
        data["x-compose-net"] = {**own, **extension} if isinstance(own, dict) else extension
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}")
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
