"""Stage 3b: `include` — other compose projects pulled into this one.

Each entry (`- path.yml` or `{path: [a.yml, b.yml], env_file: ..., project_directory: ...}`)
is loaded like its own project: its files merged in order, its variables from its own `.env`
(or `env_file`) under the shell environment, its own `include`/`extends` resolved. Its
services, networks, volumes, secrets and configs are added to the including file; a name
defined on both sides is an error, as in Compose.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from compose_net.errors import ConfigError
from compose_net.loader import inputs
from compose_net.loader.source import Loc

SECTIONS = ("services", "networks", "volumes", "secrets", "configs")
MAX_DEPTH = 16
# (paths [(absolute, display)], env files [(absolute, display)], chain) → (data, loc)
ProjectLoader = Callable[[list[tuple[str, str]], list[tuple[str, str]], tuple[str, ...]], tuple[dict, Loc]]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def resolve_include(data: dict, loc: Loc, path: str, load_project: ProjectLoader,
                    chain: tuple[str, ...] = ()) -> tuple[dict, Loc]:
    entries = data.get("include")
    if not entries:
        return data, loc
    kids = dict(loc.children or {})
    iloc = kids.get("include", loc)
    ikids = iloc.children if isinstance(iloc.children, list) else []
    base_dir = os.path.dirname(path)
    out = {k: v for k, v in data.items() if k != "include"}
    out_kids = {k: v for k, v in kids.items() if k != "include"}
    for i, entry in enumerate(entries):
        eloc = ikids[i] if i < len(ikids) else iloc
        spec = {"path": entry} if isinstance(entry, str) else entry
        project_dir = os.path.join(base_dir, spec["project_directory"]) if spec.get("project_directory") else None
        paths = [(os.path.normpath(os.path.join(base_dir, p)), p) for p in _as_list(spec.get("path"))]
        if not paths:
            raise ConfigError(eloc.file, eloc.line, f"include[{i}]", "include needs a path")
        for abs_path, _ in paths:
            if abs_path in chain or abs_path == path:
                raise ConfigError(eloc.file, eloc.line, f"include[{i}]",
                                  f"include cycle: {' -> '.join(os.path.basename(p) for p in chain + (path, abs_path))}")
        if len(chain) >= MAX_DEPTH:
            raise ConfigError(eloc.file, eloc.line, f"include[{i}]", f"includes nest deeper than {MAX_DEPTH}")
        env_dir = project_dir or os.path.dirname(paths[0][0])
        env_files = [(os.path.normpath(os.path.join(base_dir, e)), e) for e in _as_list(spec.get("env_file"))]
        if not env_files:
            default_env = os.path.join(env_dir, ".env")
            inputs.note(default_env)
            env_files = [(default_env, os.path.relpath(default_env, base_dir))] if os.path.isfile(default_env) else []
        sub, sub_loc = load_project(paths, env_files, chain + (path,))
        sub_kids = sub_loc.children if isinstance(sub_loc.children, dict) else {}
        for section in SECTIONS:
            if not sub.get(section):
                continue
            mine = dict(out.get(section) or {})
            mine_loc = out_kids.get(section, Loc(eloc.file, eloc.line, {}, None))
            mine_kids = dict(mine_loc.children or {}) if isinstance(mine_loc.children, dict) else {}
            theirs_kids = sub_kids.get(section, sub_loc).children or {}
            for name, value in sub[section].items():
                if name in mine:
                    where = mine_kids.get(name, mine_loc)
                    raise ConfigError(where.file, where.line, f"{section}.{name}",
                                      f'{section[:-1]} "{name}" is also defined by included {paths[0][1]}')
                mine[name] = value
                mine_kids[name] = theirs_kids.get(name, sub_loc)
            out[section] = mine
            out_kids[section] = Loc(mine_loc.file, mine_loc.line, mine_kids, None)
    return out, Loc(loc.file, loc.line, out_kids, loc.tag)
