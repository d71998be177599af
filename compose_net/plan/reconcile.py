"""The plan as a difference: the desired ops held against the journal and the observed kernel.

`reconcile(desired, recorded, observed)` is pure. `desired` is the plan that builds the project
from nothing (`planner.plan_up`); `recorded` the ops the project's journal holds (what earlier
runs made, or may have made); `observed` what the kernel holds now (`observe.read`). The result
is the plan `up` applies, and nothing else:

1. removals: recorded ops the desired plan no longer has (an edit removed a service, a network,
   an address), whose objects still exist: their inverses, newest first, one link at a time
   (the project's link group stays in use), leaving out what goes with an owner removed here
   and what an op of the desired plan replaces in place (a file, the table, the DNS records);
2. repairs and additions: every desired op whose effect the kernel lacks, with the reason as its
   note, in the desired order; a link, route or namespace of ours that exists in a wrong state
   is deleted just before it is made again; and every op whose object is tied to one made again
   here is applied again too (the addresses of a veth made anew, the ports of a new bridge).

A fresh project gets the whole desired plan; an intact, unchanged one no op at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable, Iterable, Optional

from compose_net.observe import LinkFacts, Observed
from compose_net.plan import ops as O
from compose_net.summary import Summary

Key = tuple
# Why the op is needed, and what to run for it (the op itself, maybe after deleting what is in
# its way; or only a lighter op, such as bringing a link up) — or None when the kernel has it.
Verdict = Optional[tuple[str, list[O.Op]]]


@dataclasses.dataclass(frozen=True)
class Context:
    observed: Observed
    ours: frozenset  # object keys the journal records: ours to delete when they are wrong
    gone: frozenset  # object keys this plan's removals take away
    records_digests: dict  # DNS records path -> sha256 of the content the plan writes there
    dns_netns: tuple[str, ...]  # the namespaces the DNS server must listen in

    def mine(self, key: Key) -> bool:
        return key in self.ours


def reconcile(desired: O.Plan, recorded: Iterable[O.Op], observed: Observed,
              shared_in_use: frozenset[str] = frozenset(), trusted: frozenset = frozenset()) -> O.Plan:
    """`desired` made true from what `recorded` and `observed` say there is. `shared_in_use`:
    shared units (the legacy bridge) other projects still use, never removed here. `trusted`:
    desired ops taken to be in place as the journal records them, not checked (a live edit
    looks at what it changes only; repairing the rest is `up`'s job), unless tied to an object
    made again here."""
    recorded = tuple(recorded)
    removals, gone = _removals(desired.ops, recorded, observed, shared_in_use)
    ctx = Context(observed, frozenset(k for op in recorded for k in op.creates()), frozenset(gone),
                  {op.path: _digest(op.content) for op in desired.ops if isinstance(op, O.FileWrite)},
                  _dns_namespaces(desired.state))
    todo: dict[int, tuple[str, list[O.Op]]] = {}
    for i, op in enumerate(desired.ops):
        verdict = None if op in trusted else _check(op, ctx)
        if verdict is not None:
            todo[i] = verdict
    _follow(desired.ops, todo, gone, observed)
    before = set(recorded)
    ops: list[O.Op] = list(removals)
    for i, op in enumerate(desired.ops):
        if i not in todo:
            continue
        reason, run = todo[i]
        for step in run:
            if step is op and op in before:
                step = dataclasses.replace(op, note=f"repair: {reason}")  # else new: the planner's note
            ops.append(step)
    return dataclasses.replace(desired, ops=tuple(ops), record=desired.ops)


def _digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _dns_namespaces(state: Optional[Summary]) -> tuple[str, ...]:
    if state is None:
        return ()
    return tuple(c.netns for c in state.containers if c.netns and not c.shares and c.embedded_dns)


# --- removals ---------------------------------------------------------------------------------


def _removals(desired: tuple[O.Op, ...], recorded: tuple[O.Op, ...], observed: Observed,
              shared_in_use: frozenset[str]) -> tuple[list[O.Op], set[Key]]:
    """Inverses of the recorded ops the desired plan drops, and the keys of what they remove."""
    wanted = set(desired)
    replaced = {k for op in desired if op.in_place for k in op.creates()}
    dropped = [op for op in recorded if op not in wanted and op.inverse() is not None
               and op.unit not in shared_in_use and not (op.in_place and set(op.creates()) & replaced)]
    gone = {k for op in dropped for k in op.creates()}
    out: list[O.Op] = []
    seen: set[O.Op] = set()
    for op in reversed(dropped):
        if any(owner in gone for owner in op.owners()) or not _exists(op, observed):
            continue
        inverse = op.inverse()
        if inverse not in seen:
            seen.add(inverse)
            out.append(dataclasses.replace(inverse, note="removed from the project"))
    return out, gone


def _exists(op: O.Op, observed: Observed) -> bool:
    """Whether anything `op` made is still there to be removed."""
    if isinstance(op, (O.NetnsCreate, O.NetnsAlias)):
        return observed.namespaces.get(op.name) is not None or op.name in observed.stale_netns
    if isinstance(op, (O.UtsCreate, O.UtsAlias)):
        return observed.uts.get(op.name) is not None
    if isinstance(op, O.VethCreate):
        return observed.link(None, op.name) is not None or observed.link(op.peer_ns, op.peer_name) is not None
    if isinstance(op, (O.BridgeCreate, O.VlanCreate, O.VxlanCreate)):
        return observed.link(None, op.name) is not None
    if isinstance(op, (O.MacvlanCreate, O.IpvlanCreate)):
        return observed.link(op.ns, op.name) is not None
    if isinstance(op, O.AddrAdd):
        link = observed.link(op.ns, op.dev)
        return link is not None and op.address in link.addresses
    if isinstance(op, O.RouteAdd):
        facts = observed.namespace(op.ns)
        return facts is not None and any(_same_route(r, op) for r in facts.routes)
    if isinstance(op, O.FileWrite):
        return observed.files.get(op.path) is not None
    if isinstance(op, O.NftApply):
        return observed.tables.get((op.family, op.table)) is not None
    if isinstance(op, O.DnsStart):
        dns = observed.dns.get(op.project)
        return dns is not None and dns.pid != 0
    if isinstance(op, O.IptablesInsert):
        return observed.iptables.get((op.family, op.table, op.chain, op.rule), False)
    if isinstance(op, O.FirewalldAdd):
        return observed.firewalld.get((op.zone, op.interface), False)
    if isinstance(op, (O.FdbSet, O.NeighSet)):
        return _vxlan_entry(op) in observed.vxlan_entries.get(op.dev, frozenset())
    return True


def _vxlan_entry(op) -> tuple:
    if isinstance(op, O.FdbSet):
        return ("fdb", op.mac, op.dst)
    return ("neigh", op.address, op.mac)


# --- what the kernel lacks ------------------------------------------------------------------------


def _check(op: O.Op, ctx: Context) -> Verdict:
    if set(op.creates()) & ctx.gone:
        return ("its old form is removed first", [op])  # an edit changed it: made anew
    check = CHECKS.get(type(op))
    if check is None:
        return ("it cannot be observed", [op])  # no way to tell: apply it again
    verdict = check(op, ctx)
    if verdict is not None and not verdict[1]:
        verdict = (verdict[0], [op])
    return verdict


def _missing(what: str) -> Verdict:
    return (f"{what} is missing", [])


def _link_state(link: LinkFacts, kind: str, **want) -> Optional[str]:
    """What differs between a link and how the plan makes it, or None."""
    if link.kind is not None and link.kind != kind:
        return f"is a {link.kind}, not a {kind}"
    for attr, value in want.items():
        if value is None:
            continue
        have = getattr(link, attr)
        if isinstance(value, str) and isinstance(have, str):
            same = have.lower() == value.lower()
        else:
            same = have == value
        if not same:
            return f"has {attr} {have}, not {value}"
    return None


def _remake(op: O.Op, ns: Optional[str], name: str, why: str, ctx: Context) -> Verdict:
    """A link of ours that is wrong: delete it, then make it again. One that is not ours is
    left alone, and the create fails before anything changes (preflight names it)."""
    key = ("link", ns, name)
    if key in ctx.gone:
        return (f"{name} {why}", [op])  # removed anyway, just before
    if not ctx.mine(key):
        return (f"{name} exists and is not this project's", [])
    return (f"{name} {why}", [O.LinkDelete(op.unit, ns, name, note=f"{name} {why}: made again"), op])


def _check_netns(op: O.NetnsCreate, ctx: Context) -> Verdict:
    facts = ctx.observed.namespaces.get(op.name)
    if facts is None:
        if op.name in ctx.observed.stale_netns and ctx.mine(("netns", op.name)):
            why = f"/run/netns/{op.name} is no namespace"
            return (why, [O.NetnsDelete(op.unit, op.name, note=f"{why}: made again"), op])
        return _missing(f"namespace {op.name}")
    return None


def _check_alias(op, ctx: Context) -> Verdict:
    """A second name (NetnsAlias, UtsAlias) must name the same namespace as its target."""
    uts = isinstance(op, O.UtsAlias)
    names = ctx.observed.uts if uts else ctx.observed.namespaces
    what = "UTS namespace" if uts else "namespace"
    alias, target = names.get(op.name), names.get(op.target)
    if alias is None:
        return _missing(f"{what} name {op.name}")
    if target is not None and alias.inode != target.inode:
        delete = O.UtsDelete(op.unit, op.name) if uts else O.NetnsDelete(op.unit, op.name)
        return _remake_name(op, f"{op.name} names another {what} than {op.target}", ctx, delete)
    return None


def _check_uts(op: O.UtsCreate, ctx: Context) -> Verdict:
    uts = ctx.observed.uts.get(op.name)
    if uts is None:
        return _missing(f"UTS namespace {op.name}")
    if uts.hostname != op.hostname or uts.domainname not in (op.domainname or "", "(none)"):
        return _remake_name(op, f"the hostname in {op.name} is {uts.hostname}", ctx, O.UtsDelete(op.unit, op.name))
    return None


def _remake_name(op: O.Op, why: str, ctx: Context, delete: O.Op) -> Verdict:
    """A namespace name of ours that names the wrong namespace: unregistered, then made again."""
    if not all(ctx.mine(key) for key in op.creates()):
        return (f"{why}, and it is not this project's", [])
    return (why, [dataclasses.replace(delete, note=f"{why}: made again"), op])


def _check_bridge(op: O.BridgeCreate, ctx: Context) -> Verdict:
    link = ctx.observed.link(None, op.name)
    if link is None:
        return _missing(f"bridge {op.name}")
    wrong = _link_state(link, "bridge", group=op.group, mtu=op.mtu, mac=op.mac)
    if wrong:
        return _remake(op, None, op.name, wrong, ctx)
    if not link.up:  # made again, it would lose its ports: only brought up
        return ("down", [O.LinkUp(op.unit, None, op.name, note=f"repair: {op.name} is down")])
    return None


def _check_veth(op: O.VethCreate, ctx: Context) -> Verdict:
    host = ctx.observed.link(None, op.name)
    peer = ctx.observed.link(op.peer_ns, op.peer_name)
    if host is None and peer is None:
        return _missing(f"veth {op.name}")
    if host is None:
        return _remake_peer(op, ctx, f"{op.peer_name} in {op.peer_ns} has lost its host end {op.name}")
    if peer is None:
        return _remake(op, None, op.name, f"has lost its peer {op.peer_name} in {op.peer_ns}", ctx)
    wrong = (_link_state(host, "veth", group=op.group, master=op.master, mtu=op.mtu)
             or _link_state(peer, "veth", mac=op.peer_mac, mtu=op.mtu))
    if not wrong and op.hairpin and host.hairpin is False:
        wrong = "has lost its hairpin mode"
    if wrong:
        return _remake(op, None, op.name, wrong, ctx)
    if not host.up:
        return ("down", [O.LinkUp(op.unit, None, op.name, note=f"repair: {op.name} is down")])
    return None


def _remake_peer(op: O.VethCreate, ctx: Context, why: str) -> Verdict:
    key = ("link", op.peer_ns, op.peer_name)
    if key in ctx.gone:
        return (why, [op])
    if not ctx.mine(key):
        return (why, [])
    return (why, [O.LinkDelete(op.unit, op.peer_ns, op.peer_name, note=f"{why}: made again"), op])


def _check_sublink(op, ctx: Context, kind: str) -> Verdict:
    link = ctx.observed.link(op.ns, op.name)
    if link is None:
        return _missing(f"{kind} {op.name} in {op.ns}")
    wrong = _link_state(link, kind, mac=getattr(op, "mac", None), mtu=op.mtu)
    if wrong:
        return _remake(op, op.ns, op.name, wrong, ctx)
    return None


def _check_host_link(op, ctx: Context, kind: str) -> Verdict:
    link = ctx.observed.link(None, op.name)
    if link is None:
        return _missing(f"{kind} {op.name}")
    wrong = _link_state(link, kind, group=getattr(op, "group", None), master=getattr(op, "master", None))
    if wrong:
        return _remake(op, None, op.name, wrong, ctx)
    return None


def _check_link_up(op: O.LinkUp, ctx: Context) -> Verdict:
    link = ctx.observed.link(op.ns, op.name)
    if link is None:
        return _missing(f"{op.name}")
    return None if link.up else (f"{op.name} is down", [])


def _check_addr(op: O.AddrAdd, ctx: Context) -> Verdict:
    link = ctx.observed.link(op.ns, op.dev)
    if link is None:
        return _missing(op.dev)
    if op.address not in link.addresses:
        return _missing(f"address {op.address}")
    facts = ctx.observed.namespace(op.ns)
    prefix = op.address.network
    if op.ns is not None and facts is not None and prefix.prefixlen < prefix.max_prefixlen \
            and not any(r.dst == prefix and r.dev == op.dev for r in facts.routes):
        # the kernel's route to the address's subnet comes with the address: to get it back,
        # the address is added again
        why = f"the route to {prefix} that comes with address {op.address} is missing"
        return (why, [O.AddrDel(op.unit, op.ns, op.dev, op.address, note=f"{why}: added again"), op])
    return None


def _same_route(route, op) -> bool:
    return (route.dst == op.dst and route.dev == op.dev and route.gateway == op.gateway
            and (op.metric is None or route.metric == op.metric))


def _check_route(op: O.RouteAdd, ctx: Context) -> Verdict:
    facts = ctx.observed.namespace(op.ns)
    if facts is None:
        return _missing(f"namespace {op.ns}")
    if any(_same_route(r, op) for r in facts.routes):
        return None
    # another route to the same destination (someone replaced it): it must go first
    # (one through a link this plan removes goes with it, before: nothing to delete then)
    clash = [r for r in facts.routes if r.dst == op.dst and (op.metric is None or r.metric == op.metric)
             and ("link", op.ns, r.dev or op.dev) not in ctx.gone]
    run: list[O.Op] = [O.RouteDel(op.unit, op.ns, r.dst, r.dev or op.dev, r.gateway, r.metric,
                                  note=f"route {r.dst} via {r.gateway} dev {r.dev} is in the way") for r in clash]
    what = "default route" if op.dst.prefixlen == 0 else f"route {op.dst}"
    return (f"{what} is missing" if not clash else f"{what} goes elsewhere", run + [op] if run else [])


def _check_sysctl(op: O.SysctlSet, ctx: Context) -> Verdict:
    facts = ctx.observed.namespace(op.ns)
    if facts is None:
        return _missing(f"namespace {op.ns}")
    have = facts.sysctls.get(op.key)
    if have is not None and have.split() == str(op.value).split():
        return None
    return (f"{op.key} is {have}" if have is not None else f"{op.key} is missing", [])


def _check_file(op: O.FileWrite, ctx: Context) -> Verdict:
    have = ctx.observed.files.get(op.path)
    if have is None:
        return _missing(op.path)
    return None if have == op.content else (f"{op.path} differs", [])


def _check_table(op: O.NftApply, ctx: Context) -> Verdict:
    from compose_net import firewall

    have = ctx.observed.tables.get((op.family, op.table))
    if have is None:
        return _missing(f"table {op.family} {op.table}")
    return None if have == firewall.shape(_ruleset_items(op)) else (f"table {op.table} differs", [])


def _ruleset_items(op: O.NftApply) -> list:
    import json

    document = json.loads(op.ruleset) if isinstance(op.ruleset, str) else op.ruleset
    return document["nftables"]


def _check_dns(op: O.DnsStart, ctx: Context) -> Verdict:
    dns = ctx.observed.dns.get(op.project)
    if dns is None or not dns.pid:
        return ("the DNS server is not running", [])
    if dns.records != op.records or dns.digest != ctx.records_digests.get(op.records, dns.digest):
        return ("the DNS server serves older records", [])
    missing = [ns for ns in ctx.dns_netns if ns not in dns.listening]
    if missing:
        return (f"the DNS server does not listen in {', '.join(missing[:3])}"
                + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""), [])
    return None


def _check_iptables(op: O.IptablesInsert, ctx: Context) -> Verdict:
    if _exists(op, ctx.observed):
        return None
    return _missing(f"the rule in {op.table} {op.chain}")


def _check_firewalld(op: O.FirewalldAdd, ctx: Context) -> Verdict:
    if ctx.observed.firewalld.get((op.zone, op.interface)):
        return None
    return (f"{op.interface} is not in firewalld's zone {op.zone}", [])


def _check_vxlan_entry(op, ctx: Context) -> Verdict:
    if _exists(op, ctx.observed):
        return None
    return _missing(f"the {'FDB' if isinstance(op, O.FdbSet) else 'neighbour'} entry on {op.dev}")


CHECKS: dict[type, Callable[..., Verdict]] = {
    O.NetnsCreate: _check_netns,
    O.NetnsAlias: _check_alias,
    O.UtsCreate: _check_uts,
    O.UtsAlias: _check_alias,
    O.BridgeCreate: _check_bridge,
    O.VethCreate: _check_veth,
    O.MacvlanCreate: lambda op, ctx: _check_sublink(op, ctx, "macvlan"),
    O.IpvlanCreate: lambda op, ctx: _check_sublink(op, ctx, "ipvlan"),
    O.VlanCreate: lambda op, ctx: _check_host_link(op, ctx, "vlan"),
    O.VxlanCreate: lambda op, ctx: _check_host_link(op, ctx, "vxlan"),
    O.LinkUp: _check_link_up,
    O.AddrAdd: _check_addr,
    O.RouteAdd: _check_route,
    O.SysctlSet: _check_sysctl,
    O.FileWrite: _check_file,
    O.NftApply: _check_table,
    O.DnsStart: _check_dns,
    O.IptablesInsert: _check_iptables,
    O.FirewalldAdd: _check_firewalld,
    O.FdbSet: _check_vxlan_entry,
    O.NeighSet: _check_vxlan_entry,
}


# --- what goes with what ----------------------------------------------------------------------


def _follow(ops: tuple[O.Op, ...], todo: dict[int, tuple[str, list[O.Op]]], gone: set[Key],
            observed: Observed) -> None:
    """Add to `todo` every op tied to an object that is made again or removed here (until
    nothing more is added): a link made anew has none of its old addresses, routes, ports. An op
    whose own object outlives what it is tied to (a bridge port whose bridge is made again, a
    second name of a namespace made again) has that object deleted first."""
    remade = set(gone)
    for i, (_, run) in todo.items():
        if any(step is ops[i] for step in run):
            remade.update(ops[i].creates())
    tied: dict[Key, list[int]] = {}
    for i, op in enumerate(ops):
        for key in op.depends():
            tied.setdefault(key, []).append(i)
    queue = list(remade)
    while queue:
        key = queue.pop()
        for i in tied.get(key, ()):
            if i in todo:
                continue
            op = ops[i]
            why = f"{_name(key)} is made again"
            run: list[O.Op] = [op]
            inverse = op.inverse()
            if key not in op.owners() and inverse is not None and not op.in_place and _exists(op, observed):
                run = [dataclasses.replace(inverse, note=f"{why}: made again with it"), op]
            todo[i] = (why, run)
            for created in op.creates():
                if created not in remade:
                    remade.add(created)
                    queue.append(created)


def _name(key: Key) -> str:
    if key[0] == "link":
        return key[2] + (f" in {key[1]}" if key[1] else "")
    if key[0] == "netns":
        return f"namespace {key[1]}"
    return str(key[-1])


# --- reporting ----------------------------------------------------------------------------------


def differences(ops: Iterable[O.Op], observed: Observed, state: Optional[Summary] = None) -> list[tuple[O.Op, str]]:
    """Each op of `ops` whose effect the kernel lacks, with what is wrong: what `ps`, `ls` and
    `check` report. `state` is the project's recorded state (where the DNS server must listen)."""
    ops = tuple(ops)
    ctx = Context(observed, frozenset(k for op in ops for k in op.creates()), frozenset(),
                  {op.path: _digest(op.content) for op in ops if isinstance(op, O.FileWrite)},
                  _dns_namespaces(state))
    out = []
    for op in ops:
        verdict = _check(op, ctx)
        if verdict is not None:
            out.append((op, verdict[0]))
    return out
