"""Stage 3a: `extends` — a service built on another service, of this file or of another file.

The base service (its own `extends` resolved first) is merged with the extending service by the
same rules as `-f` files (`merge.merge_value` on `services.*`), so the local definition wins
for scalars and lists append. Like Compose v2, everything is inherited, `depends_on` included.
A `file:` path is relative to the file that names it; that file goes through the same stages
(parse, interpolate, validate) as a `-f` file and is read once.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from compose_net.errors import ConfigError
from compose_net.keypath import format_path
from compose_net.loader.merge import merge_value
from compose_net.loader.source import Loc

MAX_DEPTH = 32
# (absolute path, display name) → (data, loc) of that file, interpolated and validated; its own
# `extends` are left for the resolver, so a cycle across files is found like one within a file
FileLoader = Callable[[str, str], tuple[dict, Loc]]


def _where(loc: Loc, key: str) -> Loc:
    kids = loc.children if isinstance(loc.children, dict) else {}
    return kids.get(key, loc)


class _Resolver:
    def __init__(self, load_file: FileLoader):
        self.load_file = load_file
        self.done: dict[tuple[str, str], tuple[Any, Loc]] = {}
        self.files: dict[str, tuple[dict, Loc]] = {}

    def service(self, path: str, data: dict, loc: Loc, name: str, chain: list[tuple[str, str]]) -> tuple[Any, Loc]:
        key = (path, name)
        if key in self.done:
            return self.done[key]
        services = data.get("services") or {}
        svc = services[name]
        sloc = _where(_where(loc, "services"), name)
        if not isinstance(svc, dict) or "extends" not in svc:
            self.done[key] = (svc, sloc)
            return svc, sloc
        eloc = _where(sloc, "extends")
        keypath = format_path(["services", name, "extends"])
        if key in chain:
            cycle = " -> ".join(n for _, n in chain[chain.index(key):]) + f" -> {name}"
            raise ConfigError(eloc.file, eloc.line, keypath, f"extends cycle: {cycle}")
        if len(chain) >= MAX_DEPTH:
            raise ConfigError(eloc.file, eloc.line, keypath, f"extends chain deeper than {MAX_DEPTH}")
        ext = svc["extends"]
        base_name = ext if isinstance(ext, str) else ext.get("service")
        base_file = None if isinstance(ext, str) else ext.get("file")
        if base_file:
            base_path = os.path.normpath(os.path.join(os.path.dirname(path), base_file))
            if base_path not in self.files:
                self.files[base_path] = self.load_file(base_path, base_file)
            base_data, base_loc = self.files[base_path]
        else:
            base_path, base_data, base_loc = path, data, loc
        if base_name not in (base_data.get("services") or {}):
            where = f' in "{base_file}"' if base_file else ""
            raise ConfigError(eloc.file, eloc.line, keypath, f'cannot extend undefined service "{base_name}"{where}')
        base, bloc = self.service(base_path, base_data, base_loc, base_name, chain + [key])
        local = {k: v for k, v in svc.items() if k != "extends"}
        lkids = {k: v for k, v in (sloc.children or {}).items() if k != "extends"}
        merged, mloc = merge_value(base, bloc, local, Loc(sloc.file, sloc.line, lkids, None), "services.*")
        # the service keeps the line where this file declares it
        result = (merged, Loc(sloc.file, sloc.line, mloc.children, None))
        self.done[key] = result
        return result


def resolve_extends(data: dict, loc: Loc, path: str, load_file: FileLoader) -> tuple[dict, Loc]:
    """`data` with every `extends` of its services resolved. Raises ConfigError."""
    services = data.get("services")
    if not isinstance(services, dict) or not any(isinstance(s, dict) and "extends" in s for s in services.values()):
        return data, loc
    resolver = _Resolver(load_file)
    new_services = {}
    new_kids = dict(_where(loc, "services").children or {})
    for name in services:
        new_services[name], new_kids[name] = resolver.service(path, data, loc, name, [])
    sloc = _where(loc, "services")
    kids = dict(loc.children or {})
    kids["services"] = Loc(sloc.file, sloc.line, new_kids, None)
    return dict(data, services=new_services), Loc(loc.file, loc.line, kids, loc.tag)
