"""Per-service policy, `services.S.x-compose-net.{ingress,egress}`: its checks and its parse.

    services:
      db:
        x-compose-net:
          ingress:
            - from: [api, host]      # services of the project, `host` or `outside`
              ports: ["5432/tcp"]    # PORT[-PORT][/tcp|udp|sctp]; left out: every port
          egress:
            - to: [outside]

A service without `ingress` keeps Docker's behaviour; one with it accepts new connections only
from what its rules name (replies always pass), as a Kubernetes NetworkPolicy selecting a pod.
`egress` is the same in the other direction. The checks run on normalized data (a project rule
of `checks`): an unknown service or word, a bad port, an empty list are errors; a rule that can
never match (its peer shares no network with the service and reaches no published port of it)
is a warning. `parse` turns checked data into the model's `PolicyRule`s.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Optional

from compose_net.model import PROTOCOLS, PolicyPort, PolicyRule

EXTENSION = "x-compose-net"
DIRECTIONS = {"ingress": "from", "egress": "to"}
HOST, OUTSIDE = "host", "outside"
WORDS = (HOST, OUTSIDE)
_PORT_RE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?(?:/([A-Za-z]+))?")


def parse_port(value: Any) -> PolicyPort:
    """`5432`, `5432/tcp`, `8000-8010/udp` → PolicyPort; ValueError with a message otherwise."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    m = _PORT_RE.fullmatch(text) if text is not None else None
    if m is None:
        raise ValueError("expected PORT[-PORT][/PROTOCOL]")
    first = int(m.group(1))
    last = int(m.group(2) or first)
    protocol = (m.group(3) or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol \"{protocol}\" is not one of {', '.join(PROTOCOLS)}")
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise ValueError("ports are 1-65535")
    if first > last:
        raise ValueError(f"range {first}-{last} is reversed")
    return PolicyPort(first, last, protocol)


def _shown(value: Any) -> str:
    from compose_net.loader.checks import shown

    return shown(value)


def _peers(value: Any) -> list:
    return [value] if isinstance(value, str) else (value if isinstance(value, list) else [])


def parse(name: str, svc: dict) -> tuple[Optional[tuple[PolicyRule, ...]], Optional[tuple[PolicyRule, ...]]]:
    """(ingress, egress) of a checked service: None where it has no such key (Docker's behaviour)."""
    ext = svc.get(EXTENSION)
    if not isinstance(ext, dict):
        return None, None
    out = []
    for direction, peer_key in DIRECTIONS.items():
        rules = ext.get(direction)
        if rules is None:
            out.append(None)
            continue
        parsed = []
        for i, rule in enumerate(rules or ()):
            ports = tuple(parse_port(p) for p in rule.get("ports") or ())
            parsed.append(PolicyRule(peers=tuple(str(p) for p in _peers(rule.get(peer_key))), ports=ports,
                                     keypath=f"services.{name}.{EXTENSION}.{direction}[{i}]"))
        out.append(tuple(parsed))
    return out[0], out[1]


# --- checks ----------------------------------------------------------------------------------


def check(ctx: Any) -> None:
    """Every problem of every service's policy (a `checks` project rule)."""
    for name, svc in ctx.services.items():
        if not isinstance(svc, dict) or EXTENSION not in svc:
            continue
        base = ["services", name, EXTENSION]
        ext = svc[EXTENSION]
        if not isinstance(ext, dict):
            ctx.error(base, "must be a mapping with ingress and/or egress")
            continue
        for key in ext:
            if key not in DIRECTIONS:
                ctx.error(base + [key], f"unknown key {_shown(key)}: expected ingress or egress")
        if not any(d in ext for d in DIRECTIONS):
            continue
        mode = svc.get("network_mode")
        if isinstance(mode, str) and (mode == "host" or mode.startswith(("service:", "container:"))):
            owner = f'the policy of "{mode[len("service:"):]}"' if mode.startswith("service:") else "no policy"
            ctx.error(base, f"network_mode {_shown(mode)} uses a network namespace this service does not own: "
                            f"{owner} applies to it")
            continue
        for direction, peer_key in DIRECTIONS.items():
            if direction in ext:
                _check_rules(ctx, name, base + [direction], ext[direction], direction, peer_key)


