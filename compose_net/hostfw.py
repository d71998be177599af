"""Pure: what the project needs from the host's other firewalls, as ops and words.

nftables runs every base chain on a hook, and a packet any of them drops is gone: compose-net's
own table accepting it is not enough when Docker's or ufw's `FORWARD` chain drops by policy, or
when firewalld rejects forwarded traffic of interfaces in no zone. For each such owner the
project's bridges get through the way that owner documents:

- Docker (`ip filter FORWARD` policy drop, with `DOCKER-USER`): accept rules in DOCKER-USER,
  Docker's place for user rules, which FORWARD jumps to first;
- ufw (`ufw-user-forward`) and a hand-made iptables FORWARD policy drop: the owner's user chain
  where it has one, else the head of FORWARD;
- firewalld (`inet firewalld`): the bridges in its `trusted` zone through firewall-cmd when it
  runs (Docker puts docker0 in a zone of target ACCEPT the same way); when it does not, a warning
  with the exact command;
- any other base chain dropping by policy (a native nft table): a warning with the rules to add.

The iptables rules match the project's exact bridge names and accept only; what may cross a
bridge is still decided by compose-net's own table (isolation, internal networks, no new
connections into a bridge), which runs on the same hook. Each rule carries a comment naming
the project, so `down` removes exactly the rules it added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from compose_net.plan.ops import FirewalldAdd, IptablesInsert, Op
from compose_net.probe import BaseChain, HostFirewall
from compose_net.summary import Summary

if TYPE_CHECKING:  # pragma: no cover
    from compose_net.probe import HostFacts

UNIT = "host-firewall"
FIREWALLD_ZONE = "trusted"
IPTABLES_TABLE = "filter"
IPTABLES_FORWARD = "FORWARD"
# user chains, by family, in the order their owners' FORWARD reaches them
USER_CHAINS = {"ip": (("DOCKER-USER", "Docker"), ("ufw-user-forward", "ufw")),
               "ip6": (("DOCKER-USER", "Docker"), ("ufw6-user-forward", "ufw"))}
TOOLS = {"ip": "iptables", "ip6": "ip6tables"}


# container and VM bridges of other tools, by the names they give them: Docker (docker0, br- and
# the network id's first 12 hex digits), libvirt, Podman (netavark, CNI), LXD
FOREIGN_BRIDGE = re.compile(r"docker0|br-[0-9a-f]{12}|virbr[0-9]+|podman[0-9]+|cni-podman[0-9]+|lxdbr[0-9]+")


def foreign_bridges(facts: "HostFacts") -> tuple[str, ...]:
    """Other tools' container bridges on the host (the summary's `foreign_bridges`)."""
    return tuple(sorted(name for name in facts.links if FOREIGN_BRIDGE.fullmatch(name)))


@dataclass(frozen=True)
class Bridge:
    network: str
    name: str
    ipv6: bool


@dataclass(frozen=True)
class HostRules:
    ops: tuple[Op, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def bridges(summary: Summary) -> list[Bridge]:
    """The bridges whose traffic this project routes: its own and the shared legacy bridge
    (an external network's bridge belongs to the project that made it, which adds its rules)."""
    out = []
    for net in summary.networks:
        if net.bridge and (net.shared or not net.external):
            ipv6 = net.enable_ipv6 or any(s.subnet.version == 6 for s in net.subnets)
            out.append(Bridge(net.name, net.bridge, ipv6))
    return out


def comment(project: str, direction: str, network: str) -> str:
    return f"compose-net {project}: {direction} network {network}"


def accept_rules(project: str, bridge: Bridge) -> list[tuple[str, ...]]:
    return [("-i", bridge.name, "-m", "comment", "--comment", comment(project, "from", bridge.network), "-j", "ACCEPT"),
            ("-o", bridge.name, "-m", "comment", "--comment", comment(project, "to", bridge.network), "-j", "ACCEPT")]


def _iptables_owner(fw: HostFirewall, chain: BaseChain) -> Optional[tuple[str, str]]:
    """(chain to insert into, owner) for an iptables-nft FORWARD chain; None for other chains."""
    if chain.table != IPTABLES_TABLE or chain.name != IPTABLES_FORWARD or chain.family not in USER_CHAINS:
        return None
    for name, owner in USER_CHAINS[chain.family]:
        if fw.has(chain.family, IPTABLES_TABLE, name):
            return name, owner
    return IPTABLES_FORWARD, "iptables (hand-made)"


def plan(summary: Summary, fw: HostFirewall) -> HostRules:
    """The ops, notes and warnings for the host's other firewalls (nothing on a bare host)."""
    if not fw.known:
        return HostRules()
    brs = bridges(summary)
    ops: list[Op] = []
    notes: list[str] = []
    warnings: list[str] = []
    forward = [c for c in fw.chains if c.hook == "forward" and c.family in ("ip", "ip6", "inet")]
    for chain in fw.chains:
        if chain.hook != "forward" and chain.policy == "drop":
            notes.append(f"host firewall: {chain.describe()}: drops by policy; compose-net needs nothing there "
                         "(containers' traffic is forwarded)")
    for chain in forward:
        if chain.policy != "drop":
            continue
        todo = [b for b in brs if chain.family != "ip6" or b.ipv6]
        target = _iptables_owner(fw, chain)
        if not todo:
            notes.append(f"host firewall: {chain.describe()} drops forwarded traffic; no bridge of this project needs it")
        elif target is None:
            warnings.append(_native_warning(chain, todo))
        else:
            name, owner = target
            notes.append(f"host firewall: {chain.describe()} drops forwarded traffic ({owner}): "
                         f"{TOOLS[chain.family]} accepts {', '.join(b.name for b in todo)} in {chain.table} {name}; "
                         "compose-net's own table still decides what crosses them")
            ops += [IptablesInsert(UNIT, chain.family, chain.table, name, rule, owner=owner,
                                   note=f"{owner}'s {chain.table} {chain.name} drops by policy")
                    for b in todo for rule in accept_rules(summary.project, b)]
    if ("inet", "firewalld") in fw.tables() and brs:
        ops_fw, words = _firewalld(fw, brs)
        ops += ops_fw
        (notes if fw.firewalld_running else warnings).append(words)
    return HostRules(tuple(ops), tuple(notes), tuple(warnings))


def _firewalld(fw: HostFirewall, brs: list[Bridge]) -> tuple[list[Op], str]:
    from compose_net.executor.firewalld import argv

    names = ", ".join(b.name for b in brs)
    if fw.firewalld_running:
        return ([FirewalldAdd(UNIT, FIREWALLD_ZONE, b.name, note="firewalld rejects forwarding of interfaces in no zone")
                 for b in brs],
                f"host firewall: firewalld runs and rejects forwarded traffic of interfaces in no zone: "
                f"{names} go in its zone {FIREWALLD_ZONE} (firewall-cmd, runtime only)")
    commands = "; ".join(" ".join(argv("add", FIREWALLD_ZONE, b.name)) for b in brs)
    return [], (f"host firewall: firewalld's table inet firewalld rejects forwarded traffic of interfaces in no "
                f"zone, and firewalld does not run, so compose-net cannot ask it; once it runs: {commands}")


def _native_warning(chain: BaseChain, brs: list[Bridge]) -> str:
    rules = "; ".join(f"nft insert rule {chain.family} {chain.table} {chain.name} {d}ifname {b.name} accept"
                      for b in brs for d in ("i", "o"))
    return (f"host firewall: {chain.describe()} drops forwarded traffic and has no owner compose-net knows; "
            f"the project's traffic is dropped there unless its owner accepts it, e.g.: {rules}")
