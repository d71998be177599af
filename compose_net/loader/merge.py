"""Stage 3: merge several compose files (`-f a -f b`) in order, with Compose's rules.

- mappings merge key by key; scalars: the later file wins;
- lists in `LIST_APPEND_UNIQUE` append, dropping entries whose unique key is already there;
- lists in `LIST_REPLACE` (commands) are replaced whole;
- a service's `networks` and `depends_on` merge per entry (list and map forms may be mixed);
- `!reset` removes the value, `!override` replaces it without merging (compose-go's tags).

Every value keeps the `Loc` of the file it came from, so errors after the merge still point at
the line that wrote the value.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from compose_net.loader.source import Loc, Source

# Patterns are dotted paths with `*` for one name (a service, a network...).


def _port_key(item: Any) -> Any:
    if isinstance(item, dict):
        return ("long", str(item.get("host_ip", "")), str(item.get("published", "")), str(item.get("target", "")),
                str(item.get("protocol", "tcp")))
    return ("short", str(item))


def _extra_host_key(item: Any) -> Any:
    return str(item).replace("=", ":", 1) if isinstance(item, str) else _canonical(item)


def _canonical(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=str)


LIST_APPEND_UNIQUE: dict[str, Callable[[Any], Any]] = {
    "services.*.ports": _port_key,
    "services.*.expose": str,
    "services.*.dns": str,
    "services.*.dns_search": str,
    "services.*.dns_opt": str,
    "services.*.extra_hosts": _extra_host_key,
    "services.*.links": str,
    "services.*.external_links": str,
    "services.*.cap_add": str,
    "services.*.cap_drop": str,
    "services.*.security_opt": str,
    "services.*.profiles": str,
    "services.*.networks.*.aliases": str,
    "services.*.networks.*.link_local_ips": str,
    "services.*.volumes": _canonical,
    "services.*.volumes_from": str,
    "services.*.devices": _canonical,
    "services.*.env_file": _canonical,
    "services.*.secrets": _canonical,
    "services.*.configs": _canonical,
    "services.*.tmpfs": str,
    "services.*.group_add": str,
}
LIST_REPLACE = frozenset((
    "services.*.command",
    "services.*.entrypoint",
    "services.*.healthcheck.test",
    "services.*.build.args",
))
# list_or_dict keys: a list of KEY=VALUE merges by KEY like a mapping does.
KEYED_LISTS = frozenset((
    "services.*.environment",
    "services.*.labels",
    "services.*.sysctls",
    "services.*.annotations",
    "services.*.build.args",
    "services.*.build.labels",
    "networks.*.labels",
    "volumes.*.labels",
))
PER_ENTRY = frozenset(("services.*.networks", "services.*.depends_on"))
# Where the key under the parent is a free name (matched by `*` in the patterns).
_NAMED = frozenset(("services", "networks", "volumes", "secrets", "configs", "services.*.networks",
                    "services.*.depends_on", "services.*.deploy.resources", "services.*.ulimits"))


def _child_pattern(pattern: str, key: Any) -> str:
    if pattern in _NAMED:
        return pattern + ".*"
    if isinstance(key, int):
        return pattern + "[]"
    return f"{pattern}.{key}" if pattern else str(key)


def _list_to_map(value: list, loc: Loc, keyed: bool) -> tuple[dict, dict]:
    """`[a, b]` → {a: None, b: None}; with keyed, `[K=V]` → {K: V}."""
    out: dict = {}
    locs: dict = {}
    kids = loc.children or []
    for i, item in enumerate(value):
        item_loc = kids[i] if i < len(kids) else loc
        if keyed and isinstance(item, str):
            key, eq, val = item.partition("=")
            out[key] = val if eq else None
        else:
            key = str(item)
            out[key] = None
        locs[key] = Loc(item_loc.file, item_loc.line, None, None)
    return out, locs


def merge_value(base: Any, bloc: Loc, over: Any, oloc: Loc, pattern: str) -> tuple[Any, Loc]:
    if oloc.tag == "!override" or base is None:
        return over, Loc(oloc.file, oloc.line, oloc.children, None)
    if isinstance(over, dict) and isinstance(base, dict):
        return _merge_maps(base, bloc, over, oloc, pattern)
    if pattern in PER_ENTRY or pattern in KEYED_LISTS:
        if isinstance(base, list) and isinstance(over, list) and pattern in PER_ENTRY:
            return _append_unique(base, bloc, over, oloc, str)
        if isinstance(base, (list, dict)) and isinstance(over, (list, dict)):
            keyed = pattern in KEYED_LISTS
            if isinstance(base, list):
                base, kids = _list_to_map(base, bloc, keyed)
                bloc = Loc(bloc.file, bloc.line, kids, bloc.tag)
            if isinstance(over, list):
                over, kids = _list_to_map(over, oloc, keyed)
                oloc = Loc(oloc.file, oloc.line, kids, oloc.tag)
            return _merge_maps(base, bloc, over, oloc, pattern)
    if isinstance(over, list) and isinstance(base, list) and pattern not in LIST_REPLACE:
        return _append_unique(base, bloc, over, oloc, LIST_APPEND_UNIQUE.get(pattern, _canonical))
    return over, Loc(oloc.file, oloc.line, oloc.children, None)


def _append_unique(base: list, bloc: Loc, over: list, oloc: Loc, key: Callable[[Any], Any]) -> tuple[list, Loc]:
    out = list(base)
    kids = list(bloc.children or [Loc(bloc.file, bloc.line)] * len(base))
    seen = {key(item) for item in base}
    okids = oloc.children or []
    for i, item in enumerate(over):
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        out.append(item)
        kids.append(okids[i] if i < len(okids) else oloc)
    return out, Loc(oloc.file, bloc.line, kids, None)


def _merge_maps(base: dict, bloc: Loc, over: dict, oloc: Loc, pattern: str) -> tuple[dict, Loc]:
    out = dict(base)
    kids = dict(bloc.children or {})
    okids = oloc.children or {}
    for key, value in over.items():
        vloc = okids.get(key, oloc)
        if vloc.tag == "!reset":
            out.pop(key, None)
            kids.pop(key, None)
            continue
        if key in out and not (value is None and isinstance(out[key], dict)):
            out[key], kids[key] = merge_value(out[key], kids.get(key, bloc), value, vloc, _child_pattern(pattern, key))
        elif key in out:
            continue  # `front:` (null) in a later file keeps the earlier settings of `front`
        else:
            out[key], kids[key] = _strip_resets(value, vloc)
    return out, Loc(bloc.file, bloc.line, kids, None)


def _strip_resets(value: Any, loc: Loc) -> tuple[Any, Loc]:
    """A value new in this file: drop `!reset` entries inside it (there is nothing to reset)."""
    if isinstance(value, dict) and loc.children:
        if any(child.tag == "!reset" for child in loc.children.values()):
            value = {k: v for k, v in value.items() if loc.children.get(k, loc).tag != "!reset"}
            loc = Loc(loc.file, loc.line, {k: v for k, v in loc.children.items() if v.tag != "!reset"}, None)
    return value, loc


def merge_sources(sources: list[tuple[dict, Loc]]) -> tuple[dict, Loc]:
    """Fold the (data, loc) of every file, in order, into one."""
    data: dict = {}
    loc: Loc | None = None
    for fdata, floc in sources:
        if loc is None:
            data, loc = _strip_resets(fdata, floc)
            continue
        data, loc = _merge_maps(data, loc, fdata, floc, "")
    assert loc is not None
    return data, loc


def merge_files(sources: list[Source]) -> tuple[dict, Loc]:
    return merge_sources([(s.data, s.loc) for s in sources])
