"""Project + host facts -> the ops that build the project: the desired side of every plan.

Pure. `layout.Layout` decides names, subnets, addresses, interfaces, routes and ports from the
project's graph; this module turns that layout into ordered ops, asking each network's driver
for the ops of its network and of each attachment, and derives the recorded state (`Summary`),
the firewall's table and the DNS server from the same layout, so what `up` records is exactly
what the firewall and the DNS server are computed from.

Order of ops: host sysctls; networks (bridges, their sysctls and gateway addresses); containers
in the graph's creation order (namespace, IPv6 DAD off, per interface: link, up, addresses;
default routes; the user's `net.*` sysctls; /etc/netns/NAME/{resolv.conf,hosts}); the recorded
state; the firewall's one table; the rules other firewalls of the host need (`hostfw`); the
DNS server.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
from typing import Any, Optional

from compose_net import drivers, hostfw, naming, summary as summaries
from compose_net.drivers.base import HOST, SHARES, UNSUPPORTED
from compose_net.model import Project
from compose_net.plan.layout import HOSTS_HEADER, Box, Layout, layout as _layout, one_token  # noqa: F401 (re-exported)
from compose_net.plan.ops import (DnsStart, FileWrite, NetnsAlias, NetnsCreate, NftApply, Op, Plan, RouteAdd,
                                  SysctlSet, UtsAlias, UtsCreate)
from compose_net.probe import HostFacts

DEFAULT_V4 = ipaddress.IPv4Network("0.0.0.0/0")
DEFAULT_V6 = ipaddress.IPv6Network("::/0")


def summary(project: Project, facts: Optional[HostFacts] = None) -> summaries.Summary:
    """The state `up` records for the project on this host (see `compose_net.summary`)."""
    return _layout(project, facts).summary()


def firewall_op(summary: summaries.Summary) -> Op:
    from compose_net import firewall

    table = firewall.table(summary)
    return NftApply("firewall", naming.TABLE_FAMILY, summary.table, table.document, rules=table.rules)


def plan_up(project: Project, facts: Optional[HostFacts] = None, g: Any = None,
            live: Optional[summaries.Live] = None) -> Plan:
    """Every op that builds the project from nothing, in order, with the IPAM notes and the
    host warnings. `live`: the project's live edits (default: the recorded ones)."""
    # Planning allocates hundreds of thousands of small objects and makes no reference cycles:
    # with the collector on, its full passes over a growing heap made 5,000 services cost 7x
    # what 1,000 do. Pausing it keeps planning linear.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _plan_up(_layout(project, facts, g, live), facts if facts is not None else HostFacts())
    finally:
        if was_enabled:
            gc.enable()


def _plan_up(lay: Layout, facts: HostFacts) -> Plan:
    project = lay.project
    summ = lay.summary()
    ops: list[Op] = _host_ops(lay)
    used_keys = {it.net.key for b in lay.boxes.values() for it in b.ifaces}
    for net in sorted(_own_networks(lay), key=lambda n: n.shared):
        if net.shared and net.key not in used_keys:
            continue
        net_ops, warnings = drivers.get(net.driver).network_ops(net, facts)
        ops += net_ops
        lay.warnings += warnings
    planned: dict[str, list[Op]] = {}
    for box in lay.box_order:
        if box.netns is None or box.mode in (HOST, UNSUPPORTED):
            continue
        if box.shares is not None:
            owner = lay.boxes[box.shares]
            box_ops = _sharer_ops(lay, box, owner, planned[owner.container.name])
        else:
            box_ops = _container_ops(lay, box)
        planned[box.container.name] = box_ops
        ops += box_ops
    path = naming.summary_path(project.name)
    ops.append(FileWrite("state", path, summaries.to_text(summ), mode=0o600))
    ops.append(firewall_op(summ))
    # after the project's own table: its isolation is in place before another owner's chain opens
    host_rules = hostfw.plan(summ, facts.firewall)
    ops += host_rules.ops
    lay.notes += host_rules.notes
    lay.warnings += host_rules.warnings
    if any(b.embedded_dns for b in lay.boxes.values()):
        ops.append(DnsStart("dns", project.name, path))
    return Plan(project.name, tuple(ops), tuple(lay.notes), tuple(dict.fromkeys(lay.warnings)), summ)


def plan_changes(project: Project, facts: HostFacts, recorded: tuple[Op, ...], observed: Any,
                 desired: Optional[Plan] = None) -> Plan:
    """What `up` applies: the desired plan (`plan_up`, made here unless given) held against what
    the journal records and what the kernel really has."""
    return against_kernel(desired if desired is not None else plan_up(project, facts), facts, recorded, observed)


def against_kernel(desired: Plan, facts: HostFacts, recorded: tuple[Op, ...], observed: Any) -> Plan:
    """The desired plan held against the journal and the observed kernel (`plan.reconcile`)."""
    from compose_net.plan.reconcile import reconcile

    return reconcile(desired, recorded, observed, shared_in_use(desired.project, facts))


