"""Benchmark: compose-net's embedded DNS against aardvark-dns and dnsmasq, in the same run.

    flock /tmp/compose-net-kernel-tests.lock .venv/bin/python bench/dns.py [--seconds 10] [--repeat 1]

Our server answers at 127.0.0.11:53 inside container namespaces of a project with 100 containers
(100 namespaces, a UDP and a TCP socket in each); dnsperf runs inside the first one. aardvark-dns
and dnsmasq are each given the same 100 names and run inside a namespace made for the bench, with
no upstream; dnsperf runs in that namespace too. Every run: `dnsperf -c 4 -q 100 -l SECONDS`,
once at 1,000 queries/s (latency at light load), once with no rate cap (`-Q` unset: dnsperf keeps
100 queries outstanding per client, so the server, not a cap, sets the rate), for the 100 names
(A records); then once more uncapped with every query a miss of our reply cache (the container
names in ever new letter case: over 10,000 distinct questions, our cache holds 1,024).

Also prints what one miss costs inside our resolver core (no sockets): the microseconds from a
query's bytes to its reply's bytes for a question not asked before.

Prints a table with queries/s, average latency at saturation and at 1,000 qps, RSS, and our
ratios to each peer. Touches nothing outside the namespaces it makes, and removes them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compose_net.dns import control  # noqa: E402

AARDVARK = "/usr/lib/podman/aardvark-dns"
INSTALL_HINT = "apt-get install dnsperf aardvark-dns dnsmasq-base"
N_CONTAINERS = 100
PEER_IP = "10.250.0.1"
MISS_QUESTIONS = 12_000  # distinct questions in the miss run: far more than a reply cache holds


def sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def dnsperf(ns: str, server: str, qfile: Path, seconds: int, rate: int | None = None) -> tuple[float, float]:
    """(queries/s, average latency in ms); `rate` None: no cap, as fast as the server answers."""
    cap = ["-Q", str(rate)] if rate else []
    out = sh("ip", "netns", "exec", ns, "dnsperf", "-s", server, "-p", "53", "-d", str(qfile),
             "-l", str(seconds), "-c", "4", "-q", "100", *cap, timeout=seconds + 30).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lat = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if lost and int(lost.group(1)) > 0:
        print(f"  note: dnsperf lost {lost.group(1)} queries against {server} in {ns}", file=sys.stderr)
    return qps, lat


class Bench:
    def __init__(self, seconds: int):
        self.seconds = seconds
        self.tag = uuid.uuid4().hex[:6]
        self.project = f"bdns{self.tag}"
        self.tmp = Path(tempfile.mkdtemp(prefix="cn-bench-dns-"))
        self.namespaces: list[str] = []
        self.names = [f"svc{i}" for i in range(N_CONTAINERS)]
        self.addrs = [f"10.251.{i // 250}.{i % 250 + 2}" for i in range(N_CONTAINERS)]
        self.qfile = self.tmp / "queries.txt"
        self.qfile.write_text("".join(f"{n} A\n" for n in self.names))
        self.missfile = self.tmp / "misses.txt"
        self.missfile.write_text("".join(f"{n} A\n" for n in case_variants(
            [f"{self.project}-{n}-1" for n in self.names], MISS_QUESTIONS)))

    def netns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def cleanup(self) -> None:
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- ours ------------------------------------------------------------------------

    def ours(self):
        network = f"{self.project}_default"
        containers = []
        for i, (name, addr) in enumerate(zip(self.names, self.addrs)):
            ns = self.netns(f"{self.project}-{i}")
            containers.append({
                "name": f"{self.project}-{name}-1", "service": name, "index": 1,
                "id": uuid.uuid4().hex * 2, "netns": ns, "network_mode": None, "shares": None,
                "hostname": None, "dns": [], "dns_search": [], "dns_opt": [], "links": [],
                "interfaces": [{"network": network, "ifname": "eth0", "ipv4": f"{addr}/16", "ipv6": None,
                                "aliases": [name, f"{self.project}-{name}-1"]}],
            })
        summary = {"version": 1, "project": self.project, "dns_ttl": 600, "host_nameservers": [],
                   "networks": [{"name": network, "internal": False, "enable_ipv6": False}],
                   "containers": containers}
        records = self.tmp / "project.json"
        records.write_text(json.dumps(summary))
        state = self.tmp / "state"
        pid = control.start(self.project, records, state=state)
        return pid, self.namespaces[0], "127.0.0.11", lambda: control.stop(self.project, state=state)

    # --- peers -----------------------------------------------------------------------

    def peer_ns(self, kind: str) -> str:
        ns = self.netns(f"bdns{kind}{self.tag}")
        sh("ip", "-n", ns, "addr", "add", f"{PEER_IP}/16", "dev", "lo")
        return ns

    def aardvark(self):
        ns = self.peer_ns("a")
        conf = self.tmp / "aardvark"
        conf.mkdir()
        lines = [PEER_IP]
        for i, (name, addr) in enumerate(zip(self.names, self.addrs)):
            lines.append(f"{uuid.uuid4().hex * 2} {addr}  {name},{self.project}-{name}-1")
        (conf / "benchnet").write_text("\n".join(lines) + "\n")
        env = dict(os.environ, AARDVARK_NO_PROXY="1")
        sh("ip", "netns", "exec", ns, AARDVARK, "--config", str(conf), "-p", "53", "run", env=env, timeout=20)
        deadline = time.monotonic() + 5
        while not (conf / "aardvark.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int((conf / "aardvark.pid").read_text().strip())
        _wait_answers(ns, PEER_IP, self.names[0])

        def stop():
            _kill(pid)
        return pid, ns, PEER_IP, stop

    def dnsmasq(self):
        ns = self.peer_ns("m")
        hosts = self.tmp / "hosts"
        hosts.write_text("".join(f"{a} {n} {self.project}-{n}-1\n" for n, a in zip(self.names, self.addrs)))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--addn-hosts={hosts}", f"--listen-address={PEER_IP}", "--bind-interfaces", "--port=53",
             "--pid-file=", "--user=root", "--log-facility=-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_answers(ns, PEER_IP, self.names[0])

        def stop():
            proc.terminate()
            proc.wait(5)
        return proc.pid, ns, PEER_IP, stop


def case_variants(names: list[str], count: int) -> list[str]:
    """`count` distinct spellings of `names` (the same names in other letter cases), interleaved so
    that one name's spellings come a whole round of names apart."""
    rng = random.Random(1)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        for name in names:
            for _ in range(50):
                v = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
                if v not in seen:
                    seen.add(v)
                    out.append(v)
                    break
    return out[:count]


