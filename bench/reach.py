#!/usr/bin/env python3
"""What `reach` costs.

matrix: a project of 1,000 services over 50 networks (each on two networks; every 50th
publishes a port; every 20th has an ingress rule naming two services and the host; every 25th an
egress rule), planned in process once; then, median of R runs:
  reach matrix        `reach.matrix(summary)` and every listed cell computed (pairs that share a
                      network or a published port, the host and outside), with its words
  reach --json        the same, turned into the JSON document `reach --json` prints
  peer: plan          `plan_up` of the same project in process (what `up --dry-run` computes)
  peer: all pairs     the naive matrix: every ordered pair of the 1,000, each asked `cell()`
                      (measured on 20,000 pairs, scaled to 1,000,000)
verify (root, holds the kernel-test lock): `examples/policy` (7 containers) brought up, then
  reach --verify      the whole command as a process: every cell, TCP and UDP, outside included
  peer: ip netns exec one `ip netns exec NS python -c CLIENT` per probe, as a shell script
                      checks a cell (measured on 20 probes, scaled to the command's probe count)
Prints a table with the ratio of each peer to compose-net's time.
Usage: bench/reach.py [--repeats R] [--no-verify]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import kernel_lock  # noqa: E402

PY = sys.executable

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(0.5)
try:
    if proto == "tcp":
        s.connect((host, port))
    else:
        s.connect((host, port)); s.send(b"?")
    print(s.recv(64).decode())
except OSError as e:
    print("closed", e)
"""


def compose(services: int = 1000, networks: int = 50) -> str:
    lines = ["name: reachbench", "services:"]
    for i in range(services):
        a, b = i % networks, (i * 7 + 3) % networks
        nets = sorted({a, b})
        lines.append(f"  s{i}:")
        lines.append("    image: x")
        lines.append(f"    networks: [{', '.join(f'n{n}' for n in nets)}]")
        if i % 50 == 0:
            lines.append(f'    ports: ["{20000 + i}:80"]')
        rules = []
        if i % 20 == 0:
            rules.append(f'      ingress:\n        - from: [s{(i + 50) % services}, s{(i + 100) % services}, host]\n'
                         f'          ports: ["5432/tcp"]')
        if i % 25 == 0:
            rules.append(f'      egress:\n        - to: [s{(i + 50) % services}, outside]')
        if rules:
            lines.append("    x-compose-net:")
            lines.extend(rules)
    lines.append("networks:")
    for n in range(networks):
        lines.append(f"  n{n}: {{ipam: {{config: [{{subnet: 10.{100 + n // 16}.{(n % 16) * 16}.0/20}}]}}}}")
    return "\n".join(lines) + "\n"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_matrix(repeats: int) -> list[tuple[str, float, str]]:
    from compose_net import reach
    from compose_net.loader import LoadOptions, load
    from compose_net.plan.planner import plan_up, summary
    from compose_net.probe import HostFacts

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "compose.yml").write_text(compose())
        project = load(LoadOptions(files=("compose.yml",), cwd=tmp, environ={})).project
    state = summary(project, HostFacts())

    def listed():
        m = reach.matrix(state)
        return sum(1 for _ in m.cells())

    cells = listed()
    t_matrix = median_time(listed, repeats)
    t_json = median_time(lambda: json.dumps(reach.to_json(reach.matrix(state))), repeats)
    t_plan = median_time(lambda: plan_up(project, HostFacts()), max(1, repeats // 2))
    m = reach.matrix(state)
    nodes = [n for n in m.nodes if n not in (reach.HOST, reach.OUTSIDE)]
    sample = [(nodes[i % len(nodes)], nodes[(i * 37 + 1) % len(nodes)]) for i in range(20000)]
    t0 = time.perf_counter()
    for a, b in sample:
        if a != b:
            m.cell(a, b)
    t_pairs = (time.perf_counter() - t0) * (len(nodes) ** 2 / len(sample))
    return [
        (f"reach matrix ({cells} cells listed)", t_matrix, ""),
        ("reach --json", t_json, ""),
        ("peer: plan (up --dry-run's work)", t_plan, f"{t_plan / t_matrix:.1f}x"),
        (f"peer: all {len(nodes) ** 2:,} pairs asked", t_pairs, f"{t_pairs / t_matrix:.1f}x"),
    ]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PY, "-m", "compose_net", *args], capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode not in (0,):
        raise SystemExit(f"compose-net {' '.join(args)}: {proc.returncode}: {proc.stderr}")
    return proc


def bench_verify(repeats: int) -> list[tuple[str, float, str]]:
    name = "rb" + uuid.uuid4().hex[:7]
    example = str(ROOT / "examples" / "policy" / "compose.yml")
    with kernel_lock():
        try:
            cli("-p", name, "-f", example, "up", "--quiet")
            times, report = [], None
            for _ in range(repeats):
                t = time.perf_counter()
                proc = cli("-p", name, "-f", example, "reach", "--verify", "--json", check=False)
                times.append(time.perf_counter() - t)
                report = json.loads(proc.stdout)
            t_verify = statistics.median(times)
            probes = report["probes"]
            bad = sum(1 for p in probes if not p["agrees"])
            ps = {c["Name"]: c["Namespace"] for c in json.loads(cli("-p", name, "ps", "--format", "json").stdout)}
            sample = [p for p in probes if p["from"] in ps][:20]
            t0 = time.perf_counter()
            for p in sample:
                subprocess.run(["ip", "netns", "exec", ps[p["from"]], PY, "-c", CLIENT, p["protocol"], p["address"],
                                str(p["port"])], capture_output=True, timeout=10)
            t_peer = (time.perf_counter() - t0) / max(1, len(sample)) * len(probes)
        finally:
            cli("-p", name, "down", "--quiet", check=False)
    return [
        (f"reach --verify, 7 containers ({len(probes)} probes, {bad} disagree)", t_verify, ""),
        ("peer: ip netns exec per probe", t_peer, f"{t_peer / t_verify:.1f}x"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    rows = bench_matrix(args.repeats)
    if not args.no_verify and os.geteuid() == 0:
        rows += bench_verify(max(1, args.repeats // 2))
    width = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(width)}  {'seconds':>8}  peer/compose-net")
    for what, seconds, ratio in rows:
        print(f"{what.ljust(width)}  {seconds:8.3f}  {ratio}")


if __name__ == "__main__":
    main()