def edit_scope(desired: Plan, recorded: tuple[Op, ...]) -> tuple[Op, ...]:
    """What a live edit must observe: the desired ops the journal does not hold and the recorded
    ones the edit drops. Not the running DNS server: an edit changes its records, so it is
    reloaded anyway (`plan_edit`), and looking at its sockets in every namespace costs more
    than the reload."""
    want, have = set(desired.ops), set(recorded)
    return (tuple(op for op in desired.ops if op not in have)
            + tuple(op for op in recorded if op not in want))


def plan_edit(project: str, facts: HostFacts, desired: Plan, recorded: tuple[Op, ...], observed: Any) -> Plan:
    """What a live edit (`network connect/disconnect`, `run`, `rm`) applies: the difference
    between `desired` (the project with the edit) and the journal, checked against the kernel
    for what the edit touches (`edit_scope`); the rest is trusted as recorded."""
    from compose_net.plan.reconcile import reconcile

    import dataclasses

    have = set(recorded)
    trusted = frozenset(op for op in desired.ops if op in have and not isinstance(op, DnsStart))
    plan = reconcile(desired, recorded, observed, shared_in_use(project, facts), trusted)
    # the DNS server was not looked at (edit_scope): it reloads the records the edit changed
    ops = tuple(dataclasses.replace(op, note="reload: the records changed")
                if isinstance(op, DnsStart) and op in have else op for op in plan.ops)
    return dataclasses.replace(plan, ops=ops)


def shared_in_use(project: str, facts: HostFacts) -> frozenset[str]:
    """Shared units (the legacy bridge) that other projects use: never removed by this one."""
    return frozenset(f"shared:{n.bridge}" for other in facts.other_projects(project).values()
                     for n in other.networks if n.shared)


def _own_networks(lay: Layout) -> list:
    """The networks this plan creates: the project's own, and the shared legacy bridge."""
    return [n for n in lay.networks.values() if not (n.external and not n.shared)]


def _host_ops(lay: Layout) -> list[Op]:
    if not (any(n.forwards for n in _own_networks(lay)) or any(b.ifaces for b in lay.boxes.values())):
        return []
    ops: list[Op] = [SysctlSet("host", None, "net.ipv4.ip_forward", "1",
                               note="containers' traffic is routed through the host")]
    if any(n.enable_ipv6 or n.subnet(6) for n in lay.networks.values()):
        ops.append(SysctlSet("host", None, "net.ipv6.conf.all.forwarding", "1"))
    return ops


def _container_ops(lay: Layout, box: Box) -> list[Op]:
    """A container's own namespaces, interfaces, routes, sysctls and /etc/netns files."""
    unit, ns, svc = box.unit, box.netns, box.service
    ops: list[Op] = [NetnsCreate(unit, ns), UtsCreate(unit, ns, box.hostname, svc.domainname)]
    if any(it.layout.ipv6 for it in box.ifaces):
        # new links inherit `default`: addresses are usable at once instead of after DAD
        ops.append(SysctlSet(unit, ns, "net.ipv6.conf.default.accept_dad", "0"))
        ops.append(SysctlSet(unit, ns, "net.ipv6.conf.all.accept_dad", "0"))
    for it in box.ifaces:
        ops += drivers.get(it.net.driver).attach_ops(it.net, it.layout)
    for it in box.ifaces:
        if it.default4:
            ops.append(RouteAdd(unit, ns, DEFAULT_V4, it.layout.ifname, it.net.gateway(4),
                                note=f"default route via {it.net.name}"))
        if it.default6:
            ops.append(RouteAdd(unit, ns, DEFAULT_V6, it.layout.ifname, it.net.gateway(6),
                                note=f"IPv6 default route via {it.net.name}"))
    for key, value in svc.sysctls.items():
        if key.startswith("net."):
            ops.append(SysctlSet(unit, ns, key, str(value)))
        else:
            lay.warnings.append(f"{box.container.name}: sysctl {key} is not a network sysctl; ignored")
    return ops + _etc_files(lay, box, box)


def _sharer_ops(lay: Layout, box: Box, owner: Box, owner_ops: list[Op]) -> list[Op]:
    """`network_mode: service:X`: names of its own for X's network and UTS namespaces and a copy
    of X's files, as Docker gives it X's interfaces, hostname, hosts and resolv.conf."""
    # a digest of X's ops: when X is made anew, these names must follow (see NetnsAlias)
    digest = hashlib.sha256("\n".join(op.to_json_text() for op in owner_ops).encode()).hexdigest()[:12]
    return [NetnsAlias(box.unit, box.netns, owner.netns, digest),
            UtsAlias(box.unit, box.netns, owner.netns, digest)] + _etc_files(lay, box, owner)


def _etc_files(lay: Layout, box: Box, source: Box) -> list[Op]:
    """/etc/netns/NAME/{resolv.conf,hosts,hostname} of `box`, with `source`'s contents."""
    name = box.container.name
    return [FileWrite(box.unit, naming.netns_file(name, "resolv.conf"), lay.resolv_conf(source)),
            FileWrite(box.unit, naming.netns_file(name, "hosts"), lay.hosts(source)),
            FileWrite(box.unit, naming.netns_file(name, "hostname"), source.hostname + "\n")]