def _check_rules(ctx: Any, name: str, parts: list, rules: Any, direction: str, peer_key: str) -> None:
    if not isinstance(rules, list):
        ctx.error(parts, f"must be a list of rules ({peer_key}: [...], ports: [...]); [] allows nothing")
        return
    for i, rule in enumerate(rules):
        here = parts + [i]
        if not isinstance(rule, dict):
            ctx.error(here, f"a rule is a mapping with {peer_key} and optional ports")
            continue
        for key in rule:
            if key not in (peer_key, "ports"):
                hint = f' ({direction} rules name their peers under "{peer_key}")' if key in DIRECTIONS.values() else ""
                ctx.error(here + [key], f"unknown key {_shown(key)}{hint}")
        if peer_key not in rule:
            ctx.error(here, f'missing "{peer_key}": the services, host or outside this rule allows')
        else:
            _check_peers(ctx, name, here + [peer_key], rule[peer_key], direction)
        if "ports" in rule:
            _check_ports(ctx, here + ["ports"], rule["ports"])


def _check_peers(ctx: Any, name: str, parts: list, peers: Any, direction: str) -> None:
    if not isinstance(peers, (list, str)) or peers == []:
        ctx.error(parts, "expected a non-empty list of services, host or outside")
        return
    for j, peer in enumerate(_peers(peers)):
        where = parts + [j] if isinstance(peers, list) else parts
        if not isinstance(peer, str):
            ctx.error(where, f"expected a service name, host or outside, not {_shown(peer)}")
        elif peer in WORDS:
            _check_word(ctx, name, where, peer, direction)
        elif peer not in ctx.services:
            if peer in (ctx.raw.get("services") or {}):
                ctx.error(where, f'service "{peer}" is not enabled by any active profile')
            else:
                close = difflib.get_close_matches(peer, list(ctx.services) + list(WORDS), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                ctx.error(where, f'undefined service "{peer}"{hint}')
        else:
            _check_reachable(ctx, name, where, peer, direction)


def _check_ports(ctx: Any, parts: list, ports: Any) -> None:
    if not isinstance(ports, list) or not ports:
        ctx.error(parts, "expected a non-empty list of PORT[-PORT][/PROTOCOL]; leave ports out for every port")
        return
    for j, port in enumerate(ports):
        try:
            parse_port(port)
        except ValueError as exc:
            ctx.error(parts + [j], f"invalid port {_shown(port)}: {exc}")


# --- rules that can never match (warnings) ---------------------------------------------------


def _networks(ctx: Any, name: str) -> set[str]:
    svc = ctx.services.get(name) or {}
    mode = svc.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:"):
        return _networks(ctx, mode[len("service:"):]) if mode[len("service:"):] != name else set()
    if mode == "bridge":
        return {"(legacy bridge)"}
    nets = svc.get("networks")
    return set(nets) if isinstance(nets, dict) else set()


def _publishes(ctx: Any, name: str) -> bool:
    svc = ctx.services.get(name) or {}
    ports = svc.get("ports")
    if not isinstance(ports, list) or not ports:
        return False
    nets = _networks(ctx, name)
    return any(not _internal(ctx, n) for n in nets)


def _internal(ctx: Any, network: str) -> bool:
    cfg = ctx.networks.get(network)
    return isinstance(cfg, dict) and cfg.get("internal") is True


def _check_reachable(ctx: Any, name: str, parts: list, peer: str, direction: str) -> None:
    target = name if direction == "ingress" else peer
    source = peer if direction == "ingress" else name
    if (ctx.services.get(source) or {}).get("network_mode") == "host":
        ctx.warn(parts, f'"{source}" uses the host\'s network: its connections come from the host (name host)')
        return
    shared = _networks(ctx, source) & _networks(ctx, target)
    if shared or source == target:
        return
    if _publishes(ctx, target) and any(not _internal(ctx, n) for n in _networks(ctx, source)):
        return
    ctx.warn(parts, f'never matches: "{source}" shares no network with "{target}" and reaches no port '
                    f'"{target}" publishes')


def _check_word(ctx: Any, name: str, parts: list, word: str, direction: str) -> None:
    nets = _networks(ctx, name)
    if not nets:
        ctx.warn(parts, f'never matches: "{name}" has no network')
    elif word == OUTSIDE and direction == "ingress" and not _publishes(ctx, name):
        ctx.warn(parts, f'never matches: outside reaches "{name}" only through published ports, and it publishes none')
    elif word == OUTSIDE and direction == "egress" and all(_internal(ctx, n) for n in nets):
        ctx.warn(parts, f'never matches: "{name}" is on internal networks only')