def miss_cost(queries: int = 2000, rounds: int = 5) -> float:
    """Microseconds per query through the resolver core for a question never asked before (an
    empty reply cache for every query): one of 100 containers' names, A record, median of rounds."""
    from dnslib import DNSRecord

    from compose_net.dns.records import build
    from compose_net.dns.resolver import ANSWER, Resolver
    from compose_net.summary import ContainerState, InterfaceState, NetworkState, Summary

    net = "bmiss_default"
    containers = tuple(
        ContainerState(name=f"bmiss-svc{i}-1", service=f"svc{i}", netns=f"bmiss-{i}", id=f"{i:064x}",
                       interfaces=(InterfaceState(network=net, ifname="eth0", aliases=(f"svc{i}",),
                                                  ipv4=ipaddress.IPv4Interface(f"10.251.{i // 250}.{i % 250 + 2}/16")),))
        for i in range(N_CONTAINERS))
    view = build(Summary(project="bmiss", networks=(NetworkState(name=net),), containers=containers)).views["bmiss-0"]
    packets = [bytes(DNSRecord.question(c.name).pack()) for c in containers]
    packets = (packets * (queries // len(packets) + 1))[:queries]
    handle = Resolver().handle
    costs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for packet in packets:
            action, _ = handle(view, packet, False, {})
        costs.append((time.perf_counter() - start) / len(packets) * 1e6)
        assert action == ANSWER
    return statistics.median(costs)


def _wait_answers(ns: str, server: str, name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = sh("ip", "netns", "exec", ns, "dig", "+short", "+time=1", "+tries=1", f"@{server}", name, check=False)
        if r.returncode == 0 and r.stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server} in {ns} does not answer {name}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="runs per server; the table shows medians")
    ap.add_argument("--only", choices=("ours", "aardvark", "dnsmasq"), action="append")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/dns.py needs root (it makes network namespaces)", file=sys.stderr)
        return 2
    missing = [t for t in ("dnsperf", "dnsmasq", "dig") if not shutil.which(t)]
    if not os.access(AARDVARK, os.X_OK):
        missing.append(AARDVARK)
    if missing:
        print(f"missing: {', '.join(missing)}; install them with: {INSTALL_HINT} bind9-dnsutils", file=sys.stderr)
        return 2

    bench = Bench(args.seconds)
    results: dict[str, dict[str, float]] = {}
    kinds = args.only or ["ours", "aardvark", "dnsmasq"]
    try:
        starters = {"ours": bench.ours, "aardvark": bench.aardvark, "dnsmasq": bench.dnsmasq}
        running = {k: starters[k]() for k in kinds}
        runs: dict[str, list[tuple[float, float, float, int, float]]] = {k: [] for k in kinds}
        # Interleave the servers phase by phase, so a noisy moment of the machine (it is shared)
        # hits all of them alike; light load first, before any server has been driven hard.
        for _ in range(args.repeat):
            light = {}
            for kind in kinds:
                pid, ns, server, _stop = running[kind]
                light[kind] = dnsperf(ns, server, bench.qfile, args.seconds, 1000)[1]
            heavy = {}
            for kind in kinds:
                pid, ns, server, _stop = running[kind]
                heavy[kind] = dnsperf(ns, server, bench.qfile, args.seconds)
            for kind in kinds:
                pid, ns, server, _stop = running[kind]
                miss = dnsperf(ns, server, bench.missfile, args.seconds)[0]
                qps, lat = heavy[kind]
                rss = rss_kb(pid)
                runs[kind].append((qps, lat, light[kind], rss, miss))
                print(f"  {kind}: {qps:,.0f} qps, {lat:.2f} ms saturated, {light[kind]:.3f} ms at 1k qps, "
                      f"RSS {rss / 1024:.1f} MB, {miss:,.0f} qps all misses", file=sys.stderr)
        for kind in kinds:
            running[kind][3]()
            cols = list(zip(*runs[kind]))
            results[kind] = {"qps": statistics.median(cols[0]), "lat": statistics.median(cols[1]),
                             "light": statistics.median(cols[2]), "rss": max(cols[3]) / 1024,
                             "miss": statistics.median(cols[4])}
    finally:
        bench.cleanup()

    label = {"ours": f"compose-net ({N_CONTAINERS} containers)", "aardvark": "aardvark-dns", "dnsmasq": "dnsmasq"}
    micros = miss_cost() if "ours" in kinds else 0.0
    print(f"\ndnsperf -c 4 -q 100 -l {args.seconds}, no rate cap (-Q) except the 1,000 qps column, "
          f"{N_CONTAINERS} names (A), median of {args.repeat}\n")
    print("| server | queries/s | avg ms saturated | avg ms at 1,000 qps | RSS MB | queries/s, all cache misses |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        r = results[kind]
        print(f"| {label[kind]} | {r['qps']:,.0f} | {r['lat']:.2f} | {r['light']:.3f} | {r['rss']:.1f} | {r['miss']:,.0f} |")
    if "ours" in results:
        ours = results["ours"]
        print()
        for peer, target in (("aardvark", 1.5), ("dnsmasq", 1.2)):
            if peer in results:
                ratio = ours["qps"] / results[peer]["qps"]
                verdict = "ok" if ratio >= target else "BELOW TARGET"
                print(f"compose-net / {peer}: {ratio:.2f}x queries/s (target >= {target}x: {verdict}); "
                      f"all misses {ours['miss'] / results[peer]['miss']:.2f}x")
        print(f"miss path in the resolver core: {micros:.1f} us per query (no sockets)")
        print(f"latency at 1,000 qps: {ours['light']:.3f} ms (target <= 0.1: {'ok' if ours['light'] <= 0.1 else 'ABOVE TARGET'})")
        print(f"RSS: {ours['rss']:.1f} MB (target <= 20: {'ok' if ours['rss'] <= 20 else 'ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
