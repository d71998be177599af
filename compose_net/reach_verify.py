"""`reach --verify`: every cell of the matrix tried live on a project that is up. The one module
that starts processes for it: a probe agent (`reach_agent.py`) in each namespace that is a target
(listening on the ports in question) or a source (probing), and `outside`: a throwaway
namespace on a veth to the host, made with `ip` and removed before returning.

Probes, per cell (source, target), each with the answer the matrix expects:
- direct: the target's address (on a network they share, else its first) on a port no rule names
  (TCP and UDP: "every port") and on every port the target's ingress or the source's egress names;
- published: every port the target publishes, at the host address a source of its kind uses
  (its gateway; for the host the network's gateway or the `host_ip`; for outside the host end of
  its veth or the `host_ip`);
- to host: the source's gateway; to outside: the outside namespace's address.
A probe passes when the target's own agent answers. Closed is a timeout or a refusal. Beyond
`max_probes` it samples: every probe of a cell that involves policy or a published port, then
a seeded random choice of the rest, and says so. SCTP ports are not probed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

from compose_net import reach
from compose_net.errors import RuntimeFailure

ANY_PORT = 47613  # "every port": a port no rule names
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reach_agent.py")
OUTSIDE_NET = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544 benchmarking: not a real network


@dataclass(frozen=True)
class Probe:
    id: str
    source: str
    target: str
    route: str  # reach.DIRECT or reach.PUBLISHED
    protocol: str
    address: str
    port: int  # where the probe connects
    listen: int  # the port the target listens on (the target port of a published one)
    expected: bool


@dataclass
class Report:
    project: str
    probes: list[Probe]
    results: dict = field(default_factory=dict)  # probe id -> agent's answer
    skipped: list[str] = field(default_factory=list)
    sampled: Optional[str] = None
    seconds: float = 0.0
    total: int = 0

    def passed(self, probe: Probe) -> Optional[bool]:
        got = self.results.get(probe.id)
        return None if got is None else got == f"answer:{probe.target}"

    @property
    def disagreements(self) -> list[Probe]:
        return [p for p in self.probes if self.passed(p) is not None and self.passed(p) != p.expected]


def plan_probes(m: reach.Matrix, sources=None, targets=None) -> list[Probe]:
    facts = m.facts  # the same facts the matrix reads
    probes: list[Probe] = []
    for cell in m.cells(sources, targets, every=True):
        src, dst = cell.source, cell.target
        if src in (reach.HOST, reach.OUTSIDE) and dst in (reach.HOST, reach.OUTSIDE):
            continue
        if src not in (reach.HOST, reach.OUTSIDE) and dst not in (reach.HOST, reach.OUTSIDE) \
                and facts.ns(src) == facts.ns(dst):
            continue  # the same namespace: loopback, nothing of the host's to prove
        probes.extend(_direct(m, cell, len(probes)))
        if dst not in (reach.HOST, reach.OUTSIDE):
            probes.extend(_published(m, cell, len(probes)))
    return probes


def _ports_named(m: reach.Matrix, src: str, dst: str) -> list[tuple[str, int]]:
    facts = m.facts
    ports = [("tcp", ANY_PORT), ("udp", ANY_PORT)]
    for guard in (facts.pol.ingress.get(facts.ns(dst)), facts.pol.egress.get(facts.ns(src))):
        for grant in guard.grants if guard else ():
            for p in grant.ports:
                if p.protocol in ("tcp", "udp") and (p.protocol, p.first) not in ports:
                    ports.append((p.protocol, p.first))
    return ports


def _direct(m: reach.Matrix, cell: reach.Cell, n: int) -> list[Probe]:
    facts = m.facts
    src, dst = cell.source, cell.target
    way = next((w for w in cell.ways if w.route == reach.DIRECT), None)
    if dst == reach.OUTSIDE:
        address = "OUTSIDE"
    elif dst == reach.HOST:
        bridged = facts.bridged(src) if src != reach.OUTSIDE else []
        if not bridged:
            return []
        address = str(bridged[0][0].gateway)
    elif way is not None and way.address:
        address = way.address
    else:
        # closed: still aim where a packet would go, the address on a network they share first
        mine = facts.by_network(src) if src not in (reach.HOST, reach.OUTSIDE) else {}
        ifaces = facts.bridged(dst) or facts.ifaces(dst)
        ifaces = [x for x in ifaces if x[0].network in mine] or ifaces
        if not ifaces:
            return []
        address = str(ifaces[0][0].ipv4.ip)
    out = []
    for proto, port in _ports_named(m, src, dst):
        expected = way is not None and way.covers(proto, port)
        out.append(Probe(f"p{n + len(out)}", src, dst, reach.DIRECT, proto, address, port, port, expected))
    return out


def _published(m: reach.Matrix, cell: reach.Cell, n: int) -> list[Probe]:
    facts = m.facts
    src, dst = cell.source, cell.target
    out = []
    for t in facts.published.get(facts.ns(dst), ()):
        p = t.port
        if p.protocol not in ("tcp", "udp"):
            continue
        host_ip = t.host_ip
        given = host_ip is not None and not host_ip.is_unspecified
        if given:
            address = str(host_ip)
        elif src == reach.HOST:
            address = str(facts.networks[t.network].gateway(4))
        elif src == reach.OUTSIDE:
            address = "HOST"
        else:
            routed = [(i, net) for i, net in facts.bridged(src) if not net.internal]
            if not routed:
                continue  # no route to any host address: nothing to connect to
            address = str(next((i.gateway for i, _ in routed if i.default_route), routed[0][0].gateway))
        expected = any(w.route == reach.PUBLISHED and w.published and
                       any(q == p.protocol and a <= p.published <= b for q, a, b in w.published)
                       for w in cell.ways)
        out.append(Probe(f"p{n + len(out)}", src, dst, reach.PUBLISHED, p.protocol, address, p.published,
                         p.target, expected))
    return out


def sample(m: reach.Matrix, probes: list[Probe], limit: int) -> tuple[list[Probe], Optional[str]]:
    if len(probes) <= limit:
        return probes, None
    facts = m.facts
    guarded = set(facts.pol.ingress) | set(facts.pol.egress)
    first = [p for p in probes if p.route == reach.PUBLISHED or facts.ns(p.source) in guarded
             or facts.ns(p.target) in guarded]
    rng = random.Random(m.summary.project)
    if len(first) > limit:
        chosen = rng.sample(first, limit)
        how = (f"sampled {limit} of {len(probes)} probes: {limit} at random (seed: the project name) of the "
               f"{len(first)} of cells with policy or a published port, none of the others")
    else:
        kept = set(first)
        rest = rng.sample([p for p in probes if p not in kept], limit - len(first))
        chosen = first + rest
        how = (f"sampled {limit} of {len(probes)} probes: every probe of a cell with policy or a published "
               f"port ({len(first)}), then {len(rest)} of the others at random (seed: the project name)")
    chosen = sorted(chosen, key=lambda p: int(p.id[1:]))
    return chosen, how


def verify(m: reach.Matrix, sources=None, targets=None, max_probes: int = 2000, timeout: float = 0.5) -> Report:
    started = time.monotonic()
    planned = plan_probes(m, sources, targets)
    probes, how = sample(m, planned, max_probes)
    report = Report(m.summary.project, probes, sampled=how, total=len(planned))
    outside = _Outside() if any(reach.OUTSIDE in (p.source, p.target) for p in probes) else None
    try:
        if outside is not None:
            outside.create()
            probes = [_placed(p, outside) for p in probes]
            report.probes = probes
        _run(m, report, probes, outside, timeout)
    finally:
        if outside is not None:
            outside.destroy()
    report.seconds = time.monotonic() - started
    return report


def _placed(p: Probe, outside: "_Outside") -> Probe:
    if p.address == "OUTSIDE":
        return Probe(p.id, p.source, p.target, p.route, p.protocol, outside.inner_ip, p.port, p.listen, p.expected)
    if p.address == "HOST":
        return Probe(p.id, p.source, p.target, p.route, p.protocol, outside.host_ip, p.port, p.listen, p.expected)
    return p


def _namespace(m: reach.Matrix, node: str, outside: Optional["_Outside"]) -> Optional[str]:
    if node == reach.HOST:
        return None
    if node == reach.OUTSIDE:
        return outside.ns if outside else None
    return m.summary.container(m.facts.ns(node)).netns


def _run(m: reach.Matrix, report: Report, probes: list[Probe], outside, timeout: float) -> None:
    listen: dict[str, set] = {}
    send: dict[str, list] = {}
    for p in probes:
        target = p.target if p.target in (reach.HOST, reach.OUTSIDE) else m.facts.ns(p.target)
        listen.setdefault(target, set()).add((p.protocol, p.listen))
        send.setdefault(p.source, []).append(p)
    agents: dict[str, subprocess.Popen] = {}
    try:
        for node in set(listen) | set(send):
            ns = _namespace(m, node, outside)
            argv = [sys.executable, "-I", "-S", AGENT]
            if ns is not None:
                argv = ["ip", "netns", "exec", ns] + argv
            agents[node] = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for node, agent in agents.items():
            agent.stdin.write(json.dumps({"name": node, "listen": sorted(listen.get(node, ()))}) + "\n")
            agent.stdin.flush()
        busy = set()
        for node, agent in agents.items():
            line = agent.stdout.readline()
            if not line:
                raise RuntimeFailure(f"reach --verify: the probe agent for {node} did not start")
            for proto, port, why in json.loads(line)["failed"]:
                busy.add((node, proto, port))
                report.skipped.append(f"{node}: cannot listen on {port}/{proto} ({why})")
        for node, agent in agents.items():
            items = [[p.id, p.protocol, p.address, p.port] for p in send.get(node, ())
                     if (_listener(m, p), p.protocol, p.listen) not in busy]
            agent.stdin.write(json.dumps({"probe": items, "timeout": timeout}) + "\n")
            agent.stdin.flush()
        for node, agent in agents.items():
            line = agent.stdout.readline()
            if line:
                report.results.update(json.loads(line)["results"])
    finally:
        for agent in agents.values():
            try:
                agent.stdin.close()
            except OSError:
                pass
        for agent in agents.values():
            try:
                agent.wait(timeout=2)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()


def _listener(m: reach.Matrix, p: Probe) -> str:
    return p.target if p.target in (reach.HOST, reach.OUTSIDE) else m.facts.ns(p.target)


class _Outside:
    """Another machine on the host's uplink: a namespace on a veth pair to the host, /30 from
    198.18.0.0/15 that no route of the host's overlaps, default route through the host."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.ns = f"cn-reach-{tag}"
        self.host_if = f"cnr{tag}"  # not `cn-*`: the isolation rules take that for a project bridge
        self.made = False
        self.host_ip = self.inner_ip = ""

    def _pick(self) -> ipaddress.IPv4Network:
        used = []
        out = subprocess.run(["ip", "-4", "-j", "route", "show", "table", "all"], capture_output=True, text=True)
        for route in json.loads(out.stdout or "[]"):
            dst = route.get("dst", "")
            try:
                used.append(ipaddress.ip_network(dst if dst != "default" else "0.0.0.0/0", strict=False))
            except ValueError:
                continue
        rng = random.Random()
        for _ in range(64):
            net = ipaddress.IPv4Network((int(OUTSIDE_NET.network_address) + 4 * rng.randrange(2 ** 15), 30))
            if not any(u.prefixlen and u.overlaps(net) for u in used):
                return net
        raise RuntimeFailure("reach --verify: no free /30 in 198.18.0.0/15 for the outside namespace")

    def create(self) -> None:
        net = self._pick()
        hosts = list(net.hosts())
        self.host_ip, self.inner_ip = str(hosts[0]), str(hosts[1])
        self.made = True
        for argv in (["ip", "netns", "add", self.ns],
                     ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.ns],
                     ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                     ["ip", "link", "set", self.host_if, "up"],
                     ["ip", "-n", self.ns, "link", "set", "lo", "up"],
                     ["ip", "-n", self.ns, "addr", "add", f"{self.inner_ip}/30", "dev", "eth0"],
                     ["ip", "-n", self.ns, "link", "set", "eth0", "up"],
                     ["ip", "-n", self.ns, "route", "add", "default", "via", self.host_ip]):
            proc = subprocess.run(argv, capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeFailure(f"reach --verify: {' '.join(argv)}: {proc.stderr.strip()}")

    def destroy(self) -> None:
        if not self.made:
            return
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


# --- output ---------------------------------------------------------------------------------


def _words(p: Probe) -> str:
    via = f"{p.address}:{p.port}/{p.protocol}" + (f" (published, to {p.listen})" if p.route == reach.PUBLISHED else "")
    return f"{p.source} -> {p.target} {via}"


def render_text(report: Report) -> str:
    bad = report.disagreements
    cells = {(p.source, p.target) for p in report.probes}
    lines = [f"{report.project}: {len(report.probes)} probes over {len(cells)} cells in {report.seconds:.2f} s, "
             f"{len(bad)} disagree with the matrix"]
    if report.sampled:
        lines.append(report.sampled)
    for why in report.skipped:
        lines.append(f"skipped: {why}")
    for p in bad:
        said = "open" if p.expected else "closed"
        lines.append(f"DISAGREES {_words(p)}: the matrix says {said}, the kernel: {report.results.get(p.id)}")
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> dict:
    return {
        "project": report.project, "seconds": round(report.seconds, 3), "sampled": report.sampled,
        "planned": report.total, "skipped": report.skipped,
        "probes": [{"from": p.source, "to": p.target, "route": p.route, "protocol": p.protocol,
                    "address": p.address, "port": p.port, "expected": p.expected,
                    "got": report.results.get(p.id), "agrees": report.passed(p) == p.expected}
                   for p in report.probes],
    }
